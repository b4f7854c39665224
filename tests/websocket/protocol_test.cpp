// The protocol's JSON layer: every client message parsed and validated as docs/protocol.md
// defines it, hundreds of malformed inputs answered with a typed error, and every server
// message written with the protocol's exact field names (checked by parsing it back).

#include "visitd/websocket/protocol.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <random>
#include <set>

#include "visitd/core/time.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::websocket;
namespace json = boost::json;

namespace {

TimePoint at(const char* rfc3339) { return *parse_rfc3339(rfc3339); }

// Copies, not references: the tests pass temporaries.
template <class T>
T command_of(const Parsed& p) {
  INFO((p.ok() ? std::string("ok") : p.message.error().message));
  REQUIRE(p.ok());
  const auto* command = std::get_if<rota::Command>(&*p.message);
  REQUIRE(command != nullptr);
  const T* c = std::get_if<T>(command);
  REQUIRE(c != nullptr);
  return *c;
}

Error error_of(const Parsed& p) {
  REQUIRE_FALSE(p.ok());
  return p.message.error();
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// A message as (key, raw JSON value) pairs, so that tests can swap or drop one field.
using Fields = std::vector<std::pair<std::string, std::string>>;

std::string render(const Fields& fields) {
  std::string text = "{";
  for (const auto& [key, raw] : fields) {
    if (text.size() > 1) text += ',';
    text += '"' + key + "\":" + raw;
  }
  return text + "}";
}

Fields with(Fields fields, const std::string& key, const std::string& raw) {
  for (auto& [k, v] : fields) {
    if (k == key) {
      v = raw;
      return fields;
    }
  }
  fields.emplace_back(key, raw);
  return fields;
}

Fields without(Fields fields, const std::string& key) {
  std::erase_if(fields, [&](const auto& f) { return f.first == key; });
  return fields;
}

struct Sample {
  std::string name;
  Channel channel;
  Fields fields;
  std::vector<std::string> required;  ///< fields whose absence is a bad_message
};

std::vector<Sample> valid_samples() {
  return {
      {"check_in gps",
       Channel::carer,
       {{"type", R"("check_in")"},
        {"id", R"("0190c3-1")"},
        {"visit", R"("V1")"},
        {"at", R"("2026-11-23T09:02:10Z")"},
        {"lat", "51.5014"},
        {"lon", "-0.1419"},
        {"accuracy", "12"},
        {"method", R"("gps")"}},
       {"id", "visit", "at", "lat", "lon", "accuracy"}},
      {"check_in nfc",
       Channel::carer,
       {{"type", R"("check_in")"},
        {"id", R"("0190c3-2")"},
        {"visit", R"("V1")"},
        {"at", R"("2026-11-23T09:02:10+01:00")"},
        {"method", R"("nfc")"},
        {"tag", R"("04:A2:3B")"}},
       {"id", "visit", "at", "tag"}},
      {"check_out",
       Channel::carer,
       {{"type", R"("check_out")"},
        {"id", R"("0190c3-3")"},
        {"visit", R"("V1")"},
        {"at", R"("2026-11-23T09:31:00Z")"},
        {"lat", "51.5014"},
        {"lon", "-0.1419"},
        {"accuracy", "8.5"},
        {"note", R"("Had lunch, meds taken — Zoë")"}},
       {"id", "visit", "at", "lat", "lon", "accuracy"}},
      {"location",
       Channel::carer,
       {{"type", R"("location")"},
        {"id", R"("0190c3-4")"},
        {"at", R"("2026-11-23T09:40:00Z")"},
        {"lat", "51.51"},
        {"lon", "-0.12"},
        {"accuracy", "30"}},
       {"id", "at", "lat", "lon", "accuracy"}},
      {"running_late",
       Channel::carer,
       {{"type", R"("running_late")"},
        {"id", R"("0190c3-5")"},
        {"visit", R"("V2")"},
        {"eta", R"("2026-11-23T10:20:00Z")"},
        {"reason", R"("traffic")"}},
       {"id", "visit", "eta"}},
      {"auth on the carer socket",
       Channel::carer,
       {{"type", R"("auth")"}, {"token", R"("eyJhbGciOiJIUzI1NiJ9.e30.sig")"}},
       {"token"}},
      {"auth on the board socket",
       Channel::board,
       {{"type", R"("auth")"}, {"token", R"("eyJhbGciOiJIUzI1NiJ9.e30.sig")"}},
       {"token"}},
      {"ack_alert",
       Channel::board,
       {{"type", R"("ack_alert")"}, {"alert", R"("A17")"}, {"note", R"("calling her")"}},
       {"alert"}},
      {"resolve_alert",
       Channel::board,
       {{"type", R"("resolve_alert")"}, {"alert", R"("A17")"}, {"note", R"("she was there")"}},
       {"alert"}},
  };
}

/// Values each field must refuse with bad_message, as raw JSON.
std::vector<std::string> bad_values(const std::string& field) {
  const std::vector<std::string> not_strings = {
      "true", "false", "0", "-1", "1.5", "[]", "{}", R"(["V1"])", R"({"id":"V1"})"};
  const std::vector<std::string> not_numbers = {
      "true", "false", R"("51.5")", R"("NaN")", R"("Infinity")", R"("")", "[]", "{}", "[51.5]"};
  const std::vector<std::string> not_times = {R"("")",
                                              R"("2026-11-23")",
                                              R"("2026-11-23T09:02:10")",
                                              R"("09:02")",
                                              R"("yesterday")",
                                              R"("2026-13-01T00:00:00Z")",
                                              R"("2026-11-31T09:00:00Z")",
                                              R"("2026-11-23T25:00:00Z")",
                                              R"("2026-11-23T09:02:10+25:00")",
                                              "1795424530",
                                              "true"};
  auto plus = [](std::vector<std::string> a, std::vector<std::string> b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  if (field == "id") {
    return plus(not_strings, {R"("")", '"' + std::string(129, 'x') + '"'});
  }
  if (field == "visit") return plus(not_strings, {R"("")", '"' + std::string(65, 'V') + '"'});
  if (field == "alert") return plus(not_strings, {R"("")", '"' + std::string(65, 'A') + '"'});
  if (field == "at" || field == "eta") return plus(not_times, {"[]", "{}"});
  if (field == "lat") {
    return plus(not_numbers, {"90.0001", "-90.5", "91", "1e308", "-1e308", "1e400", "-1e400",
                              "18446744073709551615", '1' + std::string(400, '0')});
  }
  if (field == "lon") {
    return plus(not_numbers, {"180.0001", "-181", "1e308", "1e400", "-1e400"});
  }
  if (field == "accuracy") {
    return plus(not_numbers, {"-1", "-0.5", "100001", "1e308", "1e400"});
  }
  if (field == "method") {
    return {R"("GPS")", R"("")", R"("bluetooth")", R"("gps ")", "1", "true", "[]", "{}"};
  }
  if (field == "tag") return plus(not_strings, {'"' + std::string(257, 't') + '"'});
  if (field == "note") return {'"' + std::string(4097, 'n') + '"', "5", "true", "[]", "{}"};
  if (field == "reason") return {'"' + std::string(513, 'r') + '"', "5", "true", "[]", "{}"};
  if (field == "token") return {R"("")", "5", "true", "[]", "{}"};
  if (field == "type") return {"5", "true", "[]", "{}", "null"};
  return {};
}

// ---------------------------------------------------------------------------------------
// A small agency with real visits and alerts, for the writers.

config::Settings agency() {
  config::Settings s;
  s.branches.push_back(config::Branch{"B1", "North", "Europe/London", {}});
  s.branches.push_back(config::Branch{"B2", "Berlin", "Europe/Berlin", {}});
  return s;
}

const geo::LatLon kHome{51.5014, -0.1419};
const rota::Fix kAtHome{{51.50141, -0.14191}, 10};
const rota::Fix kFarAway{{51.5200, -0.1000}, 15};  // about 3.6 km away

rota::VisitPlan plan(std::string id, std::vector<std::string> carers, const char* start,
                     const char* end, std::string client_name = "") {
  rota::VisitPlan p;
  p.id = std::move(id);
  p.client = rota::ClientPlan{"CL-" + p.id, client_name.empty() ? "Mrs " + p.id : client_name,
                              kHome, std::nullopt, ""};
  p.carers = std::move(carers);
  p.start = at(start);
  p.end = at(end);
  return p;
}

LocalDays day_23() { return LocalDays(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch()); }

struct Agency {
  config::Settings settings = agency();
  rota::Engine engine{settings, at("2026-11-23T00:00:00Z")};
  TimePoint now = at("2026-11-23T06:00:00Z");
  rota::Effects fx;

  void import(std::string branch, std::vector<rota::VisitPlan> visits) {
    const rota::Reply r = engine.apply(
        rota::ImportRota{std::move(branch), day_23(), std::move(visits), "admin"}, now, fx);
    REQUIRE(r.status == rota::Status::accepted);
  }
  rota::Reply apply(const rota::Command& c) {
    fx.clear();
    return engine.apply(c, now, fx);
  }
  void advance_to(const char* t) {
    now = at(t);
    fx.clear();
    engine.advance(now, fx);
  }
  rota::VisitIndex visit(const char* id) const { return *engine.find_visit(id); }
  rota::AlertIndex alert_of(const char* id, rota::AlertPhase phase) const {
    return engine.visit(visit(id)).alerts[std::size_t(phase)];
  }
};

rota::CheckIn check_in(std::string id, std::string carer, std::string visit, const char* device,
                       std::optional<rota::Fix> fix = kAtHome) {
  return rota::CheckIn{
      std::move(id), std::move(carer), std::move(visit), at(device), fix, rota::Method::gps, ""};
}

rota::CheckOut check_out(std::string id, std::string carer, std::string visit, const char* device,
                         std::string note = "") {
  return rota::CheckOut{std::move(id),
                        std::move(carer),
                        std::move(visit),
                        at(device),
                        kAtHome,
                        rota::Method::gps,
                        "",
                        std::move(note)};
}

json::object parse_object(const std::string& text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  INFO(text);
  REQUIRE_FALSE(ec);
  REQUIRE(v.is_object());
  return v.get_object();
}

std::vector<std::string> keys(const json::object& o) {
  std::vector<std::string> k;
  for (const auto& member : o) k.emplace_back(member.key());
  return k;
}

const std::vector<std::string> kVisitKeys = {
    "id", "branch", "client", "carers", "start", "end", "type", "time_critical", "state", "flags",
    "check_ins", "check_outs", "late_by_s", "notes", "eta", "eta_reason", "cancel_reason",
    // issue 8: the at-risk estimate, why it is late, whether the awaited phone is silent
    "expected_at", "late_cause", "phone_offline_since", "carer_locations"};
const std::vector<std::string> kCheckInKeys = {"carer", "at",       "received_at", "lat",
                                               "lon",   "accuracy", "distance_m",  "method"};
// protocol.md's alert, plus the extension `notified` (who was told what, when).
const std::vector<std::string> kAlertKeys = {
    "id", "key", "kind", "severity", "state", "visit", "branch", "carer", "client", "raised_at",
    "updated_at", "acked_by", "acked_at", "resolved_at", "resolution", "escalation_level",
    "notified", "seq", "summary",
    // issue 8: estimate, reason and cause of lateness, held pages, a silent phone
    "eta", "reason", "cause", "pages_held", "phone_offline_since"};

std::string visit_json(const Agency& a, const char* id) {
  std::string out;
  append_visit(out, a.engine, a.visit(id));
  return out;
}

std::string alert_json(const Agency& a, rota::AlertIndex i) {
  std::string out;
  append_alert(out, a.engine, i);
  return out;
}

}  // namespace

// =======================================================================================
// Parsing: each message with all its fields

TEST_CASE("A gps check-in becomes a CheckIn for the authenticated carer, whatever it claims") {
  MessageParser parser(Channel::carer);
  const Parsed p = parser.parse(
      R"({"type":"check_in","id":"0190c3-1","visit":"V1","at":"2026-11-23T09:02:10Z",
          "lat":51.5014,"lon":-0.1419,"accuracy":12,"method":"gps","carer":"C666"})",
      "C1");
  const auto& c = command_of<rota::CheckIn>(p);
  CHECK(c.event_id == "0190c3-1");
  CHECK(c.carer == "C1");
  CHECK(c.visit == "V1");
  CHECK(c.at == at("2026-11-23T09:02:10Z"));
  REQUIRE(c.fix);
  CHECK(c.fix->position.lat == 51.5014);
  CHECK(c.fix->position.lon == -0.1419);
  CHECK(c.fix->accuracy_m == 12);
  CHECK(c.method == rota::Method::gps);
  CHECK(c.tag.empty());
  REQUIRE(p.id);
  CHECK(*p.id == "0190c3-1");
}

