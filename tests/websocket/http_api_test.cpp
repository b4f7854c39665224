// The HTTP API without a socket: each route's answer as a user would read it (parsed back
// with Boost.JSON), who may do what, every kind of bad input, and the punctuality report's
// numbers on a day with an on-time, a late and a missed visit.

#include "visitd/websocket/http_api.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "visitd/config/load.hpp"
#include "visitd/core/time.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::websocket;
namespace json = boost::json;

namespace {

TimePoint at(const char* rfc3339) { return *parse_rfc3339(rfc3339); }

// B2 is in New York so that "today" differs between the branches for part of the day.
constexpr const char* kConfig = R"(
[thresholds]
late_after = "15m"
missed_after = "60m"
overrun_after = "15m"
no_checkout_after = "2h"

[[branches]]
id = "B1"
name = "North"
timezone = "Europe/London"

[[branches]]
id = "B2"
name = "Manhattan"
timezone = "America/New_York"
)";

// London is on UTC in November: 09:00 local is 09:00Z.
constexpr const char* kRotaB1 =
    "visit_id,client_id,client_name,lat,lon,carers,start,end\n"
    "V1,CL1,Mrs A,51.5014,-0.1419,C1,2026-11-23 09:00,2026-11-23 09:30\n"
    "V2,CL2,Mr B,51.5100,-0.1300,C2,2026-11-23 10:00,2026-11-23 10:45\n"
    "V3,CL3,Ms C,51.5200,-0.1200,C1,2026-11-23 11:00,2026-11-23 11:30\n"
    "V4,CL4,Mr D,51.5300,-0.1100,C2,2026-11-23 12:00,2026-11-23 12:30\n";

// New York is UTC-5 in November: 09:00 local is 14:00Z.
constexpr const char* kRotaB2 = R"([
  {"visit_id":"W1","client_id":"CL9","client_name":"Mr Nine","lat":40.7128,"lon":-74.006,
   "carers":["C9"],"start":"2026-11-23 09:00","end":"2026-11-23 10:00"}
])";

Principal admin() { return Principal{"root", Role::admin, {}, true, {}, "Ada Admin"}; }
Principal office_b1() { return Principal{"olga", Role::office, {"B1"}, false, {}, ""}; }
Principal office_b2() { return Principal{"otto", Role::coordinator, {"B2"}, false, {}, "Otto"}; }
Principal admin_b1_only() { return Principal{"ann", Role::admin, {"B1"}, false, {}, ""}; }
Principal carer_c1() { return Principal{"C1", Role::carer, {}, false, {}, ""}; }

struct Request {
  std::string method = "GET";
  std::string target;
  std::string body;
  std::string content_type;
  std::string accept;
};

/// One answer as the user sees it.
struct Seen {
  HttpAnswer answer;
  json::value body;  ///< parsed when the answer is JSON

  unsigned status() const { return answer.status; }
  std::string code() const { return std::string(body.at("error").at("code").as_string()); }
  std::string message() const { return std::string(body.at("error").at("message").as_string()); }
  std::string header(std::string_view name) const {
    for (const auto& [k, v] : answer.headers) {
      if (k == name) return v;
    }
    return "";
  }
};

std::vector<std::string> ids_of(const json::value& list) {
  std::vector<std::string> ids;
  for (const auto& item : list.as_array()) ids.emplace_back(item.at("id").as_string());
  return ids;
}

std::int64_t integer(const json::value& v, std::string_view key) {
  return v.at(key).to_number<std::int64_t>();
}

double number(const json::value& v, std::string_view key) { return v.at(key).to_number<double>(); }

std::string text(const json::value& v, std::string_view key) {
  return std::string(v.at(key).as_string());
}

struct Agency {
  config::Settings settings = config::load_string(kConfig, "http_api_test.toml");
  rota::Engine engine{settings, at("2026-11-23T00:00:00Z")};
  TimePoint now = at("2026-11-23T06:00:00Z");
  rota::Effects fx;
  std::optional<Decision> last;  ///< the last decision, for routes that are not commands

  /// decide(), then (for a write) apply and answer(), as the server does.
  Seen call(const Request& r, const Principal& who) {
    const HttpRequest request{r.method, r.target, r.content_type, r.accept, r.body};
    last = decide(request, who, engine, now);
    const int parts =
        last->answer.has_value() + last->command.has_value() + last->message.has_value();
    REQUIRE(parts == 1);
    Seen seen;
    if (last->answer) {
      seen.answer = *last->answer;
    } else if (last->command) {
      fx.clear();
      const rota::Reply reply = engine.apply(*last->command, now, fx);
      seen.answer = answer(last->route, reply, engine);
    } else {
      seen.answer.status = 0;  // a carer message: the server delivers it
      return seen;
    }
    if (seen.answer.content_type == "application/json") {
      json::error_code ec;
      seen.body = json::parse(seen.answer.body, ec);
      INFO(seen.answer.body);
      REQUIRE_FALSE(ec);
    }
    return seen;
  }
  Seen get(const std::string& target, const Principal& who, const std::string& accept = "") {
    return call({"GET", target, "", "", accept}, who);
  }
  Seen post(const std::string& target, const Principal& who, const std::string& body = "",
            const std::string& content_type = "application/json") {
    return call({"POST", target, body, content_type, ""}, who);
  }
  Seen put_rota(const std::string& query, const std::string& body,
                const std::string& content_type = "text/csv", const Principal& who = admin()) {
    return call({"PUT", "/api/rota?" + query, body, content_type, ""}, who);
  }

