#include "visitd/websocket/auth.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "visitd/config/load.hpp"
#include "visitd/core/error.hpp"
#include "visitd/core/time.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using visitd::ConfigError;
using visitd::ErrorCode;
using visitd::TimePoint;
using visitd::websocket::base64url_decode;
using visitd::websocket::base64url_encode;
using visitd::websocket::hs256_sign;
using visitd::websocket::kMaxTokenBytes;
using visitd::websocket::may_import;
using visitd::websocket::may_manage;
using visitd::websocket::may_view_branch;
using visitd::websocket::mint;
using visitd::websocket::mint_from_options;
using visitd::websocket::parse_token_options;
using visitd::websocket::Principal;
using visitd::websocket::Role;
using visitd::websocket::TokenOptions;
using visitd::websocket::verify;

namespace {

constexpr std::string_view kSecret = "0123456789abcdef-test-secret";

TimePoint at(std::string_view rfc3339) { return visitd::parse_rfc3339(rfc3339).value(); }

const TimePoint kNow = at("2026-11-23T09:00:00Z");

std::int64_t unix_seconds(TimePoint t) {
  return std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
}

/// An hour from kNow, as the `exp` claim writes it.
const std::string kExp = std::to_string(unix_seconds(kNow + 1h));

/// A compact JWS with exactly this header and payload JSON, signed HS256 with `key` whatever
/// the header says: what an attacker who knows (or guesses) the key, or a buggy issuer, sends.
std::string forge(std::string_view header, std::string_view payload,
                  std::string_view key = kSecret) {
  const std::string input = base64url_encode(header) + "." + base64url_encode(payload);
  return input + "." + hs256_sign(input, key);
}

constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";

/// A payload that verifies as an office user of B1, with `extra` members appended.
std::string office_payload(std::string_view extra = "") {
  return R"({"sub":"U1","role":"office","branches":["B1"],"exp":)" + kExp + std::string(extra) +
         "}";
}

/// Why verify() refused `token`; fails the test if it was accepted.
std::string refusal(std::string_view token, std::string_view secret = kSecret,
                    TimePoint now = kNow) {
  const auto result = verify(token, secret, now);
  if (result) FAIL("accepted: " << token);
  CHECK(result.error().code == ErrorCode::unauthenticated);
  return result.error().message;
}

Principal accepted(std::string_view token, std::string_view secret = kSecret,
                   TimePoint now = kNow) {
  const auto result = verify(token, secret, now);
  if (!result) FAIL("refused: " << result.error().message << "\n" << token);
  return *result;
}

Principal principal(Role role, std::vector<std::string> branches, bool all = false) {
  Principal p;
  p.sub = role == Role::carer ? "C1" : "U1";
  p.role = role;
  p.branches = std::move(branches);
  p.all_branches = all;
  p.expires = kNow + 12h;
  return p;
}

/// The token with its payload part replaced by `payload`, header and signature kept.
std::string with_payload(const std::string& token, std::string_view payload) {
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  return token.substr(0, first + 1) + base64url_encode(payload) + token.substr(second);
}

std::string payload_of(const std::string& token) {
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  const auto decoded = base64url_decode(token.substr(first + 1, second - first - 1));
  REQUIRE(decoded);
  return *decoded;
}

std::string to_hex(std::string_view bytes) {
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string out;
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

constexpr std::string_view kConfig = R"([auth]
secret = "0123456789abcdef-test-secret"

[[branches]]
id = "B1"
name = "North"
timezone = "Europe/London"

[[branches]]
id = "B2"
name = "South"
timezone = "Europe/London"
)";

std::string usage_error(const std::vector<std::string_view>& args) {
  try {
    parse_token_options(args);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("the arguments were accepted");
  return {};
}

}  // namespace

// RFC 7515 Appendix A.1: the JWS Protected Header {"typ":"JWT",CRLF "alg":"HS256"}, the
// payload {"iss":"joe",CRLF "exp":1300819380,CRLF "http://example.com/is_root":true} and the
// HMAC key given as the JWK "k" value below; A.1.1 publishes the resulting signature.
namespace rfc7515 {
constexpr std::string_view kHeader = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9";
constexpr std::string_view kPayload =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl"
    "fQ";
constexpr std::string_view kKey =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
constexpr std::string_view kSignature = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
}  // namespace rfc7515

TEST_CASE("HS256 signs the RFC 7515 A.1 example to the published signature", "[auth][golden]") {
  const auto key = base64url_decode(rfc7515::kKey);
  REQUIRE(key);
  CHECK(key->size() == 64);
  CHECK(to_hex(*key) ==
        "0323354b2b0fa5bc837e0665777ba68f5ab328e6f054c928a90f84b2d2502ebf"
        "d3fb5a92d20647ef968ab4c377623d223d2e2172052e4f08c0cd9af567d080a3");
  CHECK(base64url_decode(rfc7515::kHeader) == "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}");
  CHECK(base64url_decode(rfc7515::kPayload) ==
        "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");

  const std::string signing_input =
      std::string(rfc7515::kHeader) + "." + std::string(rfc7515::kPayload);
  CHECK(hs256_sign(signing_input, *key) == rfc7515::kSignature);
}

TEST_CASE("The RFC 7515 A.1 token passes the signature check and is refused only for its claims",
          "[auth][golden]") {
  const auto key = base64url_decode(rfc7515::kKey);
  REQUIRE(key);
  const std::string token = std::string(rfc7515::kHeader) + "." + std::string(rfc7515::kPayload) +
                            "." + std::string(rfc7515::kSignature);
  // exp 1300819380 is 2011-03-22T18:43:00Z; the example has no sub or role.
  CHECK_THAT(refusal(token, *key, at("2011-03-22T18:00:00Z")), Contains("sub is missing"));
  CHECK_THAT(refusal(token, *key, at("2011-03-22T18:43:00Z")), Contains("expired"));

  std::string other_key = *key;
  other_key.back() ^= 1;
  CHECK_THAT(refusal(token, other_key, at("2011-03-22T18:00:00Z")), Contains("bad signature"));
}

TEST_CASE("base64url matches the RFC 4648 test vectors, without padding", "[auth][base64url]") {
  const auto [bytes, text] = GENERATE(table<std::string, std::string>({
      {"", ""},
      {"f", "Zg"},
      {"fo", "Zm8"},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg"},
      {"fooba", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy"},
      {"\xfb\xff\xbf", "-_-_"},
  }));
  CAPTURE(text);
  CHECK(base64url_encode(bytes) == text);
  CHECK(base64url_decode(text) == bytes);
}

TEST_CASE("base64url refuses padding, the standard alphabet, stray characters and spare bits",
          "[auth][base64url]") {
  const std::string text = GENERATE(as<std::string>{}, "Zg==", "Zm8=", "+_-_", "-/-_", "Zm9 v",
                                    "Zm9v\n", "Zm9\xc3\xa9", "Zm9v.", "Z", "Zm9vY",
                                    // One encoding per byte string: these end in non-zero
                                    // bits that the canonical "Zg" and "Zm8" do not have.
                                    "Zh", "Zm9");
  CAPTURE(text);
  CHECK_FALSE(base64url_decode(text));
}

TEST_CASE("base64url round-trips every byte value at every alignment", "[auth][base64url]") {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (std::size_t cut = 0; cut < 3; ++cut) {
    const std::string part = bytes.substr(cut);
    CHECK(base64url_decode(base64url_encode(part)) == part);
  }
}

TEST_CASE("A minted token verifies to the same principal, for every role", "[auth]") {
  Principal who = GENERATE(principal(Role::carer, {}), principal(Role::carer, {"B1"}),
                           principal(Role::office, {"B1", "B2"}),
                           principal(Role::coordinator, {"B2"}), principal(Role::office, {}, true),
                           principal(Role::admin, {}, true), principal(Role::admin, {"B1"}));
  who.name = "Mrs Coordinator";
  CAPTURE(to_string(who.role), who.branches, who.all_branches);

  const std::string token = mint(who, kSecret, kNow);
  CHECK(accepted(token) == who);
  // Checked the moment before it expires, still good; at exp, refused.
  CHECK(accepted(token, kSecret, who.expires - 1ms) == who);
  CHECK_THAT(refusal(token, kSecret, who.expires), Contains("expired"));
}

TEST_CASE("A minted token has the protocol's header and claims", "[auth]") {
  Principal who = principal(Role::admin, {}, true);
  const std::string token = mint(who, kSecret, kNow);
  CHECK(token.substr(0, token.find('.')) == base64url_encode(kHeader));
  CHECK(payload_of(token) == R"({"sub":"U1","role":"admin","branches":["*"],"exp":)" +
                                 std::to_string(unix_seconds(kNow + 12h)) + R"(,"iat":)" +
                                 std::to_string(unix_seconds(kNow)) + "}");
}

TEST_CASE("Tokens from other issuers verify when they keep to the contract", "[auth]") {
  SECTION("branches [\"*\"] covers every branch") {
    const auto who = accepted(
        forge(kHeader, R"({"sub":"U1","role":"coordinator","branches":["*"],"exp":)" + kExp + "}"));
    CHECK(who.all_branches);
    CHECK(who.branches.empty());
    CHECK(who.covers_branch("B1"));
    CHECK(who.covers_branch("anything"));
  }
  SECTION("a carer token may omit branches and name") {
    const auto who = accepted(forge(kHeader, R"({"sub":"C7","role":"carer","exp":)" + kExp + "}"));
    CHECK(who.sub == "C7");
    CHECK(who.is_carer());
    CHECK(who.branches.empty());
    CHECK_FALSE(who.all_branches);
    CHECK(who.name.empty());
  }
  SECTION("unknown claims are ignored and typ may be absent or lower case") {
    const auto who =
        accepted(forge(R"({"alg":"HS256"})", office_payload(R"(,"iss":"hr","jti":"x","iat":1)")));
    CHECK(who.branches == std::vector<std::string>{"B1"});
    accepted(forge(R"({"typ":"jwt","alg":"HS256","kid":"k1"})", office_payload()));
  }
  SECTION("exp may be fractional") {
    const auto who =
        accepted(forge(kHeader, R"({"sub":"U1","role":"admin","exp":)" + kExp + ".25}"));
    CHECK(who.expires == kNow + 1h + 250ms);
  }
  SECTION("nbf up to a minute ahead is accepted, for clock skew between hosts") {
    accepted(forge(kHeader, office_payload(",\"nbf\":" + std::to_string(unix_seconds(kNow)))));
    accepted(
        forge(kHeader, office_payload(",\"nbf\":" + std::to_string(unix_seconds(kNow + 60s)))));
  }
}

TEST_CASE("alg none is refused, with or without a signature", "[auth][attack]") {
  const std::string payload = base64url_encode(office_payload());
  SECTION("unsigned, as RFC 7519's unsecured JWT") {
    const std::string token = base64url_encode(R"({"alg":"none"})") + "." + payload + ".";
    CHECK_THAT(refusal(token), Contains("'none' is not accepted"));
  }
  SECTION("with the HMAC a real HS256 token would carry") {
    CHECK_THAT(refusal(forge(R"({"alg":"none","typ":"JWT"})", office_payload())),
               Contains("'none' is not accepted"));
  }
  SECTION("spelt differently") {
    const std::string alg = GENERATE(as<std::string>{}, "None", "NONE", "nOnE", "");
    CHECK_THAT(refusal(forge(R"({"alg":")" + alg + "\"}", office_payload())),
               Contains("only HS256"));
  }
  SECTION("with no signature part at all") {
    CHECK_THAT(refusal(base64url_encode(R"({"alg":"none"})") + "." + payload),
               Contains("malformed"));
  }
}

TEST_CASE("Only exactly HS256 is accepted, whatever the token was signed with", "[auth][attack]") {
  // Each is signed with the right key using HMAC-SHA256, so only the alg check can refuse it:
  // RS256 here is the algorithm-confusion attack (a verifier that takes the algorithm from the
  // header and its RSA public key as the HMAC secret).
  const std::string alg =
      GENERATE(as<std::string>{}, "RS256", "HS512", "HS384", "ES256", "PS256", "EdDSA", "hs256",
               "Hs256", " HS256", "HS256 ", "HS256\\u0000", "HS2560", "HS25");
  CAPTURE(alg);
  CHECK_THAT(refusal(forge(R"({"alg":")" + alg + R"(","typ":"JWT"})", office_payload())),
             Contains("is not accepted; only HS256"));
}

TEST_CASE("An RS256 token with an RSA-sized signature is refused for its algorithm",
          "[auth][attack]") {
  const std::string input =
      base64url_encode(R"({"alg":"RS256","typ":"JWT"})") + "." + base64url_encode(office_payload());
  const std::string token = input + "." + base64url_encode(std::string(256, '\x5a'));
  CHECK_THAT(refusal(token), Contains("'RS256' is not accepted"));
}

TEST_CASE("A header without a usable alg, typ or with crit is refused", "[auth][attack]") {
  CHECK_THAT(refusal(forge(R"({"typ":"JWT"})", office_payload())), Contains("header has no alg"));
  CHECK_THAT(refusal(forge(R"({"alg":["HS256"]})", office_payload())),
             Contains("alg must be a string, not an array"));
  CHECK_THAT(refusal(forge(R"({"alg":null})", office_payload())),
             Contains("alg must be a string, not null"));
  CHECK_THAT(refusal(forge(R"({"alg":"HS256","typ":"JWE"})", office_payload())),
             Contains("typ must be \"JWT\""));
  CHECK_THAT(refusal(forge(R"({"alg":"HS256","typ":1})", office_payload())),
             Contains("typ must be \"JWT\""));
  CHECK_THAT(refusal(forge(R"({"alg":"HS256","crit":["b64"],"b64":false})", office_payload())),
             Contains("crit"));
}

TEST_CASE("A token signed with another key is refused", "[auth][attack]") {
  const std::string other =
      GENERATE(as<std::string>{}, "0123456789abcdef-test-secreT", "0123456789abcdef-test-secret ",
               "0123456789abcdef-test-secre", "secret", "");
  CAPTURE(other);
  CHECK_THAT(refusal(forge(kHeader, office_payload(), other)), Contains("bad signature"));
  // And the other way round: our token under another server's secret.
  if (!other.empty()) {
    CHECK_THAT(refusal(forge(kHeader, office_payload()), other), Contains("bad signature"));
  }
}

TEST_CASE("A token changed after signing is refused", "[auth][attack]") {
  const std::string token = mint(principal(Role::carer, {"B1"}), kSecret, kNow);
  REQUIRE(accepted(token).is_carer());
  std::string payload = payload_of(token);

  SECTION("role carer changed to admin") {
    payload.replace(payload.find("\"carer\""), 7, "\"admin\"");
    CHECK_THAT(refusal(with_payload(token, payload)), Contains("bad signature"));
  }
  SECTION("branches widened to *") {
    payload.replace(payload.find("[\"B1\"]"), 6, "[\"*\"]");
    CHECK_THAT(refusal(with_payload(token, payload)), Contains("bad signature"));
  }
  SECTION("exp pushed into the future") {
    const std::string exp = std::to_string(unix_seconds(kNow + 12h));
    payload.replace(payload.find(exp), exp.size(), std::to_string(unix_seconds(kNow + 9000h)));
    CHECK_THAT(refusal(with_payload(token, payload)), Contains("bad signature"));
  }
  SECTION("a harmless-looking space added to the header") {
    const std::string rest = token.substr(token.find('.'));
    CHECK_THAT(refusal(base64url_encode(R"({"alg":"HS256", "typ":"JWT"})") + rest),
               Contains("bad signature"));
  }
}

TEST_CASE("A signature that is cut, lengthened or re-encoded is refused", "[auth][attack]") {
  const std::string token = mint(principal(Role::office, {"B1"}), kSecret, kNow);
  const std::string input = token.substr(0, token.rfind('.') + 1);
  const std::string signature = token.substr(token.rfind('.') + 1);
  const auto mac = base64url_decode(signature);
  REQUIRE(mac);
  REQUIRE(mac->size() == 32);

  CHECK_THAT(refusal(input + signature.substr(0, 40)), Contains("bad signature"));
  CHECK_THAT(refusal(input + base64url_encode(mac->substr(0, 31))), Contains("bad signature"));
  CHECK_THAT(refusal(input + base64url_encode(*mac + '\0')), Contains("bad signature"));
  CHECK_THAT(refusal(input + signature + "="), Contains("not base64url"));
  // 43 characters carry 258 bits for 256: setting a spare bit spells the same 32 bytes
  // differently, which a lax decoder would accept.
  std::string respelt = signature;
  respelt.back() = static_cast<char>(respelt.back() + 1);
  CHECK_THAT(refusal(input + respelt), Contains("signature is not base64url"));
  CHECK_THAT(refusal(input), Contains("unsigned"));
}

TEST_CASE("Expired tokens are refused, exactly at exp too", "[auth][attack]") {
  Principal who = principal(Role::office, {"B1"});
  who.expires = kNow;
  CHECK_THAT(refusal(mint(who, kSecret, kNow - 12h)), Contains("expired at 2026-11-23T09:00:00Z"));
  who.expires = kNow - 1s;
  CHECK_THAT(refusal(mint(who, kSecret, kNow - 12h)), Contains("expired"));
  who.expires = kNow + 1s;
  CHECK(accepted(mint(who, kSecret, kNow - 12h)) == who);
}

TEST_CASE("A token not valid yet is refused beyond a minute of clock skew", "[auth][attack]") {
  CHECK_THAT(refusal(forge(kHeader,
                           office_payload(",\"nbf\":" + std::to_string(unix_seconds(kNow + 61s))))),
             Contains("not valid before"));
  CHECK_THAT(refusal(forge(kHeader, office_payload(",\"nbf\":\"0\""))),
             Contains("nbf must be a number"));
}

TEST_CASE("exp must be present and a number of seconds in range", "[auth][attack]") {
  const auto payload = [](std::string_view exp) {
    return R"({"sub":"U1","role":"admin","branches":["*"])" + std::string(exp) + "}";
  };
  CHECK_THAT(refusal(forge(kHeader, payload(""))), Contains("exp is missing"));
  CHECK_THAT(refusal(forge(kHeader, payload(",\"exp\":\"" + kExp + "\""))),
             Contains("exp must be a number of seconds, not a string"));
  CHECK_THAT(refusal(forge(kHeader, payload(R"(,"exp":true)"))), Contains("not a boolean"));
  CHECK_THAT(refusal(forge(kHeader, payload(R"(,"exp":null)"))), Contains("not null"));
  CHECK_THAT(refusal(forge(kHeader, payload(R"(,"exp":[1])"))), Contains("not an array"));
  CHECK_THAT(refusal(forge(kHeader, payload(R"(,"exp":1e300)"))), Contains("out of range"));
  CHECK_THAT(refusal(forge(kHeader, payload(R"(,"exp":18446744073709551615)"))),
             Contains("out of range"));
  CHECK_THAT(refusal(forge(kHeader, payload(R"(,"exp":-1)"))), Contains("out of range"));
  // In milliseconds by mistake: far in the future, so out of range rather than valid forever.
  CHECK_THAT(refusal(forge(kHeader, payload(",\"exp\":" + kExp + "000"))),
             Contains("out of range"));
}

TEST_CASE("Anything but three non-empty dot-separated parts is refused", "[auth][attack]") {
  const std::string good = mint(principal(Role::admin, {}, true), kSecret, kNow);
  const std::string h = good.substr(0, good.find('.'));
  const std::string p = payload_of(good);
  const std::string token = GENERATE_COPY(
      as<std::string>{}, "garbage", ".", "..", "...", "a.b", "a.b.c.d", h + "..sig",
      "." + base64url_encode(p) + ".sig", good + ".", good + "." + good.substr(good.rfind('.') + 1),
      good.substr(0, good.rfind('.')), h + ".." + good.substr(good.find('.') + 1));
  CAPTURE(token);
  CHECK_THAT(refusal(token), Contains("malformed"));
}

TEST_CASE("An empty token is refused", "[auth][attack]") {
  CHECK_THAT(refusal(""), Contains("empty token"));
}

TEST_CASE("Bytes outside base64url, including non-UTF-8 and whitespace, are refused",
          "[auth][attack]") {
  const std::string good = mint(principal(Role::admin, {}, true), kSecret, kNow);
  const std::string token = GENERATE_COPY(
      as<std::string>{}, "\xff\xfe.\x80.\xc0", "\xc3\xa9" + good,
      good.substr(0, 10) + "\xff" + good.substr(10), "Bearer " + good, " " + good, good + " ",
      good + "\n", good + std::string(1, '\0'), "garbage!.x.y", "a+b.c/d.e==");
  CAPTURE(token);
  CHECK_THAT(refusal(token), Contains("not base64url"));
}

TEST_CASE("A header or payload that is not a UTF-8 JSON object is refused", "[auth][attack]") {
  CHECK_THAT(refusal(forge("not json", office_payload())), Contains("header is not UTF-8 JSON"));
  CHECK_THAT(refusal(forge(R"(["HS256"])", office_payload())),
             Contains("header is an array, not a JSON object"));
  CHECK_THAT(refusal(forge(R"({"alg":"HS256"} {})", office_payload())),
             Contains("header is not UTF-8 JSON"));
  CHECK_THAT(refusal(forge(kHeader, R"({"sub":"U1")")), Contains("payload is not UTF-8 JSON"));
  CHECK_THAT(refusal(forge(kHeader, "[1,2]")), Contains("payload is an array"));
  CHECK_THAT(refusal(forge(kHeader, "\"admin\"")), Contains("payload is a string"));
  // Correctly signed, but the name is Latin-1, not UTF-8.
  CHECK_THAT(refusal(forge(kHeader, office_payload(",\"name\":\"Ren\xe9\""))),
             Contains("payload is not UTF-8 JSON"));
  // Nesting deeper than the parser's limit is an error, not a stack overflow.
  CHECK_THAT(refusal(forge(kHeader, std::string(1000, '[') + std::string(1000, ']'))),
             Contains("payload is not UTF-8 JSON"));
}

TEST_CASE("A token over 8 KiB is refused before it is decoded", "[auth][attack]") {
  CHECK_THAT(refusal(std::string(kMaxTokenBytes + 1, 'a')), Contains("longer than 8192 bytes"));
  CHECK_THAT(refusal(std::string(1'000'000, '.')), Contains("longer than 8192 bytes"));

  // A genuine token just under the limit is still accepted, and just over it is not.
  Principal who = principal(Role::office, {"B1"});
  std::string under;
  std::string over;
  for (std::size_t n = 5000; n < 7000 && over.empty(); ++n) {
    who.name = std::string(n, 'n');
    const std::string token = mint(who, kSecret, kNow);
    (token.size() <= kMaxTokenBytes ? under : over) = token;
  }
  REQUIRE(under.size() > kMaxTokenBytes - 4);
  REQUIRE(over.size() > kMaxTokenBytes);
  CHECK(accepted(under).name.size() > 5000);
  CHECK_THAT(refusal(over), Contains("longer than"));
}

TEST_CASE("sub, role, branches and name are checked", "[auth][attack]") {
  const auto payload = [](std::string_view members) {
    return "{" + std::string(members) + R"(,"exp":)" + kExp + "}";
  };
  const auto [members, why] = GENERATE(table<std::string, std::string>({
      {R"("role":"admin")", "sub is missing"},
      {R"("sub":"","role":"admin")", "sub is empty"},
      {R"("sub":42,"role":"admin")", "sub must be a string, not a number"},
      {R"("sub":"U1")", "role is missing"},
      {R"("sub":"U1","role":"superuser")", "unknown role 'superuser'"},
      {R"("sub":"U1","role":"Admin")", "unknown role 'Admin'"},
      {R"("sub":"U1","role":"admin ")", "unknown role 'admin '"},
      {R"("sub":"U1","role":["admin"])", "role must be a string, not an array"},
      {R"("sub":"U1","role":"office","branches":"B1")",
       "branches must be an array of branch ids, not a string"},
      {R"("sub":"U1","role":"office","branches":{"B1":true})", "not an object"},
      {R"("sub":"U1","role":"office","branches":["B1",2])", "branches must hold strings"},
      {R"("sub":"U1","role":"office","branches":["B1",""])", "empty branch id"},
      {R"("sub":"U1","role":"carer","branches":null)", "not null"},
      {R"("sub":"U1","role":"office")", "an office token must name its branches"},
      {R"("sub":"U1","role":"coordinator","branches":[])",
       "a coordinator token must name its branches"},
      {R"("sub":"U1","role":"admin","name":7)", "name must be a string, not a number"},
  }));
  CAPTURE(members);
  CHECK_THAT(refusal(forge(kHeader, payload(members))), Contains(why));
}

TEST_CASE("A refusal quotes what the token said safely and briefly", "[auth][attack]") {
  const std::string message = refusal(
      forge(R"({"alg":"RS256\u0000\n)" + std::string(500, 'x') + R"("})", office_payload()));
  CHECK_THAT(message, Contains("'RS256\\x00\\x0a"));
  CHECK(message.size() < 120);
}

TEST_CASE("An empty secret refuses every token, even one signed with an empty key",
          "[auth][attack]") {
  CHECK_THAT(refusal(forge(kHeader, office_payload(), ""), ""), Contains("no secret"));
  CHECK_THROWS_AS(mint(principal(Role::admin, {}, true), "", kNow), std::invalid_argument);
}

TEST_CASE("mint refuses to sign claims that verify would refuse", "[auth]") {
  Principal who = principal(Role::office, {});
  CHECK_THROWS_AS(mint(who, kSecret, kNow), std::invalid_argument);
  who = principal(Role::office, {"*"});
  CHECK_THROWS_AS(mint(who, kSecret, kNow), std::invalid_argument);
  who = principal(Role::carer, {""});
  CHECK_THROWS_AS(mint(who, kSecret, kNow), std::invalid_argument);
  who = principal(Role::carer, {});
  who.sub.clear();
  CHECK_THROWS_AS(mint(who, kSecret, kNow), std::invalid_argument);
  who = principal(Role::carer, {});
  who.expires = TimePoint(std::chrono::hours(24 * 365 * 9000));
  CHECK_THROWS_AS(mint(who, kSecret, kNow), std::invalid_argument);
}

TEST_CASE("Each role may do what the protocol allows in its own and in another branch",
          "[auth][authorisation]") {
  // Each row: who, then may_view_branch / may_manage in B1 (own) and B2 (other), may_import.
  struct Row {
    Principal who;
    bool view_own, view_other, manage_own, manage_other, import;
  };
  const Row row = GENERATE(values<Row>({
      {principal(Role::carer, {"B1"}), false, false, false, false, false},
      {principal(Role::carer, {}, true), false, false, false, false, false},
      {principal(Role::office, {"B1"}), true, false, true, false, false},
      {principal(Role::office, {}, true), true, true, true, true, false},
      {principal(Role::coordinator, {"B1"}), true, false, true, false, false},
      {principal(Role::admin, {"B1"}), true, true, true, false, true},
      {principal(Role::admin, {}, true), true, true, true, true, true},
      {principal(Role::admin, {}), true, true, false, false, true},
  }));
  CAPTURE(to_string(row.who.role), row.who.branches, row.who.all_branches);
  CHECK(may_view_branch(row.who, "B1") == row.view_own);
  CHECK(may_view_branch(row.who, "B2") == row.view_other);
  CHECK(may_manage(row.who, "B1") == row.manage_own);
  CHECK(may_manage(row.who, "B2") == row.manage_other);
  CHECK(may_import(row.who) == row.import);
}

TEST_CASE("visitd token reads its options", "[auth][token]") {
  SECTION("all of them, as --opt value and --opt=value") {
    const auto options =
        parse_token_options({"--config", "visitd.toml", "--role=office", "--sub", "U1",
                             "--branches=B1,B2", "--ttl", "90m", "--name", "Ann Office"});
    CHECK(options.config == "visitd.toml");
    CHECK(options.who.role == Role::office);
    CHECK(options.who.sub == "U1");
    CHECK(options.who.branches == std::vector<std::string>{"B1", "B2"});
    CHECK_FALSE(options.who.all_branches);
    CHECK(options.who.name == "Ann Office");
    CHECK(options.ttl == 90min);
    CHECK_FALSE(options.help);
  }
  SECTION("a 12h ttl by default, all branches for an admin, none for a carer") {
    const auto admin = parse_token_options({"--config", "f", "--role", "admin", "--sub", "A1"});
    CHECK(admin.ttl == 12h);
    CHECK(admin.who.all_branches);
    const auto carer = parse_token_options({"--config", "f", "--role", "carer", "--sub", "C1"});
    CHECK_FALSE(carer.who.all_branches);
    CHECK(carer.who.branches.empty());
  }
  SECTION("--branches '*' means all") {
    const auto options = parse_token_options(
        {"--config", "f", "--role", "coordinator", "--sub", "U2", "--branches", "*"});
    CHECK(options.who.all_branches);
  }
  SECTION("--help wins") {
    CHECK(parse_token_options({"--role", "bogus", "--help"}).help);
    CHECK(parse_token_options({"-h"}).help);
  }
}

TEST_CASE("visitd token explains what is wrong with its options", "[auth][token]") {
  using Args = std::vector<std::string_view>;
  const auto [args, why] = GENERATE(table<Args, std::string>({
      {Args{}, "--config FILE is required"},
      {Args{"--config", "f", "--sub", "U1"}, "--role is required"},
      {Args{"--config", "f", "--role", "admin"}, "--sub is required"},
      {Args{"--role", "admin", "--sub", "U1"}, "--config FILE is required"},
      {Args{"--config", "f", "--role", "root", "--sub", "U1"}, "unknown role 'root'"},
      {Args{"--config", "f", "--role", "Admin", "--sub", "U1"}, "unknown role 'Admin'"},
      {Args{"--config", "f", "--role", "admin", "--sub", "U1", "--ttl", "12"},
       "--ttl '12' is not a positive duration"},
      {Args{"--config", "f", "--role", "admin", "--sub", "U1", "--ttl", "0s"},
       "--ttl '0s' is not a positive duration"},
      {Args{"--config", "f", "--role", "admin", "--sub", "U1", "--ttl", "-1h"},
       "is not a positive duration"},
      {Args{"--config", "f", "--role", "admin", "--sub", "U1", "--ttl", "soon"},
       "is not a positive duration"},
      {Args{"--config", "f", "--role", "office", "--sub", "U1"},
       "--branches is required for an office user"},
      {Args{"--config", "f", "--role", "coordinator", "--sub", "U1"},
       "--branches is required for a"},
      {Args{"--config", "f", "--role", "office", "--sub", "U1", "--branches", "B1,,B2"},
       "empty branch id"},
      {Args{"--config", "f", "--role", "admin", "--sub", ""}, "--sub needs an id"},
      {Args{"--config", "f", "--role", "admin", "--sub"}, "--sub needs a value"},
      {Args{"--config", "f", "--role", "admin", "--sub", "U1", "--sub", "U2"}, "--sub given twice"},
      {Args{"--config", "f", "--role", "admin", "--sub", "U1", "--exp", "1"},
       "unknown option '--exp'"},
      {Args{"--config", "f", "--role", "admin", "--sub", "U1", "extra"},
       "unexpected argument 'extra'"},
  }));
  CHECK_THAT(usage_error(args), Contains(why));
}

TEST_CASE("visitd token mints with the config's secret for the configured branches",
          "[auth][token]") {
  const auto settings = visitd::config::load_string(kConfig, "visitd.toml");

  SECTION("the token verifies with the config's secret and lasts the ttl") {
    const auto options =
        parse_token_options({"--config", "visitd.toml", "--role", "office", "--sub", "U1",
                             "--branches", "B1,B2", "--ttl", "8h", "--name", "Ann"});
    const auto who = accepted(mint_from_options(options, settings, kNow), settings.auth.secret);
    CHECK(who.sub == "U1");
    CHECK(who.role == Role::office);
    CHECK(who.branches == std::vector<std::string>{"B1", "B2"});
    CHECK(who.name == "Ann");
    CHECK(who.expires == kNow + 8h);
    CHECK_THAT(refusal(mint_from_options(options, settings, kNow), settings.auth.secret, kNow + 8h),
               Contains("expired"));
  }
  SECTION("a branch the config does not define is refused") {
    const auto options = parse_token_options(
        {"--config", "visitd.toml", "--role", "office", "--sub", "U1", "--branches", "B1,B9"});
    CHECK_THROWS_WITH(mint_from_options(options, settings, kNow),
                      Contains("branch 'B9' is not in visitd.toml"));
  }
  SECTION("a config without a secret is a config error naming the file and key") {
    const auto no_secret = visitd::config::load_string(
        "[[branches]]\nid = \"B1\"\nname = \"North\"\n", "nosecret.toml");
    const auto options =
        parse_token_options({"--config", "nosecret.toml", "--role", "admin", "--sub", "A1"});
    try {
      mint_from_options(options, no_secret, kNow);
      FAIL("minted without a secret");
    } catch (const ConfigError& e) {
      CHECK(e.file() == "nosecret.toml");
      CHECK(e.key() == "auth.secret");
      CHECK_THAT(e.what(), Contains("nosecret.toml: auth.secret: no secret"));
    }
  }
  SECTION("a ttl that would pass year 9999 is refused") {
    auto options = parse_token_options({"--config", "f", "--role", "admin", "--sub", "A1"});
    options.ttl = std::chrono::hours(24 * 365 * 9000);
    CHECK_THROWS_AS(mint_from_options(options, settings, kNow), std::invalid_argument);
  }
}
