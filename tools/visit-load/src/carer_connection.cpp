#include "carer_connection.hpp"

#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <utility>

#include "visitd/core/clock.hpp"
#include "visitd/core/time.hpp"

namespace visitd::load {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace websocket = beast::websocket;
namespace json = boost::json;
using net::ip::tcp;
using namespace std::chrono_literals;

namespace {

// The realistic mix: per visit, 20 events of which one check-in and one check-out with
// location pings between; once every visit is done, pings only.
constexpr std::uint64_t kCycle = 20;
constexpr std::uint64_t kCheckInAt = 4;
constexpr std::uint64_t kCheckOutAt = 14;
// --rate: a connection this far behind skips events (and counts them) rather than growing
// a backlog without bound.
constexpr std::size_t kMaxPendingPaced = 4096;

std::string_view string_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// The visits of a `rota` push the carer can still check in to.
std::vector<std::string> open_visits(const json::object& rota) {
  std::vector<std::string> visits;
  const json::value* list = rota.if_contains("visits");
  if (list == nullptr || !list->is_array()) return visits;
  for (const json::value& v : list->get_array()) {
    if (!v.is_object()) continue;
    const json::object& visit = v.get_object();
    const json::value* check_ins = visit.if_contains("check_ins");
    const bool checked_in =
        check_ins != nullptr && check_ins->is_array() && !check_ins->get_array().empty();
    const std::string_view state = string_at(visit, "state");
    const bool can_start = state == "scheduled" || state == "late" || state == "missed";
    if (!checked_in && can_start && !string_at(visit, "id").empty()) {
      visits.emplace_back(string_at(visit, "id"));
    }
  }
  return visits;
}

}  // namespace

CarerConnection::CarerConnection(net::io_context& io, RunStats& stats, ConnectionSetup setup)
    : stats_(stats), setup_(std::move(setup)), ws_(net::make_strand(io)) {}

void CarerConnection::open(OpenHandler done) {
  on_open_ = std::move(done);
  net::post(ws_.get_executor(), [self = shared_from_this()] {
    auto& tcp_layer = beast::get_lowest_layer(self->ws_);
    tcp_layer.expires_after(30s);
    tcp_layer.async_connect(self->setup_.endpoint,
                            beast::bind_front_handler(&CarerConnection::on_connect, self));
  });
}

void CarerConnection::on_connect(beast::error_code ec) {
  if (ec) return finish_open(false, "connect: " + ec.message());
  auto& tcp_layer = beast::get_lowest_layer(ws_);
  tcp_layer.socket().set_option(tcp::no_delay(true), ec);
  tcp_layer.expires_never();
  ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  // Masking keys from the fast generator: a load generator has no cache to poison.
  ws_.secure_prng(false);
  ws_.set_option(
      websocket::stream_base::decorator([token = setup_.token](websocket::request_type& req) {
        req.set(http::field::authorization, "Bearer " + token);
        req.set(http::field::user_agent, "visit-load");
      }));
  ws_.async_handshake(
      upgrade_response_, setup_.host, "/ws/carer",
      beast::bind_front_handler(&CarerConnection::on_handshake, shared_from_this()));
}

void CarerConnection::on_handshake(beast::error_code ec) {
  if (ec) {
    std::string why = "upgrade: " + ec.message();
    if (upgrade_response_.result_int() != 0) {
      why += " (HTTP " + std::to_string(upgrade_response_.result_int()) + " " +
             upgrade_response_.body() + ")";
    }
    return finish_open(false, why);
  }
  upgrade_response_ = {};
  ws_.text(true);
  open_ = true;
  stats_.open.fetch_add(1, std::memory_order_relaxed);
  do_read();
  finish_open(true, {});
}

void CarerConnection::finish_open(bool ok, std::string_view why) {
  if (ok) {
    stats_.connected.fetch_add(1, std::memory_order_relaxed);
  } else {
    stats_.connect_failures.fetch_add(1, std::memory_order_relaxed);
    stats_.report_failure(setup_.carer.id, why);
  }
  if (auto done = std::exchange(on_open_, nullptr)) done(ok);
}

void CarerConnection::do_read() {
  ws_.async_read(buffer_, beast::bind_front_handler(&CarerConnection::on_read, shared_from_this()));
}

void CarerConnection::on_read(beast::error_code ec, std::size_t) {
  if (ec) {
    return connection_ended(ec == websocket::error::closed ? "closed by the server"
                                                           : "read: " + ec.message());
  }
  const auto data = buffer_.cdata();
  handle_message(std::string_view(static_cast<const char*>(data.data()), data.size()));
  buffer_.consume(buffer_.size());
  do_read();
}

void CarerConnection::handle_message(std::string_view text) {
  const auto now = SteadyClock::now();
  // One parser per I/O thread, reused: its buffers stay allocated between messages.
  thread_local json::parser parser;
  parser.reset();
  json::error_code ec;
  parser.write(text.data(), text.size(), ec);
  if (ec) {
    stats_.count_error("client:bad_json", setup_.carer.id, text.substr(0, 200));
    return;
  }
  const json::value message = parser.release();
  if (!message.is_object()) {
    stats_.count_error("client:not_an_object", setup_.carer.id, text.substr(0, 200));
    return;
  }
  const json::object& o = message.get_object();
  const std::string_view type = string_at(o, "type");
  if (type == "ack") {
    const std::string_view status = string_at(o, "status");
    if (status == "accepted") {
      stats_.accepted.fetch_add(1, std::memory_order_relaxed);
    } else if (status == "duplicate") {
      stats_.duplicate.fetch_add(1, std::memory_order_relaxed);
    } else {
      stats_.count_error("client:ack_status", setup_.carer.id, text);
    }
    resolve(string_at(o, "id"), now, true);
  } else if (type == "error") {
    const std::string_view code = string_at(o, "code");
    stats_.count_error(code.empty() ? "client:error_without_code" : code, setup_.carer.id,
                       string_at(o, "message"));
    const std::string_view id = string_at(o, "id");
    if (!id.empty()) resolve(id, now, false);
  } else if (type == "rota") {
    if (setup_.visits_from_rota && !rota_seen_) setup_.carer.visits = open_visits(o);
    rota_seen_ = true;
  }
  // Anything else (`message` from the office, later rota pushes) is not load.
}

void CarerConnection::resolve(std::string_view id, SteadyClock::time_point now, bool acked) {
  auto it = pending_.begin();
  // Answers come in order on one connection, so the first is nearly always the one.
  while (it != pending_.end() && it->id != id) ++it;
  if (it == pending_.end()) {
    stats_.count_error("client:unmatched_id", setup_.carer.id, id);
    return;
  }
  // Only acks count: an event refused with an error is neither throughput nor latency.
  if (acked) {
    if (stats_.in_window(it->sent)) {
      stats_.latency.record(std::uint64_t(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - it->sent).count()));
    }
    stats_.acked.fetch_add(1, std::memory_order_relaxed);
    if (stats_.in_window(now)) stats_.acked_in_window.fetch_add(1, std::memory_order_relaxed);
  }
  stats_.pending.fetch_sub(1, std::memory_order_relaxed);
  pending_.erase(it);
  if (sending_ && !setup_.paced) top_up(now);
}