  void import_both() {
    const Seen b1 = put_rota("branch=B1&date=2026-11-23", kRotaB1);
    REQUIRE(b1.status() == 200);
    const Seen b2 = put_rota("branch=B2&date=2026-11-23", kRotaB2, "application/json");
    REQUIRE(b2.status() == 200);
  }

  void apply(const rota::Command& c) {
    fx.clear();
    const rota::Reply r = engine.apply(c, now, fx);
    REQUIRE(r.status == rota::Status::accepted);
  }
  void advance_to(const char* t) {
    now = at(t);
    fx.clear();
    engine.advance(now, fx);
  }
  std::string alert_id(const char* visit, rota::AlertPhase phase) const {
    const rota::AlertIndex a = engine.visit(*engine.find_visit(visit)).alerts[std::size_t(phase)];
    REQUIRE(a != rota::kNoIndex);
    return engine.alert(a).id();
  }

  /// The day of the report: V1 on time and completed, V2 late (checked in 10:25, 25 min
  /// after its start, still there), V3 missed, V4 cancelled; the clock at 12:05.
  void day_with_on_time_late_and_missed() {
    import_both();
    now = at("2026-11-23T09:02:00Z");
    apply(rota::CheckIn{"e1", "C1", "V1", now, rota::Fix{{51.5014, -0.1419}, 10}, rota::Method::gps,
                        ""});
    now = at("2026-11-23T09:31:00Z");
    apply(rota::CheckOut{"e2", "C1", "V1", now, rota::Fix{{51.5014, -0.1419}, 10},
                         rota::Method::gps, "", ""});
    advance_to("2026-11-23T10:25:00Z");
    apply(rota::CheckIn{"e3", "C2", "V2", now, rota::Fix{{51.5100, -0.1300}, 10}, rota::Method::gps,
                        ""});
    REQUIRE(post("/api/visits/V4/cancel", admin(), R"({"reason":"in hospital"})").status() == 200);
    advance_to("2026-11-23T12:05:00Z");
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------
// PUT /api/rota

TEST_CASE("An admin imports a CSV rota and is told what changed, then what a re-import changed") {
  Agency a;
  const Seen first = a.put_rota("branch=B1&date=2026-11-23", kRotaB1);
  REQUIRE(first.status() == 200);
  CHECK(first.body ==
        json::parse(R"({"imported":4,"updated":0,"cancelled":0,"unchanged":0,"kept":0})"));
  CHECK(a.engine.visit_count() == 4);

  // V1 moved by an hour, V4 dropped, V2 and V3 as they were.
  const std::string second_rota =
      "visit_id,client_id,client_name,lat,lon,carers,start,end\n"
      "V1,CL1,Mrs A,51.5014,-0.1419,C1,2026-11-23 10:00,2026-11-23 10:30\n"
      "V2,CL2,Mr B,51.5100,-0.1300,C2,2026-11-23 10:00,2026-11-23 10:45\n"
      "V3,CL3,Ms C,51.5200,-0.1200,C1,2026-11-23 11:00,2026-11-23 11:30\n";
  const Seen second = a.put_rota("branch=B1&date=2026-11-23", second_rota);
  REQUIRE(second.status() == 200);
  CHECK(second.body ==
        json::parse(R"({"imported":0,"updated":1,"cancelled":1,"unchanged":2,"kept":0})"));
  CHECK(text(a.get("/api/visits/V4", admin()).body, "state") == "cancelled");
  CHECK(text(a.get("/api/visits/V1", admin()).body, "start") == "2026-11-23T10:00:00Z");
}

TEST_CASE("A JSON rota is read in the branch's own zone, the content type deciding the parser") {
  Agency a;
  const Seen r =
      a.put_rota("branch=B2&date=2026-11-23", kRotaB2, "Application/JSON; charset=utf-8");
  REQUIRE(r.status() == 200);
  CHECK(integer(r.body, "imported") == 1);
  const Seen w1 = a.get("/api/visits/W1", admin());
  REQUIRE(w1.status() == 200);
  CHECK(text(w1.body, "start") == "2026-11-23T14:00:00Z");  // 09:00 in New York
  CHECK(text(w1.body, "branch") == "B2");

  // The same JSON sent as CSV is read as CSV, and refused as such.
  const Seen as_csv = a.put_rota("branch=B2&date=2026-11-23", kRotaB2, "text/csv");
  CHECK(as_csv.status() == 400);
  CHECK(as_csv.code() == "bad_rota");
}

TEST_CASE("A bad rota is refused whole with 400 bad_rota and every line at fault") {
  Agency a;
  const std::string rota =
      "visit_id,client_id,client_name,lat,lon,carers,start,end\n"
      "V1,CL1,Mrs A,north,-0.1419,C1,2026-11-23 09:00,2026-11-23 09:30\n"
      "V2,CL2,Mr B,51.51,-0.13,C2,2026-11-23 10:00,2026-11-23 10:45\n"
      "V3,CL3,Ms C,51.52,-0.12,C1,tomorrow,2026-11-23 11:30\n";
  const Seen r = a.put_rota("branch=B1&date=2026-11-23", rota);
  REQUIRE(r.status() == 400);
  CHECK(r.code() == "bad_rota");
  const json::array& details = r.body.at("error").at("details").as_array();
  REQUIRE(details.size() == 2);
  CHECK(integer(details[0], "line") == 2);
  CHECK(text(details[0], "field") == "lat");
  CHECK(integer(details[1], "line") == 4);
  CHECK(text(details[1], "field") == "start");
  CHECK_FALSE(text(details[1], "message").empty());
  CHECK(a.engine.visit_count() == 0);  // not even V2
}

TEST_CASE("A rota the engine refuses (a visit id of another branch) lists the line too") {
  Agency a;
  a.import_both();
  const std::string rota =
      "visit_id,client_id,client_name,lat,lon,carers,start,end\n"
      "W1,CL9,Mr Nine,51.5,-0.1,C1,2026-11-23 09:00,2026-11-23 09:30\n";
  const Seen r = a.put_rota("branch=B1&date=2026-11-23", rota);
  REQUIRE(r.status() == 400);
  CHECK(r.code() == "bad_rota");
  const json::array& details = r.body.at("error").at("details").as_array();
  REQUIRE(details.size() == 1);
  CHECK(integer(details[0], "line") == 2);
  CHECK(text(details[0], "field") == "visit_id");
}

TEST_CASE("Only an admin imports, into a known branch, for a valid date, as CSV or JSON") {
  Agency a;
  const std::string query = "branch=B1&date=2026-11-23";
  CHECK(a.put_rota(query, kRotaB1, "text/csv", office_b1()).status() == 403);
  CHECK(a.put_rota(query, kRotaB1, "text/csv", office_b1()).code() == "forbidden");
  CHECK(a.put_rota(query, kRotaB1, "text/csv", carer_c1()).status() == 403);

  const Seen no_branch = a.put_rota("date=2026-11-23", kRotaB1);
  CHECK(no_branch.status() == 400);
  CHECK(no_branch.code() == "bad_message");
  CHECK_THAT(no_branch.message(), Catch::Contains("branch"));

  const Seen no_date = a.put_rota("branch=B1", kRotaB1);
  CHECK(no_date.status() == 400);
  CHECK_THAT(no_date.message(), Catch::Contains("date"));

  const Seen bad_date = a.put_rota("branch=B1&date=2026-02-30", kRotaB1);
  CHECK(bad_date.status() == 400);
  CHECK(bad_date.code() == "bad_message");
  CHECK_THAT(bad_date.message(), Catch::Contains("2026-02-30"));

  const Seen unknown = a.put_rota("branch=B7&date=2026-11-23", kRotaB1);
  CHECK(unknown.status() == 404);
  CHECK(unknown.code() == "unknown_branch");

  const Seen xml = a.put_rota(query, kRotaB1, "application/xml");
  CHECK(xml.status() == 415);
  CHECK(xml.code() == "unsupported_media_type");
  CHECK_THAT(xml.message(), Catch::Contains("text/csv") && Catch::Contains("application/xml"));
  CHECK(a.put_rota(query, kRotaB1, "").status() == 415);

  CHECK(a.engine.visit_count() == 0);
}

// ---------------------------------------------------------------------------------------
// GET /api/visits

TEST_CASE("Listing visits defaults to today in each branch's own time zone") {
  Agency a;
  a.import_both();
  // 03:00Z: the 23rd in London, still the 22nd in New York.
  a.now = at("2026-11-23T03:00:00Z");
  const Seen early = a.get("/api/visits", admin());
  REQUIRE(early.status() == 200);
  CHECK(ids_of(early.body.at("visits")) == std::vector<std::string>{"V1", "V2", "V3", "V4"});

  a.now = at("2026-11-23T15:00:00Z");
  const Seen later = a.get("/api/visits", admin());
  CHECK(ids_of(later.body.at("visits")) == std::vector<std::string>{"V1", "V2", "V3", "V4", "W1"});

  const Seen b2_on_the_23rd = a.get("/api/visits?branch=B2&date=2026-11-23", admin());
  CHECK(ids_of(b2_on_the_23rd.body.at("visits")) == std::vector<std::string>{"W1"});
  const Seen another_day = a.get("/api/visits?date=2026-11-24", admin());
  CHECK(another_day.body.at("visits").as_array().empty());
}

TEST_CASE("An office user lists their own branch only and is refused another by name") {
  Agency a;
  a.import_both();
  a.now = at("2026-11-23T15:00:00Z");
  const Seen own = a.get("/api/visits", office_b1());
  CHECK(ids_of(own.body.at("visits")) == std::vector<std::string>{"V1", "V2", "V3", "V4"});

  const Seen other = a.get("/api/visits?branch=B2", office_b1());
  CHECK(other.status() == 403);
  CHECK(other.code() == "forbidden");
  CHECK(a.get("/api/visits?branch=B9", office_b1()).status() == 404);

  const Seen b2 = a.get("/api/visits", office_b2());
  CHECK(ids_of(b2.body.at("visits")) == std::vector<std::string>{"W1"});
}

TEST_CASE("Listing visits filters by state and refuses a state that does not exist") {
  Agency a;
  a.import_both();
  a.advance_to("2026-11-23T10:20:00Z");  // nobody came: V1 (09:00) missed, V2 (10:00) late
  const Seen late = a.get("/api/visits?branch=B1&state=late", office_b1());
  REQUIRE(late.status() == 200);
  CHECK(ids_of(late.body.at("visits")) == std::vector<std::string>{"V2"});
  const Seen missed = a.get("/api/visits?state=missed", office_b1());
  CHECK(ids_of(missed.body.at("visits")) == std::vector<std::string>{"V1"});
  const Seen scheduled = a.get("/api/visits?state=scheduled&branch=B1", office_b1());
  CHECK(ids_of(scheduled.body.at("visits")) == std::vector<std::string>{"V3", "V4"});

  const Seen bad = a.get("/api/visits?state=tardy", office_b1());
  CHECK(bad.status() == 400);
  CHECK(bad.code() == "bad_message");
  CHECK_THAT(bad.message(), Catch::Contains("state") && Catch::Contains("tardy"));
}

TEST_CASE("Query strings are percent-decoded, ignore unknown keys and refuse repeated ones") {
  Agency a;
  a.import_both();
  const Seen decoded =
      a.get("/api/visits?%62ranch=%42%31&date=2026%2D11%2D23&colour=blue", office_b1());
  REQUIRE(decoded.status() == 200);
  CHECK(decoded.body.at("visits").as_array().size() == 4);

  const Seen repeated = a.get("/api/visits?branch=B1&branch=B2", admin());
  CHECK(repeated.status() == 400);
  CHECK_THAT(repeated.message(), Catch::Contains("branch"));

  const Seen broken = a.get("/api/visits?branch=%4", admin());
  CHECK(broken.status() == 400);
  CHECK(broken.code() == "bad_message");

  const Seen bad_date = a.get("/api/visits?date=23/11/2026", admin());
  CHECK(bad_date.status() == 400);
  CHECK_THAT(bad_date.message(), Catch::Contains("date"));
}

TEST_CASE("A visit by id: 404 alike for an unknown id and for another branch's visit") {
  Agency a;
  a.import_both();
  const Seen v1 = a.get("/api/visits/V1", office_b1());
  REQUIRE(v1.status() == 200);
  CHECK(text(v1.body, "id") == "V1");
  CHECK(text(v1.body.at("client"), "name") == "Mrs A");
  CHECK(v1.body.at("carers") == json::parse(R"(["C1"])"));
  CHECK(text(v1.body, "start") == "2026-11-23T09:00:00Z");

  const Seen hidden = a.get("/api/visits/W1", office_b1());
  const Seen unknown = a.get("/api/visits/W9", office_b1());
  CHECK(hidden.status() == 404);
  CHECK(hidden.code() == "unknown_visit");
  CHECK(unknown.status() == 404);
  CHECK(unknown.code() == "unknown_visit");

  CHECK(a.get("/api/visits/W1", admin()).status() == 200);
  CHECK(a.get("/api/visits/W1", admin_b1_only()).status() == 200);  // admins read everything
  CHECK(a.get("/api/visits/%56%31", office_b1()).status() == 200);  // "V1", escaped
}

// ---------------------------------------------------------------------------------------
// POST /api/visits/{id}/reassign and /cancel

TEST_CASE("Reassigning and cancelling answer the visit as it is after the command") {
  Agency a;
  a.import_both();
  const Seen moved = a.post("/api/visits/V3/reassign", office_b1(), R"({"carers":["C2"]})");
  REQUIRE(moved.status() == 200);
  CHECK(text(moved.body, "id") == "V3");
  CHECK(moved.body.at("carers") == json::parse(R"(["C2"])"));

  // The same carers again: nothing changes, and that is not an error.
  const Seen again = a.post("/api/visits/V3/reassign", office_b1(), R"({"carers":["C2"]})");
  CHECK(again.status() == 200);
  CHECK(again.body.at("carers") == json::parse(R"(["C2"])"));

  const Seen cancelled =
      a.post("/api/visits/V4/cancel", office_b1(), R"({"reason":"client in hospital"})");
  REQUIRE(cancelled.status() == 200);
  CHECK(text(cancelled.body, "state") == "cancelled");
  CHECK(text(cancelled.body, "cancel_reason") == "client in hospital");

  const Seen twice = a.post("/api/visits/V4/cancel", office_b1());
  CHECK(twice.status() == 409);
  CHECK(twice.code() == "visit_cancelled");
  const Seen reassign_cancelled =
      a.post("/api/visits/V4/reassign", office_b1(), R"({"carers":["C1"]})");
  CHECK(reassign_cancelled.status() == 409);

  // An empty body is a cancel without a reason.
  const Seen no_body = a.post("/api/visits/V2/cancel", office_b1(), "", "");
  REQUIRE(no_body.status() == 200);
  CHECK(text(no_body.body, "cancel_reason") == "");
}

TEST_CASE("Writes to visits need may_manage on the visit's branch") {
  Agency a;
  a.import_both();
  const std::string body = R"({"carers":["C5"]})";
  CHECK(a.post("/api/visits/W1/reassign", office_b1(), body).status() == 404);
  CHECK(a.post("/api/visits/W1/cancel", office_b1()).status() == 404);
  const Seen looker = a.post("/api/visits/W1/reassign", admin_b1_only(), body);
  CHECK(looker.status() == 403);
  CHECK(looker.code() == "forbidden");
  CHECK(a.post("/api/visits/W1/reassign", carer_c1(), body).status() == 403);
  CHECK(a.engine.visit(*a.engine.find_visit("W1")).carers.size() == 1);
  CHECK(a.engine.carer(a.engine.visit(*a.engine.find_visit("W1")).carers[0]).id == "C9");

  CHECK(a.post("/api/visits/W1/reassign", office_b2(), body).status() == 200);
  CHECK(a.post("/api/visits/W1/cancel", admin()).status() == 200);
}

TEST_CASE("Bad bodies are refused with the field they got wrong") {
  Agency a;
  a.import_both();
  const auto refused = [&](const std::string& body, const char* code, const char* part) {
    const Seen r = a.post("/api/visits/V1/reassign", office_b1(), body);
    INFO(body << " → " << r.answer.body);
    CHECK(r.status() == 400);
    CHECK(r.code() == code);
    CHECK_THAT(r.message(), Catch::Contains(part));
  };
  refused("{\"carers\":[\"C2\"]", "bad_json", "JSON");
  refused("[\"C2\"]", "bad_json", "object");
  refused("", "bad_json", "empty");
  refused("{}", "bad_message", "carers");
  refused(R"({"carers":null})", "bad_message", "carers");
  refused(R"({"carers":"C2"})", "bad_message", "carers");
  refused(R"({"carers":[]})", "bad_message", "carers");
  refused(R"({"carers":[7]})", "bad_message", "carers");
  refused(R"({"carers":[""]})", "bad_message", "carers");
  refused(R"({"carers":["C2","C2"]})", "bad_message", "C2");  // the engine's check
  std::string seventeen = R"({"carers":[)";
  for (int i = 0; i < 17; ++i) seventeen += (i ? ",\"C" : "\"C") + std::to_string(i) + "\"";
  refused(seventeen + "]}", "bad_message", "16");
  std::string deep(40, '[');
  refused(R"({"carers":["C2"],"x":)" + deep + std::string(40, ']') + "}", "bad_json", "JSON");

  const Seen reason = a.post("/api/visits/V1/cancel", office_b1(), R"({"reason":42})");
  CHECK(reason.status() == 400);
  CHECK_THAT(reason.message(), Catch::Contains("reason"));
  const Seen long_reason = a.post("/api/visits/V1/cancel", office_b1(),
                                  R"({"reason":")" + std::string(513, 'x') + "\"}");
  CHECK(long_reason.status() == 400);
  CHECK_THAT(long_reason.message(), Catch::Contains("512"));

  const Seen text_plain = a.post("/api/visits/V1/cancel", office_b1(), "{}", "text/plain");
  CHECK(text_plain.status() == 415);

  // Nothing of the above changed V1; unknown fields are ignored.
  CHECK(a.engine.visit(*a.engine.find_visit("V1")).state == rota::VisitState::scheduled);
  const Seen extra =
      a.post("/api/visits/V1/reassign", office_b1(), R"({"carers":["C2"],"urgent":true})");
  CHECK(extra.status() == 200);
  CHECK(extra.body.at("carers") == json::parse(R"(["C2"])"));
}

// ---------------------------------------------------------------------------------------
// Alerts

TEST_CASE("Alerts list the open ones by default, all on request, in the user's branches") {
  Agency a;
  a.day_with_on_time_late_and_missed();
  const std::string missed = a.alert_id("V3", rota::AlertPhase::start);
  const std::string late_v2 = a.alert_id("V2", rota::AlertPhase::start);
  const std::string overrun = a.alert_id("V2", rota::AlertPhase::end);

  const Seen open = a.get("/api/alerts", office_b1());
  REQUIRE(open.status() == 200);
  const std::vector<std::string> open_ids = ids_of(open.body.at("alerts"));
  CHECK(std::set<std::string>(open_ids.begin(), open_ids.end()) ==
        std::set<std::string>{missed, overrun});
  for (const auto& alert : open.body.at("alerts").as_array()) {
    CHECK(text(alert, "branch") == "B1");
    CHECK(text(alert, "state") == "triggered");
  }

  const Seen all = a.get("/api/alerts?state=all&branch=B1", office_b1());
  const std::vector<std::string> all_ids = ids_of(all.body.at("alerts"));
  CHECK(std::set<std::string>(all_ids.begin(), all_ids.end()) ==
        std::set<std::string>{missed, overrun, late_v2});

  CHECK(a.get("/api/alerts", office_b2()).body.at("alerts").as_array().empty());
  CHECK(a.get("/api/alerts?branch=B1", office_b2()).status() == 403);
  const Seen bad = a.get("/api/alerts?state=closed", office_b1());
  CHECK(bad.status() == 400);
  CHECK_THAT(bad.message(), Catch::Contains("open or all"));
}

TEST_CASE("Acknowledging and resolving answer the alert, a repeat is 200 with it unchanged") {
  Agency a;
  a.day_with_on_time_late_and_missed();
  const std::string id = a.alert_id("V3", rota::AlertPhase::start);

  const Seen acked =
      a.post("/api/alerts/" + id + "/ack", office_b1(), R"({"note":"phoning the client"})");
  REQUIRE(acked.status() == 200);
  CHECK(text(acked.body, "id") == id);
  CHECK(text(acked.body, "state") == "acknowledged");
  CHECK(text(acked.body, "acked_by") == "olga");
  CHECK(text(acked.body, "kind") == "missed");

  const Seen again = a.post("/api/alerts/" + id + "/ack", office_b1());
  CHECK(again.status() == 200);
  CHECK(text(again.body, "state") == "acknowledged");
  CHECK(integer(again.body, "seq") == integer(acked.body, "seq"));

  const Seen resolved = a.post("/api/alerts/" + id + "/resolve", admin(), "{}");
  REQUIRE(resolved.status() == 200);
  CHECK(text(resolved.body, "state") == "resolved");
  CHECK(text(resolved.body, "resolution") == "user");
  CHECK(a.post("/api/alerts/" + id + "/resolve", admin()).status() == 200);

  const Seen note = a.post("/api/alerts/" + id + "/ack", office_b1(), R"({"note":["x"]})");
  CHECK(note.status() == 400);
  CHECK_THAT(note.message(), Catch::Contains("note"));
}

TEST_CASE("Alert commands need may_manage, other branches' alerts do not exist for the user") {
  Agency a;
  a.day_with_on_time_late_and_missed();
  const std::string id = a.alert_id("V3", rota::AlertPhase::start);
  const Seen other = a.post("/api/alerts/" + id + "/ack", office_b2());
  CHECK(other.status() == 404);
  CHECK(other.code() == "unknown_alert");
  CHECK(a.post("/api/alerts/A999/ack", office_b1()).code() == "unknown_alert");
  CHECK(a.post("/api/alerts/" + id + "/resolve", carer_c1()).status() == 403);
  CHECK(a.engine.alert(*a.engine.find_alert(id)).state == rota::AlertState::triggered);
}

// ---------------------------------------------------------------------------------------
// The punctuality report

TEST_CASE("The punctuality report counts an on-time, a late and a missed visit") {
  Agency a;
  a.day_with_on_time_late_and_missed();
  const Seen r = a.get("/api/reports/punctuality?branch=B1&date=2026-11-23", office_b1());
  REQUIRE(r.status() == 200);
  const json::value& b = r.body;
  CHECK(text(b, "branch") == "B1");
  CHECK(text(b, "date") == "2026-11-23");
  CHECK(text(b, "as_of") == "2026-11-23T12:05:00Z");
  CHECK(integer(b, "visits") == 3);  // V4 was cancelled
  CHECK(integer(b, "on_time") == 1);
  CHECK(integer(b, "late") == 1);
  CHECK(integer(b, "missed") == 1);
  CHECK(integer(b, "pending") == 0);
  CHECK(integer(b, "cancelled") == 1);
  CHECK(integer(b, "completed") == 1);
  CHECK(integer(b, "in_progress") == 1);  // V2, overrunning
  CHECK(integer(b, "short") == 0);
  CHECK(number(b, "on_time_pct") == Approx(33.3));
  CHECK(number(b, "mean_late_s") == Approx(810));  // (120 + 1500) / 2 arrivals

  const json::array& carers = b.at("carers").as_array();
  REQUIRE(carers.size() == 2);
  CHECK(text(carers[0], "carer") == "C1");
  CHECK(integer(carers[0], "visits") == 2);
  CHECK(integer(carers[0], "on_time") == 1);
  CHECK(integer(carers[0], "late") == 0);
  CHECK(integer(carers[0], "missed") == 1);
  CHECK(number(carers[0], "on_time_pct") == Approx(50));
  CHECK(number(carers[0], "mean_late_s") == Approx(120));
  CHECK(text(carers[1], "carer") == "C2");
  CHECK(integer(carers[1], "visits") == 1);
  CHECK(integer(carers[1], "late") == 1);
  CHECK(number(carers[1], "on_time_pct") == Approx(0));
  CHECK(number(carers[1], "mean_late_s") == Approx(1500));
}

TEST_CASE("The punctuality report of a day not yet begun has nulls where nothing is known") {
  Agency a;
  a.import_both();
  a.now = at("2026-11-23T03:00:00Z");
  // Today in New York is the 22nd, which has no rota.
  const Seen none = a.get("/api/reports/punctuality?branch=B2", admin());
  REQUIRE(none.status() == 200);
  CHECK(text(none.body, "date") == "2026-11-22");
  CHECK(integer(none.body, "visits") == 0);
  CHECK(none.body.at("on_time_pct").is_null());
  CHECK(none.body.at("mean_late_s").is_null());

  const Seen b1 = a.get("/api/reports/punctuality?branch=B1", admin());
  CHECK(text(b1.body, "date") == "2026-11-23");
  CHECK(integer(b1.body, "visits") == 4);
  CHECK(integer(b1.body, "pending") == 4);
}

TEST_CASE(
    "The punctuality report comes as CSV on Accept: text/csv, one row per carer and a total") {
  Agency a;
  a.day_with_on_time_late_and_missed();
  const Seen r = a.get("/api/reports/punctuality?branch=B1&date=2026-11-23", office_b1(),
                       "text/html, text/csv;q=0.9, */*;q=0.1");
  REQUIRE(r.status() == 200);
  CHECK(r.answer.content_type == "text/csv; charset=utf-8");
  CHECK(r.header("Content-Disposition") ==
        "attachment; filename=\"punctuality-B1-2026-11-23.csv\"");
  CHECK(r.answer.body ==
        "carer,visits,on_time,late,missed,pending,on_time_pct,mean_late_s\r\n"
        "C1,2,1,0,1,0,50,120\r\n"
        "C2,1,0,1,0,0,0,1500\r\n"
        "total,3,1,1,1,0,33.3,810\r\n");

  // text/csv refused with q=0, or not named: JSON.
  CHECK(a.get("/api/reports/punctuality?branch=B1&date=2026-11-23", office_b1(), "text/csv;q=0")
            .answer.content_type == "application/json");
  CHECK(a.get("/api/reports/punctuality?branch=B1&date=2026-11-23", office_b1(), "*/*")
            .answer.content_type == "application/json");
}

TEST_CASE("The punctuality report needs a branch the user may see") {
  Agency a;
  a.import_both();
  const Seen missing = a.get("/api/reports/punctuality", admin());
  CHECK(missing.status() == 400);
  CHECK_THAT(missing.message(), Catch::Contains("branch"));
  CHECK(a.get("/api/reports/punctuality?branch=B2", office_b1()).status() == 403);
  CHECK(a.get("/api/reports/punctuality?branch=B3", admin()).status() == 404);
  CHECK(a.get("/api/reports/punctuality?branch=B1&date=tomorrow", admin()).status() == 400);
  CHECK(a.get("/api/reports/punctuality?branch=B1", carer_c1()).status() == 403);
}

// ---------------------------------------------------------------------------------------
// POST /api/carers/{id}/message

TEST_CASE("An office user messages a carer of their branch, the decision carries the message") {
  Agency a;
  a.import_both();
  const Seen r = a.post("/api/carers/C1/message", office_b1(), R"({"text":"Call the office"})");
  CHECK(r.status() == 0);
  REQUIRE(a.last->message.has_value());
  CHECK(a.last->message->carer == "C1");
  CHECK(a.last->message->from == "olga");  // no name in the token: its sub
  CHECK(a.last->message->text == "Call the office");

  a.post("/api/carers/C9/message", admin(), R"({"text":"hi"})");
  REQUIRE(a.last->message.has_value());
  CHECK(a.last->message->from == "Ada Admin");

  const Seen elsewhere = a.post("/api/carers/C9/message", office_b1(), R"({"text":"hi"})");
  CHECK(elsewhere.status() == 404);
  CHECK(elsewhere.code() == "unknown_carer");
  CHECK(a.post("/api/carers/C77/message", admin(), R"({"text":"hi"})").status() == 404);
  CHECK(a.post("/api/carers/C9/message", admin_b1_only(), R"({"text":"hi"})").status() == 403);
  const Seen empty = a.post("/api/carers/C1/message", office_b1(), R"({"text":""})");
  CHECK(empty.status() == 400);
  CHECK_THAT(empty.message(), Catch::Contains("text"));
  CHECK(a.post("/api/carers/C1/message", office_b1(), "").status() == 400);
  CHECK(
      a.post("/api/carers/C1/message", office_b1(), R"({"text":")" + std::string(4097, 'x') + "\"}")
          .status() == 400);
}

