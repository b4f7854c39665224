#pragma once
// The daemon's network face: one listener on `[server] listen` serving HTTP (the API,
// /metrics, /healthz, /readyz, the board's files) and the carer and board WebSockets, on
// the caller's io_context (run it on `[server] threads` threads). See websocket/src/ for
// the sessions; the engine itself lives in EngineHost.
//
// Thread-safety: start() and shutdown() from any one thread; the rest runs on strands.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>

#include "visitd/config/settings.hpp"
#include "visitd/core/clock.hpp"
#include "visitd/websocket/engine_host.hpp"
#include "visitd/websocket/metrics.hpp"

namespace visitd::websocket {

namespace detail {
struct ServerContext;
class Listener;
}  // namespace detail

class Server {
 public:
  Server(boost::asio::io_context& io, const config::Settings& settings,
         std::shared_ptr<EngineHost> host, Metrics& metrics, const Clock& clock);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds `[server] listen` (port 0: the system picks one) and starts accepting.
  /// Throws std::system_error when the address cannot be bound, naming it.
  void start();
  /// The bound address (with the real port when the config said 0).
  boost::asio::ip::tcp::endpoint local_endpoint() const;

  /// Graceful stop (SIGTERM): stop accepting; let the engine host flush the journal and
  /// deliver every ack it owes; then close every WebSocket with 1001 (going away) and every
  /// idle HTTP connection; then `done` (from an I/O thread).
  void shutdown(std::function<void()> done);
  /// Connections still open (HTTP and WebSocket): shutdown waits for this to reach 0.
  std::size_t open_sessions() const;

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<detail::ServerContext> ctx_;  ///< shared with every session
  std::shared_ptr<detail::Listener> listener_;
};

/// Parses "host:port" (IPv4, `[v6]:port`, or a name resolving to one) into an endpoint.
/// Throws std::invalid_argument naming the text when it cannot.
boost::asio::ip::tcp::endpoint parse_listen(std::string_view text);

}  // namespace visitd::websocket
