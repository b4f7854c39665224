// What a broken or hostile phone can send: frames over max_message, text frames that are not
// UTF-8, and hundreds of generated malformed messages. Each malformed message gets a typed
// error on a connection that stays open, and the daemon keeps serving.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>
#include <random>
#include <set>

#include "daemon_fixture.hpp"

using namespace visitd::test;
using visitd::websocket::Role;
namespace json = boost::json;

namespace {

/// The error codes of the protocol and of our extensions (docs/protocol.md).
const std::set<std::string>& protocol_codes() {
  static const std::set<std::string> codes = {"bad_json",
                                              "bad_message",
                                              "unknown_type",
                                              "unauthenticated",
                                              "forbidden",
                                              "not_assigned",
                                              "unknown_visit",
                                              "outside_visit_window",
                                              "already_checked_in",
                                              "not_checked_in",
                                              "visit_cancelled",
                                              "off_shift",
                                              "too_old",
                                              "rate_limited",
                                              "internal",
                                              "unknown_alert",
                                              "conflict",
                                              "bad_rota"};
  return codes;
}

/// One generated input and the error code it must get ("" when any protocol code will do).
struct Input {
  std::string what;
  std::string bytes;
  std::string code;
  bool binary = false;
};

/// Neither rate limit nor a rota: every event of carer C9 is refused by someone, so every
/// input must be answered with an error.
DaemonConfig fuzz_config() {
  DaemonConfig config;
  config.server = {{"rate_limit", "1000000"}, {"rate_burst", "1000000"}};
  return config;
}

// Valid messages (of a carer with no visits), as of when the test starts.
const std::string kCheckIn = R"({"type":"check_in","id":"f1","visit":"V1","at":")" +
                             rfc3339(now()) +
                             R"(","lat":51.5014,"lon":-0.1419,"accuracy":12,"method":"gps"})";
const std::string kLocation = R"({"type":"location","id":"f2","at":")" + rfc3339(now()) +
                              R"(","lat":51.5,"lon":-0.14,"accuracy":20})";

/// kCheckIn with `field` set to the raw JSON `value`.
std::string with_field(std::string_view field, std::string_view value) {
  json::object o = json::parse(kCheckIn).as_object();
  o.erase(field);
  std::string text = json::serialize(o);
  text.pop_back();
  return text + ",\"" + std::string(field) + "\":" + std::string(value) + "}";
}

std::string nested(int depth, std::string_view open, std::string_view close) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += open;
  s += "1";
  for (int i = 0; i < depth; ++i) s += close;
  return s;
}