// ---------------------------------------------------------------------------------------
// Routing

TEST_CASE("Unknown paths answer 404 and a known path's wrong method 405 with Allow") {
  Agency a;
  a.import_both();
  for (const char* target : {"/api", "/api/", "/api/visitz", "/api/visits/V1/explode",
                             "/api/visits//cancel", "/metrics", "/", "/apiary"}) {
    const Seen r = a.get(target, admin());
    INFO(target);
    CHECK(r.status() == 404);
    CHECK(r.code() == "not_found");
  }
  const Seen wrong = a.call({"DELETE", "/api/visits/V1", "", "", ""}, admin());
  CHECK(wrong.status() == 405);
  CHECK(wrong.header("Allow") == "GET");
  CHECK(wrong.code() == "method_not_allowed");
  CHECK(
      a.call({"GET", "/api/rota?branch=B1&date=2026-11-23", "", "", ""}, admin()).header("Allow") ==
      "PUT");
  CHECK(a.get("/api/visits/V1/cancel", admin()).header("Allow") == "POST");
  CHECK(a.engine.visit(*a.engine.find_visit("V1")).state == rota::VisitState::scheduled);
}

TEST_CASE("A carer's token is refused on every API route") {
  Agency a;
  a.import_both();
  for (const Request& r : std::vector<Request>{
           {"GET", "/api/visits", "", "", ""},
           {"GET", "/api/visits/V1", "", "", ""},
           {"POST", "/api/visits/V1/cancel", "{}", "application/json", ""},
           {"POST", "/api/visits/V1/reassign", R"({"carers":["C1"]})", "", ""},
           {"GET", "/api/alerts", "", "", ""},
           {"POST", "/api/alerts/A1/ack", "", "", ""},
           {"GET", "/api/reports/punctuality?branch=B1", "", "", ""},
           {"POST", "/api/carers/C1/message", R"({"text":"hi"})", "", ""},
           {"PUT", "/api/rota?branch=B1&date=2026-11-23", kRotaB1, "text/csv", ""},
       }) {
    const Seen seen = a.call(r, carer_c1());
    INFO(r.method << " " << r.target);
    CHECK(seen.status() == 403);
    CHECK(seen.code() == "forbidden");
  }
}

