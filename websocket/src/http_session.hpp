#pragma once
// One HTTP connection: reads requests one at a time (header and body limits, a deadline per
// request so a slow client holds only its own connection), answers the daemon's routes
// (`/healthz`, `/readyz`, `/metrics`, `/api/...` through the engine host, `/` from the
// dashboard directory) and hands WebSocket upgrades on /ws/carer and /ws/board, checked for
// Origin and, when present, the Authorization header, to a WebSocketSession.
//
// Thread-safety: runs on its own strand; shut_down() posts to it.

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>

#include "server_context.hpp"
#include "visitd/websocket/http_api.hpp"

namespace visitd::websocket::detail {

class HttpSession final : public Closable, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket&& socket, std::shared_ptr<ServerContext> ctx);
  ~HttpSession() override;

  void run();
  void shut_down() override;

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void route(Request&& request);
  void upgrade(Request&& request);
  void serve_file(const Request& request);
  /// Sends `answer` as the response to the current request.
  void respond(const HttpAnswer& answer);
  void on_write(bool keep_alive, boost::beast::error_code ec, std::size_t bytes);
  void close();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::shared_ptr<ServerContext> ctx_;
  ConnectionSlot slot_;
  std::uint64_t registration_ = 0;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<boost::beast::http::response<boost::beast::http::string_body>> response_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool stopping_ = false;
};

}  // namespace visitd::websocket::detail
