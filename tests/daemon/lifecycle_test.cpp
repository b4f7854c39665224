// The daemon's life and its plain HTTP face: what a kill -9 cannot take back, a graceful
// SIGTERM, health and metrics endpoints, and the HTTP errors of routes, methods, sizes and
// missing tokens.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <sstream>
#include <thread>

#include "daemon_fixture.hpp"

using namespace visitd::test;
using visitd::TimePoint;
using visitd::websocket::Role;
namespace json = boost::json;

namespace {}  // namespace

TEST_CASE(
    "After kill -9 and a restart on the same data dir, every acked event is there and a "
    "resent one is a duplicate",
    "[lifecycle]") {
  Daemon d;
  const TimePoint start = today_at(-5min);
  d.import_rota("B1", rota_csv({visit("V1", "C1", start), visit("V2", "C1", start),
                                visit("V3", "C1", start)}));
  {
    WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
    REQUIRE(str(phone.next(), "type") == "rota");
    for (const char* v : {"V1", "V2"}) {
      phone.send_text(check_in(std::string("in-") + v, v));
      REQUIRE(str(phone.next(), "status") == "accepted");
    }
    phone.send_text(check_out("out-V2", "V2"));
    REQUIRE(str(phone.next(), "status") == "accepted");
    phone.send_text(location("ping-1"));
    REQUIRE(str(phone.next(), "status") == "accepted");
    d.kill9();  // the acks above were sent once durable: nothing of them may be lost
  }
  d.start();

  const std::string admin = token(Role::admin, "root", {"*"});
  const json::value v1 = d.api("GET", "/api/visits/V1", admin).json();
  CHECK(str(v1, "state") == "in_progress");
  REQUIRE(v1.at("check_ins").as_array().size() == 1);
  CHECK(str(v1.at("check_ins").at(0), "carer") == "C1");
  const json::value v2 = d.api("GET", "/api/visits/V2", admin).json();
  CHECK(str(v2, "state") == "completed");
  CHECK(v2.at("check_outs").as_array().size() == 1);
  CHECK(str(d.api("GET", "/api/visits/V3", admin).json(), "state") == "scheduled");

  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");
  phone.send_text(check_in("in-V1", "V1"));
  json::value ack = phone.next();
  CHECK(str(ack, "status") == "duplicate");
  CHECK(str(ack, "visit") == "V1");
  CHECK(str(ack, "state") == "in_progress");
  phone.send_text(check_out("out-V2", "V2"));
  ack = phone.next();
  CHECK(str(ack, "status") == "duplicate");
  CHECK(str(ack, "state") == "completed");
  phone.send_text(location("ping-1"));
  CHECK(str(phone.next(), "status") == "duplicate");
  phone.send_text(check_in("in-V3", "V3"));
  CHECK(str(phone.next(), "status") == "accepted");
}

TEST_CASE("SIGTERM closes WebSockets with 1001 and the daemon exits 0", "[lifecycle]") {
  Daemon d;
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");
  WsClient board = WsClient::with_token(d.port(), "/ws/board", token(Role::admin, "root", {"*"}));
  REQUIRE(str(board.next(), "type") == "snapshot");

  int status = -1;
  std::thread stopper([&] { status = d.stop(); });
  const bool phone_closed = phone.wait_closed(5s);
  const bool board_closed = board.wait_closed(5s);
  stopper.join();
  CHECK(phone_closed);
  CHECK(phone.close_code() == 1001);
  CHECK(board_closed);
  CHECK(board.close_code() == 1001);
  CHECK(status == 0);
  CHECK_THAT(d.log(), Catch::Contains("stopped"));
}

TEST_CASE("The health, readiness and metrics endpoints answer, and metrics count events",
          "[http]") {
  Daemon d;
  auto res = d.http("GET", "/healthz");
  CHECK(res.status == 200);
  CHECK(str(res.json(), "status") == "ok");
  res = d.http("GET", "/readyz");
  CHECK(res.status == 200);
  CHECK(str(res.json(), "status") == "ready");

  d.import_rota("B1", rota_csv({visit("V1", "C1", today_at(-5min))}));
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");
  const std::string before = d.http("GET", "/metrics").body;
  phone.send_text(check_in("m1", "V1"));
  REQUIRE(str(phone.next(), "status") == "accepted");
  phone.send_text(check_in("m2", "V404"));
  REQUIRE(str(phone.next(), "code") == "unknown_visit");

  res = d.http("GET", "/metrics");
  CHECK(res.status == 200);
  CHECK_THAT(std::string(res.headers["Content-Type"]), Catch::StartsWith("text/plain"));
  const auto accepted = {std::string_view(R"(type="check_in")"),
                         std::string_view(R"(result="accepted")")};
  CHECK(sample(before, "visitd_events_total", accepted) == 0);
  CHECK(sample(res.body, "visitd_events_total", accepted) == 1);
  CHECK(sample(res.body, "visitd_errors_total", {R"(code="unknown_visit")"}) == 1);
  CHECK(sample(res.body, "visitd_connections", {R"(role="carer")"}) == 1);
  CHECK(sample(res.body, "visitd_ack_latency_seconds_count", {}) >= 1);
}

TEST_CASE("HTTP errors: unknown routes 404, wrong methods 405 with Allow, no token 401", "[http]") {
  Daemon d;
  const std::string admin = token(Role::admin, "root", {"*"});

  auto res = d.http("GET", "/no/such/page");
  CHECK(res.status == 404);
  CHECK(res.error_code() == "not_found");
  res = d.api("GET", "/api/nothing-here", admin);
  CHECK(res.status == 404);
  CHECK(res.error_code() == "not_found");

  res = d.http("POST", "/healthz", {}, "{}");
  CHECK(res.status == 405);
  CHECK(std::string(res.headers["Allow"]) == "GET, HEAD");
  res = d.api("DELETE", "/api/visits", admin);
  CHECK(res.status == 405);
  CHECK(res.error_code() == "method_not_allowed");
  CHECK(std::string(res.headers["Allow"]) == "GET");
  res = d.api("GET", "/api/rota?branch=B1&date=" + today(), admin);
  CHECK(res.status == 405);
  CHECK(std::string(res.headers["Allow"]) == "PUT");

  res = d.http("GET", "/api/visits");
  CHECK(res.status == 401);
  CHECK(res.error_code() == "unauthenticated");
  CHECK(std::string(res.headers["WWW-Authenticate"]) == "Bearer");
  res = d.http("GET", "/api/alerts", {{"Authorization", "Basic cm9vdDpyb290"}});
  CHECK(res.status == 401);

  res = d.http("GET", "/ws/carer");
  CHECK(res.status == 426);
}

TEST_CASE("A request body over max_body is refused with 413", "[http]") {
  DaemonConfig config;
  config.server = {{"max_body", "\"1KiB\""}};
  Daemon d(config);
  const std::string admin = token(Role::admin, "root", {"*"});
  std::vector<VisitRow> rows;
  for (int i = 0; i < 40; ++i) rows.push_back(visit("V" + std::to_string(i), "C1", today_at(0min)));
  const std::string csv = rota_csv(rows);
  REQUIRE(csv.size() > 1024);
  const auto res = d.api("PUT", "/api/rota?branch=B1&date=" + today(), admin, csv, "text/csv");
  INFO(res.body);
  CHECK(res.status == 413);
  CHECK(d.http("GET", "/healthz").status == 200);
}