TEST_CASE("An nfc check-in carries its tag and may come without a position") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::CheckIn>(parser.parse(
      R"({"type":"check_in","id":"e2","visit":"V1","at":"2026-11-23T10:02:10+01:00",
          "method":"nfc","tag":"04:A2:3B"})",
      "C1"));
  CHECK(c.method == rota::Method::nfc);
  CHECK(c.tag == "04:A2:3B");
  CHECK_FALSE(c.fix);
  CHECK(c.at == at("2026-11-23T09:02:10Z"));
}

TEST_CASE("A qr check-in may also carry a position, which is kept") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::CheckIn>(parser.parse(
      R"({"type":"check_in","id":"e2","visit":"V1","at":"2026-11-23T09:02:10Z",
          "method":"qr","tag":"QR-9","lat":51,"lon":0,"accuracy":0})",
      "C1"));
  CHECK(c.method == rota::Method::qr);
  REQUIRE(c.fix);
  CHECK(c.fix->position.lat == 51);
  CHECK(c.fix->accuracy_m == 0);
}

TEST_CASE("A check-in without a method is a gps check-in, and integers are numbers") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::CheckIn>(parser.parse(
      R"({"type":"check_in","id":"e3","visit":"V1","at":"2026-11-23T09:02:10Z",
          "lat":51,"lon":-1,"accuracy":100000})",
      "C1"));
  CHECK(c.method == rota::Method::gps);
  CHECK(c.fix->position.lat == 51);
  CHECK(c.fix->position.lon == -1);
  CHECK(c.fix->accuracy_m == 100000);
}

TEST_CASE("A manual check-in needs a position like a gps one") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::CheckIn>(parser.parse(
      R"({"type":"check_in","id":"e3","visit":"V1","at":"2026-11-23T09:02:10Z",
          "lat":-90,"lon":180,"accuracy":5,"method":"manual"})",
      "C1"));
  CHECK(c.method == rota::Method::manual);
  CHECK(c.fix->position.lat == -90);
  CHECK(c.fix->position.lon == 180);
  const Error& e = error_of(parser.parse(
      R"({"type":"check_in","id":"e3","visit":"V1","at":"2026-11-23T09:02:10Z","method":"manual"})",
      "C1"));
  CHECK(e.code == ErrorCode::bad_message);
  CHECK(e.message == "lat is missing: method manual needs lat, lon and accuracy");
}

TEST_CASE("A check-out carries its note, in UTF-8 and with escapes decoded") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::CheckOut>(parser.parse(
      R"({"type":"check_out","id":"e4","visit":"V1","at":"2026-11-23T09:31:00.250Z",
          "lat":51.5014,"lon":-0.1419,"accuracy":8.5,
          "note":"Had lunch, meds taken \u2014 Zoë said \"thanks\"\nBye"})",
      "C1"));
  CHECK(c.event_id == "e4");
  CHECK(c.carer == "C1");
  CHECK(c.visit == "V1");
  CHECK(c.at == at("2026-11-23T09:31:00.250Z"));
  CHECK(c.fix->accuracy_m == 8.5);
  CHECK(c.method == rota::Method::gps);
  CHECK(c.note == "Had lunch, meds taken \u2014 Zoë said \"thanks\"\nBye");
}

TEST_CASE("A check-out by nfc needs no position and may have no note") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::CheckOut>(parser.parse(
      R"({"type":"check_out","id":"e5","visit":"V1","at":"2026-11-23T09:31:00Z",
          "method":"nfc","tag":"T","note":null})",
      "C1"));
  CHECK(c.method == rota::Method::nfc);
  CHECK(c.tag == "T");
  CHECK_FALSE(c.fix);
  CHECK(c.note.empty());
}

TEST_CASE("A location ping becomes a LocationPing with its fix") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::LocationPing>(parser.parse(
      R"({"type":"location","id":"e6","at":"2026-11-23T09:40:00Z",
          "lat":51.51,"lon":-0.12,"accuracy":30})",
      "C7"));
  CHECK(c.event_id == "e6");
  CHECK(c.carer == "C7");
  CHECK(c.at == at("2026-11-23T09:40:00Z"));
  CHECK(c.fix.position.lat == 51.51);
  CHECK(c.fix.position.lon == -0.12);
  CHECK(c.fix.accuracy_m == 30);
}

