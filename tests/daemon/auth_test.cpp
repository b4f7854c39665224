// Who may do what, over real sockets: forged and stale tokens refused at the upgrade, on the
// API and in a first message; browser origins; and the authorisation matrix of roles ×
// own/other branch × own/other visit.

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
namespace ws = visitd::websocket;

namespace {

std::string claims(std::string_view role, std::chrono::seconds ttl = 1h) {
  const auto exp =
      std::chrono::duration_cast<std::chrono::seconds>((now() + ttl).time_since_epoch()).count();
  return json::serialize(json::object{
      {"sub", "mallory"}, {"role", role}, {"branches", json::array{"*"}}, {"exp", exp}});
}

/// A compact JWS with this header and payload, HMAC-SHA256-signed with `key`.
std::string signed_token(std::string_view header, std::string_view payload, std::string_view key) {
  const std::string input = ws::base64url_encode(header) + "." + ws::base64url_encode(payload);
  return input + "." + ws::hs256_sign(input, key);
}

struct Attack {
  std::string name;
  std::string token;
};

std::vector<Attack> attacks() {
  const std::string hs256 = R"({"alg":"HS256","typ":"JWT"})";
  const std::string admin = claims("admin");
  // A genuine carer token whose payload is swapped for an admin's, keeping the signature.
  const std::string genuine = token(Role::carer, "mallory");
  const std::string tampered = genuine.substr(0, genuine.find('.')) + "." +
                               ws::base64url_encode(admin) + genuine.substr(genuine.rfind('.'));
  return {
      {"alg none, no signature", ws::base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
                                     ws::base64url_encode(admin) + "."},
      {"alg none, with a signature", signed_token(R"({"alg":"none","typ":"JWT"})", admin, kSecret)},
      {"HS256 signed with another key",
       signed_token(hs256, admin, "another-secret-that-is-long-enough")},
      {"expired", token(Role::admin, "mallory", {"*"}, -60s)},
      {"payload tampered: carer made admin", tampered},
      {"RS256 header (HMAC with the secret: key confusion)",
       signed_token(R"({"alg":"RS256","typ":"JWT"})", admin, kSecret)},
      {"not a JWT at all", "hunter2"},
  };
}

}  // namespace

TEST_CASE(
    "Forged, tampered and expired tokens are refused on the API, at the upgrade and in a "
    "first message, and the daemon goes on serving",
    "[auth]") {
  Daemon d;
  d.import_rota("B1", rota_csv({visit("V1", "C1", today_at(-5min))}));
  for (const Attack& attack : attacks()) {
    INFO(attack.name << ": " << attack.token);

    const auto api = d.api("GET", "/api/visits", attack.token);
    CHECK(api.status == 401);
    CHECK(api.error_code() == "unauthenticated");
    CHECK_THAT(std::string(api.headers["WWW-Authenticate"]), Catch::StartsWith("Bearer"));

    CHECK(WsClient::with_token(d.port(), "/ws/board", attack.token).status() == 401);
    CHECK(WsClient::with_token(d.port(), "/ws/carer", attack.token).status() == 401);

    WsClient board(d.port(), "/ws/board");
    board.send_text(auth(attack.token));
    const json::value e = board.next();
    CHECK(str(e, "code") == "unauthenticated");
    REQUIRE(board.wait_closed());
    CHECK(board.close_code() == 1008);
  }

  const std::string admin = token(Role::admin, "root", {"*"});
  const auto visits = d.api("GET", "/api/visits?branch=B1", admin);
  REQUIRE(visits.status == 200);
  CHECK(visits.json().at("visits").as_array().size() == 1);
  WsClient board = WsClient::with_token(d.port(), "/ws/board", admin);
  CHECK(str(board.next(), "type") == "snapshot");
  CHECK(d.http("GET", "/api/visits").status == 401);  // and no token at all
}

TEST_CASE("Upgrades from a browser Origin not in allowed_origins are refused with 403", "[auth]") {
  Daemon d;
  const std::string office = token(Role::office, "olga", {"B1"});
  for (const char* path : {"/ws/board", "/ws/carer"}) {
    INFO(path);
    WsClient evil(d.port(), path, {{"Origin", "http://evil.example"}});
    CHECK(evil.status() == 403);
    CHECK_THAT(evil.refusal_body(), Catch::Contains("forbidden"));
  }
  WsClient board(d.port(), "/ws/board", {{"Origin", std::string(kAllowedOrigin)}});
  CHECK(board.status() == 101);
  board.send_text(auth(office));
  CHECK(str(board.next(), "type") == "snapshot");
  // A near miss is a miss: origins are compared whole.
  CHECK(WsClient(d.port(), "/ws/board", {{"Origin", std::string(kAllowedOrigin) + ".evil"}})
            .status() == 403);
}

