// The carer WebSocket as a phone sees it: the rota on connect, an ack for every event, a
// typed error for every mistake the protocol names, authentication by header or by first
// message, and the rate limit.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <thread>

#include "daemon_fixture.hpp"

using namespace visitd::test;
using visitd::TimePoint;
using visitd::websocket::Role;
namespace json = boost::json;

namespace {

/// Check-ins open 10 minutes either side of a visit, so that a visit an hour away is out of
/// its window whatever the time of day.
DaemonConfig narrow_windows() {
  DaemonConfig config;
  config.tracking = {{"early_window", "\"10m\""}, {"late_window", "\"10m\""}};
  return config;
}

/// Today's rota of branch B1: C1 has V1, V3, V4, VC and VW (out of its check-in window);
/// C2 has V2. Branch B2: C3 has W1.
void import_day(const Daemon& d) {
  const TimePoint start = today_at(-5min);
  VisitRow out_of_window =
      is_today(-60min) ? visit("VW", "C1", now() - 60min, 30min) : visit("VW", "C1", now() + 30min);
  d.import_rota(
      "B1", rota_csv({visit("V1", "C1", start), visit("V2", "C2", start), visit("V3", "C1", start),
                      visit("V4", "C1", start), visit("VC", "C1", start), out_of_window}));
  d.import_rota("B2", rota_csv({visit("W1", "C3", start)}));
}

std::set<std::string> visit_ids(const json::value& list) {
  std::set<std::string> ids;
  for (const auto& v : list.as_array()) ids.insert(str(v, "id"));
  return ids;
}

std::vector<std::string> flags(const json::value& message) {
  std::vector<std::string> out;
  for (const auto& f : message.at("flags").as_array()) out.emplace_back(f.as_string());
  return out;
}

/// The error a message gets; REQUIREs that it is one, on a connection that stays open.
json::value error_for(WsClient& phone, const std::string& message) {
  phone.send_text(message);
  json::value reply = phone.next();
  INFO("sent " << message << "\ngot " << json::serialize(reply));
  REQUIRE(str(reply, "type") == "error");
  CHECK_FALSE(str(reply, "message").empty());
  CHECK_FALSE(phone.closed());
  return reply;
}

}  // namespace