TEST_CASE("A running-late message becomes RunningLate with its eta and reason") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::RunningLate>(parser.parse(
      R"({"type":"running_late","id":"e7","visit":"V2","eta":"2026-11-23T10:20:00Z",
          "reason":"traffic"})",
      "C1"));
  CHECK(c.event_id == "e7");
  CHECK(c.carer == "C1");
  CHECK(c.visit == "V2");
  CHECK(c.eta == at("2026-11-23T10:20:00Z"));
  CHECK(c.reason == "traffic");
  const auto& bare = command_of<rota::RunningLate>(parser.parse(
      R"({"type":"running_late","id":"e8","visit":"V2","eta":"2026-11-23T10:20:00Z"})", "C1"));
  CHECK(bare.reason.empty());
}

TEST_CASE("An auth message gives its token, on either socket") {
  for (const Channel channel : {Channel::carer, Channel::board}) {
    MessageParser parser(channel);
    const Parsed p = parser.parse(R"({"type":"auth","token":"aaa.bbb.ccc"})", "");
    REQUIRE(p.ok());
    const auto* auth = std::get_if<AuthMessage>(&*p.message);
    REQUIRE(auth != nullptr);
    CHECK(auth->token == "aaa.bbb.ccc");
    CHECK_FALSE(p.id);
  }
}

TEST_CASE("Board messages acknowledge and resolve alerts in the name of the authenticated user") {
  MessageParser parser(Channel::board);
  const auto& ack = command_of<rota::AckAlert>(parser.parse(
      R"({"type":"ack_alert","alert":"A17","note":"calling her","by":"someone else"})", "u-ann"));
  CHECK(ack.alert == "A17");
  CHECK(ack.by == "u-ann");
  CHECK(ack.note == "calling her");
  const auto& resolve = command_of<rota::ResolveAlert>(
      parser.parse(R"({"type":"resolve_alert","alert":"A17"})", "u-ann"));
  CHECK(resolve.alert == "A17");
  CHECK(resolve.by == "u-ann");
  CHECK(resolve.note.empty());
}

TEST_CASE("Unknown fields are ignored so that newer phone apps can talk to this daemon") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::CheckIn>(parser.parse(
      R"({"app_version":"3.1","type":"check_in","id":"e9","visit":"V1",
          "at":"2026-11-23T09:02:10Z","lat":51.5,"lon":-0.14,"accuracy":12,
          "battery":{"level":0.42,"charging":[false,null]},"huge":1e400,"speed":null})",
      "C1"));
  CHECK(c.visit == "V1");
  // and "visit" on a location ping is not one of its fields
  CHECK(command_of<rota::LocationPing>(
            parser.parse(R"({"type":"location","id":"e","at":"2026-11-23T09:40:00Z","lat":1,
                             "lon":2,"accuracy":3,"visit":42})",
                         "C1"))
            .fix.position.lon == 2);
}

TEST_CASE("A null field counts as absent") {
  MessageParser parser(Channel::carer);
  const auto& c = command_of<rota::CheckIn>(parser.parse(
      R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z",
          "method":"nfc","tag":"T","lat":null,"lon":null,"accuracy":null})",
      "C1"));
  CHECK_FALSE(c.fix);
  const Error& e = error_of(parser.parse(
      R"({"type":"check_in","id":"e","visit":null,"at":"2026-11-23T09:02:10Z",
          "lat":1,"lon":2,"accuracy":3})",
      "C1"));
  CHECK(e.code == ErrorCode::bad_message);
  CHECK(e.message == "visit is missing");
}

// =======================================================================================
// Parsing: refusals

TEST_CASE("Each socket knows only its own message types") {
  MessageParser carer(Channel::carer);
  MessageParser board(Channel::board);
  const Parsed a = carer.parse(R"({"type":"ack_alert","alert":"A1","id":"x1"})", "C1");
  CHECK(error_of(a).code == ErrorCode::unknown_type);
  CHECK(error_of(a).message ==
        "unknown message type \"ack_alert\"; /ws/carer takes auth, check_in, check_out, "
        "location, running_late");
  CHECK(a.id == std::optional<std::string>("x1"));
  const Parsed b = board.parse(
      R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1,"lon":2,
          "accuracy":3})",
      "u");
  CHECK(error_of(b).code == ErrorCode::unknown_type);
  CHECK(contains(error_of(b).message, "/ws/board takes auth, ack_alert, resolve_alert"));
}

TEST_CASE("The error reply can echo the event id of a refused message, when it had one") {
  MessageParser parser(Channel::carer);
  CHECK(parser.parse(R"({"type":"check_in","id":"e-42","visit":"V1"})", "C1").id ==
        std::optional<std::string>("e-42"));
  CHECK(parser.parse(R"({"type":"nope","id":"e-43"})", "C1").id ==
        std::optional<std::string>("e-43"));
  CHECK_FALSE(parser.parse(R"({"type":"check_in","id":42})", "C1").id);
  CHECK_FALSE(parser.parse(R"({"type":"check_in","id":""})", "C1").id);
  CHECK_FALSE(
      parser.parse("{\"type\":\"check_in\",\"id\":\"" + std::string(129, 'x') + "\"}", "C1").id);
  CHECK_FALSE(parser.parse(R"({"type":"check_in","id":"e-44",)", "C1").id);  // not JSON
}

TEST_CASE("Field faults are bad_message with a message that names the field") {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"type":"check_in","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1,"lon":2,"accuracy":3})",
       "id is missing"},
      {R"({"type":"check_in","id":7,"visit":"V1"})",
       "id must be a string of 1 to 128 bytes, not a number"},
      {R"({"type":"check_in","id":"","visit":"V1"})",
       "id must be a string of 1 to 128 bytes; it has 0"},
      {R"({"type":"check_in","id":"e","at":"2026-11-23T09:02:10Z"})", "visit is missing"},
      {R"({"type":"check_in","id":"e","visit":["V1"]})",
       "visit must be a string of 1 to 64 bytes, not an array"},
      {R"({"type":"check_in","id":"e","visit":"V1"})", "at is missing"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10"})",
       "at must be an RFC 3339 time with an offset, e.g. 2026-11-23T09:02:10Z"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":1795424530})",
       "at must be an RFC 3339 time with an offset, e.g. 2026-11-23T09:02:10Z, not a number"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z"})",
       "lat is missing: method gps needs lat, lon and accuracy"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1,"lon":2})",
       "accuracy is missing: lat, lon and accuracy go together"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","method":"nfc","tag":"T","lon":2})",
       "lat is missing: lat, lon and accuracy go together"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":90.5,"lon":2,"accuracy":3})",
       "lat must be a number between -90 and 90"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":"51.5","lon":2,"accuracy":3})",
       "lat must be a number between -90 and 90, not a string"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1e308,"lon":2,"accuracy":3})",
       "lat must be a number between -90 and 90"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1e400,"lon":2,"accuracy":3})",
       "lat must be a number between -90 and 90"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1,"lon":-180.01,"accuracy":3})",
       "lon must be a number between -180 and 180"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1,"lon":2,"accuracy":-1})",
       "accuracy must be a number of metres from 0 to 100000"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1,"lon":2,"accuracy":100000.5})",
       "accuracy must be a number of metres from 0 to 100000"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1,"lon":2,"accuracy":3,"method":"GPS"})",
       "method must be one of gps, nfc, qr, manual"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","method":"qr"})",
       "tag is missing: method qr needs the tag read at the door"},
      {R"({"type":"check_in","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","method":"nfc","tag":""})",
       "tag must be a string of 1 to 256 bytes; it has 0"},
      {R"({"type":"check_out","id":"e","visit":"V1","at":"2026-11-23T09:02:10Z","lat":1,"lon":2,"accuracy":3,"note":5})",
       "note must be a string of at most 4096 bytes, not a number"},
      {R"({"type":"location","id":"e","at":"2026-11-23T09:02:10Z"})",
       "lat is missing: a location ping needs lat, lon and accuracy"},
      {R"({"type":"running_late","id":"e","visit":"V2","eta":"soon"})",
       "eta must be an RFC 3339 time with an offset, e.g. 2026-11-23T09:02:10Z"},
      {R"({"type":"running_late","id":"e","visit":"V2"})", "eta is missing"},
      {R"({"type":"running_late","id":"e","visit":"V2","eta":"2026-11-23T10:20:00Z","reason":false})",
       "reason must be a string of at most 512 bytes, not a boolean"},
      {R"({"type":"auth"})", "token is missing"},
      {R"({"type":"auth","token":""})", "token must be a string of at least 1 byte; it has 0"},
      {R"({"id":"e"})", "type is missing"},
      {R"({"type":["check_in"]})", "type must be a string, not an array"},
  };
  MessageParser parser(Channel::carer);
  for (const auto& c : cases) {
    INFO(c.json);
    const Parsed p = parser.parse(c.json, "C1");
    CHECK(error_of(p).code == ErrorCode::bad_message);
    CHECK(error_of(p).message == c.message);
  }
  MessageParser board(Channel::board);
  CHECK(error_of(board.parse(R"({"type":"ack_alert"})", "u")).message == "alert is missing");
  CHECK(error_of(board.parse(R"({"type":"resolve_alert","alert":"A1","note":[]})", "u")).message ==
        "note must be a string of at most 4096 bytes, not an array");
}