/// Hand-picked inputs of every kind, each with the error it must get.
std::vector<Input> fixed_inputs() {
  std::vector<Input> in;
  // Truncated at every byte: no proper prefix of an object is JSON.
  for (const std::string* valid : {&kCheckIn, &kLocation}) {
    for (std::size_t n = 0; n < valid->size(); ++n) {
      in.push_back({"truncated to " + std::to_string(n), valid->substr(0, n), "bad_json"});
    }
  }
  // Wrong types, field by field.
  const std::vector<std::string> not_strings = {"42", "-1.5", "true",       "false",
                                                "[]", "{}",   R"([1,"a"])", R"({"k":[]})"};
  const std::vector<std::string> not_numbers = {"\"51.5\"", "\"\"",   "true",         "[]",
                                                "{}",       "[51.5]", R"({"deg":51})"};
  for (const char* field : {"type", "id", "visit", "at", "method", "tag"}) {
    for (const auto& v : not_strings) {
      in.push_back({std::string(field) + " = " + v, with_field(field, v), "bad_message"});
    }
  }
  for (const char* field : {"lat", "lon", "accuracy"}) {
    for (const auto& v : not_numbers) {
      in.push_back({std::string(field) + " = " + v, with_field(field, v), "bad_message"});
    }
  }
  // Strings of the right type and the wrong content.
  const std::vector<std::tuple<const char*, std::string, const char*>> strings = {
      {"type", "\"\"", "unknown_type"},
      {"type", "\"CHECK_IN\"", "unknown_type"},
      {"type", "\"ack_alert\"", "unknown_type"},  // a board's message on the carer socket
      {"id", "\"\"", "bad_message"},
      {"id", "\"" + std::string(129, 'i') + "\"", "bad_message"},
      {"visit", "\"\"", "bad_message"},
      {"visit", "\"" + std::string(65, 'v') + "\"", "bad_message"},
      {"at", "\"yesterday\"", "bad_message"},
      {"at", "\"2026-11-23 09:02:10\"", "bad_message"},  // no offset
      {"at", "\"2026-13-45T99:99:99Z\"", "bad_message"},
      {"method", "\"telepathy\"", "bad_message"},
      {"tag", "\"" + std::string(257, 't') + "\"", "bad_message"},
      {"id", "\"\\u0000\"", "unknown_visit"},  // odd but valid: one byte
  };
  for (const auto& [field, value, code] : strings) {
    in.push_back(
        {std::string(field) + " = " + value.substr(0, 20), with_field(field, value), code});
  }
  // Numbers out of range, too big for a double, or not JSON at all.
  for (const char* v : {"91", "-90.0001", "1e308", "-1e308", "18446744073709551616",
                        "123456789012345678901234567890"}) {
    in.push_back({std::string("lat = ") + v, with_field("lat", v), "bad_message"});
  }
  for (const char* v : {"-1", "100001", "1e300"}) {
    in.push_back({std::string("accuracy = ") + v, with_field("accuracy", v), "bad_message"});
  }
  in.push_back({"lon = 180.5", with_field("lon", "180.5"), "bad_message"});
  for (const char* v : {"1e400", "-1e400"}) {
    in.push_back({std::string("lat = ") + v, with_field("lat", v), ""});
  }
  for (const char* v : {"NaN", "nan", "Infinity", "-Infinity", "inf", "0x10", "+1", ".5", "01"}) {
    in.push_back({std::string("lat = ") + v, with_field("lat", v), "bad_json"});
  }
  // Nulls count as absent.
  for (const char* field : {"type", "id", "visit", "at", "lat", "lon", "accuracy"}) {
    in.push_back({std::string(field) + " = null", with_field(field, "null"), "bad_message"});
  }
  in.push_back({"tag = null", with_field("tag", "null"), "unknown_visit"});
  in.push_back({"method = null (gps)", with_field("method", "null"), "unknown_visit"});
  // Nesting: fine in an unknown field up to 16 levels, bad_json beyond.
  in.push_back(
      {"nested 10 in an unknown field", with_field("extra", nested(9, "[", "]")), "unknown_visit"});
  in.push_back(
      {"nested 20 in an unknown field", with_field("extra", nested(20, "[", "]")), "bad_json"});
  in.push_back(
      {"nested objects 200", with_field("extra", nested(200, "{\"a\":", "}")), "bad_json"});
  in.push_back({"nested arrays 10000", nested(10000, "[", "]"), "bad_json"});
  // Unknown fields are ignored: the message then fails only for its unknown visit.
  for (const char* extra : {R"("battery":87)", R"("__proto__":{"admin":true})", R"("carer":"C1")",
                            R"("Type":"location")", R"("é":"ü")", R"("":"")"}) {
    std::string m = kCheckIn;
    m.insert(1, std::string(extra) + ",");
    in.push_back({std::string("unknown field ") + extra, m, "unknown_visit"});
  }
  {
    std::string m = kCheckIn;
    m.insert(1, "\"" + std::string(1000, 'k') + "\":1,");
    in.push_back({"a 1000-byte unknown key", m, "unknown_visit"});
  }
  in.push_back({"duplicate type key", R"({"type":"check_in","type":"teleport","id":"d"})", ""});
  // Not an object.
  for (const char* v :
       {"", " ", "\n", "[]", "[1,2]", R"("check_in")", "42", "true", "null", "{}}", "{} {}",
        R"({"type":"check_in",})", R"({'type':'check_in'})", "/* hi */{}", "\xef\xbb\xbf{}"}) {
    const bool object = std::string_view(v) == "{}";
    in.push_back({std::string("not a message: ") + v, v, object ? "bad_message" : "bad_json"});
  }
  // Bad UTF-8, in binary frames (a text frame would be closed by the WebSocket layer).
  for (const char* bad : {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf5\x80\x80\x80",
                          "\x80", "\xf4\x90\x80\x80", "\xc3"}) {
    in.push_back({"bad UTF-8 in visit", with_field("visit", "\"V" + std::string(bad) + "\""),
                  "bad_json", true});
    in.push_back({"bad UTF-8 in a key", "{\"" + std::string(bad) + "\":1}", "bad_json", true});
  }
  in.push_back({"a valid message in a binary frame", kCheckIn, "unknown_visit", true});

  return in;
}

/// Seeded random damage: `edited` valid messages with printable bytes replaced, inserted or
/// dropped (text frames), and `random` strings of random bytes (binary frames).
std::vector<Input> random_inputs(std::uint32_t seed, int edited, int random) {
  std::vector<Input> in;
  std::mt19937 rng(seed);
  const auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  const auto printable = [&] { return char(std::uniform_int_distribution<int>(0x20, 0x7e)(rng)); };
  for (int i = 0; i < edited; ++i) {
    std::string m = i % 2 == 0 ? kCheckIn : kLocation;
    for (int edits = 1 + int(pick(4)); edits > 0; --edits) {
      const std::size_t at = pick(m.size());
      switch (pick(3)) {
        case 0:
          m[at] = printable();
          break;
        case 1:
          m.insert(m.begin() + std::ptrdiff_t(at), printable());
          break;
        default:
          m.erase(at, 1);
      }
    }
    in.push_back({"random edit of a valid message", m, ""});
  }
  for (int i = 0; i < random; ++i) {
    std::string bytes(1 + pick(200), '\0');
    for (char& c : bytes) c = char(pick(256));
    in.push_back({"random bytes", bytes, "", true});
  }
  return in;
}