TEST_CASE("A carer connecting with a token gets the rota, then an ack for each event", "[carer]") {
  Daemon d(narrow_windows());
  import_day(d);
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(phone.status() == 101);

  const json::value rota = phone.next();
  REQUIRE(str(rota, "type") == "rota");
  CHECK(visit_ids(rota.at("visits")) == std::set<std::string>{"V1", "V3", "V4", "VC", "VW"});
  for (const auto& v : rota.at("visits").as_array()) {
    CHECK(str(v, "branch") == "B1");
    CHECK(v.at("carers") == json::array{"C1"});
    if (str(v, "id") != "VW") CHECK(str(v, "state") == "scheduled");
  }

  SECTION(
      "check_in is accepted with the visit's state and flags; the same id again is a "
      "duplicate with the same state") {
    phone.send_text(check_in("e1", "V1"));
    json::value ack = phone.next();
    CHECK(str(ack, "type") == "ack");
    CHECK(str(ack, "id") == "e1");
    CHECK(str(ack, "status") == "accepted");
    CHECK(str(ack, "visit") == "V1");
    CHECK(str(ack, "state") == "in_progress");
    CHECK(flags(ack).empty());

    phone.send_text(check_in("e1", "V1"));
    ack = phone.next();
    CHECK(str(ack, "id") == "e1");
    CHECK(str(ack, "status") == "duplicate");
    CHECK(str(ack, "visit") == "V1");
    CHECK(str(ack, "state") == "in_progress");
    CHECK(flags(ack).empty());

    const auto visit = d.api("GET", "/api/visits/V1", token(Role::admin, "root", {"*"}));
    REQUIRE(visit.status == 200);
    const json::value v = visit.json();
    REQUIRE(v.at("check_ins").as_array().size() == 1);
    CHECK(str(v.at("check_ins").at(0), "carer") == "C1");
    CHECK(str(v.at("check_ins").at(0), "method") == "gps");
  }

  SECTION(
      "a check-in 11 km from the client is accepted and flagged outside_geofence, and "
      "fields the protocol does not define are ignored") {
    json::object far = json::parse(check_in("e2", "V3", 51.6, -0.1419)).as_object();
    far["battery"] = 87;
    far["app"] = json::object{{"version", "2.1"}, {"build", json::array{1, 2}}};
    phone.send_text(json::serialize(far));
    const json::value ack = phone.next();
    CHECK(str(ack, "status") == "accepted");
    CHECK(str(ack, "state") == "in_progress");
    CHECK(flags(ack) == std::vector<std::string>{"outside_geofence"});
  }

  SECTION("check_out completes the visit; a check-out seconds after the check-in is short") {
    phone.send_text(check_in("e1", "V1"));
    REQUIRE(str(phone.next(), "status") == "accepted");
    phone.send_text(check_out("e3", "V1", "Had lunch, meds taken"));
    const json::value ack = phone.next();
    CHECK(str(ack, "id") == "e3");
    CHECK(str(ack, "status") == "accepted");
    CHECK(str(ack, "visit") == "V1");
    CHECK(str(ack, "state") == "completed");
    CHECK(flags(ack) == std::vector<std::string>{"short"});

    const json::value v = d.api("GET", "/api/visits/V1", token(Role::admin, "root", {"*"})).json();
    CHECK(str(v, "state") == "completed");
    CHECK(str(v.at("check_outs").at(0), "note") == "Had lunch, meds taken");
  }

  SECTION("location is acked with visit and state null") {
    phone.send_text(location("p1"));
    const json::value ack = phone.next();
    CHECK(str(ack, "type") == "ack");
    CHECK(str(ack, "id") == "p1");
    CHECK(str(ack, "status") == "accepted");
    CHECK(ack.at("visit").is_null());
    CHECK(ack.at("state").is_null());
    CHECK(ack.at("flags") == json::array{});
  }

  SECTION("running_late is acked and the visit carries the eta and the reason") {
    const std::string eta = rfc3339(today_at(-5min) + 20min);
    phone.send_text(json::serialize(json::object{{"type", "running_late"},
                                                 {"id", "r1"},
                                                 {"visit", "V4"},
                                                 {"eta", eta},
                                                 {"reason", "traffic"}}));
    const json::value ack = phone.next();
    CHECK(str(ack, "status") == "accepted");
    CHECK(str(ack, "visit") == "V4");
    CHECK(str(ack, "state") == "scheduled");
    const json::value v = d.api("GET", "/api/visits/V4", token(Role::admin, "root", {"*"})).json();
    CHECK(str(v, "eta") == eta);
    CHECK(str(v, "eta_reason") == "traffic");
  }
}

TEST_CASE(
    "The carer's rota is pushed again when the office changes it, and office messages "
    "reach the phone",
    "[carer]") {
  Daemon d(narrow_windows());
  import_day(d);
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");
  const std::string office = token(Role::office, "olga", {"B1"});

  const auto moved = d.api("POST", "/api/visits/V2/reassign", office, R"({"carers":["C1"]})");
  REQUIRE(moved.status == 200);
  const json::value rota = phone.next();
  REQUIRE(str(rota, "type") == "rota");
  CHECK(visit_ids(rota.at("visits")) == std::set<std::string>{"V1", "V2", "V3", "V4", "VC", "VW"});

  const auto sent =
      d.api("POST", "/api/carers/C1/message", office, R"({"text":"Please call the office"})");
  REQUIRE(sent.status == 200);
  CHECK(sent.json().at("delivered") == 1);
  const json::value message = phone.next();
  CHECK(str(message, "type") == "message");
  CHECK(str(message, "from") == "olga");
  CHECK(str(message, "text") == "Please call the office");
}