TEST_CASE("Strings are limited in bytes, exactly at their bounds") {
  MessageParser parser(Channel::carer);
  const auto check_in_with = [&](const std::string& field, const std::string& value) {
    Fields f = valid_samples()[0].fields;
    return parser.parse(render(with(f, field, '"' + value + '"')), "C1");
  };
  CHECK(check_in_with("id", std::string(128, 'x')).ok());
  CHECK_FALSE(check_in_with("id", std::string(129, 'x')).ok());
  CHECK(check_in_with("visit", std::string(64, 'v')).ok());
  CHECK_FALSE(check_in_with("visit", std::string(65, 'v')).ok());
  // 43 three-byte characters are 129 bytes.
  std::string dashes;
  for (int i = 0; i < 43; ++i) dashes += "\u2014";
  CHECK_FALSE(check_in_with("id", dashes).ok());
  CHECK(check_in_with("id", dashes.substr(3)).ok());

  Fields out = valid_samples()[2].fields;
  CHECK(parser.parse(render(with(out, "note", '"' + std::string(4096, 'n') + '"')), "C1").ok());
  CHECK_FALSE(
      parser.parse(render(with(out, "note", '"' + std::string(4097, 'n') + '"')), "C1").ok());
  Fields late = valid_samples()[4].fields;
  CHECK(parser.parse(render(with(late, "reason", '"' + std::string(512, 'r') + '"')), "C1").ok());
  CHECK_FALSE(
      parser.parse(render(with(late, "reason", '"' + std::string(513, 'r') + '"')), "C1").ok());
  Fields nfc = valid_samples()[1].fields;
  CHECK(parser.parse(render(with(nfc, "tag", '"' + std::string(256, 't') + '"')), "C1").ok());
  CHECK_FALSE(parser.parse(render(with(nfc, "tag", '"' + std::string(257, 't') + '"')), "C1").ok());
}

TEST_CASE("Text that is not JSON, not UTF-8 or not an object is bad_json") {
  MessageParser parser(Channel::carer);
  const auto code = [&](std::string_view text) { return error_of(parser.parse(text, "C1")).code; };
  CHECK(code("") == ErrorCode::bad_json);
  CHECK(code("check_in") == ErrorCode::bad_json);
  CHECK(code(R"({"type":"check_in",})") == ErrorCode::bad_json);
  CHECK(code(R"({"type":"check_in"} {})") == ErrorCode::bad_json);
  CHECK(code(R"([{"type":"check_in"}])") == ErrorCode::bad_json);
  CHECK(code("null") == ErrorCode::bad_json);
  CHECK(error_of(parser.parse(R"(["check_in"])", "C1")).message ==
        "the message must be a JSON object, not an array");
  CHECK(error_of(parser.parse("{\"type\":\"check_in\",\"note\":\"caf\xe9\"}", "C1")).message ==
        "the message is not valid UTF-8 (byte 30)");
  CHECK(error_of(parser.parse(R"({"type":"check_in")", "C1")).message ==
        "the message is not valid JSON: incomplete JSON at byte 18");
  CHECK(error_of(parser.parse(std::string(17, '[') + std::string(17, ']'), "C1")).message ==
        "the message is nested more than 16 levels deep");
  CHECK(parser
            .parse(R"({"type":"auth","token":"t","x":)" + std::string(15, '[') +
                       std::string(15, ']') + "}",
                   "C1")
            .ok());
}

