#pragma once
// Who is calling, and what they may do: HS256 JWT bearer tokens as ../shared/protocol.md
// ("Authentication") defines them, verified against `[auth] secret`, and the role and
// branch rules the sessions and the HTTP API apply to every object.
//
// Everything here is a pure function of its arguments (the clock is passed in), so it is
// safe to call from any thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "visitd/config/settings.hpp"
#include "visitd/core/error.hpp"
#include "visitd/core/time.hpp"

namespace visitd::websocket {

/// The `role` claim.
enum class Role : std::uint8_t { carer, office, coordinator, admin };

/// The protocol's spelling: "carer", "office", "coordinator", "admin".
std::string_view to_string(Role role);
/// The inverse of to_string (exact, case-sensitive); nullopt for anything else.
std::optional<Role> role_from_string(std::string_view text);

/// The verified claims of a token: who is calling, in which role, over which branches.
struct Principal {
  std::string sub;  ///< carer id for a carer, user id otherwise
  Role role = Role::carer;
  std::vector<std::string> branches;  ///< branch ids, without "*"
  bool all_branches = false;          ///< `branches` held "*"
  TimePoint expires{};                ///< the `exp` claim
  std::string name;                   ///< optional display name; empty when absent

  bool is_carer() const { return role == Role::carer; }
  bool is_admin() const { return role == Role::admin; }
  /// The `branches` claim names this branch (or is "*"). Says nothing about the role:
  /// use may_view_branch / may_manage to decide what the caller may do there.
  bool covers_branch(std::string_view branch) const;

  bool operator==(const Principal&) const = default;
};

// Authorisation. A carer acts only on visits assigned to them, which only the engine knows,
// so carers are checked there (not_assigned); these helpers answer the branch questions.

/// May read a branch's board, visits, alerts and reports: an admin everywhere ("admin may
/// read everything"), an office or coordinator user on the branches in their claim, a carer
/// never (a carer sees their own rota, not a branch).
bool may_view_branch(const Principal& who, std::string_view branch);

/// May change things in a branch (acknowledge and resolve alerts, reassign and cancel
/// visits, message carers): office, coordinator and admin users on the branches in their
/// claim. An admin token without a `branches` claim manages no branch; `visitd token` gives
/// admins "*" unless told otherwise.
bool may_manage(const Principal& who, std::string_view branch);

/// May import rotas (`PUT /api/rota`): admins only, for any branch, as the protocol says.
/// Office users manage a branch's day but do not replace its rota.
bool may_import(const Principal& who);

// Tokens.

/// Tokens longer than this are refused before any decoding; a real one is a few hundred bytes.
inline constexpr std::size_t kMaxTokenBytes = 8 * 1024;
/// How far in the future `nbf` may be and still be accepted: clocks of the host that minted
/// the token and of this one may disagree a little. `exp` gets no leeway.
inline constexpr Duration kNotBeforeLeeway = std::chrono::seconds(60);

/// Checks a compact-serialized JWS (the part after `Bearer `) and returns its claims, or an
/// Error with ErrorCode::unauthenticated whose message says why it was refused.
///
/// In order, refused: an empty token or one over kMaxTokenBytes; anything but three
/// dot-separated, non-empty parts; parts that are not unpadded base64url (RFC 7515 section 2:
/// no `=`, no characters outside `A-Za-z0-9-_`, no non-zero trailing bits); a header that is
/// not a JSON object; an `alg` that is not exactly "HS256" (`none`, RS256, HS512, "hs256",
/// a missing alg: all refused before the signature is looked at); a `typ` other than "JWT"
/// (compared case-insensitively, RFC 7515 section 4.1.9); any `crit` header (no extensions are
/// understood); a signature that does not match HMAC-SHA256 of `header.payload` under `secret`
/// (compared in constant time); a payload that is not a UTF-8 JSON object; a missing or
/// non-numeric `exp`, or `exp <= now`; an `nbf` later than now + kNotBeforeLeeway; a missing
/// or empty `sub`; a `role` that is not one of the four; `branches` that is not an array of
/// non-empty strings, or is absent or empty for an office or coordinator user (carers and
/// admins may omit it); a `name` that is not a string. Other claims are ignored. An empty
/// `secret` refuses every token.
Result<Principal> verify(std::string_view token, std::string_view secret, TimePoint now);

/// A signed token for `who`: header {"alg":"HS256","typ":"JWT"}, claims sub, role, branches
/// (["*"] when all_branches; omitted when there are none), exp (who.expires, whole seconds,
/// rounded down), iat (now) and name (when not empty). verify() with the same secret before
/// `who.expires` gives `who` back, with `expires` rounded down to the second.
/// Throws std::invalid_argument for an empty secret or sub, a branch id that is empty or
/// "*", an office/coordinator without branches, or an expiry before 1970 or after 9999:
/// tokens verify() would refuse. An expiry in the past is allowed (tests need such tokens).
std::string mint(const Principal& who, std::string_view secret, TimePoint now);

/// HMAC-SHA256 of `signing_input` under `key`, base64url-encoded: the JWS signature of
/// RFC 7518 section 3.2. Throws std::runtime_error if OpenSSL fails.
std::string hs256_sign(std::string_view signing_input, std::string_view key);

/// Unpadded base64url (RFC 4648 section 5, as RFC 7515 uses it).
std::string base64url_encode(std::string_view bytes);
/// The inverse of base64url_encode. nullopt for padding, characters outside the alphabet,
/// an impossible length, or non-zero trailing bits (so each byte string has exactly one
/// accepted encoding).
std::optional<std::string> base64url_decode(std::string_view text);

// `visitd token`.

/// What `visitd token` was asked for.
struct TokenOptions {
  std::string config;  ///< --config FILE
  Principal who;       ///< --role, --sub, --branches, --name (expires is set when minting)
  Duration ttl = std::chrono::hours(12);  ///< --ttl
  bool help = false;  ///< --help or -h anywhere: print kTokenUsage, check nothing else
};

/// The help text of `visitd token`.
extern const char* const kTokenUsage;

/// Parses the arguments after `visitd token`; `--opt value` and `--opt=value` both work.
/// Throws std::invalid_argument, with a message naming the option, for a usage error: a
/// missing --config, --role or --sub, an unknown role, option or value, a bad or non-positive
/// --ttl, an office/coordinator without --branches. An admin without --branches gets "*".
TokenOptions parse_token_options(const std::vector<std::string_view>& args);

/// The token `options` asks for, signed with the settings' secret, expiring at now + ttl.
/// Throws ConfigError (naming the config file and `auth.secret`) when the config has no
/// secret, and std::invalid_argument for a branch the config does not define.
std::string mint_from_options(const TokenOptions& options, const config::Settings& settings,
                              TimePoint now);

}  // namespace visitd::websocket
