// Issue 8 through the real daemon: the board sees that a late visit's carer has a silent
// phone ("phone offline since ..."), an offline burst whose device times show the carer was
// on time resolves the late alert as synced_late before anyone is paged, and an at_risk
// alert reaches the board with its estimate and reason and pages nobody; the office sees
// where a carer on shift was last located.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <optional>

#include "daemon_fixture.hpp"
#include "receiver.hpp"

using namespace visitd::test;
using visitd::websocket::Role;
namespace json = boost::json;

namespace {

std::string hook_tables(const Receiver& hook, std::string_view warning_after) {
  return "[[receivers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"" + hook.url() +
         "/hook\"\n\n[escalation]\ngroup_wait = \"0s\"\nwarning = [ { after = \"" +
         std::string(warning_after) + "\", notify = [\"hook\"] } ]\n";
}

/// The next board message about `what` ("visit" or "alert") of visit V whose `key` passes
/// `wanted`, skipping others; nullopt when none comes in time.
template <class Wanted>
std::optional<json::value> board_until(WsClient& board, std::string_view what, Wanted wanted,
                                       std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const auto text = board.receive(left);
    if (!text) return std::nullopt;
    json::value m = json::parse(*text);
    if (str(m, "type") != what) continue;
    const json::value& object = m.at(what);
    if (wanted(object)) return object;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE(
    "A silent phone shows on the board, its on-time offline burst resolves synced_late, "
    "no page",
    "[presence]") {
  Receiver hook;
  DaemonConfig config;
  config.thresholds = {{"late_after", "\"2s\""}, {"missed_after", "\"1h\""}};
  config.tables = hook_tables(hook, "5s");
  Daemon d(config);
  const auto start = now() + 3s;
  d.import_rota("B1", rota_csv({visit("V1", "C1", start)}));

  WsClient board = WsClient::with_token(d.port(), "/ws/board", token(Role::office, "sam", {"B1"}));
  const json::value snapshot = board.next_of("snapshot");
  CHECK(snapshot.at("visits").at(0).at("phone_offline_since").is_null());  // never seen

  {
    WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
    phone.next_of("rota");
  }  // the phone loses its connection
  const auto offline = board_until(board, "visit", [](const json::value& v) {
    return str(v, "id") == "V1" && !v.at("phone_offline_since").is_null();
  });
  REQUIRE(offline);

  // Late while the phone is silent: the alert says so, for the office and the pager alike.
  const auto late = board_until(board, "alert", [](const json::value& a) {
    return str(a, "kind") == "late" && str(a, "state") == "triggered";
  });
  REQUIRE(late);
  CHECK(str(*late, "phone_offline_since") == str(*offline, "phone_offline_since"));
  CHECK_THAT(str(*late, "summary"), Catch::Contains("; phone offline since "));

  // The phone comes back and sends what it kept: a check-in made at start + 1 s.
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  phone.next_of("rota");
  phone.send_text(json::serialize(json::object{{"type", "check_in"},
                                               {"id", "offline-1"},
                                               {"visit", "V1"},
                                               {"at", rfc3339(start + 1s)},
                                               {"lat", 51.5014},
                                               {"lon", -0.1419},
                                               {"accuracy", 12},
                                               {"method", "gps"}}));
  REQUIRE(str(phone.next_of("ack"), "status") == "accepted");
  const auto resolved = board_until(board, "alert", [](const json::value& a) {
    return str(a, "kind") == "late" && str(a, "state") == "resolved";
  });
  REQUIRE(resolved);
  CHECK(str(*resolved, "resolution") == "synced_late");
  CHECK(resolved->at("phone_offline_since").is_null());

  // The warning step (5 s after late) would have paged by now had the alert stayed open.
  CHECK(hook.wait_for(1, 6s).empty());
}

TEST_CASE("A carer leaving a visit 10 km from the next puts it at risk on the board, unpaged",
          "[presence][at_risk]") {
  Receiver hook;
  DaemonConfig config;
  config.tables = hook_tables(hook, "0s");
  Daemon d(config);
  // V0 under way now; V1 in 10 minutes, 10 km north (a 28-minute drive).
  VisitRow v0 = visit("V0", "C1", now() - 10min);
  VisitRow v1 = visit("V1", "C1", now() + 10min, 30min);
  v1.lat += 0.08983;
  d.import_rota("B1", rota_csv({v0, v1}));
  WsClient board = WsClient::with_token(d.port(), "/ws/board", token(Role::office, "sam", {"B1"}));
  board.next_of("snapshot");

  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  phone.next_of("rota");
  phone.send_text(check_in("in-0", "V0"));
  REQUIRE(str(phone.next_of("ack"), "status") == "accepted");
  phone.send_text(check_out("out-0", "V0"));
  REQUIRE(str(phone.next_of("ack"), "status") == "accepted");

  // At risk from the check-in on (V0 was planned to 50 minutes from now); the check-out
  // moves the estimate to where and when the carer left.
  const auto risk = board_until(board, "alert", [](const json::value& a) {
    return str(a, "kind") == "at_risk" && str(a, "visit") == "V1" &&
           str(a, "reason").starts_with("left ");
  });
  REQUIRE(risk);
  CHECK(str(*risk, "severity") == "info");
  CHECK(str(*risk, "state") == "triggered");
  CHECK_THAT(str(*risk, "reason"), Catch::StartsWith("left Client CL-V0's at "));
  CHECK_THAT(str(*risk, "reason"), Catch::EndsWith("; 28 min drive"));
  CHECK_FALSE(risk->at("eta").is_null());
  CHECK(risk->at("phone_offline_since").is_null());  // the phone is connected
  // Info never pages (V0's short visit does: a warning, paged at once).
  for (const Received& r : hook.wait_for(2, 3s)) {
    const json::value body = r.json();
    for (const auto& a : body.at("alerts").as_array()) {
      CHECK(str(a, "kind") != "at_risk");
      CHECK(str(a, "visit") != "V1");
    }
  }
}

TEST_CASE("The office sees where a visit's carers on shift were last located", "[presence]") {
  Daemon d;
  // C1 and C2 are on shift (their visits started 5 minutes ago); only C1's phone pings.
  d.import_rota("B1",
                rota_csv({visit("V1", "C1", today_at(-5min)), visit("V2", "C2", today_at(-5min))}));
  const std::string office = token(Role::office, "anna", {"B1"});
  CHECK(d.api("GET", "/api/visits/V1", office).json().at("carer_locations").as_array().empty());

  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");
  phone.send_text(location("ping-1"));  // at 51.5, -0.14, 20 m: about 204 m from the client
  REQUIRE(str(phone.next(), "status") == "accepted");

  const json::value v1 = d.api("GET", "/api/visits/V1", office).json();
  const json::array seen = v1.at("carer_locations").as_array();
  REQUIRE(seen.size() == 1);
  CHECK(str(seen[0], "carer") == "C1");
  CHECK(seen[0].at("lat").to_number<double>() == Approx(51.5));
  CHECK(seen[0].at("lon").to_number<double>() == Approx(-0.14));
  CHECK(seen[0].at("accuracy").to_number<double>() == Approx(20));
  CHECK(seen[0].at("distance_m").to_number<double>() == Approx(204).margin(5));
  CHECK_FALSE(str(seen[0], "at").empty());
  CHECK(d.api("GET", "/api/visits/V2", office).json().at("carer_locations").as_array().empty());
}
