// ws-baseline: the physical reference for visitd's carer WebSocket on this machine. A bare
// Boost.Beast server that does the least the protocol allows with the same frames: accept
// the /ws/carer upgrade (any token, or none), push an empty rota, then for every text frame
// parse it with Boost.JSON (the irreducible work: the daemon must parse each event too, and a
// cheap scan for "id" would flatter the baseline), take its `id`, and answer an `accepted`
// ack. No validation, no engine, no journal, no fsync. `PUT /api/rota` answers 200 `{}` and
// `GET /readyz` 200, so that visit-load and scripts/bench-ws drive it unchanged.
//
//   ws-baseline [--port P] [--address A] [--threads N]
//
// Prints `listening on PORT` on stdout once accepting (port 0 picks a free one). Stops on
// SIGINT or SIGTERM. Structured like Beast's chat-multi example: a listener, an HTTP session
// per connection that hands upgrades to a WebSocket session, each on its own strand.

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace json = boost::json;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

constexpr const char* kUsage = R"(Usage: ws-baseline [--port P] [--address A] [--threads N]

A bare WebSocket server answering visitd's carer frames with acks, as the physical reference
for visitd's throughput and latency (see scripts/bench-ws):
  --port P      port to listen on; 0 picks a free one [0]
  --address A   address to listen on [127.0.0.1]
  --threads N   I/O threads [2]
  --help        this text
Prints `listening on PORT` on stdout when ready. Stops on SIGINT or SIGTERM.
)";

void fail(beast::error_code ec, const char* what) {
  if (ec == net::error::operation_aborted || ec == websocket::error::closed ||
      ec == beast::error::timeout || ec == net::error::eof || ec == net::error::connection_reset) {
    return;
  }
  std::fprintf(stderr, "ws-baseline: %s: %s\n", what, ec.message().c_str());
}

// One carer connection after the upgrade. One write in flight; the queue is bounded by the
// client's window (visit-load keeps K events unacked), so it is not capped here.
class CarerSession : public std::enable_shared_from_this<CarerSession> {
 public:
  explicit CarerSession(tcp::socket&& socket) : ws_(std::move(socket)) {}

  void run(http::request<http::string_body> upgrade) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "ws-baseline"); }));
    ws_.async_accept(upgrade,
                     beast::bind_front_handler(&CarerSession::on_accept, shared_from_this()));
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) return fail(ec, "accept");
    ws_.text(true);
    send(R"({"type":"rota","visits":[]})");
    do_read();
  }

  void do_read() {
    ws_.async_read(buffer_, beast::bind_front_handler(&CarerSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) return fail(ec, "read");
    const auto data = buffer_.cdata();
    send(answer(std::string_view(static_cast<const char*>(data.data()), data.size())));
    buffer_.consume(buffer_.size());
    do_read();
  }

  std::string answer(std::string_view frame) {
    // The parser is reused (its stack stays allocated); the value lives in a stack buffer.
    unsigned char scratch[4096];
    json::monotonic_resource memory(scratch, sizeof scratch);
    parser_.reset(&memory);
    json::error_code ec;
    parser_.write(frame.data(), frame.size(), ec);
    if (ec) {
      parser_.reset();  // drop partial values before `memory` goes
      return R"({"type":"error","id":null,"code":"bad_json","message":"not JSON"})";
    }
    const json::value event = parser_.release();
    const json::value* id = event.is_object() ? event.get_object().if_contains("id") : nullptr;
    if (id == nullptr || !id->is_string()) {
      return R"({"type":"error","id":null,"code":"bad_message","message":"id is missing"})";
    }
    std::string ack = R"({"type":"ack","id":)";
    ack += json::serialize(id->get_string());
    ack += R"(,"status":"accepted","visit":null,"state":null,"flags":[]})";
    return ack;
  }

  void send(std::string message) {
    queue_.push_back(std::move(message));
    if (queue_.size() == 1) do_write();
  }

  void do_write() {
    ws_.async_write(net::buffer(queue_.front()),
                    beast::bind_front_handler(&CarerSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return fail(ec, "write");
    queue_.pop_front();
    if (!queue_.empty()) do_write();
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  json::parser parser_;
  std::deque<std::string> queue_;
};

// Reads HTTP requests until one is a WebSocket upgrade to /ws/carer.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  explicit HttpSession(tcp::socket&& socket) : stream_(std::move(socket)) {}

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::do_read, shared_from_this()));
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(64 << 20);  // a rota import of a large agency
    stream_.expires_after(30s);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      return;
    }
    if (ec) return fail(ec, "http read");
    auto& req = parser_->get();
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    if (websocket::is_upgrade(req) && path == "/ws/carer") {
      stream_.expires_never();
      std::make_shared<CarerSession>(stream_.release_socket())->run(parser_->release());
      return;
    }
    http::status status = http::status::not_found;
    std::string body = R"({"error":{"code":"not_found","message":"no such route","details":[]}})";
    if ((req.method() == http::verb::put && path == "/api/rota") ||
        (req.method() == http::verb::get && (path == "/readyz" || path == "/healthz"))) {
      status = http::status::ok;
      body = "{}";
    }
    response_.emplace(status, req.version());
    response_->set(http::field::server, "ws-baseline");
    response_->set(http::field::content_type, "application/json");
    response_->keep_alive(req.keep_alive());
    response_->body() = std::move(body);
    response_->prepare_payload();
    http::async_write(stream_, *response_,
                      beast::bind_front_handler(&HttpSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return fail(ec, "http write");
    const bool keep_alive = response_->keep_alive();
    response_.reset();
    if (!keep_alive) {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      return;
    }
    do_read();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& io, const tcp::endpoint& endpoint) : io_(io), acceptor_(io) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  void run() { do_accept(); }

 private:
  void do_accept() {
    acceptor_.async_accept(net::make_strand(io_),
                           beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec) {
      fail(ec, "accept");
      // Out of descriptors: back off rather than spin.
      if (ec == net::error::no_descriptors) std::this_thread::sleep_for(10ms);
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<HttpSession>(std::move(socket))->run();
    }
    if (acceptor_.is_open()) do_accept();
  }

  net::io_context& io_;
  tcp::acceptor acceptor_;
};

bool to_number(std::string_view text, unsigned& out, unsigned max) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out <= max;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned port = 0;
  unsigned threads = 2;
  std::string address = "127.0.0.1";
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    const bool has_value = i + 1 < args.size();
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--port" && has_value && to_number(args[++i], port, 65535)) {
    } else if (arg == "--threads" && has_value && to_number(args[++i], threads, 256) &&
               threads > 0) {
    } else if (arg == "--address" && has_value) {
      address = std::string(args[++i]);
    } else {
      std::fprintf(stderr, "ws-baseline: bad option '%.*s'\n%s", int(arg.size()), arg.data(),
                   kUsage);
      return 2;
    }
  }

  try {
    net::io_context io{static_cast<int>(threads)};
    const auto listener = std::make_shared<Listener>(
        io, tcp::endpoint(net::ip::make_address(address), static_cast<unsigned short>(port)));
    listener->run();
    std::printf("listening on %u\n", unsigned(listener->port()));
    std::fflush(stdout);

    net::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&io](beast::error_code, int) { io.stop(); });

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ws-baseline: %s\n", e.what());
    return 1;
  }
  return 0;
}
