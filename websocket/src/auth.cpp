#include "visitd/websocket/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "visitd/core/json_kind.hpp"

namespace visitd::websocket {
namespace {

namespace json = boost::json;

constexpr std::array<std::string_view, 4> kRoleNames = {"carer", "office", "coordinator", "admin"};
static_assert(kRoleNames.size() == static_cast<std::size_t>(Role::admin) + 1);

constexpr std::string_view kAllBranches = "*";
constexpr std::size_t kSignatureBytes = 32;  // SHA-256
// base64url of {"alg":"HS256","typ":"JWT"}: the only header mint() writes.
constexpr std::string_view kMintedHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
// NumericDate limits: the epoch to the end of year 9999, so that every accepted value
// converts to TimePoint without overflow.
constexpr double kMaxNumericDate = 253402300799.0;

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int alphabet_index(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

Error refused(std::string why) {
  return Error{ErrorCode::unauthenticated, "token refused: " + std::move(why)};
}

/// Attacker-supplied text, made safe to put in a message and a log line: quoted, at most
/// 32 characters, anything outside printable ASCII escaped.
std::string quoted(std::string_view text) {
  constexpr std::size_t kMaxShown = 32;
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      constexpr std::string_view kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (text.size() > kMaxShown) out += "...";
  out += '\'';
  return out;
}

/// "an office", "a coordinator": a role as a message says it.
std::string with_article(Role role) {
  const std::string_view name = to_string(role);
  return (name.front() == 'o' || name.front() == 'a' ? "an " : "a ") + std::string(name);
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

/// HMAC-SHA256 into `out`; false if OpenSSL failed.
bool hmac_sha256(std::string_view data, std::string_view key,
                 std::array<unsigned char, kSignatureBytes>& out) {
  if (key.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return false;
  // OpenSSL 3 refuses a null key pointer even with length 0.
  static const unsigned char kNoKey = 0;
  const void* key_bytes = key.empty() ? static_cast<const void*>(&kNoKey) : key.data();
  unsigned int length = 0;
  const unsigned char* done =
      HMAC(EVP_sha256(), key_bytes, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &length);
  return done != nullptr && length == out.size();
}

/// A base64url part decoded and parsed as a JSON object, or why not. `what` names the part.
Result<json::object> decode_object(std::string_view part, std::string_view what) {
  const auto bytes = base64url_decode(part);
  if (!bytes) return refused(std::string(what) + " is not base64url");
  boost::system::error_code ec;
  json::value value = json::parse(*bytes, ec);
  if (ec) return refused(std::string(what) + " is not UTF-8 JSON (" + ec.message() + ")");
  if (!value.is_object()) {
    return refused(std::string(what) + " is " + std::string(json_kind(value)) +
                   ", not a JSON object");
  }
  return std::move(value.get_object());
}

/// A NumericDate claim (seconds since the epoch, possibly fractional) as a TimePoint.
Result<TimePoint> numeric_date(const json::value& v, std::string_view claim) {
  double seconds = 0;
  if (v.is_int64()) {
    seconds = static_cast<double>(v.get_int64());
  } else if (v.is_uint64()) {
    seconds = static_cast<double>(v.get_uint64());
  } else if (v.is_double()) {
    seconds = v.get_double();
  } else {
    return refused(std::string(claim) + " must be a number of seconds, not " +
                   std::string(json_kind(v)));
  }
  if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxNumericDate) {
    return refused(std::string(claim) + " is out of range");
  }
  // Whole seconds exactly (a double holds them all in range), then the fraction in ms.
  const auto whole = std::floor(seconds);
  const auto ms = std::chrono::seconds(static_cast<std::int64_t>(whole)) +
                  Duration(static_cast<std::int64_t>((seconds - whole) * 1000));
  return TimePoint(ms);
}

Result<Principal> read_claims(const json::object& claims, TimePoint now) {
  Principal who;

  const json::value* exp = claims.if_contains("exp");
  if (exp == nullptr) return refused("exp is missing; every token must expire");
  auto expires = numeric_date(*exp, "exp");
  if (!expires) return expires.error();
  if (*expires <= now) {
    return refused("expired at " + format_rfc3339(*expires) + " (now " + format_rfc3339(now) + ")");
  }
  who.expires = *expires;

  if (const json::value* nbf = claims.if_contains("nbf")) {
    auto not_before = numeric_date(*nbf, "nbf");
    if (!not_before) return not_before.error();
    if (*not_before > now + kNotBeforeLeeway) {
      return refused("not valid before " + format_rfc3339(*not_before));
    }
  }

  const json::value* sub = claims.if_contains("sub");
  if (sub == nullptr) return refused("sub is missing");
  if (!sub->is_string())
    return refused("sub must be a string, not " + std::string(json_kind(*sub)));
  if (sub->get_string().empty()) return refused("sub is empty");
  who.sub = sub->get_string();

  const json::value* role = claims.if_contains("role");
  if (role == nullptr) return refused("role is missing");
  if (!role->is_string()) {
    return refused("role must be a string, not " + std::string(json_kind(*role)));
  }
  const auto parsed_role = role_from_string(role->get_string());
  if (!parsed_role) {
    return refused("unknown role " + quoted(role->get_string()) +
                   " (carer, office, coordinator or admin)");
  }
  who.role = *parsed_role;

  if (const json::value* branches = claims.if_contains("branches")) {
    if (!branches->is_array()) {
      return refused("branches must be an array of branch ids, not " +
                     std::string(json_kind(*branches)));
    }
    for (const json::value& branch : branches->get_array()) {
      if (!branch.is_string()) {
        return refused("branches must hold strings, not " + std::string(json_kind(branch)));
      }
      const std::string_view id = branch.get_string();
      if (id.empty()) return refused("branches holds an empty branch id");
      if (id == kAllBranches) {
        who.all_branches = true;
      } else {
        who.branches.emplace_back(id);
      }
    }
  }
  if ((who.role == Role::office || who.role == Role::coordinator) && !who.all_branches &&
      who.branches.empty()) {
    return refused(with_article(who.role) + " token must name its branches (or \"*\")");
  }

  if (const json::value* name = claims.if_contains("name")) {
    if (!name->is_string()) {
      return refused("name must be a string, not " + std::string(json_kind(*name)));
    }
    who.name = name->get_string();
  }
  return who;
}

std::vector<std::string> split(std::string_view text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto end = text.find(separator, start);
    parts.emplace_back(text.substr(start, end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

}  // namespace

std::string_view to_string(Role role) { return kRoleNames.at(static_cast<std::size_t>(role)); }

std::optional<Role> role_from_string(std::string_view text) {
  for (std::size_t i = 0; i < kRoleNames.size(); ++i) {
    if (kRoleNames[i] == text) return static_cast<Role>(i);
  }
  return std::nullopt;
}

bool Principal::covers_branch(std::string_view branch) const {
  return all_branches || std::find(branches.begin(), branches.end(), branch) != branches.end();
}

bool may_view_branch(const Principal& who, std::string_view branch) {
  switch (who.role) {
    case Role::admin:
      return true;
    case Role::office:
    case Role::coordinator:
      return who.covers_branch(branch);
    case Role::carer:
      return false;
  }
  return false;
}

bool may_manage(const Principal& who, std::string_view branch) {
  return !who.is_carer() && who.covers_branch(branch);
}

bool may_import(const Principal& who) { return who.is_admin(); }

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  const auto byte = [&](std::size_t at) { return static_cast<unsigned char>(bytes[at]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const unsigned group = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
    out += kAlphabet[(group >> 6) & 63];
    out += kAlphabet[group & 63];
  }
  if (bytes.size() - i == 1) {
    const unsigned group = byte(i) << 16;
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
  } else if (bytes.size() - i == 2) {
    const unsigned group = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kAlphabet[(group >> 18) & 63];
    out += kAlphabet[(group >> 12) & 63];
    out += kAlphabet[(group >> 6) & 63];
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  // A lone trailing character carries 6 bits: not even one byte.
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned bits = 0;
  int pending = 0;  // bits held in `bits`
  for (const char c : text) {
    const int index = alphabet_index(c);
    if (index < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<unsigned>(index);
    pending += 6;
    if (pending >= 8) {
      pending -= 8;
      out += static_cast<char>((bits >> pending) & 0xff);
      bits &= (1U << pending) - 1;
    }
  }
  // Leftover bits must be zero, or two different strings would decode to the same bytes.
  if (bits != 0) return std::nullopt;
  return out;
}

std::string hs256_sign(std::string_view signing_input, std::string_view key) {
  std::array<unsigned char, kSignatureBytes> mac{};
  if (!hmac_sha256(signing_input, key, mac)) throw std::runtime_error("HMAC-SHA256 failed");
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
}

Result<Principal> verify(std::string_view token, std::string_view secret, TimePoint now) {
  if (token.empty()) return refused("empty token");
  if (token.size() > kMaxTokenBytes) {
    return refused("longer than " + std::to_string(kMaxTokenBytes) + " bytes");
  }
  if (secret.empty()) return refused("no secret is configured to check it with");

  const auto first_dot = token.find('.');
  const auto second_dot =
      first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos ||
      token.find('.', second_dot + 1) != std::string_view::npos) {
    return refused("malformed: a JWT is three base64url parts separated by two dots");
  }
  const std::string_view header_part = token.substr(0, first_dot);
  const std::string_view payload_part = token.substr(first_dot + 1, second_dot - first_dot - 1);
  const std::string_view signature_part = token.substr(second_dot + 1);
  if (header_part.empty() || payload_part.empty()) {
    return refused("malformed: empty header or payload");
  }

  // The algorithm is decided here, never by the token: whatever the header says, only
  // HS256 is accepted, and that is settled before the signature is looked at.
  auto header = decode_object(header_part, "header");
  if (!header) return header.error();
  const json::value* alg = header->if_contains("alg");
  if (alg == nullptr) return refused("header has no alg; only HS256 is accepted");
  if (!alg->is_string()) {
    return refused("alg must be a string, not " + std::string(json_kind(*alg)));
  }
  if (alg->get_string() != "HS256") {
    return refused("algorithm " + quoted(alg->get_string()) + " is not accepted; only HS256");
  }
  if (const json::value* typ = header->if_contains("typ")) {
    if (!typ->is_string() || !iequals(typ->get_string(), "JWT")) {
      return refused("typ must be \"JWT\"");
    }
  }
  if (header->contains("crit")) {
    return refused("header has crit; no JWS extensions are understood");
  }

  if (signature_part.empty()) return refused("unsigned");
  const auto signature = base64url_decode(signature_part);
  if (!signature) return refused("signature is not base64url");
  std::array<unsigned char, kSignatureBytes> expected{};
  if (!hmac_sha256(token.substr(0, second_dot), secret, expected)) {
    return Error{ErrorCode::internal, "HMAC-SHA256 failed"};
  }
  // The length is public (every HS256 signature has it); the bytes are compared in
  // constant time so that response timing reveals nothing about the expected MAC.
  if (signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return refused("bad signature");
  }

  // Only now, with the bytes known to be ours, are the claims read.
  auto claims = decode_object(payload_part, "payload");
  if (!claims) return claims.error();
  return read_claims(*claims, now);
}

std::string mint(const Principal& who, std::string_view secret, TimePoint now) {
  if (secret.empty()) throw std::invalid_argument("cannot sign with an empty secret");
  if (who.sub.empty()) throw std::invalid_argument("sub is empty");
  for (const auto& branch : who.branches) {
    if (branch.empty() || branch == kAllBranches) {
      throw std::invalid_argument("branch ids must be non-empty and not \"*\" (use all_branches)");
    }
  }
  if ((who.role == Role::office || who.role == Role::coordinator) && !who.all_branches &&
      who.branches.empty()) {
    throw std::invalid_argument(with_article(who.role) + " token needs branches");
  }
  const auto seconds = [](TimePoint t) {
    return std::chrono::floor<std::chrono::seconds>(t).time_since_epoch().count();
  };
  if (seconds(who.expires) < 0 || seconds(who.expires) > kMaxNumericDate) {
    throw std::invalid_argument("expires is out of range");
  }

  json::object claims;
  claims["sub"] = who.sub;
  claims["role"] = to_string(who.role);
  if (who.all_branches) {
    claims["branches"] = json::array{kAllBranches};
  } else if (!who.branches.empty()) {
    json::array branches;
    for (const auto& branch : who.branches) branches.emplace_back(branch);
    claims["branches"] = std::move(branches);
  }
  claims["exp"] = seconds(who.expires);
  claims["iat"] = seconds(now);
  if (!who.name.empty()) claims["name"] = who.name;

  std::string token(kMintedHeader);
  token += '.';
  token += base64url_encode(json::serialize(claims));
  token += '.' + hs256_sign(token, secret);
  return token;
}

const char* const kTokenUsage =
    R"(Usage: visitd token --config FILE --role ROLE --sub ID [--branches B1,B2] [--ttl 12h]
                    [--name NAME]

Prints a bearer token signed with the config's [auth] secret (or secret_file), for
`Authorization: Bearer <token>` or the WebSocket's first {"type":"auth"} message.

  --config FILE    the visitd config file whose secret signs the token
  --role ROLE      carer, office, coordinator or admin
  --sub ID         the carer id (for a carer) or the user id
  --branches LIST  comma-separated branch ids from the config, or * for all branches;
                   required for office and coordinator, * by default for admin
  --ttl DURATION   how long the token is valid, e.g. 90m, 12h, 30d (default 12h)
  --name NAME      a display name for the board and logs

Exit status: 0 the token was printed; 1 the config could not be read or has no secret;
2 a usage error.
)";

TokenOptions parse_token_options(const std::vector<std::string_view>& args) {
  TokenOptions options;
  bool have_config = false;
  bool have_role = false;
  bool have_sub = false;
  bool have_branches = false;
  std::vector<std::string_view> seen;
  // Asking for help is never a usage error, whatever else is on the line.
  if (std::find_if(args.begin(), args.end(), [](std::string_view arg) {
        return arg == "--help" || arg == "-h";
      }) != args.end()) {
    options.help = true;
    return options;
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view option = args[i];
    if (option.substr(0, 2) != "--") {
      throw std::invalid_argument("unexpected argument " + quoted(option));
    }
    std::optional<std::string_view> value;
    if (const auto equals = option.find('='); equals != std::string_view::npos) {
      value = option.substr(equals + 1);
      option = option.substr(0, equals);
    }
    constexpr std::array<std::string_view, 6> kOptions = {"--config",   "--role", "--sub",
                                                          "--branches", "--ttl",  "--name"};
    if (std::find(kOptions.begin(), kOptions.end(), option) == kOptions.end()) {
      throw std::invalid_argument("unknown option " + quoted(option));
    }
    if (std::find(seen.begin(), seen.end(), option) != seen.end()) {
      throw std::invalid_argument(std::string(option) + " given twice");
    }
    seen.push_back(option);
    if (!value) {
      if (i + 1 == args.size()) throw std::invalid_argument(std::string(option) + " needs a value");
      value = args[++i];
    }

    if (option == "--config") {
      if (value->empty()) throw std::invalid_argument("--config needs a file name");
      options.config = *value;
      have_config = true;
    } else if (option == "--role") {
      const auto role = role_from_string(*value);
      if (!role) {
        throw std::invalid_argument("unknown role " + quoted(*value) +
                                    "; use carer, office, coordinator or admin");
      }
      options.who.role = *role;
      have_role = true;
    } else if (option == "--sub") {
      if (value->empty()) throw std::invalid_argument("--sub needs an id");
      options.who.sub = *value;
      have_sub = true;
    } else if (option == "--branches") {
      for (auto& branch : split(*value, ',')) {
        if (branch.empty()) {
          throw std::invalid_argument("--branches " + quoted(*value) + " has an empty branch id");
        }
        if (branch == kAllBranches) {
          options.who.all_branches = true;
        } else {
          options.who.branches.push_back(std::move(branch));
        }
      }
      have_branches = true;
    } else if (option == "--ttl") {
      const auto ttl = parse_duration(*value);
      if (!ttl || *ttl <= Duration::zero()) {
        throw std::invalid_argument("--ttl " + quoted(*value) +
                                    " is not a positive duration like 90m, 12h or 30d");
      }
      options.ttl = *ttl;
    } else if (option == "--name") {
      options.who.name = *value;
    }
  }
  if (!have_config) throw std::invalid_argument("--config FILE is required");
  if (!have_role) throw std::invalid_argument("--role is required");
  if (!have_sub) throw std::invalid_argument("--sub is required");
  if (!have_branches) {
    if (options.who.role == Role::office || options.who.role == Role::coordinator) {
      throw std::invalid_argument("--branches is required for " + with_article(options.who.role) +
                                  " user");
    }
    if (options.who.role == Role::admin) options.who.all_branches = true;
  }
  return options;
}

std::string mint_from_options(const TokenOptions& options, const config::Settings& settings,
                              TimePoint now) {
  if (settings.auth.secret.empty()) {
    throw ConfigError(settings.source, 0, "auth.secret",
                      "no secret to sign with; set [auth] secret or secret_file");
  }
  for (const auto& branch : options.who.branches) {
    if (settings.find_branch(branch) == nullptr) {
      throw std::invalid_argument("branch " + quoted(branch) + " is not in " + settings.source);
    }
  }
  const auto latest = TimePoint(std::chrono::seconds(static_cast<std::int64_t>(kMaxNumericDate)));
  if (options.ttl <= Duration::zero() || options.ttl > latest - now) {
    throw std::invalid_argument("--ttl is out of range");
  }
  Principal who = options.who;
  who.expires = now + options.ttl;
  return mint(who, settings.auth.secret, now);
}

}  // namespace visitd::websocket