TEST_CASE("Every error code maps to its HTTP status and the protocol's error body") {
  CHECK(http_status(ErrorCode::bad_json) == 400);
  CHECK(http_status(ErrorCode::bad_message) == 400);
  CHECK(http_status(ErrorCode::bad_rota) == 400);
  CHECK(http_status(ErrorCode::unauthenticated) == 401);
  CHECK(http_status(ErrorCode::forbidden) == 403);
  CHECK(http_status(ErrorCode::not_assigned) == 403);
  CHECK(http_status(ErrorCode::unknown_visit) == 404);
  CHECK(http_status(ErrorCode::unknown_alert) == 404);
  for (const ErrorCode c :
       {ErrorCode::conflict, ErrorCode::already_checked_in, ErrorCode::not_checked_in,
        ErrorCode::visit_cancelled, ErrorCode::outside_visit_window, ErrorCode::off_shift,
        ErrorCode::too_old}) {
    CHECK(http_status(c) == 409);
  }
  CHECK(http_status(ErrorCode::rate_limited) == 429);
  CHECK(http_status(ErrorCode::internal) == 500);

  const HttpAnswer e = error_answer(Error{ErrorCode::unauthenticated, "token expired"});
  CHECK(e.status == 401);
  CHECK(e.content_type == "application/json");
  CHECK(json::parse(e.body) ==
        json::parse(R"({"error":{"code":"unauthenticated","message":"token expired",
                       "details":[]}})"));
}

