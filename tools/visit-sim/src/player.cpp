#include "player.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <set>
#include <stdexcept>
#include <thread>

namespace visitd::sim {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace json = boost::json;
using net::ip::tcp;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

TimePoint DemoTime::now() const {
  const std::chrono::duration<double, Duration::period> real = SteadyClock::now() - synced;
  return at_sync + std::chrono::floor<Duration>(real * rate);
}

SteadyClock::time_point DemoTime::when(TimePoint t) const {
  const std::chrono::duration<double, Duration::period> demo = t - at_sync;
  return synced + std::chrono::ceil<SteadyClock::duration>(demo / rate);
}

void Stats::count_error(const std::string& code) {
  std::lock_guard lock(mutex_);
  ++errors_[code];
}

std::map<std::string, std::uint64_t> Stats::errors() const {
  std::lock_guard lock(mutex_);
  return errors_;
}

std::uint64_t Stats::error_total() const {
  std::uint64_t n = 0;
  for (const auto& [code, count] : errors()) n += count;
  return n;
}

namespace {

/// One WebSocket to the daemon, with reads that time out. One thread.
class Socket {
 public:
  explicit Socket(const Endpoint& daemon) : daemon_(daemon) {}

  /// Connects, upgrades `target` and sends the first-message `auth`. Throws on failure.
  void open(const std::string& target, const std::string& token) {
    ws_.emplace(io_);
    tcp::resolver resolver(io_);
    beast::get_lowest_layer(*ws_).expires_after(5s);
    beast::get_lowest_layer(*ws_).connect(resolver.resolve(daemon_.host, daemon_.port));
    ws_->set_option(websocket::stream_base::decorator(
        [](websocket::request_type& req) { req.set(http::field::user_agent, "visit-sim"); }));
    ws_->handshake(daemon_.host + ":" + daemon_.port, target);
    beast::get_lowest_layer(*ws_).expires_never();
    send(json::serialize(json::object{{"type", "auth"}, {"token", token}}));
  }

  bool is_open() const { return ws_.has_value() && ws_->is_open(); }

  void send(const std::string& text) {
    ws_->text(true);
    ws_->write(net::buffer(text));
  }

  /// The next message, or nullopt when none came within `timeout` or the connection failed
  /// (then it is closed).
  std::optional<std::string> receive(Duration timeout) {
    beast::flat_buffer buffer;
    beast::error_code result = net::error::would_block;
    beast::get_lowest_layer(*ws_).expires_after(timeout);
    ws_->async_read(buffer, [&](beast::error_code ec, std::size_t) { result = ec; });
    io_.restart();
    io_.run();
    if (result) {
      drop();
      return std::nullopt;
    }
    beast::get_lowest_layer(*ws_).expires_never();
    return beast::buffers_to_string(buffer.data());
  }

  /// Closes without a closing handshake, as a phone losing signal does.
  void drop() {
    if (!ws_) return;
    beast::error_code ignored;
    beast::get_lowest_layer(*ws_).socket().close(ignored);
    ws_.reset();
  }

  /// The closing handshake, at the end of the day.
  void close() {
    if (!is_open()) return;
    beast::error_code ignored;
    beast::get_lowest_layer(*ws_).expires_after(2s);
    ws_->close(websocket::close_code::normal, ignored);
    ws_.reset();
  }

 private:
  Endpoint daemon_;
  net::io_context io_;
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
};

std::string text_of(const json::value& v, std::string_view key) {
  if (const auto* o = v.if_object()) {
    if (const auto* s = o->if_contains(key); s != nullptr && s->is_string()) {
      return std::string(s->as_string());
    }
  }
  return {};
}

http::response<http::string_body> request(const Endpoint& daemon, http::verb verb,
                                          const std::string& target, const std::string& token,
                                          std::string body, std::string_view content_type) {
  net::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  stream.expires_after(60s);
  stream.connect(resolver.resolve(daemon.host, daemon.port));
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, daemon.host + ":" + daemon.port);
  req.set(http::field::user_agent, "visit-sim");
  req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(http::field::content_type, content_type);
    req.body() = std::move(body);
  }
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  http::read(stream, buffer, parser);
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return parser.release();
}

}  // namespace

DemoTime read_demo_time(const Endpoint& daemon, const std::string& token) {
  Socket board(daemon);
  board.open("/ws/board", token);
  for (int i = 0; i < 20; ++i) {
    auto message = board.receive(10s);
    if (!message) break;
    const auto received = SteadyClock::now();
    beast::error_code ec;
    const json::value v = json::parse(*message, ec);
    if (ec) continue;
    const std::string type = text_of(v, "type");
    if (type == "error") {
      throw std::runtime_error("the board refused the token: " + text_of(v, "code") + ": " +
                               text_of(v, "message"));
    }
    if (type != "snapshot") continue;
    DemoTime t;
    const auto server = parse_rfc3339(text_of(v, "server_time"));
    if (!server) throw std::runtime_error("the board's snapshot has no server_time");
    t.at_sync = *server;
    t.synced = received;
    if (const auto* rate = v.as_object().if_contains("clock_rate"); rate && rate->is_number()) {
      t.rate = rate->to_number<double>();
    }
    board.close();
    return t;
  }
  throw std::runtime_error("no snapshot came on /ws/board");
}