void CarerConnection::start_sending() {
  net::post(ws_.get_executor(), [self = shared_from_this()] {
    if (!self->open_ || self->closing_) return;
    self->sending_ = true;
    if (!self->setup_.paced) self->top_up(SteadyClock::now());
  });
}

void CarerConnection::top_up(SteadyClock::time_point now) {
  while (pending_.size() < setup_.inflight) send_event(now);
}

void CarerConnection::send_due(SteadyClock::time_point due) {
  net::post(ws_.get_executor(), [self = shared_from_this(), due] {
    if (!self->sending_ || self->pending_.size() >= kMaxPendingPaced) {
      self->stats_.skipped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    self->send_event(due);
  });
}

void CarerConnection::send_event(SteadyClock::time_point sent) {
  const std::uint64_t n = seq_++;
  std::string id = setup_.id_prefix + std::to_string(n);
  outbox_.push_back(compose(n, id));
  pending_.push_back({std::move(id), sent});
  stats_.sent.fetch_add(1, std::memory_order_relaxed);
  stats_.pending.fetch_add(1, std::memory_order_relaxed);
  if (!writing_) do_write();
}

std::string CarerConnection::compose(std::uint64_t n, const std::string& id) const {
  const CarerPlan& c = setup_.carer;
  const std::string at = format_rfc3339(SystemClock().now());
  // A few metres of GPS jitter around the client's door.
  const double lat = c.lat + 0.00002 * double(int(n % 5) - 2);
  const double lon = c.lon + 0.00003 * double(int(n % 7) - 3);
  const std::uint64_t visit = n / kCycle;
  const std::uint64_t step = n % kCycle;
  const char* type = "location";
  const char* tail = "";
  if (visit < c.visits.size() && step == kCheckInAt) {
    type = "check_in";
    tail = R"(,"method":"gps")";
  } else if (visit < c.visits.size() && step == kCheckOutAt) {
    type = "check_out";
    tail = R"(,"note":"Load test visit: meds taken, had lunch")";
  }
  char fix[96];
  std::snprintf(fix, sizeof fix, R"("lat":%.6f,"lon":%.6f,"accuracy":%d)", lat, lon,
                5 + int(n % 20));
  std::string frame;
  frame.reserve(200);
  frame += R"({"type":")";
  frame += type;
  frame += R"(","id":")";
  frame += id;
  if (*tail != '\0') {
    frame += R"(","visit":")";
    frame += c.visits[visit];
  }
  frame += R"(","at":")";
  frame += at;
  frame += R"(",)";
  frame += fix;
  frame += tail;
  frame += '}';
  return frame;
}