TEST_CASE(
    "Every carer error the protocol names is given for the mistake it names, and the "
    "connection stays open",
    "[carer]") {
  Daemon d(narrow_windows());
  import_day(d);
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");

  SECTION("bad_json") {
    const json::value e = error_for(phone, R"({"type":"check_in","id":"b1")");
    CHECK(str(e, "code") == "bad_json");
    CHECK(e.at("id").is_null());
  }
  SECTION("bad_message: a missing field, named in the message") {
    json::object m = json::parse(check_in("b2", "V1")).as_object();
    m.erase("visit");
    const json::value e = error_for(phone, json::serialize(m));
    CHECK(str(e, "code") == "bad_message");
    CHECK(str(e, "id") == "b2");
    CHECK_THAT(str(e, "message"), Catch::Contains("visit"));
  }
  SECTION("bad_message: a field of the wrong type, named in the message") {
    json::object m = json::parse(check_in("b3", "V1")).as_object();
    m["lat"] = "north";
    const json::value e = error_for(phone, json::serialize(m));
    CHECK(str(e, "code") == "bad_message");
    CHECK(str(e, "id") == "b3");
    CHECK_THAT(str(e, "message"), Catch::Contains("lat"));
  }
  SECTION("unknown_type") {
    const json::value e = error_for(phone, R"({"type":"teleport","id":"b4"})");
    CHECK(str(e, "code") == "unknown_type");
    CHECK(str(e, "id") == "b4");
  }
  SECTION("not_assigned: another carer's visit, in this branch and in another") {
    json::value e = error_for(phone, check_in("b5", "V2"));
    CHECK(str(e, "code") == "not_assigned");
    CHECK(str(e, "id") == "b5");
    e = error_for(phone, check_in("b6", "W1"));
    CHECK(str(e, "code") == "not_assigned");
  }
  SECTION("unknown_visit") {
    const json::value e = error_for(phone, check_in("b7", "V404"));
    CHECK(str(e, "code") == "unknown_visit");
    CHECK(str(e, "id") == "b7");
  }
  SECTION("outside_visit_window") {
    const json::value e = error_for(phone, check_in("b8", "VW"));
    CHECK(str(e, "code") == "outside_visit_window");
  }
  SECTION("already_checked_in: a second check-in with a new id") {
    phone.send_text(check_in("b9", "V1"));
    REQUIRE(str(phone.next(), "status") == "accepted");
    const json::value e = error_for(phone, check_in("b10", "V1"));
    CHECK(str(e, "code") == "already_checked_in");
    CHECK(str(e, "id") == "b10");
  }
  SECTION("not_checked_in: a check-out before any check-in, and a second check-out") {
    json::value e = error_for(phone, check_out("b11", "V4"));
    CHECK(str(e, "code") == "not_checked_in");
    phone.send_text(check_in("b12", "V4"));
    REQUIRE(str(phone.next(), "status") == "accepted");
    phone.send_text(check_out("b13", "V4"));
    REQUIRE(str(phone.next(), "status") == "accepted");
    e = error_for(phone, check_out("b14", "V4"));
    CHECK(str(e, "code") == "not_checked_in");
  }
  SECTION("visit_cancelled: a visit the office cancelled over HTTP") {
    const auto cancelled =
        d.api("POST", "/api/visits/VC/cancel", token(Role::office, "olga", {"B1"}),
              R"({"reason":"in hospital"})");
    REQUIRE(cancelled.status == 200);
    phone.next_of("rota");  // VC left the rota
    const json::value e = error_for(phone, check_in("b15", "VC"));
    CHECK(str(e, "code") == "visit_cancelled");
  }
  SECTION("too_old: an event from before the offline window (72 h)") {
    json::object m = json::parse(check_in("b16", "V1")).as_object();
    m["at"] = rfc3339(now() - std::chrono::hours(100));
    const json::value e = error_for(phone, json::serialize(m));
    CHECK(str(e, "code") == "too_old");
  }
  SECTION("off_shift: a location from a carer with no visit today") {
    WsClient idle = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C9"));
    const json::value rota = idle.next();
    CHECK(rota.at("visits") == json::array{});
    const json::value e = error_for(idle, location("b17"));
    CHECK(str(e, "code") == "off_shift");
    CHECK(str(e, "id") == "b17");
  }
  // The connection survived whatever the section did.
  phone.send_text(location("last"));
  CHECK(str(phone.next_of("ack"), "id") == "last");
}

