#include "rota_import.hpp"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <stdexcept>

namespace visitd::load {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using net::ip::tcp;
using namespace std::chrono_literals;

std::vector<CarerPlan> make_carers(unsigned count, unsigned visits_each, const std::string& tag,
                                   unsigned first) {
  std::vector<CarerPlan> carers(count);
  char id[16];
  for (unsigned i = 0; i < count; ++i) {
    CarerPlan& c = carers[i];
    std::snprintf(id, sizeof id, "C%04u", i + first);
    c.id = id;
    // A 100 x 100 grid of points about 110 m apart around Westminster.
    c.lat = 51.45 + 0.001 * double(i % 100);
    c.lon = -0.20 + 0.0015 * double((i / 100) % 100);
    for (unsigned n = 1; n <= visits_each; ++n) {
      c.visits.push_back("V" + tag + "-" + c.id + "-" + std::to_string(n));
    }
  }
  return carers;
}

std::string make_rota_csv(const std::vector<CarerPlan>& carers, const TimeZone& zone, LocalDays day,
                          TimePoint now) {
  // The importer wants every visit to start on `day` (local): start half an hour ago, but
  // not before the day's first minute nor after its last.
  const auto midnight = zone.to_sys(LocalTime(day));
  const TimePoint day_start = midnight ? *midnight : now;
  const TimePoint day_last = day_start + 23h + 59min;
  const TimePoint half_hour_ago = std::chrono::floor<std::chrono::minutes>(now - 30min);
  const TimePoint start = std::clamp(half_hour_ago, day_start, day_last);
  const TimePoint end = std::chrono::floor<std::chrono::minutes>(std::max(start, now) + 2h);

  std::string csv = "visit_id,client_id,client_name,lat,lon,carers,start,end,type\n";
  char coords[64];
  for (const CarerPlan& c : carers) {
    std::snprintf(coords, sizeof coords, "%.6f,%.6f", c.lat, c.lon);
    for (std::size_t n = 0; n < c.visits.size(); ++n) {
      const auto shift = std::chrono::minutes(n);
      const std::string& visit = c.visits[n];
      csv += visit + ",CL" + visit.substr(1) + ",Client " + visit.substr(1) + "," + coords + "," +
             c.id + "," + format_rfc3339(std::min(start + shift, day_last)) + "," +
             format_rfc3339(end + shift) + ",personal_care\n";
    }
  }
  return csv;
}

std::string put_rota(const std::string& host, const std::string& port, const std::string& branch,
                     LocalDays day, const std::string& csv, const std::string& token) {
  net::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  stream.expires_after(60s);
  stream.connect(resolver.resolve(host, port));

  const std::string target = "/api/rota?branch=" + branch + "&date=" + format_local_date(day);
  http::request<http::string_body> req{http::verb::put, target, 11};
  req.set(http::field::host, host + ":" + port);
  req.set(http::field::user_agent, "visit-load");
  req.set(http::field::content_type, "text/csv");
  req.set(http::field::authorization, "Bearer " + token);
  req.body() = csv;
  req.prepare_payload();
  http::write(stream, req);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(16 << 20);
  http::read(stream, buffer, parser);
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  const auto& res = parser.get();
  if (res.result() != http::status::ok) {
    throw std::runtime_error("PUT " + target + " answered " + std::to_string(res.result_int()) +
                             ": " + res.body());
  }
  return res.body();
}

}  // namespace visitd::load