TEST_CASE("One parser reads message after message, of any size, reusing its buffers") {
  MessageParser parser(Channel::carer);
  const std::string big_unknown = '"' + std::string(100'000, 'z') + '"';
  for (int i = 0; i < 2000; ++i) {
    const std::string id = "e" + std::to_string(i);
    Fields f = with(valid_samples()[2].fields, "id", '"' + id + '"');
    if (i % 7 == 0) f = with(f, "padding", big_unknown);
    if (i % 3 == 0) {
      CHECK(error_of(parser.parse(render(f).substr(0, 40), "C1")).code == ErrorCode::bad_json);
    } else {
      const Parsed p = parser.parse(render(f), "C" + std::to_string(i));
      const auto& c = command_of<rota::CheckOut>(p);
      CHECK(c.event_id == id);
      CHECK(c.carer == "C" + std::to_string(i));
      CHECK(c.note == "Had lunch, meds taken — Zoë");
    }
  }
}

// =======================================================================================
// Generated malformed inputs

TEST_CASE("Hundreds of generated malformed messages each get a typed error and none throws") {
  struct Bad {
    Channel channel;
    std::string text;
    ErrorCode code;
    std::string field;  ///< the message must name it (bad_message only)
  };
  std::vector<Bad> corpus;
  const auto samples = valid_samples();

  for (const auto& s : samples) {
    const std::string text = render(s.fields);
    // Truncated at every byte: never a complete object.
    for (std::size_t n = 0; n < text.size(); ++n) {
      corpus.push_back({s.channel, text.substr(0, n), ErrorCode::bad_json, ""});
    }
    // Each field given a value of the wrong type or out of range.
    for (const auto& [key, raw] : s.fields) {
      for (const auto& bad : bad_values(key)) {
        corpus.push_back({s.channel, render(with(s.fields, key, bad)), ErrorCode::bad_message,
                          key == "type" && bad == "null" ? "type" : key});
      }
    }
    // Each required field left out, or null.
    for (const auto& key : s.required) {
      corpus.push_back({s.channel, render(without(s.fields, key)), ErrorCode::bad_message, key});
      corpus.push_back(
          {s.channel, render(with(s.fields, key, "null")), ErrorCode::bad_message, key});
    }
    // The message wrapped in an array, or as a string.
    corpus.push_back({s.channel, "[" + text + "]", ErrorCode::bad_json, ""});
    corpus.push_back({s.channel, json::serialize(json::value(text)), ErrorCode::bad_json, ""});
    // Trailing data, a trailing comma, a comment.
    corpus.push_back({s.channel, text + text, ErrorCode::bad_json, ""});
    corpus.push_back({s.channel, text.substr(0, text.size() - 1) + ",}", ErrorCode::bad_json, ""});
    corpus.push_back({s.channel, "/* hi */" + text, ErrorCode::bad_json, ""});
    // Bad UTF-8 in a value, in a key and in the type.
    for (const std::string seq :
         {"\xff", "\xfe", "\x80", "\xc3", "\xc0\xaf", "\xe2\x82", "\xed\xa0\x80",
          "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xe0\x80\xaf"}) {
      corpus.push_back(
          {s.channel, render(with(s.fields, "x", "\"a" + seq + "b\"")), ErrorCode::bad_json, ""});
      corpus.push_back(
          {s.channel, render(with(s.fields, "k" + seq, "1")), ErrorCode::bad_json, ""});
      corpus.push_back(
          {s.channel, render(with(s.fields, "type", "\"" + seq + "\"")), ErrorCode::bad_json, ""});
    }
    // Unknown types.
    for (const std::string type : {"", "checkin", "CHECK_IN", "check_in ", " auth", "ping",
                                   "check_in\\u0000", "\\u00e9", "ack", "snapshot"}) {
      corpus.push_back({s.channel, render(with(s.fields, "type", "\"" + type + "\"")),
                        ErrorCode::unknown_type, ""});
    }
  }

  // Lone UTF-16 surrogates in escapes.
  for (const std::string esc : {"\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud800\\u0041",
                                "\\ud800x", "\\uDC00\\uD800"}) {
    corpus.push_back({Channel::carer, render(with(samples[2].fields, "note", "\"" + esc + "\"")),
                      ErrorCode::bad_json, ""});
  }
  // Deep nesting, in an ignored field and as the whole message.
  for (std::size_t depth = 17; depth <= 41; depth += 2) {
    corpus.push_back({Channel::carer,
                      render(with(samples[0].fields, "extra",
                                  std::string(depth, '[') + std::string(depth, ']'))),
                      ErrorCode::bad_json, ""});
    std::string objects;
    for (std::size_t i = 0; i < depth; ++i) objects += "{\"a\":";
    objects += "1" + std::string(depth, '}');
    corpus.push_back({Channel::board, objects, ErrorCode::bad_json, ""});
  }
  corpus.push_back({Channel::carer, std::string(100'000, '['), ErrorCode::bad_json, ""});
  // Not JSON at all.
  for (
      const std::string text :
      {"",
       " ",
       "{",
       "}",
       "{]",
       "[",
       "nul",
       "NaN",
       "-Infinity",
       "{'type':'auth'}",
       "{type:\"auth\"}",
       R"({"type":"auth","token":"t\x"})",
       "{\"type\":\"auth\",\"token\":\"a\tb\"}",
       "{\"type\":\"auth\",\"token\":\"a\nb\"}",
       R"({"type":"auth","token":"t"}})",
       R"({"type":"auth" "token":"t"})",
       R"({"type":"auth","token":01})",
       R"({"type":"location","id":"e","at":"2026-11-23T09:02:10Z","lat":NaN,"lon":1,"accuracy":1})",
       R"({"type":"location","id":"e","at":"2026-11-23T09:02:10Z","lat":+1,"lon":1,"accuracy":1})",
       R"({"type":"location","id":"e","at":"2026-11-23T09:02:10Z","lat":.5,"lon":1,"accuracy":1})",
       R"({"type":"location","id":"e","at":"2026-11-23T09:02:10Z","lat":1.,"lon":1,"accuracy":1})",
       R"({"type":"location","id":"e","at":"2026-11-23T09:02:10Z","lat":0x10,"lon":1,"accuracy":1})",
       "true",
       "false",
       "null",
       "0",
       "-1",
       "1e400",
       "\"check_in\"",
       "[]",
       "[1,2,3]",
       "\xef\xbb\xbf{}"}) {
    corpus.push_back({Channel::carer, text, ErrorCode::bad_json, ""});
  }
  // A NUL after a complete message is trailing data.
  corpus.push_back({Channel::carer, std::string(R"({"type":"auth","token":"t"})") + '\0',
                    ErrorCode::bad_json, ""});
  // Objects that are not messages.
  for (const std::string text :
       {"{}", R"({"id":"e"})", R"({"Type":"check_in"})", R"({"type":null})", R"({"type":1})"}) {
    corpus.push_back({Channel::board, text, ErrorCode::bad_message, "type"});
  }

  std::set<std::string> distinct;
  for (const auto& b : corpus) distinct.insert(b.text);
  CHECK(distinct.size() >= 300);

  MessageParser carer(Channel::carer);
  MessageParser board(Channel::board);
  std::size_t typed = 0;
  for (const auto& b : corpus) {
    INFO(b.text.substr(0, 300));
    MessageParser& parser = b.channel == Channel::carer ? carer : board;
    std::optional<Parsed> p;
    CHECK_NOTHROW(p.emplace(parser.parse(b.text, "C1")));
    REQUIRE(p);
    REQUIRE_FALSE(p->ok());
    const Error& e = p->message.error();
    CHECK(e.code == b.code);
    CHECK_FALSE(e.message.empty());
    if (b.code == ErrorCode::bad_message) CHECK(contains(e.message, b.field));
    // The error reply itself must be valid JSON, whatever the message quoted.
    std::string reply;
    append_error(reply, p->id, e);
    CHECK(parse_object(reply).at("code").as_string() == to_string(b.code));
    typed += e.code == b.code;
  }
  CHECK(typed == corpus.size());
}

TEST_CASE("Randomly mutated messages never throw, and a refusal is always a typed one") {
  std::mt19937 rng(20261123);  // fixed: a failure replays
  MessageParser carer(Channel::carer);
  MessageParser board(Channel::board);
  const auto samples = valid_samples();
  const std::string alphabet = "{}[]\":,\\0123456789.eE+-tfnul \x80\xff\xc3";
  for (int i = 0; i < 5000; ++i) {
    const auto& s = samples[rng() % samples.size()];
    std::string text = render(s.fields);
    const int edits = 1 + int(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const std::size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          text.erase(pos, 1);
          break;
        default:
          text.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
      }
      if (text.empty()) text = "{";
    }
    INFO(text);
    MessageParser& parser = s.channel == Channel::carer ? carer : board;
    std::optional<Parsed> p;
    REQUIRE_NOTHROW(p.emplace(parser.parse(text, "C1")));
    if (!p->ok()) {
      const ErrorCode c = p->message.error().code;
      CHECK((c == ErrorCode::bad_json || c == ErrorCode::bad_message ||
             c == ErrorCode::unknown_type));
    }
  }
}

// =======================================================================================
// Writing: building blocks

TEST_CASE("Strings are escaped so that they read back exactly, and bad UTF-8 becomes U+FFFD") {
  const std::string tricky =
      "quote \" backslash \\ slash / newline \n tab \t cr \r bell \x07 nul " +
      std::string(1, '\0') + " del \x7f é 中文 😀 \u2028";
  std::string out;
  append_json_string(out, tricky);
  CHECK(out.find('\n') == std::string::npos);
  CHECK(contains(out, "\\u0007"));
  CHECK(contains(out, "\\u0000"));
  CHECK(json::parse(out).as_string() == tricky);

  out.clear();
  append_json_string(out,
                     "a\xff"
                     "b\xc3"
                     "c\xed\xa0\x80"
                     "d");
  CHECK(out == "\"a\\ufffdb\\ufffdc\\ufffd\\ufffd\\ufffdd\"");
  CHECK(json::parse(out).as_string() == "a\uFFFDb\uFFFDc\uFFFD\uFFFD\uFFFDd");
}

TEST_CASE("Numbers are written in their shortest exact form, and non-finite ones as null") {
  const auto text = [](double d) {
    std::string out;
    append_json_number(out, d);
    return out;
  };
  CHECK(text(51.5014) == "51.5014");
  CHECK(text(-0.1419) == "-0.1419");
  CHECK(text(12) == "12");
  CHECK(text(0.1 + 0.2) == "0.30000000000000004");
  CHECK(json::parse(text(1e308)).as_double() == 1e308);
  CHECK(text(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(text(std::numeric_limits<double>::infinity()) == "null");
}

// =======================================================================================
// Writing: server messages from a real engine

TEST_CASE("An ack names the event, the outcome and the visit's state and flags") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  a.now = at("2026-11-23T09:02:00Z");
  const rota::Reply r = a.apply(check_in("e1", "C1", "V1", "2026-11-23T09:02:00Z", kFarAway));
  REQUIRE(r.status == rota::Status::accepted);
  std::string out;
  append_ack(out, "e1", r, a.engine);
  CHECK(
      out ==
      R"({"type":"ack","id":"e1","status":"accepted","visit":"V1","state":"in_progress","flags":["outside_geofence"]})");

  const rota::Reply dup = a.apply(check_in("e1", "C1", "V1", "2026-11-23T09:02:00Z", kFarAway));
  REQUIRE(dup.status == rota::Status::duplicate);
  out.clear();
  append_ack(out, "e1", dup, a.engine);
  const json::object o = parse_object(out);
  CHECK(keys(o) == std::vector<std::string>{"type", "id", "status", "visit", "state", "flags"});
  CHECK(o.at("status") == "duplicate");
  CHECK(o.at("state") == "in_progress");
}

TEST_CASE("A location ping's ack has the same keys, with no visit and no state") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  a.now = at("2026-11-23T09:10:00Z");
  const rota::Reply r =
      a.apply(rota::LocationPing{"p1", "C1", at("2026-11-23T09:10:00Z"), kAtHome});
  REQUIRE(r.status == rota::Status::accepted);
  std::string out;
  append_ack(out, "p1", r, a.engine);
  CHECK(out ==
        R"({"type":"ack","id":"p1","status":"accepted","visit":null,"state":null,"flags":[]})");
}

TEST_CASE("An error reply carries the event id or null, the code and the message") {
  std::string out;
  append_error(out, "e1", Error{ErrorCode::not_assigned, "visit V9 is not assigned to carer C1"});
  CHECK(
      out ==
      R"({"type":"error","id":"e1","code":"not_assigned","message":"visit V9 is not assigned to carer C1"})");
  out.clear();
  append_error(out, std::nullopt, Error{ErrorCode::bad_json, "not \"JSON\""});
  CHECK(out == R"({"type":"error","id":null,"code":"bad_json","message":"not \"JSON\""})");
}

TEST_CASE("A visit is written with every field of the protocol and its extensions") {
  Agency a;
  rota::VisitPlan p = plan("V1", {"C1", "C2"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z",
                           "Mrs \"Annie\" O'Brien\nFlat 2");
  p.type = "medication";
  p.time_critical = true;
  p.notes = "Key safe 1234; insulin in the fridge";
  p.client.tag = "TAG-1";
  a.import("B1", {p});
  a.now = at("2026-11-23T09:05:00Z");
  REQUIRE(a.apply(check_in("e1", "C1", "V1", "2026-11-23T09:04:00.500Z")).status ==
          rota::Status::accepted);
  REQUIRE(a.apply(rota::CheckIn{"e2", "C2", "V1", at("2026-11-23T09:05:00Z"), std::nullopt,
                                rota::Method::nfc, "TAG-1"})
              .status == rota::Status::accepted);
  a.now = at("2026-11-23T10:01:00Z");
  REQUIRE(a.apply(check_out("e3", "C1", "V1", "2026-11-23T10:01:00Z", "All well \u2014 \"fine\""))
              .status == rota::Status::accepted);

  const json::object v = parse_object(visit_json(a, "V1"));
  CHECK(keys(v) == kVisitKeys);
  CHECK(v.at("id") == "V1");
  CHECK(v.at("branch") == "B1");
  const json::object& client = v.at("client").as_object();
  CHECK(keys(client) == std::vector<std::string>{"id", "name", "lat", "lon"});
  CHECK(client.at("id") == "CL-V1");
  CHECK(client.at("name") == "Mrs \"Annie\" O'Brien\nFlat 2");
  CHECK(client.at("lat").as_double() == 51.5014);
  CHECK(client.at("lon").as_double() == -0.1419);
  CHECK(v.at("carers") == json::array{"C1", "C2"});
  CHECK(v.at("start") == "2026-11-23T09:00:00Z");
  CHECK(v.at("end") == "2026-11-23T10:00:00Z");
  CHECK(v.at("type") == "medication");
  CHECK(v.at("time_critical") == true);
  CHECK(v.at("state") == "in_progress");
  CHECK(v.at("flags") == json::array{});
  CHECK(v.at("carer_locations") == json::array{});  // no location pings: nothing to show
  CHECK(v.at("late_by_s") == 240);
  CHECK(v.at("notes") == "Key safe 1234; insulin in the fridge");
  CHECK(v.at("eta").is_null());
  CHECK(v.at("eta_reason") == "");
  CHECK(v.at("cancel_reason") == "");

  const json::array& ins = v.at("check_ins").as_array();
  REQUIRE(ins.size() == 2);
  const json::object& gps = ins[0].as_object();
  CHECK(keys(gps) == kCheckInKeys);
  CHECK(gps.at("carer") == "C1");
  CHECK(gps.at("at") == "2026-11-23T09:04:00.500Z");
  CHECK(gps.at("received_at") == "2026-11-23T09:05:00Z");
  CHECK(gps.at("lat").as_double() == 51.50141);
  CHECK(gps.at("lon").as_double() == -0.14191);
  CHECK(gps.at("accuracy").to_number<double>() == 10);
  const double d = gps.at("distance_m").to_number<double>();
  CHECK(d == Approx(1.3).margin(0.05));
  CHECK(d * 10 == Approx(std::round(d * 10)));  // rounded to 0.1 m
  CHECK(gps.at("method") == "gps");
  const json::object& nfc = ins[1].as_object();
  CHECK(keys(nfc) == kCheckInKeys);
  CHECK(nfc.at("carer") == "C2");
  CHECK(nfc.at("lat").is_null());
  CHECK(nfc.at("lon").is_null());
  CHECK(nfc.at("accuracy").is_null());
  CHECK(nfc.at("distance_m").is_null());
  CHECK(nfc.at("method") == "nfc");

  const json::array& outs = v.at("check_outs").as_array();
  REQUIRE(outs.size() == 1);
  std::vector<std::string> out_keys = kCheckInKeys;
  out_keys.push_back("note");
  CHECK(keys(outs[0].as_object()) == out_keys);
  CHECK(outs[0].at("note") == "All well \u2014 \"fine\"");
}

TEST_CASE("A visit shows its eta, reason, flags and cancellation") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z"),
                  plan("V2", {"C1"}, "2026-11-23T11:00:00Z", "2026-11-23T11:30:00Z")});
  a.now = at("2026-11-23T09:10:00Z");
  REQUIRE(a.apply(rota::RunningLate{"r1", "C1", "V1", at("2026-11-23T09:25:00Z"), "bus\tlate"})
              .status == rota::Status::accepted);
  a.advance_to("2026-11-23T09:20:00Z");
  REQUIRE(a.apply(rota::Cancel{"V2", "Client in hospital", "office"}).status ==
          rota::Status::accepted);
  const json::object v1 = parse_object(visit_json(a, "V1"));
  CHECK(v1.at("state") == "late");
  CHECK(v1.at("eta") == "2026-11-23T09:25:00Z");
  CHECK(v1.at("eta_reason") == "bus\tlate");
  a.now = at("2026-11-23T09:26:00Z");
  REQUIRE(a.apply(check_in("e1", "C1", "V1", "2026-11-23T09:26:00Z", kFarAway)).status ==
          rota::Status::accepted);
  CHECK(parse_object(visit_json(a, "V1")).at("flags") ==
        json::array{"outside_geofence", "late_arrival"});
  const json::object v2 = parse_object(visit_json(a, "V2"));
  CHECK(v2.at("state") == "cancelled");
  CHECK(v2.at("cancel_reason") == "Client in hospital");
}

TEST_CASE("An alert is written with every field of the protocol, null where unset") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  a.advance_to("2026-11-23T09:15:00Z");
  const rota::AlertIndex i = a.alert_of("V1", rota::AlertPhase::start);
  REQUIRE(i != rota::kNoIndex);

  json::object o = parse_object(alert_json(a, i));
  CHECK(keys(o) == kAlertKeys);
  CHECK(o.at("id") == "A1");
  CHECK(o.at("key") == "visit/V1/start");
  CHECK(o.at("kind") == "late");
  CHECK(o.at("severity") == "warning");
  CHECK(o.at("state") == "triggered");
  CHECK(o.at("visit") == "V1");
  CHECK(o.at("branch") == "B1");
  CHECK(o.at("carer") == "C1");
  CHECK(o.at("client") == "CL-V1");
  CHECK(o.at("raised_at") == "2026-11-23T09:15:00Z");
  CHECK(o.at("updated_at") == "2026-11-23T09:15:00Z");
  CHECK(o.at("acked_by").is_null());
  CHECK(o.at("acked_at").is_null());
  CHECK(o.at("resolved_at").is_null());
  CHECK(o.at("resolution").is_null());
  CHECK(o.at("escalation_level") == 0);
  CHECK(o.at("seq") == 1);
  CHECK(o.at("summary") == "C1 has not checked in at Mrs V1 (due 09:00)");

  a.now = at("2026-11-23T09:16:00Z");
  REQUIRE(a.apply(rota::AckAlert{"A1", "u-ann", "calling"}).status == rota::Status::accepted);
  o = parse_object(alert_json(a, i));
  CHECK(o.at("state") == "acknowledged");
  CHECK(o.at("acked_by") == "u-ann");
  CHECK(o.at("acked_at") == "2026-11-23T09:16:00Z");
  CHECK(o.at("seq") == 2);

  a.now = at("2026-11-23T09:20:00Z");
  REQUIRE(a.apply(check_in("e1", "C1", "V1", "2026-11-23T09:20:00Z")).status ==
          rota::Status::accepted);
  o = parse_object(alert_json(a, i));
  CHECK(keys(o) == kAlertKeys);
  CHECK(o.at("state") == "resolved");
  CHECK(o.at("resolved_at") == "2026-11-23T09:20:00Z");
  CHECK(o.at("resolution") == "checked_in");
}

