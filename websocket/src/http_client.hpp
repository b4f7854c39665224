#pragma once
// A one-shot HTTP(S) POST for delivering notices: resolve, connect, (TLS handshake, with the
// system's CA store and the host name checked), write, read the answer, close. One deadline
// covers the whole exchange; an answer's body is read up to 64 KiB (only its first words are
// kept, for the audit trail).

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace visitd::websocket {

struct PostRequest {
  std::string url;  ///< http:// or https://
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{10'000};
};

struct PostResult {
  int status = 0;  ///< 0: no answer (the error says why)
  std::string error;
  std::optional<std::chrono::seconds> retry_after;  ///< from a Retry-After header in seconds
  std::string body_start;                           ///< the answer's first 200 bytes
};

/// Starts the POST; `done` runs once, on `executor`.
void post(boost::asio::any_io_executor executor, PostRequest request,
          std::function<void(PostResult)> done);

/// Splits "http://host:port/path": scheme, host, port, target; nullopt if it is not one.
struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target;
};
std::optional<Url> parse_url(std::string_view url);

}  // namespace visitd::websocket
