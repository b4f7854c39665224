#pragma once
// The HTTP API of docs/protocol.md ("HTTP API"), without any networking: a request already
// read and authenticated becomes either an answer (reads, refusals) or an engine command
// (writes), and a command's reply becomes the answer.
//
// The server calls these on the engine strand, in two steps for a write:
//   1. decide(request, who, engine, now) → Decision
//        .answer set:  send it (a read, or a refusal: 400/403/404/405/415/409...)
//        .command set: engine.apply(*command, now, effects)
//   2. answer(decision.route, reply, engine) → the answer, computed right after apply (the
//      engine's state as of the command); sent only once the journal has made the command
//      durable when reply.status == accepted.
// `/metrics`, `/healthz`, `/readyz`, `/` and the WebSocket upgrades are the server's, not
// the API's: decide() answers 404 for them.
//
// Authorisation (websocket/auth.hpp): reads need may_view_branch for the branch they
// concern (a list without `branch=` covers the user's branches; a carer token gets 403 on
// every API route), writes need may_manage (visits, alerts) or may_import (rota).
// An object in a branch the user may not see answers 404, not 403, so ids do not leak
// across branches; a branch the user may not see named in a query answers 403.
//
// Errors have the protocol's body `{"error":{"code":..,"message":..,"details":[..]}}`. Besides
// the protocol's codes (http_status() gives their statuses), the HTTP layer answers with its
// own: `not_found` 404 (no such route; also /metrics, / and the rest of the server's paths),
// `unknown_branch` 404 (a `branch=` that is not configured), `unknown_carer` 404 (a carer
// with no visit in a branch the user may see), `method_not_allowed` 405 (with `Allow`),
// `unsupported_media_type` 415 (a rota neither text/csv nor application/json; a POST body
// with a Content-Type other than application/json; an absent Content-Type is fine there).
//
// Queries: %-escapes and `+` are decoded; an empty value counts as absent (`?branch=&date=`
// asks for the defaults); unknown keys are ignored; a key given twice is bad_message. A
// `date` is `YYYY-MM-DD`; without one, each branch's own today (in its zone, at `now`).
// Lists are sorted by start, then id; alerts in the order they were raised.
//
// `GET /api/reports/punctuality?branch=&date=`: one branch's rota for one local date (the
// branch is required), as of engine.now(). Cancelled visits are counted in `cancelled` and
// nowhere else; of the other visits (`visits`) each is exactly one of:
//   on_time  checked in no later than start + late_after (no `late_arrival` flag);
//   late     checked in after that, or nobody has yet and the visit is `late`;
//   missed   nobody checked in and the visit is `missed` (past start + missed_after);
//   pending  nobody checked in and it is not yet late (`scheduled`).
// Besides: `completed` (state completed), `in_progress` (in_progress, overrunning or
// no_checkout), `short` (flag short). `on_time_pct` = 100 × on_time / (on_time + late +
// missed), to 0.1, null when that is 0; `mean_late_s` = the mean `late_by_s` (seconds from
// start to the first check-in, 0 when early) over visits checked in, to 0.1, null if none.
// `carers`, by id: each carer now assigned to a (not cancelled) visit, judged by their own
// first check-in the same way; a carer who has not checked in is late or missed by the
// visit's thresholds at engine.now(), so the partner who never came to a double-up counts
// as missed. With `Accept: text/csv` (q > 0): the header row
// `carer,visits,on_time,late,missed,pending,on_time_pct,mean_late_s`, a row per carer, and a
// row `total` for the whole day; empty cells for nulls; CRLF line ends; an id that starts
// with = + - @ gets a leading ' so that spreadsheets do not run it as a formula.
//
// Thread-safety: pure functions of their arguments; the engine must not change meanwhile.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "visitd/core/time.hpp"
#include "visitd/rota/engine.hpp"
#include "visitd/websocket/auth.hpp"
#include "visitd/websocket/presence.hpp"

namespace visitd::websocket {

/// What the HTTP session read, independent of Beast.
struct HttpRequest {
  std::string_view method;  ///< "GET", "PUT", "POST", ...
  std::string_view target;  ///< the request target: path and query, e.g. "/api/visits?branch=B1"
  std::string_view content_type;  ///< the Content-Type header ("" when absent)
  std::string_view accept;        ///< the Accept header ("" when absent)
  std::string_view body;
};

/// What to send back.
struct HttpAnswer {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  /// Extra headers, e.g. {"Allow", "GET"} on a 405 or Content-Disposition on a CSV report.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Which write a command came from, so that answer() can shape the reply.
enum class ApiWrite : std::uint8_t { import_rota, reassign, cancel, ack_alert, resolve_alert };

/// `POST /api/carers/{id}/message` `{"text":"..."}`: the office writing to a carer's phone
/// (the protocol's server→carer `message`). Not an engine command: the server delivers it
/// to the carer's open sockets and answers `{"delivered":n}` (n = sockets reached).
struct CarerMessage {
  std::string carer;  ///< a carer id the engine knows, on a visit of a branch `who` manages
  std::string from;   ///< the sender's display name: the token's `name`, else its `sub`
  std::string text;   ///< 1 to 4096 bytes of UTF-8
};

struct Decision {
  std::optional<HttpAnswer> answer;        ///< send this now, or
  std::optional<rota::Command> command;    ///< apply this, then answer(route, reply, engine), or
  std::optional<CarerMessage> message;     ///< deliver this and answer {"delivered":n}
  ApiWrite route = ApiWrite::import_rota;  ///< meaningful with `command` only
};

/// Limits on what decide() accepts; the session refuses bigger bodies (413) before reading.
struct ApiLimits {
  std::size_t max_text_bytes = 4096;  ///< `note`, message `text`
  std::size_t max_reason_bytes = 512;
  std::size_t max_carers = 16;  ///< in a reassign
};

/// Decides one request (see the header comment). Never throws on any request.
/// `presence` (optional) fills `phone_offline_since` in the visits and alerts it answers.
Decision decide(const HttpRequest& request, const Principal& who, const rota::Engine& engine,
                TimePoint now, const ApiLimits& limits = {}, const Presence* presence = nullptr);

/// The answer to a write once the engine has decided it: 200 with the protocol's body for
/// accepted (and unchanged, which is not an error: e.g. acknowledging an acknowledged alert
/// answers 200 with the alert as it is), the error's status and body for rejected:
/// unknown_visit/unknown_alert 404, forbidden/not_assigned 403, conflict and state errors
/// 409, bad_rota/bad_message 400, anything else 500.
HttpAnswer answer(ApiWrite route, const rota::Reply& reply, const rota::Engine& engine,
                  const Presence* presence = nullptr);

/// An error answer with the protocol's body `{"error":{"code":..,"message":..,"details":[]}}`
/// and the status the code maps to (as answer() maps them; unauthenticated 401,
/// rate_limited 429, internal 500). For the server's own refusals (401, 413, 503...).
HttpAnswer error_answer(const Error& error);
/// The HTTP status an error code maps to.
unsigned http_status(ErrorCode code);

}  // namespace visitd::websocket