TEST_CASE("decide() answers any request, however garbled, without throwing") {
  Agency a;
  a.import_both();
  const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE", "", "get"};
  const std::vector<std::string> targets = {"/api/visits",
                                            "/api/visits/V1/reassign",
                                            "/api/alerts/A1/ack",
                                            "/api/rota?branch=B1&date=",
                                            "/api/reports/punctuality?branch=B1",
                                            "/api/carers/C1/message",
                                            "/api/visits?state=late"};
  const std::vector<std::string> bodies = {
      "",
      "{}",
      "null",
      R"({"carers":["C1"],"note":"x","text":"y","reason":"z"})",
      "visit_id\nV1",
      "\xff\xfe",
      R"({"carers":[{"a":1}]})"};
  std::mt19937 rng(20261123);
  const auto pick = [&](const auto& v) { return v[rng() % v.size()]; };
  const std::set<unsigned> statuses = {0, 200, 400, 403, 404, 405, 409, 415};
  for (int i = 0; i < 2000; ++i) {
    Request r{pick(methods), pick(targets), pick(bodies),
              pick(std::vector<std::string>{"", "application/json", "text/csv"}), ""};
    // Mutate a byte or two of the target and the body.
    for (std::string* s : {&r.target, &r.body}) {
      if (!s->empty() && rng() % 2) (*s)[rng() % s->size()] = char(rng() % 256);
    }
    const Principal who = rng() % 2 ? admin() : office_b1();
    Seen seen;
    REQUIRE_NOTHROW(seen = a.call(r, who));
    INFO(r.method << " " << r.target << " " << r.body << " → " << seen.answer.body);
    CHECK(statuses.count(seen.status()) == 1);
  }
}