TEST_CASE(
    "Without a token header nothing but auth is processed, and a first-message auth opens "
    "the session",
    "[carer][auth]") {
  Daemon d(narrow_windows());
  import_day(d);
  WsClient phone(d.port(), "/ws/carer");
  REQUIRE(phone.status() == 101);

  const json::value e = error_for(phone, check_in("u1", "V1"));
  CHECK(str(e, "code") == "unauthenticated");
  CHECK(str(e, "id") == "u1");

  phone.send_text(auth(token(Role::carer, "C1")));
  const json::value rota = phone.next();
  CHECK(str(rota, "type") == "rota");
  CHECK(rota.at("visits").as_array().size() == 5);
  phone.send_text(check_in("u1", "V1"));
  CHECK(str(phone.next(), "status") == "accepted");

  const json::value again = error_for(phone, auth(token(Role::carer, "C1")));
  CHECK(str(again, "code") == "bad_message");
}

TEST_CASE("A token of the wrong role is forbidden on a socket, by header or by message",
          "[carer][auth]") {
  Daemon d;
  SECTION("an office user's first message on /ws/carer") {
    WsClient phone(d.port(), "/ws/carer");
    phone.send_text(auth(token(Role::office, "olga", {"B1"})));
    const json::value e = phone.next();
    CHECK(str(e, "code") == "forbidden");
    REQUIRE(phone.wait_closed());
    CHECK(phone.close_code() == 1008);
  }
  SECTION("a carer's first message on /ws/board") {
    WsClient board(d.port(), "/ws/board");
    board.send_text(auth(token(Role::carer, "C1")));
    const json::value e = board.next();
    CHECK(str(e, "code") == "forbidden");
    REQUIRE(board.wait_closed());
    CHECK(board.close_code() == 1008);
  }
  SECTION("by header: the upgrade is refused with 403") {
    CHECK(WsClient::with_token(d.port(), "/ws/carer", token(Role::admin, "root", {"*"})).status() ==
          403);
    CHECK(WsClient::with_token(d.port(), "/ws/board", token(Role::carer, "C1")).status() == 403);
  }
}

TEST_CASE(
    "A socket that does not authenticate within 5 s gets unauthenticated and is closed "
    "with 1008",
    "[carer][auth]") {
  Daemon d;
  WsClient phone(d.port(), "/ws/carer");
  REQUIRE(phone.status() == 101);
  const auto opened = std::chrono::steady_clock::now();
  const json::value e = phone.next(7s);
  const auto waited = std::chrono::steady_clock::now() - opened;
  CHECK(str(e, "code") == "unauthenticated");
  CHECK(e.at("id").is_null());
  CHECK(waited > 4500ms);
  REQUIRE(phone.wait_closed(2s));
  CHECK(phone.close_code() == 1008);
}

TEST_CASE(
    "More messages than rate_burst at once get rate_limited, echoing the id, until the "
    "bucket refills",
    "[carer]") {
  DaemonConfig config = narrow_windows();
  config.server = {{"rate_burst", "5"}, {"rate_limit", "1"}};
  Daemon d(config);
  import_day(d);
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");

  for (int i = 1; i <= 8; ++i) phone.send_text(location("r" + std::to_string(i)));
  std::map<std::string, json::value> replies;
  for (int i = 0; i < 8; ++i) {
    json::value reply = phone.next();
    replies[str(reply, "id")] = reply;
  }
  REQUIRE(replies.size() == 8);
  for (int i = 1; i <= 5; ++i) {
    CHECK(str(replies["r" + std::to_string(i)], "type") == "ack");
  }
  for (int i = 6; i <= 8; ++i) {
    const json::value& e = replies["r" + std::to_string(i)];
    CHECK(str(e, "type") == "error");
    CHECK(str(e, "code") == "rate_limited");
  }
  CHECK_FALSE(phone.closed());

  std::this_thread::sleep_for(1100ms);  // one token back at 1 per second
  phone.send_text(location("r6"));
  const json::value resent = phone.next();
  CHECK(str(resent, "type") == "ack");
  CHECK(str(resent, "id") == "r6");
  phone.send_text(location("r7"));
  CHECK(str(phone.next(), "code") == "rate_limited");
}
