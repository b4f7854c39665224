#pragma once
// The protocol's JSON (docs/protocol.md), without any networking: client messages parsed and
// validated into engine commands, and every server message, object and HTTP error body
// written as compact JSON.
//
// Parsing. A carer's and a board's messages become rota::Commands whose acting user
// (`carer`, `by`) is the one the session authenticated, never anything the message says.
// Every refusal is a typed Error: `bad_json` (not JSON, not UTF-8, not an object, nested too
// deeply), `unknown_type` (a string `type` this socket does not know) or `bad_message` (a
// field missing or invalid; the message names the field). Fields the protocol does not
// define are ignored, so that phone apps may send newer fields to an older daemon; a JSON
// `null` counts as an absent field. Nothing here throws on any input.
//
// Writing. Functions `append_*` append one JSON text (or object) to `out` and never clear it,
// so a session can reuse one buffer. Strings are escaped by the JSON rules; bytes that are
// not UTF-8 (a CSV import is not checked for it) are written as U+FFFD, so the output is
// always a valid text frame.
//
// Thread-safety: the free functions are pure (they only read the engine, which the caller
// must not change meanwhile). A MessageParser belongs to one session: not thread-safe.

#include <array>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "visitd/core/error.hpp"
#include "visitd/core/json_text.hpp"
#include "visitd/core/time.hpp"
#include "visitd/rota/engine.hpp"
#include "visitd/rota/import.hpp"
#include "visitd/websocket/presence.hpp"

namespace visitd::websocket {

// ---------------------------------------------------------------------------------------
// Limits of client messages (bytes of UTF-8 for strings).

inline constexpr std::size_t kMaxEventIdBytes = 128;  ///< "id": 1 to 128 (as the engine checks)
inline constexpr std::size_t kMaxVisitIdBytes = 64;   ///< "visit": 1 to 64
inline constexpr std::size_t kMaxAlertIdBytes = 64;   ///< "alert": 1 to 64
inline constexpr std::size_t kMaxTagBytes = 256;      ///< "tag": 1 to 256 when nfc/qr need it
inline constexpr std::size_t kMaxNoteBytes = 4096;    ///< "note": at most 4096
inline constexpr std::size_t kMaxReasonBytes = 512;   ///< "reason": at most 512
inline constexpr double kMaxAccuracyM = 100'000;      ///< "accuracy": 0 to 100 km
/// Deeper JSON is bad_json before any field is read. Our messages are flat; this leaves
/// room for structured fields a newer app might add, and bounds the parser's work.
inline constexpr std::size_t kMaxDepth = 16;

// ---------------------------------------------------------------------------------------
// Parsing client messages

/// Which socket a message arrived on: it decides which message types exist there.
enum class Channel : std::uint8_t {
  carer,  ///< /ws/carer: auth, check_in, check_out, location, running_late
  board,  ///< /ws/board: auth, ack_alert, resolve_alert
};

/// `{"type":"auth","token":"..."}`: authentication by first message, for browsers. The
/// token is not checked here (see auth.hpp), only that it is a non-empty string; whether an
/// auth message is allowed at this point of the session is the session's business.
struct AuthMessage {
  std::string token;

  bool operator==(const AuthMessage&) const = default;
};

using Message = std::variant<rota::Command, AuthMessage>;

/// What a client message turned out to be.
struct Parsed {
  /// The command or auth message, or why it was refused (bad_json, unknown_type,
  /// bad_message).
  Result<Message> message;
  /// The message's "id" when it had a usable one (a string of 1 to kMaxEventIdBytes),
  /// also when the message was refused: the error reply echoes it; nullopt → `"id":null`.
  std::optional<std::string> id;

  bool ok() const { return message.has_value(); }
};

/// Parses one client message after another, reusing its parser and buffers: a message of
/// the usual size parses without touching the heap for the JSON document (the strings
/// copied into the command still allocate when they are long). About 3 KiB per instance.
///
/// Not thread-safe: one per session.
class MessageParser {
 public:
  explicit MessageParser(Channel channel);
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  /// Parses and validates `text`, one complete WebSocket message. `user` is the
  /// authenticated carer id (carer channel) or user id (board channel); it becomes the
  /// command's `carer` or `by`. Never throws on any input.
  Parsed parse(std::string_view text, std::string_view user);

  Channel channel() const { return channel_; }

