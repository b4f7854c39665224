#include "visitd/websocket/http_api.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <exception>
#include <functional>
#include <map>
#include <span>
#include <variant>

#include "visitd/core/json_kind.hpp"
#include "visitd/core/zone.hpp"
#include "visitd/rota/import.hpp"
#include "visitd/websocket/protocol.hpp"

namespace visitd::websocket {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------------------
// Refusals

/// Why a request is refused. Most refusals carry a protocol ErrorCode; the HTTP-only ones
/// (no route, wrong method, media type, unknown branch or carer) carry their own code, in
/// the same body shape.
struct Refusal {
  unsigned status = 500;
  std::string code;
  std::string message;
  std::vector<rota::ImportIssue> details;
  std::string allow;  ///< the Allow header of a 405
};

Refusal refusal(ErrorCode code, std::string message) {
  return Refusal{http_status(code), std::string(to_string(code)), std::move(message), {}, {}};
}

Refusal refusal(const Error& error) { return refusal(error.code, error.message); }

/// A refusal with an HTTP-only code.
Refusal refusal(unsigned status, std::string code, std::string message) {
  return Refusal{status, std::move(code), std::move(message), {}, {}};
}

Refusal bad_message(std::string message) {
  return refusal(ErrorCode::bad_message, std::move(message));
}

Refusal forbidden(std::string message) { return refusal(ErrorCode::forbidden, std::move(message)); }

HttpAnswer to_answer(const Refusal& r) {
  HttpAnswer a;
  a.status = r.status;
  if (const auto code = error_code_from_string(r.code)) {
    append_http_error(a.body, Error{*code, r.message}, r.details);
  } else {
    a.body += R"({"error":{"code":)";
    append_json_string(a.body, r.code);
    a.body += R"(,"message":)";
    append_json_string(a.body, r.message);
    a.body += R"(,"details":[]}})";
  }
  if (!r.allow.empty()) a.headers.emplace_back("Allow", r.allow);
  return a;
}

/// A value, or the refusal that ends the request.
template <class T>
using Checked = std::variant<T, Refusal>;

template <class T>
bool refused(const Checked<T>& c) {
  return std::holds_alternative<Refusal>(c);
}

Decision answered(HttpAnswer a) {
  Decision d;
  d.answer = std::move(a);
  return d;
}

Decision answered(const Refusal& r) { return answered(to_answer(r)); }

HttpAnswer json_answer(std::string body) {
  HttpAnswer a;
  a.body = std::move(body);
  return a;
}

/// At most `max` bytes of a client's text, for quoting it in a message.
std::string quoted(std::string_view s, std::size_t max = 64) {
  std::string q = "\"";
  q += s.substr(0, max);
  if (s.size() > max) q += "...";
  q += '"';
  return q;
}

// ---------------------------------------------------------------------------------------
// Headers

char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// The `type/subtype` of a Content-Type or an Accept member, without its parameters.
std::string_view media_type(std::string_view value) {
  return trim(value.substr(0, value.find(';')));
}

/// `Accept` names text/csv (with a non-zero quality). `*/*` and `text/*` do not count:
/// JSON is the default and CSV is had only by asking for it.
bool accepts_csv(std::string_view accept) {
  while (!accept.empty()) {
    const std::size_t comma = accept.find(',');
    const std::string_view member = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    if (!iequals(media_type(member), "text/csv")) continue;
    bool zero = false;
    std::string_view params = member.substr(std::min(member.find(';'), member.size()));
    while (!params.empty()) {
      params.remove_prefix(1);  // the ';'
      const std::size_t semi = params.find(';');
      const std::string_view param = trim(params.substr(0, semi));
      params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi);
      if (param.size() >= 2 && lower(param[0]) == 'q' && param[1] == '=') {
        const std::string_view q = trim(param.substr(2));
        zero = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;
      }
    }
    if (!zero) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Targets

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// Undoes %XX escapes (and `+` for a space in a query); nullopt for a broken escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_digit(s[i + 1]);
      const int lo = hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += char(hi * 16 + lo);
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

/// The query's parameters. An empty value counts as absent (`?branch=&date=` asks for the
/// defaults). Unknown keys are ignored by the routes; a key given twice is refused, since
/// which one would win is anybody's guess.
class Query {
 public:
  static Checked<Query> parse(std::string_view text) {
    Query q;
    while (!text.empty()) {
      const std::size_t amp = text.find('&');
      const std::string_view pair = text.substr(0, amp);
      text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
      if (pair.empty()) continue;
      const std::size_t eq = pair.find('=');
      auto key = percent_decode(pair.substr(0, eq), true);
      auto value = percent_decode(
          eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
      if (!key || !value) {
        return bad_message("the query has a malformed %-escape in " + quoted(pair));
      }
      if (std::any_of(q.params_.begin(), q.params_.end(),
                      [&](const auto& p) { return p.first == *key; })) {
        return bad_message("query parameter " + *key + " is given more than once");
      }
      q.params_.emplace_back(std::move(*key), std::move(*value));
    }
    return q;
  }

  /// The parameter's value; nullopt when absent or empty.
  std::optional<std::string_view> get(std::string_view key) const {
    for (const auto& [k, v] : params_) {
      if (k == key) return v.empty() ? std::nullopt : std::optional<std::string_view>(v);
    }
    return std::nullopt;
  }

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

enum class Route : std::uint8_t {
  rota,
  visits,
  visit,
  reassign,
  cancel,
  alerts,
  alert,
  ack,
  resolve,
  punctuality,
  carer_message,
  branches,
};

struct Match {
  Route route;
  std::string id;          ///< the {id} of the path, decoded
  std::string_view allow;  ///< the one method the route takes
};

/// The route of a path under /api (segments after "api", decoded); nullopt: no such route.
std::optional<Match> match(const std::vector<std::string>& s) {
  const auto is = [&](std::size_t i, std::string_view name) { return s[i] == name; };
  switch (s.size()) {
    case 1:
      if (is(0, "rota")) return Match{Route::rota, {}, "PUT"};
      if (is(0, "visits")) return Match{Route::visits, {}, "GET"};
      if (is(0, "alerts")) return Match{Route::alerts, {}, "GET"};
      if (is(0, "branches")) return Match{Route::branches, {}, "GET"};
      break;
    case 2:
      if (is(0, "visits")) return Match{Route::visit, s[1], "GET"};
      if (is(0, "alerts")) return Match{Route::alert, s[1], "GET"};
      if (is(0, "reports") && is(1, "punctuality")) return Match{Route::punctuality, {}, "GET"};
      break;
    case 3:
      if (is(0, "visits") && is(2, "reassign")) return Match{Route::reassign, s[1], "POST"};
      if (is(0, "visits") && is(2, "cancel")) return Match{Route::cancel, s[1], "POST"};
      if (is(0, "alerts") && is(2, "ack")) return Match{Route::ack, s[1], "POST"};
      if (is(0, "alerts") && is(2, "resolve")) return Match{Route::resolve, s[1], "POST"};
      if (is(0, "carers") && is(2, "message")) return Match{Route::carer_message, s[1], "POST"};
      break;
    default:
      break;
  }
  return std::nullopt;
}

Refusal not_found(std::string_view path) {
  return refusal(404, "not_found", "no such resource: " + quoted(path, 128));
}

// ---------------------------------------------------------------------------------------
// Bodies

/// A POST body: a JSON object, or (when `empty_ok`) nothing at all, which reads as `{}`.
Checked<json::object> read_object(const HttpRequest& request, bool empty_ok) {
  if (!request.content_type.empty() &&
      !iequals(media_type(request.content_type), "application/json")) {
    return refusal(415, "unsupported_media_type",
                   "the body must be application/json, not " + quoted(request.content_type));
  }
  if (trim(request.body).empty()) {
    if (empty_ok) return json::object{};
    return refusal(ErrorCode::bad_json, "the body is empty; it must be a JSON object");
  }
  json::parse_options options;
  options.max_depth = kMaxDepth;
  json::error_code ec;
  json::value document = json::parse(request.body, ec, {}, options);
  if (ec) return refusal(ErrorCode::bad_json, "the body is not valid JSON: " + ec.message());
  if (!document.is_object()) {
    return refusal(ErrorCode::bad_json,
                   "the body must be a JSON object, not " + std::string(json_kind(document)));
  }
  return std::move(document.get_object());
}

/// A string field of `min` to `max` bytes; nullopt when absent (or null) and not required.
Checked<std::optional<std::string>> read_text(const json::object& o, std::string_view key,
                                              std::size_t min, std::size_t max, bool required) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    if (required) return bad_message(std::string(key) + " is missing");
    return std::optional<std::string>{};
  }
  if (!v->is_string()) {
    return bad_message(std::string(key) + " must be a string, not " + std::string(json_kind(*v)));
  }
  const json::string& s = v->get_string();
  if (s.size() < min) return bad_message(std::string(key) + " must not be empty");
  if (s.size() > max) {
    return bad_message(std::string(key) + " is " + std::to_string(s.size()) +
                       " bytes long; the limit is " + std::to_string(max));
  }
  return std::optional<std::string>(std::string(s));
}

// ---------------------------------------------------------------------------------------
// Lookups with authorisation

const std::string& branch_id(const rota::Engine& engine, const rota::Visit& v) {
  return engine.branch(v.branch).id;
}

/// The branch a query names: 404 when not configured, 403 when the user may not see it.
Checked<rota::BranchIndex> viewable_branch(const rota::Engine& engine, const Principal& who,
                                           std::string_view id) {
  const auto b = engine.find_branch(id);
  if (!b) return refusal(404, "unknown_branch", "branch " + quoted(id) + " is unknown");
  if (!may_view_branch(who, id)) {
    return forbidden("you may not see branch " + engine.branch(*b).id);
  }
  return *b;
}

/// The branches a query covers: the one it names, or every branch the user may see.
Checked<std::vector<rota::BranchIndex>> branches_of(const rota::Engine& engine,
                                                    const Principal& who, const Query& query) {
  std::vector<rota::BranchIndex> out;
  if (const auto id = query.get("branch")) {
    auto b = viewable_branch(engine, who, *id);
    if (refused(b)) return std::get<Refusal>(std::move(b));
    out.push_back(std::get<rota::BranchIndex>(b));
    return out;
  }
  for (std::size_t i = 0; i < engine.branch_count(); ++i) {
    const auto b = rota::BranchIndex(i);
    if (may_view_branch(who, engine.branch(b).id)) out.push_back(b);
  }
  return out;
}

/// The `date` parameter; nullopt when absent (each branch's today applies).
Checked<std::optional<LocalDays>> date_of(const Query& query) {
  const auto text = query.get("date");
  if (!text) return std::optional<LocalDays>{};
  const auto day = parse_local_date(*text);
  if (!day) return bad_message("date must be a date like 2026-11-23, not " + quoted(*text));
  return std::optional<LocalDays>(*day);
}

/// A visit the user may see; 404 otherwise (a visit of another branch does not exist for
/// them, so ids do not leak across branches).
Checked<rota::VisitIndex> viewable_visit(const rota::Engine& engine, const Principal& who,
                                         std::string_view id) {
  const auto v = engine.find_visit(id);
  if (!v || !may_view_branch(who, branch_id(engine, engine.visit(*v)))) {
    return refusal(ErrorCode::unknown_visit, "visit " + quoted(id) + " is unknown");
  }
  return *v;
}

Checked<rota::AlertIndex> viewable_alert(const rota::Engine& engine, const Principal& who,
                                         std::string_view id) {
  const auto a = engine.find_alert(id);
  if (!a || !may_view_branch(who, branch_id(engine, engine.visit(engine.alert(*a).visit)))) {
    return refusal(ErrorCode::unknown_alert, "alert " + quoted(id) + " is unknown");
  }
  return *a;
}

std::optional<rota::VisitState> visit_state_named(std::string_view name) {
  for (int i = 0; i <= int(rota::VisitState::cancelled); ++i) {
    const auto s = rota::VisitState(i);
    if (rota::to_string(s) == name) return s;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// Routes

struct Context {
  const HttpRequest& request;
  const Principal& who;
  const rota::Engine& engine;
  TimePoint now;
  const ApiLimits& limits;
  const Query& query;
  const std::string& id;
  const Presence* presence;
};

Decision put_rota(const Context& c) {
  if (!may_import(c.who)) return answered(forbidden("only an admin may import a rota"));
  const auto branch = c.query.get("branch");
  if (!branch) return answered(bad_message("branch is missing from the query"));
  const auto date_text = c.query.get("date");
  if (!date_text) return answered(bad_message("date is missing from the query"));
  const auto date = parse_local_date(*date_text);
  if (!date) {
    return answered(bad_message("date must be a date like 2026-11-23, not " + quoted(*date_text)));
  }
  const auto b = c.engine.find_branch(*branch);
  if (!b) {
    return answered(refusal(404, "unknown_branch", "branch " + quoted(*branch) + " is unknown"));
  }
  const std::string_view type = media_type(c.request.content_type);
  const bool csv = iequals(type, "text/csv");
  if (!csv && !iequals(type, "application/json")) {
    std::string m = "a rota must be sent with Content-Type text/csv or application/json";
    if (!type.empty()) m += ", not " + quoted(c.request.content_type);
    return answered(refusal(415, "unsupported_media_type", std::move(m)));
  }
  const TimeZone& zone = c.engine.branch(*b).zone;
  rota::ParsedRota parsed = csv ? rota::parse_rota_csv(c.request.body, zone, *date)
                                : rota::parse_rota_json(c.request.body, zone, *date);
  if (!parsed.ok()) {
    Refusal r =
        refusal(ErrorCode::bad_rota,
                "the rota was refused: " + std::to_string(parsed.issues.size()) + " problem(s)");
    r.details = std::move(parsed.issues);
    return answered(r);
  }
  Decision d;
  d.command = rota::ImportRota{c.engine.branch(*b).id, *date, std::move(parsed.visits), c.who.sub};
  d.route = ApiWrite::import_rota;
  return d;
}

Decision get_visits(const Context& c) {
  auto branches = branches_of(c.engine, c.who, c.query);
  if (refused(branches)) return answered(std::get<Refusal>(branches));
  auto date = date_of(c.query);
  if (refused(date)) return answered(std::get<Refusal>(date));
  std::optional<rota::VisitState> state;
  if (const auto name = c.query.get("state")) {
    state = visit_state_named(*name);
    if (!state) {
      return answered(bad_message(
          "state must be one of scheduled, late, missed, in_progress, overrunning, completed, "
          "no_checkout, cancelled; not " +
          quoted(*name)));
    }
  }
  std::vector<rota::VisitIndex> visits;
  for (const rota::BranchIndex b : std::get<std::vector<rota::BranchIndex>>(branches)) {
    const LocalDays day =
        std::get<std::optional<LocalDays>>(date).value_or(c.engine.branch(b).zone.local_day(c.now));
    for (const rota::VisitIndex v : c.engine.visits_on(b, day)) {
      if (!state || c.engine.visit(v).state == *state) visits.push_back(v);
    }
  }
  std::sort(visits.begin(), visits.end(), [&](rota::VisitIndex a, rota::VisitIndex b) {
    const rota::Visit& x = c.engine.visit(a);
    const rota::Visit& y = c.engine.visit(b);
    return std::tie(x.start, x.id) < std::tie(y.start, y.id);
  });
  std::string body;
  append_visit_list(body, c.engine, visits, c.presence);
  return answered(json_answer(std::move(body)));
}

Decision get_visit(const Context& c) {
  const auto v = viewable_visit(c.engine, c.who, c.id);
  if (refused(v)) return answered(std::get<Refusal>(v));
  std::string body;
  append_visit(body, c.engine, std::get<rota::VisitIndex>(v), c.presence);
  return answered(json_answer(std::move(body)));
}

/// A visit the user may change: 404 when they may not see it, 403 when they may only look.
Checked<rota::VisitIndex> manageable_visit(const Context& c) {
  auto v = viewable_visit(c.engine, c.who, c.id);
  if (refused(v)) return v;
  const std::string& branch = branch_id(c.engine, c.engine.visit(std::get<rota::VisitIndex>(v)));
  if (!may_manage(c.who, branch)) return forbidden("you may not change visits of branch " + branch);
  return v;
}

Decision post_reassign(const Context& c) {
  const auto v = manageable_visit(c);
  if (refused(v)) return answered(std::get<Refusal>(v));
  const auto body = read_object(c.request, false);
  if (refused(body)) return answered(std::get<Refusal>(body));
  const json::object& o = std::get<json::object>(body);
  const json::value* carers = o.if_contains("carers");
  if (carers == nullptr || carers->is_null()) return answered(bad_message("carers is missing"));
  if (!carers->is_array()) {
    return answered(bad_message("carers must be an array of carer ids, not " +
                                std::string(json_kind(*carers))));
  }
  const json::array& list = carers->get_array();
  if (list.empty()) return answered(bad_message("carers must name at least one carer"));
  if (list.size() > c.limits.max_carers) {
    return answered(bad_message("carers names " + std::to_string(list.size()) +
                                " carers; the limit is " + std::to_string(c.limits.max_carers)));
  }
  rota::Reassign command{c.engine.visit(std::get<rota::VisitIndex>(v)).id, {}, c.who.sub};
  const std::size_t max_id = rota::ImportLimits{}.max_field;
  for (const json::value& item : list) {
    if (!item.is_string()) {
      return answered(bad_message("carers must hold strings, not " + std::string(json_kind(item))));
    }
    const json::string& id = item.get_string();
    if (id.empty() || id.size() > max_id) {
      return answered(bad_message("carers holds an id that is empty or longer than " +
                                  std::to_string(max_id) + " bytes"));
    }
    command.carers.emplace_back(id);
  }
  Decision d;
  d.command = std::move(command);
  d.route = ApiWrite::reassign;
  return d;
}

Decision post_cancel(const Context& c) {
  const auto v = manageable_visit(c);
  if (refused(v)) return answered(std::get<Refusal>(v));
  const auto body = read_object(c.request, true);
  if (refused(body)) return answered(std::get<Refusal>(body));
  auto reason =
      read_text(std::get<json::object>(body), "reason", 0, c.limits.max_reason_bytes, false);
  if (refused(reason)) return answered(std::get<Refusal>(reason));
  Decision d;
  d.command = rota::Cancel{c.engine.visit(std::get<rota::VisitIndex>(v)).id,
                           std::get<std::optional<std::string>>(reason).value_or(""), c.who.sub};
  d.route = ApiWrite::cancel;
  return d;
}

/// `GET /api/branches`: the branches the user may view, with name and time zone, so that a
/// board can name them and show times in each branch's zone.
Decision get_branches(const Context& c) {
  std::string body = "{\"branches\":[";
  bool first = true;
  for (const config::Branch& b : c.engine.settings().branches) {
    if (!may_view_branch(c.who, b.id)) continue;
    if (!first) body += ',';
    first = false;
    body += "{\"id\":";
    append_json_string(body, b.id);
    body += ",\"name\":";
    append_json_string(body, b.name);
    body += ",\"timezone\":";
    append_json_string(body, b.timezone);
    body += ",\"manage\":";
    body += may_manage(c.who, b.id) ? "true" : "false";
    body += '}';
  }
  body += "]}";
  return answered(json_answer(std::move(body)));
}

Decision get_alerts(const Context& c) {
  auto branches = branches_of(c.engine, c.who, c.query);
  if (refused(branches)) return answered(std::get<Refusal>(branches));
  bool all = false;
  if (const auto state = c.query.get("state")) {
    if (*state == "all") {
      all = true;
    } else if (*state != "open") {
      return answered(bad_message("state must be open or all, not " + quoted(*state)));
    }
  }
  const auto& covered = std::get<std::vector<rota::BranchIndex>>(branches);
  // `visit=`: one visit's alerts (with state=all, its history).
  std::optional<rota::VisitIndex> only;
  if (const auto visit = c.query.get("visit")) {
    only = c.engine.find_visit(*visit);
    if (!only) return answered(json_answer("{\"alerts\":[]}"));
  }
  std::vector<rota::AlertIndex> alerts;
  const auto consider = [&](rota::AlertIndex i) {
    const rota::Alert& a = c.engine.alert(i);
    if (only && a.visit != *only) return;
    const rota::BranchIndex b = c.engine.visit(a.visit).branch;
    if (std::find(covered.begin(), covered.end(), b) != covered.end()) alerts.push_back(i);
  };
  if (all) {
    for (std::size_t i = 0; i < c.engine.alert_count(); ++i) consider(rota::AlertIndex(i));
  } else {
    // Not every alert ever raised (months of them, on the engine's strand): the open ones.
    for (const rota::AlertIndex i : c.engine.open_alerts()) consider(i);
  }
  std::string body;
  append_alert_list(body, c.engine, alerts, c.presence);
  return answered(json_answer(std::move(body)));
}

/// `GET /api/alerts/{id}`: the alert and its history, oldest first: raised, every
/// notification (who was told what, when), the acknowledgement and the resolution.
Decision get_alert(const Context& c) {
  const auto found = viewable_alert(c.engine, c.who, c.id);
  if (refused(found)) return answered(std::get<Refusal>(found));
  const rota::AlertIndex index = std::get<rota::AlertIndex>(found);
  const rota::Alert& a = c.engine.alert(index);
  struct Entry {
    TimePoint at;
    std::string json;
  };
  std::vector<Entry> history;
  const auto entry = [&](TimePoint at, std::string_view event, std::string_view by,
                         const std::function<void(std::string&)>& more) {
    std::string e = "{\"at\":";
    append_json_string(e, format_rfc3339(at));
    e += ",\"event\":";
    append_json_string(e, event);
    if (!by.empty()) {
      e += ",\"by\":";
      append_json_string(e, by);
    }
    if (more) more(e);
    e += '}';
    history.push_back({at, std::move(e)});
  };
  entry(a.raised_at, "raised", "", [&](std::string& e) {
    e += ",\"severity\":";
    append_json_string(e, rota::to_string(a.severity));
  });
  if (a.acked_at) entry(*a.acked_at, "acknowledged", a.acked_by, nullptr);
  if (a.resolved_at) {
    entry(*a.resolved_at, "resolved", a.resolved_by, [&](std::string& e) {
      e += ",\"resolution\":";
      append_json_string(e, rota::to_string(a.resolution));
    });
  }
  // Last, so that at equal times the transition comes before the notices it caused.
  for (const rota::Notified& n : a.notified) {
    entry(n.at, "notified", "", [&](std::string& e) {
      e += ",\"receiver\":";
      append_json_string(e, n.receiver);
      e += ",\"transition\":";
      append_json_string(e, n.transition);
      e += ",\"level\":" + std::to_string(n.level);
    });
  }
  std::stable_sort(history.begin(), history.end(),
                   [](const Entry& x, const Entry& y) { return x.at < y.at; });
  std::string body = "{\"alert\":";
  append_alert(body, c.engine, index, c.presence);
  body += ",\"history\":[";
  for (std::size_t i = 0; i < history.size(); ++i) {
    if (i > 0) body += ',';
    body += history[i].json;
  }
  body += "]}";
  return answered(json_answer(std::move(body)));
}

template <class Command>
Decision post_alert(const Context& c, ApiWrite route) {
  const auto a = viewable_alert(c.engine, c.who, c.id);
  if (refused(a)) return answered(std::get<Refusal>(a));
  const rota::Alert& alert = c.engine.alert(std::get<rota::AlertIndex>(a));
  const std::string& branch = branch_id(c.engine, c.engine.visit(alert.visit));
  if (!may_manage(c.who, branch)) {
    return answered(forbidden("you may not handle alerts of branch " + branch));
  }
  const auto body = read_object(c.request, true);
  if (refused(body)) return answered(std::get<Refusal>(body));
  auto note = read_text(std::get<json::object>(body), "note", 0, c.limits.max_text_bytes, false);
  if (refused(note)) return answered(std::get<Refusal>(note));
  Decision d;
  d.command =
      Command{alert.id(), c.who.sub, std::get<std::optional<std::string>>(note).value_or("")};
  d.route = route;
  return d;
}

Decision post_carer_message(const Context& c) {
  const auto carer = c.engine.find_carer(c.id);
  // A carer is known to a user through the visits of the branches they see: a carer with
  // none there does not exist for them.
  bool seen = false;
  bool managed = false;
  if (carer) {
    for (const rota::VisitIndex v : c.engine.carer(*carer).visits) {
      const std::string& branch = branch_id(c.engine, c.engine.visit(v));
      seen = seen || may_view_branch(c.who, branch);
      managed = managed || may_manage(c.who, branch);
    }
  }
  if (!seen && !managed) {
    return answered(refusal(404, "unknown_carer", "carer " + quoted(c.id) + " is unknown"));
  }
  if (!managed) {
    return answered(forbidden("you may not message carer " + c.id +
                              ": none of their visits is "
                              "in a branch you manage"));
  }
  const auto body = read_object(c.request, false);
  if (refused(body)) return answered(std::get<Refusal>(body));
  auto text = read_text(std::get<json::object>(body), "text", 1, c.limits.max_text_bytes, true);
  if (refused(text)) return answered(std::get<Refusal>(text));
  Decision d;
  d.message = CarerMessage{c.engine.carer(*carer).id, c.who.name.empty() ? c.who.sub : c.who.name,
                           std::move(*std::get<std::optional<std::string>>(text))};
  return d;
}

// ---------------------------------------------------------------------------------------
// The punctuality report

/// One row of the report: a branch's day, or one carer's part in it.
struct Tally {
  std::uint32_t visits = 0;
  std::uint32_t on_time = 0;
  std::uint32_t late = 0;
  std::uint32_t missed = 0;
  std::uint32_t pending = 0;
  std::uint32_t arrived = 0;  ///< visits with a check-in: mean_late_s is over these
  std::int64_t late_sum_s = 0;

  /// Percent of the visits already decided (on time, late or missed), to 0.1; NaN if none.
  double on_time_pct() const {
    const std::uint32_t decided = on_time + late + missed;
    return decided == 0 ? NAN : std::round(1000.0 * on_time / decided) / 10.0;
  }
  /// Mean lateness of the arrivals in seconds, to 0.1; NaN if nobody arrived.
  double mean_late_s() const {
    return arrived == 0 ? NAN : std::round(10.0 * double(late_sum_s) / arrived) / 10.0;
  }
};

struct Punctuality {
  std::string branch;
  LocalDays date;
  TimePoint as_of;
  Tally total;
  std::uint32_t cancelled = 0;
  std::uint32_t completed = 0;
  std::uint32_t in_progress = 0;
  std::uint32_t short_visits = 0;
  std::map<std::string, Tally> carers;  ///< by carer id
};

std::int64_t seconds_late(TimePoint arrival, TimePoint start) {
  return std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::seconds>(arrival - start).count());
}

Punctuality punctuality(const rota::Engine& engine, rota::BranchIndex b, LocalDays day) {
  Punctuality p;
  p.branch = engine.branch(b).id;
  p.date = day;
  p.as_of = engine.now();
  for (const rota::VisitIndex vi : engine.visits_on(b, day)) {
    const rota::Visit& v = engine.visit(vi);
    if (v.state == rota::VisitState::cancelled) {
      ++p.cancelled;
      continue;
    }
    const config::Thresholds& th = engine.thresholds(v);
    Tally& t = p.total;
    ++t.visits;
    if (!v.check_ins.empty()) {
      ++t.arrived;
      t.late_sum_s += v.late_by_s;
      ++((v.flags & rota::kLateArrival) != 0 ? t.late : t.on_time);
    } else if (v.state == rota::VisitState::missed) {
      ++t.missed;
    } else if (v.state == rota::VisitState::late) {
      ++t.late;
    } else {
      ++t.pending;
    }
    p.completed += v.state == rota::VisitState::completed;
    p.in_progress += v.state == rota::VisitState::in_progress ||
                     v.state == rota::VisitState::overrunning ||
                     v.state == rota::VisitState::no_checkout;
    p.short_visits += (v.flags & rota::kShort) != 0;

    for (const rota::CarerIndex ci : v.carers) {
      Tally& ct = p.carers[engine.carer(ci).id];
      ++ct.visits;
      std::optional<TimePoint> arrival;
      for (const rota::CheckRecord& r : v.check_ins) {
        if (r.carer == ci && (!arrival || r.at < *arrival)) arrival = r.at;
      }
      if (arrival) {
        ++ct.arrived;
        ct.late_sum_s += seconds_late(*arrival, v.start);
        ++(*arrival > v.start + th.late_after ? ct.late : ct.on_time);
      } else if (engine.now() >= v.start + th.missed_after) {
        ++ct.missed;
      } else if (engine.now() >= v.start + th.late_after) {
        ++ct.late;
      } else {
        ++ct.pending;
      }
    }
  }
  return p;
}

void append_counts(std::string& out, const Tally& t) {
  out += "\"visits\":" + std::to_string(t.visits);
  out += ",\"on_time\":" + std::to_string(t.on_time);
  out += ",\"late\":" + std::to_string(t.late);
  out += ",\"missed\":" + std::to_string(t.missed);
  out += ",\"pending\":" + std::to_string(t.pending);
}

std::string punctuality_json(const Punctuality& p) {
  std::string out = "{\"branch\":";
  append_json_string(out, p.branch);
  out += ",\"date\":";
  append_json_string(out, format_local_date(p.date));
  out += ",\"as_of\":";
  append_json_string(out, format_rfc3339(p.as_of));
  out += ',';
  append_counts(out, p.total);
  out += ",\"cancelled\":" + std::to_string(p.cancelled);
  out += ",\"completed\":" + std::to_string(p.completed);
  out += ",\"in_progress\":" + std::to_string(p.in_progress);
  out += ",\"short\":" + std::to_string(p.short_visits);
  out += ",\"on_time_pct\":";
  append_json_number(out, p.total.on_time_pct());
  out += ",\"mean_late_s\":";
  append_json_number(out, p.total.mean_late_s());
  out += ",\"carers\":[";
  bool first = true;
  for (const auto& [carer, t] : p.carers) {
    if (!first) out += ',';
    first = false;
    out += "{\"carer\":";
    append_json_string(out, carer);
    out += ',';
    append_counts(out, t);
    out += ",\"on_time_pct\":";
    append_json_number(out, t.on_time_pct());
    out += ",\"mean_late_s\":";
    append_json_number(out, t.mean_late_s());
    out += '}';
  }
  out += "]}";
  return out;
}

/// One CSV field (RFC 4180 quoting). A text that a spreadsheet would run as a formula
/// (= + - @ first) gets a leading apostrophe: carer ids come from imported files.
void append_csv_field(std::string& out, std::string_view text) {
  std::string field;
  if (!text.empty() && std::string_view("=+-@\t\r").find(text.front()) != std::string_view::npos) {
    field += '\'';
  }
  field += text;
  if (field.find_first_of(",\"\r\n") == std::string::npos) {
    out += field;
    return;
  }
  out += '"';
  for (const char ch : field) {
    if (ch == '"') out += '"';
    out += ch;
  }
  out += '"';
}

void append_csv_row(std::string& out, std::string_view carer, const Tally& t) {
  const auto number = [&](double x) {
    out += ',';
    if (std::isfinite(x)) append_json_number(out, x);
  };
  append_csv_field(out, carer);
  for (const std::uint32_t n : {t.visits, t.on_time, t.late, t.missed, t.pending}) {
    out += ',' + std::to_string(n);
  }
  number(t.on_time_pct());
  number(t.mean_late_s());
  out += "\r\n";
}

std::string punctuality_csv(const Punctuality& p) {
  std::string out = "carer,visits,on_time,late,missed,pending,on_time_pct,mean_late_s\r\n";
  for (const auto& [carer, t] : p.carers) append_csv_row(out, carer, t);
  append_csv_row(out, "total", p.total);
  return out;
}

/// A file name made of safe characters only: branch ids are configuration, but a header
/// is no place to find out otherwise.
std::string safe_file_name(std::string_view name) {
  std::string out;
  for (const char ch : name) {
    const bool safe = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
    out += safe ? ch : '_';
  }
  return out;
}

Decision get_punctuality(const Context& c) {
  const auto id = c.query.get("branch");
  if (!id) return answered(bad_message("branch is missing from the query"));
  const auto b = viewable_branch(c.engine, c.who, *id);
  if (refused(b)) return answered(std::get<Refusal>(b));
  const auto date = date_of(c.query);
  if (refused(date)) return answered(std::get<Refusal>(date));
  const rota::BranchIndex branch = std::get<rota::BranchIndex>(b);
  const LocalDays day = std::get<std::optional<LocalDays>>(date).value_or(
      c.engine.branch(branch).zone.local_day(c.now));
  const Punctuality p = punctuality(c.engine, branch, day);
  if (!accepts_csv(c.request.accept)) return answered(json_answer(punctuality_json(p)));
  HttpAnswer a;
  a.content_type = "text/csv; charset=utf-8";
  a.body = punctuality_csv(p);
  a.headers.emplace_back("Content-Disposition", "attachment; filename=\"punctuality-" +
                                                    safe_file_name(p.branch) + "-" +
                                                    format_local_date(day) + ".csv\"");
  return answered(std::move(a));
}

// ---------------------------------------------------------------------------------------

Decision decide_request(const HttpRequest& request, const Principal& who,
                        const rota::Engine& engine, TimePoint now, const ApiLimits& limits,
                        const Presence* presence) {
  const std::size_t question = request.target.find('?');
  const std::string_view path = request.target.substr(0, question);
  const std::string_view query_text =
      question == std::string_view::npos ? std::string_view{} : request.target.substr(question + 1);

  // Segments after "/api", each decoded on its own so that an id may hold an escaped '/'.
  std::vector<std::string> segments;
  if (path != "/api" && !path.starts_with("/api/")) return answered(not_found(path));
  std::string_view rest = path.substr(4);
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the '/'
    const std::size_t slash = rest.find('/');
    auto segment = percent_decode(rest.substr(0, slash), false);
    if (!segment || segment->empty()) return answered(not_found(path));
    segments.push_back(std::move(*segment));
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  }
  const auto route = match(segments);
  if (!route) return answered(not_found(path));
  if (who.is_carer()) {
    return answered(forbidden("the HTTP API is for office users; carers use /ws/carer"));
  }
  if (request.method != route->allow) {
    Refusal r = refusal(405, "method_not_allowed",
                        std::string(route->allow) + " is the only method of " + std::string(path));
    r.allow = route->allow;
    return answered(r);
  }
  const auto query = Query::parse(query_text);
  if (refused(query)) return answered(std::get<Refusal>(query));

  const Context c{request, who, engine, now, limits, std::get<Query>(query), route->id, presence};
  switch (route->route) {
    case Route::rota:
      return put_rota(c);
    case Route::visits:
      return get_visits(c);
    case Route::visit:
      return get_visit(c);
    case Route::reassign:
      return post_reassign(c);
    case Route::cancel:
      return post_cancel(c);
    case Route::alerts:
      return get_alerts(c);
    case Route::alert:
      return get_alert(c);
    case Route::ack:
      return post_alert<rota::AckAlert>(c, ApiWrite::ack_alert);
    case Route::resolve:
      return post_alert<rota::ResolveAlert>(c, ApiWrite::resolve_alert);
    case Route::punctuality:
      return get_punctuality(c);
    case Route::carer_message:
      return post_carer_message(c);
    case Route::branches:
      return get_branches(c);
  }
  return answered(not_found(path));
}

HttpAnswer internal_error() {
  HttpAnswer a;
  a.status = 500;
  a.body = R"({"error":{"code":"internal","message":"internal error","details":[]}})";
  return a;
}

}  // namespace

Decision decide(const HttpRequest& request, const Principal& who, const rota::Engine& engine,
                TimePoint now, const ApiLimits& limits, const Presence* presence) {
  try {
    return decide_request(request, who, engine, now, limits, presence);
  } catch (const std::exception&) {
    // Out of memory, or a bug: the request fails, the server carries on.
    return answered(internal_error());
  }
}

HttpAnswer answer(ApiWrite route, const rota::Reply& reply, const rota::Engine& engine,
                  const Presence* presence) {
  try {
    if (reply.status == rota::Status::rejected) {
      const Error error =
          reply.error.value_or(Error{ErrorCode::internal, "the command was refused"});
      Refusal r = refusal(error);
      r.details = reply.issues;
      return to_answer(r);
    }
    std::string body;
    switch (route) {
      case ApiWrite::import_rota: {
        const rota::ImportCounts& n = reply.counts;
        body = "{\"imported\":" + std::to_string(n.imported) +
               ",\"updated\":" + std::to_string(n.updated) +
               ",\"cancelled\":" + std::to_string(n.cancelled) +
               ",\"unchanged\":" + std::to_string(n.unchanged) +
               ",\"kept\":" + std::to_string(n.kept) + "}";
        break;
      }
      case ApiWrite::reassign:
      case ApiWrite::cancel:
        if (reply.visit >= engine.visit_count()) return internal_error();
        append_visit(body, engine, reply.visit, presence);
        break;
      case ApiWrite::ack_alert:
      case ApiWrite::resolve_alert:
        if (reply.alert >= engine.alert_count()) return internal_error();
        append_alert(body, engine, reply.alert, presence);
        break;
    }
    return json_answer(std::move(body));
  } catch (const std::exception&) {
    return internal_error();
  }
}

HttpAnswer error_answer(const Error& error) { return to_answer(refusal(error)); }

unsigned http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::bad_json:
    case ErrorCode::bad_message:
    case ErrorCode::bad_rota:
    case ErrorCode::unknown_type:  // a client's mistake, like bad_message
      return 400;
    case ErrorCode::unauthenticated:
      return 401;
    case ErrorCode::forbidden:
    case ErrorCode::not_assigned:
      return 403;
    case ErrorCode::unknown_visit:
    case ErrorCode::unknown_alert:
      return 404;
    case ErrorCode::conflict:
    case ErrorCode::already_checked_in:
    case ErrorCode::not_checked_in:
    case ErrorCode::visit_cancelled:
    case ErrorCode::outside_visit_window:
    case ErrorCode::off_shift:
    case ErrorCode::too_old:
      return 409;
    case ErrorCode::rate_limited:
      return 429;
    case ErrorCode::internal:
      return 500;
  }
  return 500;
}

}  // namespace visitd::websocket