TEST_CASE(
    "The HTTP API lets each role act on its own branches only, and objects of other branches "
    "do not exist for them",
    "[auth][matrix]") {
  DaemonConfig config;
  config.thresholds = {{"late_after", "\"1s\""}, {"missed_after", "\"1h\""}};
  Daemon d(config);
  const TimePoint start = today_at(-5min);
  d.import_rota("B1", rota_csv({visit("V1", "C1", start), visit("V2", "C2", start)}));
  d.import_rota("B2", rota_csv({visit("W1", "C3", start)}));

  const std::string root = token(Role::admin, "root", {"*"});
  std::map<std::string, std::string> alert;  // visit -> its late alert
  for (int tries = 0; alert.size() < 3 && tries < 100; ++tries) {
    const json::value list = d.api("GET", "/api/alerts", root).json();
    for (const auto& a : list.at("alerts").as_array()) {
      alert[str(a, "visit")] = str(a, "id");
    }
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE(alert.size() == 3);

  const std::string carer = token(Role::carer, "C1");
  const std::string office_b1 = token(Role::office, "olga", {"B1"});
  const std::string coord_b2 = token(Role::coordinator, "cora", {"B2"});
  const std::string admin_b1 = token(Role::admin, "ann", {"B1"});
  const std::string rota_b2 = rota_csv({visit("W1", "C3", start)});
  struct Row {
    const char* who;
    const std::string& token;
    std::string method;
    std::string target;
    std::string body;
    unsigned status;
    std::string code;  ///< the error code, for refusals
  };
  const std::vector<Row> rows = {
      // A carer sees their own rota on the phone, nothing through the API.
      {"carer", carer, "GET", "/api/visits", "", 403, "forbidden"},
      {"carer", carer, "GET", "/api/visits/V1", "", 403, "forbidden"},
      {"carer", carer, "POST", "/api/visits/V1/cancel", "{}", 403, "forbidden"},
      {"carer", carer, "GET", "/api/alerts", "", 403, "forbidden"},
      // Office B1: its branch, not B2's; no rota imports.
      {"office B1", office_b1, "GET", "/api/visits/V1", "", 200, ""},
      {"office B1", office_b1, "GET", "/api/visits/W1", "", 404, "unknown_visit"},
      {"office B1", office_b1, "GET", "/api/visits?branch=B2", "", 403, "forbidden"},
      {"office B1", office_b1, "GET", "/api/alerts?branch=B2", "", 403, "forbidden"},
      {"office B1", office_b1, "POST", "/api/visits/W1/cancel", "{}", 404, "unknown_visit"},
      {"office B1", office_b1, "POST", "/api/alerts/" + alert["W1"] + "/ack", "{}", 404,
       "unknown_alert"},
      {"office B1", office_b1, "PUT", "/api/rota?branch=B1&date=" + today(), rota_b2, 403,
       "forbidden"},
      // Coordinator B2: the mirror image.
      {"coordinator B2", coord_b2, "GET", "/api/visits/V1", "", 404, "unknown_visit"},
      {"coordinator B2", coord_b2, "GET", "/api/visits/W1", "", 200, ""},
      {"coordinator B2", coord_b2, "POST", "/api/visits/V2/reassign", R"({"carers":["C3"]})", 404,
       "unknown_visit"},
      {"coordinator B2", coord_b2, "POST", "/api/alerts/" + alert["V1"] + "/resolve", "{}", 404,
       "unknown_alert"},
      // An admin reads everything but manages only the branches of the claim.
      {"admin B1", admin_b1, "GET", "/api/visits/W1", "", 200, ""},
      {"admin B1", admin_b1, "POST", "/api/visits/W1/cancel", "{}", 403, "forbidden"},
      {"admin B1", admin_b1, "POST", "/api/alerts/" + alert["W1"] + "/ack", "{}", 403, "forbidden"},
      // The writes each may make.
      {"office B1", office_b1, "POST", "/api/alerts/" + alert["V1"] + "/ack", "{}", 200, ""},
      {"office B1", office_b1, "POST", "/api/visits/V2/cancel", R"({"reason":"ill"})", 200, ""},
      {"coordinator B2", coord_b2, "POST", "/api/alerts/" + alert["W1"] + "/ack", "{}", 200, ""},
      {"coordinator B2", coord_b2, "POST", "/api/visits/W1/reassign", R"({"carers":["C4"]})", 200,
       ""},
      {"admin *", root, "PUT", "/api/rota?branch=B2&date=" + today(), rota_b2, 200, ""},
      {"admin *", root, "GET", "/api/visits/V1", "", 200, ""},
  };
  for (const Row& row : rows) {
    const std::string type = row.method == "PUT" ? "text/csv" : "application/json";
    const auto res = d.api(row.method, row.target, row.token, row.body, type);
    INFO(row.who << ": " << row.method << " " << row.target << " -> " << res.status << " "
                 << res.body);
    CHECK(res.status == row.status);
    if (!row.code.empty()) CHECK(res.error_code() == row.code);
  }

  // Lists cover the caller's branches only.
  const auto listed = [&](const std::string& who, const std::string& target, const char* key) {
    std::set<std::string> branches;
    const json::value list = d.api("GET", target, who).json();
    for (const auto& o : list.at(key).as_array()) {
      branches.insert(str(o, "branch"));
    }
    return branches;
  };
  CHECK(listed(office_b1, "/api/visits", "visits") == std::set<std::string>{"B1"});
  CHECK(listed(office_b1, "/api/alerts?state=all", "alerts") == std::set<std::string>{"B1"});
  CHECK(listed(coord_b2, "/api/visits", "visits") == std::set<std::string>{"B2"});
  CHECK(listed(root, "/api/visits", "visits") == std::set<std::string>{"B1", "B2"});
}

TEST_CASE(
    "On the sockets, a carer acts on own visits only and a board on its own branches' "
    "alerts only",
    "[auth][matrix]") {
  DaemonConfig config;
  config.thresholds = {{"late_after", "\"1s\""}, {"missed_after", "\"1h\""}};
  Daemon d(config);
  const TimePoint start = today_at(-5min);
  d.import_rota("B1", rota_csv({visit("V1", "C1", start), visit("V2", "C2", start)}));
  d.import_rota("B2", rota_csv({visit("W1", "C3", start)}));

  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");
  phone.send_text(check_in("own", "V1"));
  CHECK(str(phone.next(), "status") == "accepted");
  phone.send_text(check_in("same-branch", "V2"));
  CHECK(str(phone.next(), "code") == "not_assigned");
  phone.send_text(check_in("other-branch", "W1"));
  CHECK(str(phone.next(), "code") == "not_assigned");

  std::string w1_alert;
  for (int tries = 0; w1_alert.empty() && tries < 100; ++tries) {
    const json::value list =
        d.api("GET", "/api/alerts?branch=B2", token(Role::admin, "root", {"*"})).json();
    for (const auto& a : list.at("alerts").as_array()) {
      w1_alert = str(a, "id");
    }
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE_FALSE(w1_alert.empty());
  const std::string ack = json::serialize(json::object{{"type", "ack_alert"}, {"alert", w1_alert}});

  WsClient office =
      WsClient::with_token(d.port(), "/ws/board", token(Role::office, "olga", {"B1"}));
  REQUIRE(str(office.next(), "type") == "snapshot");
  office.send_text(ack);
  CHECK(str(office.next_of("error"), "code") == "unknown_alert");

  WsClient admin_b1 =
      WsClient::with_token(d.port(), "/ws/board", token(Role::admin, "ann", {"B1"}));
  REQUIRE(str(admin_b1.next(), "type") == "snapshot");
  admin_b1.send_text(ack);
  CHECK(str(admin_b1.next_of("error"), "code") == "forbidden");

  WsClient coord =
      WsClient::with_token(d.port(), "/ws/board", token(Role::coordinator, "cora", {"B2"}));
  REQUIRE(str(coord.next(), "type") == "snapshot");
  coord.send_text(ack);
  const json::value ok = coord.next_of("ok");
  CHECK(str(ok, "ref") == w1_alert);
}