// =======================================================================================
// Summaries, one per kind

TEST_CASE("Each alert kind has a summary naming the carer, the client and the due time") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z", "Mrs A"),
                  plan("V2", {"C1"}, "2026-11-23T10:00:00Z", "2026-11-23T10:30:00Z", "Mr B"),
                  plan("V3", {"C2", "C3"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z", "Mrs C"),
                  plan("V4", {"C4"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z", "Mr D"),
                  plan("V5", {"C5"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z", "Mrs E")});
  const auto summary = [&](const char* visit, rota::AlertPhase phase) {
    const rota::AlertIndex i = a.alert_of(visit, phase);
    REQUIRE(i != rota::kNoIndex);
    return alert_summary(a.engine, a.engine.alert(i));
  };

  // V3: C2 arrives, C3 never does. V4: C4 checks in far away and stays too long.
  // V5: C5 checks in and leaves after 10 minutes.
  a.now = at("2026-11-23T09:00:00Z");
  REQUIRE(a.apply(check_in("in3", "C2", "V3", "2026-11-23T09:00:00Z")).status ==
          rota::Status::accepted);
  REQUIRE(a.apply(check_in("in4", "C4", "V4", "2026-11-23T09:00:00Z", kFarAway)).status ==
          rota::Status::accepted);
  REQUIRE(a.apply(check_in("in5", "C5", "V5", "2026-11-23T09:00:00Z")).status ==
          rota::Status::accepted);
  a.now = at("2026-11-23T09:10:00Z");
  REQUIRE(a.apply(check_out("out5", "C5", "V5", "2026-11-23T09:10:00Z")).status ==
          rota::Status::accepted);

  a.advance_to("2026-11-23T09:15:00Z");
  CHECK(summary("V1", rota::AlertPhase::start) == "C1 has not checked in at Mrs A (due 09:00)");
  CHECK(summary("V3", rota::AlertPhase::double_up) ==
        "C3 has not joined the double-up at Mrs C (due 09:00)");
  CHECK(summary("V4", rota::AlertPhase::location) == "C4 checked in 3.6 km from Mr D");
  CHECK(summary("V5", rota::AlertPhase::duration) ==
        "C5 was at Mrs E for 10 min of the planned 30 min");

  a.advance_to("2026-11-23T09:45:00Z");
  CHECK(summary("V4", rota::AlertPhase::end) == "C4 is still at Mr D (due to finish 09:30)");

  a.advance_to("2026-11-23T10:00:00Z");
  CHECK(summary("V1", rota::AlertPhase::start) ==
        "C1 has not checked in at Mrs A (due 09:00): the visit is missed");

  a.advance_to("2026-11-23T11:30:00Z");
  CHECK(summary("V4", rota::AlertPhase::end) ==
        "C4 has not checked out at Mr D (due to finish 09:30)");

  // An at_risk alert without an estimate (a copy of a real alert): the bare wording.
  rota::Alert at_risk = a.engine.alert(a.alert_of("V1", rota::AlertPhase::start));
  at_risk.kind = rota::AlertKind::at_risk;
  CHECK(alert_summary(a.engine, at_risk) == "C1 may not reach Mrs A in time (due 09:00)");
}

TEST_CASE("A late carer's summary says when they expect to arrive and why") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z", "Mrs A")});
  a.now = at("2026-11-23T09:05:00Z");
  REQUIRE(
      a.apply(rota::RunningLate{"r1", "C1", "V1", at("2026-11-23T09:25:00Z"), "traffic"}).status ==
      rota::Status::accepted);
  a.advance_to("2026-11-23T09:15:00Z");
  CHECK(alert_summary(a.engine, a.engine.alert(a.alert_of("V1", rota::AlertPhase::start))) ==
        "C1 has not checked in at Mrs A (due 09:00); expected at 09:25 (traffic); no page "
        "unless not there by 09:25");
  const json::object o = parse_object([&] {
    std::string out;
    append_alert(out, a.engine, a.alert_of("V1", rota::AlertPhase::start));
    return out;
  }());
  CHECK(o.at("cause") == "running_late");
  CHECK(o.at("pages_held") == true);
  CHECK(o.at("eta") == "2026-11-23T09:25:00Z");
  CHECK(o.at("reason") == "said running late, expected at 09:25 (traffic)");
}

TEST_CASE("An at-risk alert says when the carer is expected and why, and keeps the why once late") {
  Agency a;
  rota::VisitPlan first =
      plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z", "Mrs A");
  rota::VisitPlan next = plan("V2", {"C1"}, "2026-11-23T10:30:00Z", "2026-11-23T11:00:00Z", "Mr B");
  next.client.location = {kHome.lat + 0.08983, kHome.lon};  // 10 km north: 28 min drive
  a.import("B1", {first, next});
  a.now = at("2026-11-23T09:00:00Z");
  REQUIRE(a.apply(check_in("i1", "C1", "V1", "2026-11-23T09:00:00Z")).status ==
          rota::Status::accepted);
  a.advance_to("2026-11-23T10:20:00Z");
  const rota::AlertIndex risk = a.alert_of("V2", rota::AlertPhase::start);
  REQUIRE(risk != rota::kNoIndex);
  CHECK(alert_summary(a.engine, a.engine.alert(risk)) ==
        "C1 may not reach Mr B in time (due 10:30): expected about 10:48; still at Mrs A's, "
        "visit overrunning by 20 min; 28 min drive");
  std::string out;
  append_alert(out, a.engine, risk);
  json::object o = parse_object(out);
  CHECK(o.at("kind") == "at_risk");
  CHECK(o.at("severity") == "info");
  CHECK(o.at("reason") == "still at Mrs A's, visit overrunning by 20 min; 28 min drive");
  CHECK(o.at("cause").is_null());
  CHECK(o.at("phone_offline_since").is_null());  // no presence known here

  SECTION("the phone's silence shows when presence knows it") {
    Presence presence;
    presence.connected("C1", at("2026-11-23T08:55:00Z"));
    presence.disconnected("C1", at("2026-11-23T09:40:00Z"));
    CHECK_THAT(alert_summary(a.engine, a.engine.alert(risk), &presence),
               Catch::EndsWith("; phone offline since 09:40"));
    std::string with;
    append_alert(with, a.engine, risk, &presence);
    CHECK(parse_object(with).at("phone_offline_since") == "2026-11-23T09:40:00Z");
    std::string visit;
    append_visit(visit, a.engine, a.visit("V2"), &presence);
    CHECK(parse_object(visit).at("phone_offline_since") == "2026-11-23T09:40:00Z");
    CHECK(parse_object(visit).at("expected_at") == "2026-11-23T10:48:00Z");
    presence.connected("C1", at("2026-11-23T10:21:00Z"));
    std::string back;
    append_alert(back, a.engine, risk, &presence);
    CHECK(parse_object(back).at("phone_offline_since").is_null());
  }
  SECTION("late, the alert says why and that it pages only once missed") {
    a.advance_to("2026-11-23T10:50:00Z");
    CHECK(alert_summary(a.engine, a.engine.alert(risk)) ==
          "C1 has not checked in at Mr B (due 10:30); still at Mrs A's, visit overrunning by 50 "
          "min; 28 min drive; no page unless missed");
    std::string late;
    append_alert(late, a.engine, risk);
    const json::object l = parse_object(late);
    CHECK(l.at("kind") == "late");
    CHECK(l.at("cause") == "previous_overrun");
    CHECK(l.at("pages_held") == true);
  }
}

TEST_CASE("Presence: online while any connection is open, offline since the last one was heard") {
  Presence p;
  CHECK_FALSE(p.offline_since("C1"));  // never seen: unknown, not offline
  p.connected("C1", at("2026-11-23T08:00:00Z"));
  p.connected("C1", at("2026-11-23T08:01:00Z"));  // a reconnect before the old socket closed
  p.disconnected("C1", at("2026-11-23T08:30:00Z"));
  CHECK_FALSE(p.offline_since("C1"));
  CHECK(p.online() == 1);
  p.disconnected("C1", at("2026-11-23T08:40:00Z"));
  CHECK(p.offline_since("C1") == at("2026-11-23T08:40:00Z"));
  CHECK(p.online() == 0);
  p.disconnected("C1", at("2026-11-23T09:00:00Z"));  // a stray close changes nothing
  CHECK(p.offline_since("C1") == at("2026-11-23T08:40:00Z"));
}

TEST_CASE("A late check-in moves the due-to-finish time the end alerts speak of") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z", "Mrs A")});
  a.now = at("2026-11-23T09:20:00Z");
  REQUIRE(a.apply(check_in("e1", "C1", "V1", "2026-11-23T09:20:00Z")).status ==
          rota::Status::accepted);
  a.advance_to("2026-11-23T10:05:00Z");
  CHECK(alert_summary(a.engine, a.engine.alert(a.alert_of("V1", rota::AlertPhase::end))) ==
        "C1 is still at Mrs A (due to finish 09:50)");
}

TEST_CASE("A check-in with a tag that is not the client's says so in its summary") {
  Agency a;
  rota::VisitPlan p = plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z", "Mrs A");
  p.client.tag = "TAG-1";
  a.import("B1", {p});
  a.now = at("2026-11-23T09:00:00Z");
  REQUIRE(a.apply(rota::CheckIn{"e1", "C1", "V1", at("2026-11-23T09:00:00Z"), std::nullopt,
                                rota::Method::qr, "TAG-2"})
              .status == rota::Status::accepted);
  CHECK(alert_summary(a.engine, a.engine.alert(a.alert_of("V1", rota::AlertPhase::location))) ==
        "C1 checked in at Mrs A with a tag that is not the client's");

  Agency b;
  b.import("B1", {p});
  b.now = at("2026-11-23T09:00:00Z");
  REQUIRE(b.apply(rota::CheckIn{"e1", "C1", "V1", at("2026-11-23T09:00:00Z"), kFarAway,
                                rota::Method::nfc, "TAG-2"})
              .status == rota::Status::accepted);
  CHECK(alert_summary(b.engine, b.engine.alert(b.alert_of("V1", rota::AlertPhase::location))) ==
        "C1 checked in 3.6 km from Mrs A, with a tag that is not the client's");
}

TEST_CASE("A nearby check-in outside a small geofence is given in metres") {
  Agency a;
  rota::VisitPlan p = plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z", "Mrs A");
  p.client.geofence_m = 50;
  a.import("B1", {p});
  a.now = at("2026-11-23T09:00:00Z");
  // About 0.003 degrees of latitude north: 334 m.
  REQUIRE(
      a.apply(check_in("e1", "C1", "V1", "2026-11-23T09:00:00Z", rota::Fix{{51.5044, -0.1419}, 5}))
          .status == rota::Status::accepted);
  CHECK(alert_summary(a.engine, a.engine.alert(a.alert_of("V1", rota::AlertPhase::location))) ==
        "C1 checked in 334 m from Mrs A");
}

TEST_CASE("Due times in summaries are the branch's local time") {
  Agency a;
  // 08:00Z is 09:00 in Berlin in November.
  a.import("B2", {plan("W1", {"C9"}, "2026-11-23T08:00:00Z", "2026-11-23T08:30:00Z", "Frau K")});
  a.advance_to("2026-11-23T08:15:00Z");
  const rota::AlertIndex i = a.alert_of("W1", rota::AlertPhase::start);
  REQUIRE(i != rota::kNoIndex);
  CHECK(alert_summary(a.engine, a.engine.alert(i)) ==
        "C9 has not checked in at Frau K (due 09:00)");
  CHECK(parse_object(alert_json(a, i)).at("branch") == "B2");
}

// =======================================================================================
// Writing: whole messages

TEST_CASE("A carer's rota holds their visits in the window, not cancelled, not moved away") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z"),
                  plan("V2", {"C1"}, "2026-11-23T10:00:00Z", "2026-11-23T10:30:00Z"),
                  plan("V3", {"C1"}, "2026-11-23T11:00:00Z", "2026-11-23T11:30:00Z"),
                  plan("V4", {"C1"}, "2026-11-23T12:00:00Z", "2026-11-23T12:30:00Z"),
                  plan("V5", {"C1"}, "2026-11-23T23:00:00Z", "2026-11-23T23:30:00Z")});
  REQUIRE(a.apply(rota::Cancel{"V2", "", "office"}).status == rota::Status::accepted);
  REQUIRE(a.apply(rota::Reassign{"V3", {"C2"}, "office"}).status == rota::Status::accepted);
  const rota::CarerIndex c1 = *a.engine.find_carer("C1");
  const auto visits =
      carer_rota(a.engine, c1, at("2026-11-23T00:00:00Z"), at("2026-11-23T18:00:00Z"));
  REQUIRE(visits.size() == 2);
  CHECK(a.engine.visit(visits[0]).id == "V1");
  CHECK(a.engine.visit(visits[1]).id == "V4");

  std::string out;
  append_rota(out, a.engine, visits);
  const json::object o = parse_object(out);
  CHECK(keys(o) == std::vector<std::string>{"type", "visits"});
  CHECK(o.at("type") == "rota");
  REQUIRE(o.at("visits").as_array().size() == 2);
  CHECK(keys(o.at("visits").as_array()[1].as_object()) == kVisitKeys);
  CHECK(o.at("visits").as_array()[1].at("id") == "V4");

  out.clear();
  append_rota(out, a.engine, {});
  CHECK(out == R"({"type":"rota","visits":[]})");
}