void CarerConnection::do_write() {
  writing_ = true;
  ws_.async_write(net::buffer(outbox_.front()),
                  beast::bind_front_handler(&CarerConnection::on_write, shared_from_this()));
}

void CarerConnection::on_write(beast::error_code ec, std::size_t) {
  writing_ = false;
  if (ec) return connection_ended("write: " + ec.message());
  outbox_.pop_front();
  if (!outbox_.empty()) do_write();
}

void CarerConnection::stop_sending() {
  net::post(ws_.get_executor(), [self = shared_from_this()] { self->sending_ = false; });
}

void CarerConnection::close() {
  net::post(ws_.get_executor(),
            beast::bind_front_handler(&CarerConnection::do_close, shared_from_this()));
}

void CarerConnection::do_close() {
  sending_ = false;
  if (!open_ || closing_) return;
  closing_ = true;
  ws_.async_close(websocket::close_code::normal,
                  beast::bind_front_handler(&CarerConnection::on_close, shared_from_this()));
}

void CarerConnection::on_close(beast::error_code ec) {
  // The pending read ends with `closed` and accounts for the connection.
  if (ec) connection_ended("close: " + ec.message());
}

void CarerConnection::connection_ended(std::string_view why) {
  if (!open_) return;
  open_ = false;
  sending_ = false;
  stats_.open.fetch_sub(1, std::memory_order_relaxed);
  if (!pending_.empty()) {
    stats_.lost.fetch_add(pending_.size(), std::memory_order_relaxed);
    stats_.pending.fetch_sub(std::int64_t(pending_.size()), std::memory_order_relaxed);
    pending_.clear();
  }
  if (!closing_) {
    stats_.disconnects.fetch_add(1, std::memory_order_relaxed);
    stats_.report_failure(setup_.carer.id, why);
  }
}

}  // namespace visitd::load