// ---------------------------------------------------------------------------------------
// GET /api/branches, GET /api/alerts?visit=

TEST_CASE("The branches a user may see are listed with their names and zones") {
  Agency a;
  const Seen all = a.get("/api/branches", admin());
  REQUIRE(all.status() == 200);
  const auto& list = all.body.at("branches").as_array();
  REQUIRE(list.size() == 2);
  CHECK(text(list[0], "id") == "B1");
  CHECK(text(list[0], "name") == "North");
  CHECK(text(list[0], "timezone") == "Europe/London");
  CHECK(text(list[1], "timezone") == "America/New_York");
  CHECK(list[1].at("manage").as_bool());

  const Seen mine = a.get("/api/branches", office_b1());
  REQUIRE(mine.body.at("branches").as_array().size() == 1);
  CHECK(text(mine.body.at("branches").at(0), "id") == "B1");
  CHECK(a.get("/api/branches", carer_c1()).status() == 403);
  CHECK(a.post("/api/branches", admin(), "{}").status() == 405);
}

TEST_CASE("A visit's alert history is listed by visit, and only where the user may look") {
  Agency a;
  a.day_with_on_time_late_and_missed();
  // V2 went late and was resolved by the late check-in; V3 is missed and open.
  const Seen v2 = a.get("/api/alerts?state=all&visit=V2", admin());
  REQUIRE(v2.status() == 200);
  const auto& history = v2.body.at("alerts").as_array();
  // Its late alert (resolved by the late check-in) and, the carer still there at 12:05, its
  // overrunning alert, open.
  REQUIRE(history.size() == 2);
  CHECK(text(history[0], "key") == "visit/V2/start");
  CHECK(text(history[0], "state") == "resolved");
  CHECK(text(history[1], "key") == "visit/V2/end");
  const Seen open = a.get("/api/alerts?visit=V2", admin());
  REQUIRE(open.body.at("alerts").as_array().size() == 1);  // open only, by default
  CHECK(text(open.body.at("alerts").at(0), "key") == "visit/V2/end");
  CHECK(a.get("/api/alerts?state=all&visit=V3", admin()).body.at("alerts").as_array().size() == 1);
  CHECK(a.get("/api/alerts?state=all&visit=nope", admin()).body.at("alerts").as_array().empty());
  // An office user of the other branch sees nothing of it.
  CHECK(a.get("/api/alerts?state=all&visit=V2", office_b2()).body.at("alerts").as_array().empty());
}