std::string printable(std::string_view bytes) {
  std::string out;
  for (const char c : bytes.substr(0, 200)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    }
  }
  return out;
}

std::uint32_t seed() {
  std::uint32_t seed = std::random_device{}();
  if (const char* s = std::getenv("VISITD_FUZZ_SEED"))
    seed = std::uint32_t(std::strtoul(s, nullptr, 10));
  std::cout << "malformed inputs: seed " << seed << " (set VISITD_FUZZ_SEED to replay)\n";
  return seed;
}

/// Sends each input on one carer connection and checks its answer; then that the connection
/// and the daemon still serve.
void send_all(const std::vector<Input>& inputs) {
  Daemon d(fuzz_config());
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C9"));
  REQUIRE(str(phone.next(), "type") == "rota");

  std::map<std::string, int> codes;
  for (const Input& input : inputs) {
    INFO(input.what << (input.binary ? " (binary): " : ": ") << printable(input.bytes));
    if (input.binary) {
      phone.send_binary(input.bytes);
    } else {
      phone.send_text(input.bytes);
    }
    const auto reply = phone.receive(3s);
    REQUIRE(reply);
    INFO("reply: " << *reply);
    const json::value v = json::parse(*reply);
    CHECK(str(v, "type") == "error");
    const std::string code = str(v, "code");
    CHECK(protocol_codes().count(code) == 1);
    if (!input.code.empty()) CHECK(code == input.code);
    CHECK_FALSE(str(v, "message").empty());
    REQUIRE_FALSE(phone.closed());
    ++codes[code];
  }
  std::cout << inputs.size() << " inputs answered:";
  for (const auto& [code, n] : codes) std::cout << " " << code << " " << n;
  std::cout << "\n";

  phone.send_text(location("still-here"));
  const json::value last = phone.next();
  CHECK(str(last, "id") == "still-here");
  CHECK(str(last, "code") == "off_shift");
  CHECK(d.http("GET", "/healthz").status == 200);
}

}  // namespace

TEST_CASE(
    "Hundreds of malformed messages each get a typed error, on a connection that stays "
    "open",
    "[robustness][malformed]") {
  const std::uint32_t s = seed();
  CAPTURE(s);
  std::vector<Input> inputs = fixed_inputs();
  for (Input& input : random_inputs(s, 120, 30)) inputs.push_back(std::move(input));
  REQUIRE(inputs.size() >= 300);
  send_all(inputs);
}

TEST_CASE("Two hundred thousand randomly damaged messages each get a typed error",
          "[.slow][robustness][malformed]") {
  const std::uint32_t s = seed();
  CAPTURE(s);
  send_all(random_inputs(s, 160000, 40000));
}

TEST_CASE("A text frame that is not UTF-8 is closed by the WebSocket layer with 1007",
          "[robustness]") {
  Daemon d;
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C9"));
  REQUIRE(str(phone.next(), "type") == "rota");
  phone.send_text(with_field("visit", "\"V\xff\""));
  REQUIRE(phone.wait_closed());
  CHECK(phone.close_code() == 1007);
  CHECK(d.http("GET", "/healthz").status == 200);
}

TEST_CASE("A message over max_message closes that connection with 1009 and no other",
          "[robustness]") {
  DaemonConfig config;
  config.server = {{"max_message", "\"4KiB\""}};
  Daemon d(config);
  WsClient bystander = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C8"));
  REQUIRE(str(bystander.next(), "type") == "rota");
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C9"));
  REQUIRE(str(phone.next(), "type") == "rota");

  // A location ping padded with an unknown field to exactly `size` bytes.
  const auto padded = [](std::size_t size) {
    std::string m = location("big");
    m.insert(1, R"("pad":"",)");
    m.insert(8, std::string(size - m.size(), 'p'));
    return m;
  };
  REQUIRE(padded(4096).size() == 4096);
  phone.send_text(padded(4096));
  CHECK(str(phone.next(), "code") == "off_shift");  // at the limit: read and answered

  phone.send_text(padded(4097));
  REQUIRE(phone.wait_closed());
  CHECK(phone.close_code() == 1009);

  bystander.send_text(location("small"));
  const json::value reply = bystander.next();
  CHECK(str(reply, "id") == "small");
  CHECK(str(reply, "code") == "off_shift");
  WsClient fresh = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C9"));
  CHECK(str(fresh.next(), "type") == "rota");
}