 private:
  // The document's memory: the buffer, then heap blocks for a big message. A fresh resource
  // per message rather than monotonic_resource::release(): in Boost 1.81 release() keeps
  // the doubled size of the next block, so a long session would ask for ever larger blocks
  // until bad_alloc. Declared ahead of parser_ so that it outlives any value the parser holds.
  std::array<unsigned char, 2048> document_buffer_;
  std::optional<boost::json::monotonic_resource> document_memory_;
  // The parser's own stack while it parses (falls back to the heap for big messages).
  std::array<unsigned char, 512> stack_buffer_;
  boost::json::parser parser_;
  Channel channel_;
};

/// The protocol name of a channel's socket path, for messages: "/ws/carer", "/ws/board".
std::string_view to_string(Channel channel);

// ---------------------------------------------------------------------------------------
// Writing server messages

/// `{"type":"ack","id":..,"status":"accepted"|"duplicate","visit":..,"state":..,"flags":[..]}`
/// for a carer event the engine accepted (or recognised as a duplicate) and the journal made
/// durable. A location ping concerns no visit: its ack has `"visit":null,"state":null` and
/// `"flags":[]`, so every ack has the same keys. `reply.status` must be accepted or
/// duplicate; a rejected reply is answered with append_error.
void append_ack(std::string& out, std::string_view event_id, const rota::Reply& reply,
                const rota::Engine& engine);

/// `{"type":"error","id":<id or null>,"code":..,"message":..}`.
void append_error(std::string& out, std::optional<std::string_view> id, const Error& error);

/// The visit object of the protocol ("Objects"), plus the extension fields `notes`, `eta`
/// (null or a time), `eta_reason` and `cancel_reason` ("" when none), `expected_at` (the
/// at-risk estimate, or null), `late_cause` (null, "previous_overrun", "running_late") and
/// `phone_offline_since` (null, or when the phone of the carer still awaited went silent:
/// needs `presence`) and `carer_locations` (where each of its carers on shift now was last
/// located: carer, lat, lon, accuracy, at, distance_m from the client; none of a carer off
/// shift). A check-in or check-out without a position fix has `lat`, `lon`,
/// `accuracy` and `distance_m` null; `distance_m` is rounded to 0.1 m.
void append_visit(std::string& out, const rota::Engine& engine, rota::VisitIndex visit,
                  const Presence* presence = nullptr);

/// The alert object of the protocol ("Objects"); null for each of acked_by, acked_at,
/// resolved_at, resolution (and carer) while unset. Extensions: `eta` (the estimated or
/// stated arrival for a start alert, else null), `reason` (why at risk or late, or null),
/// `cause` (as the visit's late_cause), `pages_held` (the ladder waits for missed or the
/// stated eta) and `phone_offline_since` (an open start or double-up alert whose carer's
/// phone is silent: needs `presence`).
void append_alert(std::string& out, const rota::Engine& engine, rota::AlertIndex alert,
                  const Presence* presence = nullptr);

/// The alert's `summary`: one sentence for the office naming the carer, the client and the
/// due time in the branch's time zone (HH:MM), e.g. "C1 has not checked in at Mrs A (due
/// 09:00)", then what is known about why (an at-risk estimate, a late cause) and, with
/// `presence`, "; phone offline since 08:40". Takes the alert itself (not its index) so that
/// any alert value can be described.
std::string alert_summary(const rota::Engine& engine, const rota::Alert& alert,
                          const Presence* presence = nullptr);
/// The summary without what presence adds.
std::string alert_sentence(const rota::Engine& engine, const rota::Alert& alert);

/// The visits to put in a carer's `rota`: those assigned to the carer now, not cancelled,
/// that overlap [from, to), by start. A visit the carer was moved off is not theirs.
std::vector<rota::VisitIndex> carer_rota(const rota::Engine& engine, rota::CarerIndex carer,
                                         TimePoint from, TimePoint to);

/// `{"type":"rota","visits":[<visit>...]}`.
void append_rota(std::string& out, const rota::Engine& engine,
                 std::span<const rota::VisitIndex> visits);

/// `{"type":"snapshot","server_time":..,"visits":[..],"alerts":[..]}`: the board's first
/// message; the caller chooses what the user may see. A `clock_rate` other than 1 (a demo
/// clock, demo seconds per real second) follows `server_time`, so that the board's time runs
/// as fast as the daemon's (an extension).
void append_snapshot(std::string& out, const rota::Engine& engine, TimePoint server_time,
                     std::span<const rota::VisitIndex> visits,
                     std::span<const rota::AlertIndex> alerts, double clock_rate = 1.0,
                     const Presence* presence = nullptr);

/// `{"type":"visit","visit":<visit>}`: a board delta.
void append_visit_message(std::string& out, const rota::Engine& engine, rota::VisitIndex visit,
                          const Presence* presence = nullptr);

/// `{"type":"alert","alert":<alert>}`: a board delta.
void append_alert_message(std::string& out, const rota::Engine& engine, rota::AlertIndex alert,
                          const Presence* presence = nullptr);

/// `{"type":"ok","ref":..}`: a board command done (ref: the alert id), with `"id"` echoing
/// the command's own `id` when it had one (an extension: boards may match answers by it).
void append_ok(std::string& out, std::string_view ref,
               std::optional<std::string_view> id = std::nullopt);

/// `{"type":"message","from":..,"text":..}`: the office writing to a carer.
void append_carer_message(std::string& out, std::string_view from, std::string_view text);

/// HTTP bodies `{"visits":[<visit>...]}` and `{"alerts":[<alert>...]}`.
void append_visit_list(std::string& out, const rota::Engine& engine,
                       std::span<const rota::VisitIndex> visits,
                       const Presence* presence = nullptr);
void append_alert_list(std::string& out, const rota::Engine& engine,
                       std::span<const rota::AlertIndex> alerts,
                       const Presence* presence = nullptr);

/// The HTTP error body `{"error":{"code":..,"message":..,"details":[..]}}`; `details` lists
/// a refused rota's issues as `{"line":n,"field":"...","message":"..."}` and is `[]`
/// otherwise.
void append_http_error(std::string& out, const Error& error,
                       std::span<const rota::ImportIssue> details = {});

// Building blocks, for other writers of JSON (webhook bodies, metrics labels).

/// `s` as a JSON string, quotes included; invalid UTF-8 becomes U+FFFD (core/json_text.hpp).
using visitd::append_json_string;
/// A number in its shortest exact form (`51.5014`, `12`); null when not finite.
void append_json_number(std::string& out, double value);

}  // namespace visitd::websocket
