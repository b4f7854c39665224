#include "visitd/websocket/server.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <stdexcept>

#include "http_session.hpp"
#include "server_context.hpp"
#include "visitd/core/log.hpp"

namespace visitd::websocket {
namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

namespace detail {

/// Accepts connections, each onto a strand of its own, up to `[server] max_connections`.
class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& io, std::shared_ptr<ServerContext> ctx)
      : io_(io), ctx_(std::move(ctx)), acceptor_(net::make_strand(io)) {}

  void open(const tcp::endpoint& endpoint) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }
  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void run() { do_accept(); }
  void stop() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
    });
  }

 private:
  void do_accept() {
    acceptor_.async_accept(net::make_strand(io_),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // EMFILE and the like: say so, pause briefly rather than spin, carry on.
      log::warn("accept_failed", {{"error", ec.message()}});
      auto timer = std::make_shared<net::steady_timer>(acceptor_.get_executor(),
                                                       std::chrono::milliseconds(50));
      timer->async_wait(
          [self = shared_from_this(), timer](beast::error_code) { self->do_accept(); });
      return;
    }
    if (ctx_->connections.load() >= ctx_->settings.server.max_connections) {
      ctx_->metrics.count_refused("max_connections");
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // acks are small and latency-bound
      std::make_shared<HttpSession>(std::move(socket), ctx_)->run();
    }
    do_accept();
  }

  net::io_context& io_;
  std::shared_ptr<ServerContext> ctx_;
  tcp::acceptor acceptor_;
};

}  // namespace detail

tcp::endpoint parse_listen(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    throw std::invalid_argument("listen address \"" + std::string(text) + "\" is not host:port");
  }
  std::string host(text.substr(0, colon));
  const std::string port(text.substr(colon + 1));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  net::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  const auto results = resolver.resolve(host, port, tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    throw std::invalid_argument("listen address \"" + std::string(text) +
                                "\" cannot be resolved: " + ec.message());
  }
  return results.begin()->endpoint();
}

Server::Server(net::io_context& io, const config::Settings& settings,
               std::shared_ptr<EngineHost> host, Metrics& metrics, const Clock& clock)
    : io_(io),
      ctx_(std::make_shared<detail::ServerContext>(settings, std::move(host), metrics, clock)) {}

Server::~Server() = default;

void Server::start() {
  const tcp::endpoint endpoint = parse_listen(ctx_->settings.server.listen);
  listener_ = std::make_shared<detail::Listener>(io_, ctx_);
  try {
    listener_->open(endpoint);
  } catch (const boost::system::system_error& e) {
    throw std::system_error(e.code(), "cannot listen on " + ctx_->settings.server.listen);
  }
  listener_->run();
}

tcp::endpoint Server::local_endpoint() const { return listener_->local_endpoint(); }

std::size_t Server::open_sessions() const { return ctx_->live_sessions(); }

void Server::shutdown(std::function<void()> done) {
  ctx_->stopping.store(true);
  if (listener_) listener_->stop();
  ctx_->host->close([ctx = ctx_, done = std::move(done)] {
    // Every owed ack has been posted to its session before this: closing comes after it.
    ctx->shut_down_all();
    done();
  });
}

}  // namespace visitd::websocket