std::string put_rota(const Endpoint& daemon, const std::string& branch, LocalDays date,
                     const std::string& csv, const std::string& token) {
  const std::string target = "/api/rota?branch=" + branch + "&date=" + format_local_date(date);
  auto res = request(daemon, http::verb::put, target, token, csv, "text/csv");
  if (res.result() != http::status::ok) {
    throw std::runtime_error("PUT " + target + " answered " + std::to_string(res.result_int()) +
                             ": " + res.body());
  }
  return res.body();
}

std::string http_get(const Endpoint& daemon, const std::string& target, const std::string& token) {
  auto res = request(daemon, http::verb::get, target, token, {}, {});
  if (res.result() != http::status::ok) {
    throw std::runtime_error("GET " + target + " answered " + std::to_string(res.result_int()) +
                             ": " + res.body());
  }
  return res.body();
}

void play_carer(const Endpoint& daemon, const CarerScript& script, const std::string& token,
                const DemoTime& clock, std::optional<TimePoint> until, Stats& stats,
                const std::atomic<bool>& stop) {
  Socket phone(daemon);
  bool ever_connected = false;
  bool counted_online = false;
  const auto set_online = [&](bool online) {
    if (online != counted_online) {
      online ? ++stats.online : --stats.online;
      counted_online = online;
    }
  };
  // A failed connection is retried with backoff; true once open.
  const auto connect = [&]() -> bool {
    Duration backoff = 250ms;
    for (int attempt = 0; attempt < 8 && !stop.load(); ++attempt) {
      try {
        phone.open("/ws/carer", token);
        set_online(true);
        return true;
      } catch (const std::exception&) {
        phone.drop();
        set_online(false);
        std::this_thread::sleep_for(backoff);
        backoff = std::min<Duration>(backoff * 2, 4s);
      }
    }
    return false;
  };

  for (const Step& step : script.steps) {
    if (until && step.send_at > *until) break;
    // Sleep in slices, so that a stop is noticed within a fifth of a second.
    const auto due = clock.when(step.send_at);
    while (!stop.load() && SteadyClock::now() < due) {
      std::this_thread::sleep_for(std::min<SteadyClock::duration>(due - SteadyClock::now(), 200ms));
    }
    if (stop.load()) break;

    std::set<std::string> pending;
    for (const Event& e : step.events) pending.insert(e.id);
    bool dropped = false;
    for (int attempt = 0; !pending.empty() && attempt < 6 && !stop.load(); ++attempt) {
      if (!phone.is_open()) {
        if (ever_connected) ++stats.reconnects;
        if (!connect()) break;
        ever_connected = true;
      }
      try {
        for (const Event& e : step.events) {
          if (!pending.contains(e.id)) continue;
          phone.send(e.to_json());
          ++stats.sent;
          if (attempt > 0) ++stats.resent;
        }
      } catch (const std::exception&) {
        phone.drop();
        set_online(false);
        continue;
      }
      if (step.drop_before_ack && !dropped) {
        // Signal lost before the acks arrive: the phone keeps the events and resends them.
        dropped = true;
        phone.drop();
        set_online(false);
        continue;
      }
      // Every event is answered (ack or error) once durable or refused; `internal` and
      // `rate_limited` say "send it again later".
      std::set<std::string> again;
      while (!pending.empty()) {
        auto message = phone.receive(10s);
        if (!message) {
          set_online(false);
          break;
        }
        beast::error_code ec;
        const json::value v = json::parse(*message, ec);
        if (ec) continue;
        const std::string type = text_of(v, "type");
        const std::string id = text_of(v, "id");
        if (type == "ack" && pending.erase(id) > 0) {
          text_of(v, "status") == "duplicate" ? ++stats.duplicate : ++stats.accepted;
        } else if (type == "error") {
          const std::string code = text_of(v, "code");
          stats.count_error(code);
          if (pending.erase(id) > 0 && (code == "internal" || code == "rate_limited")) {
            again.insert(id);
          }
        }
      }
      if (!again.empty()) {
        pending.merge(again);
        std::this_thread::sleep_for(500ms);
      }
    }
    stats.abandoned += pending.size();
  }
  phone.close();
  set_online(false);
  ++stats.finished;
}

}  // namespace visitd::sim