TEST_CASE("A board snapshot and its deltas have the protocol's shape") {
  Agency a;
  a.import("B1", {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z"),
                  plan("V2", {"C2"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  a.advance_to("2026-11-23T09:15:00Z");
  const std::vector<rota::VisitIndex> visits = {a.visit("V1"), a.visit("V2")};
  const std::vector<rota::AlertIndex> alerts = {a.alert_of("V1", rota::AlertPhase::start),
                                                a.alert_of("V2", rota::AlertPhase::start)};
  std::string out;
  append_snapshot(out, a.engine, at("2026-11-23T09:15:30Z"), visits, alerts);
  json::object o = parse_object(out);
  CHECK(keys(o) == std::vector<std::string>{"type", "server_time", "visits", "alerts"});
  CHECK(o.at("type") == "snapshot");
  CHECK(o.at("server_time") == "2026-11-23T09:15:30Z");
  REQUIRE(o.at("visits").as_array().size() == 2);
  REQUIRE(o.at("alerts").as_array().size() == 2);
  CHECK(keys(o.at("alerts").as_array()[1].as_object()) == kAlertKeys);
  CHECK(o.at("alerts").as_array()[1].at("carer") == "C2");

  SECTION("on a demo clock it says how fast that clock runs") {
    std::string demo;
    append_snapshot(demo, a.engine, at("2026-11-23T09:15:30Z"), visits, alerts, 60);
    json::object d = parse_object(demo);
    CHECK(keys(d) ==
          std::vector<std::string>{"type", "server_time", "clock_rate", "visits", "alerts"});
    CHECK(d.at("clock_rate").to_number<double>() == 60);
  }

  out.clear();
  append_visit_message(out, a.engine, a.visit("V2"));
  o = parse_object(out);
  CHECK(keys(o) == std::vector<std::string>{"type", "visit"});
  CHECK(o.at("type") == "visit");
  CHECK(o.at("visit").at("id") == "V2");

  out.clear();
  append_alert_message(out, a.engine, alerts[0]);
  o = parse_object(out);
  CHECK(keys(o) == std::vector<std::string>{"type", "alert"});
  CHECK(o.at("type") == "alert");
  CHECK(o.at("alert").at("key") == "visit/V1/start");

  out.clear();
  append_visit_list(out, a.engine, visits);
  CHECK(keys(parse_object(out)) == std::vector<std::string>{"visits"});
  out.clear();
  append_alert_list(out, a.engine, alerts);
  CHECK(parse_object(out).at("alerts").as_array().size() == 2);
}

TEST_CASE("ok and message replies are written exactly, with their text escaped") {
  std::string out;
  append_ok(out, "A17");
  CHECK(out == R"({"type":"ok","ref":"A17"})");
  out.clear();
  append_ok(out, "A17", "b-42");
  CHECK(out == R"({"type":"ok","ref":"A17","id":"b-42"})");
  out.clear();
  const std::string text = "Thank you for Mrs A's \"lovely\" notes!\nSee you 😀 \\o/";
  append_carer_message(out, "office", text);
  const json::object o = parse_object(out);
  CHECK(keys(o) == std::vector<std::string>{"type", "from", "text"});
  CHECK(o.at("type") == "message");
  CHECK(o.at("from") == "office");
  CHECK(o.at("text").as_string() == text);
}

TEST_CASE("HTTP errors have the protocol's body, with a refused rota's lines as details") {
  std::string out;
  append_http_error(out, Error{ErrorCode::forbidden, "branch B2 is not yours"});
  CHECK(out == R"({"error":{"code":"forbidden","message":"branch B2 is not yours","details":[]}})");

  const auto parsed = rota::parse_rota_csv(
      "visit_id,client_id,client_name,lat,lon,carers,start,end\n"
      "V1,CL1,Mrs A,91,-0.14,C1,2026-11-23 09:00,2026-11-23 09:30\n"
      "V2,CL2,\"Mr \"\"B\"\"\",51.5,-0.14,,2026-11-23 10:00,2026-11-23 10:30\n",
      TimeZone::utc(), day_23());
  REQUIRE_FALSE(parsed.ok());
  out.clear();
  append_http_error(out, Error{ErrorCode::bad_rota, "the rota was refused"}, parsed.issues);
  const json::object o = parse_object(out);
  CHECK(keys(o) == std::vector<std::string>{"error"});
  const json::object& e = o.at("error").as_object();
  CHECK(keys(e) == std::vector<std::string>{"code", "message", "details"});
  CHECK(e.at("code") == "bad_rota");
  const json::array& details = e.at("details").as_array();
  REQUIRE(details.size() == parsed.issues.size());
  for (std::size_t i = 0; i < details.size(); ++i) {
    const json::object& d = details[i].as_object();
    CHECK(keys(d) == std::vector<std::string>{"line", "field", "message"});
    CHECK(d.at("line") == parsed.issues[i].line);
    CHECK(d.at("field").as_string() == parsed.issues[i].field);
    CHECK(d.at("message").as_string() == parsed.issues[i].message);
  }
  CHECK(details[0].at("line") == 2);
  CHECK(details[0].at("field") == "lat");
}
