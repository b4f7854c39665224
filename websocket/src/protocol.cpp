#include "visitd/websocket/protocol.hpp"

#include <algorithm>
#include <boost/json/error.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "visitd/core/json_kind.hpp"
#include "visitd/core/zone.hpp"
#include "visitd/geo/geodesic.hpp"

namespace visitd::websocket {
namespace {

namespace json = boost::json;
using rota::kNoIndex;

// ---------------------------------------------------------------------------------------
// UTF-8

/// How many leading bytes of `s` are well-formed UTF-8.
std::size_t utf8_valid_prefix(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t n = utf8_sequence(s.substr(i));
    if (n == 0) break;
    i += n;
  }
  return i;
}

/// At most `max` bytes of `s`, cut on a character boundary, for quoting input in messages.
std::string_view clip(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end);
}

// ---------------------------------------------------------------------------------------
// Writing

void append_integer(std::string& out, std::int64_t value) {
  std::array<char, 24> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  out.append(buffer.data(), result.ptr);
}

void append_time(std::string& out, TimePoint t) {
  out += '"';
  out += format_rfc3339(t);  // digits, '-', ':', 'T', 'Z', '.': nothing to escape
  out += '"';
}

/// Writes one JSON object member by member, placing the commas.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  /// Writes `"name":` and returns the buffer for the value. Names are our own literals.
  std::string& key(std::string_view name) {
    out_ += first_ ? "\"" : ",\"";
    first_ = false;
    out_ += name;
    out_ += "\":";
    return out_;
  }
  void string(std::string_view name, std::string_view value) {
    append_json_string(key(name), value);
  }
  /// A string, or null when empty.
  void string_or_null(std::string_view name, std::string_view value) {
    if (value.empty()) {
      null(name);
    } else {
      string(name, value);
    }
  }
  void number(std::string_view name, double value) { append_json_number(key(name), value); }
  void integer(std::string_view name, std::int64_t value) { append_integer(key(name), value); }
  void boolean(std::string_view name, bool value) { key(name) += value ? "true" : "false"; }
  void null(std::string_view name) { key(name) += "null"; }
  void time(std::string_view name, TimePoint t) { append_time(key(name), t); }
  void time(std::string_view name, const std::optional<TimePoint>& t) {
    if (t) {
      time(name, *t);
    } else {
      null(name);
    }
  }
  void end() { out_ += '}'; }

 private:
  std::string& out_;
  bool first_ = true;
};

void append_flags(std::string& out, rota::Flags flags) {
  out += '[';
  bool first = true;
  for (const std::string_view name : rota::flag_names(flags)) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, name);
  }
  out += ']';
}

void append_check_record(std::string& out, const rota::Engine& engine, const rota::CheckRecord& r,
                         bool with_note) {
  ObjectWriter o(out);
  o.string("carer", engine.carer(r.carer).id);
  o.time("at", r.at);
  o.time("received_at", r.received_at);
  if (r.fix) {
    o.number("lat", r.fix->position.lat);
    o.number("lon", r.fix->position.lon);
    o.number("accuracy", r.fix->accuracy_m);
  } else {
    o.null("lat");
    o.null("lon");
    o.null("accuracy");
  }
  if (r.distance_m >= 0) {
    // Decimetres: finer than any phone's fix, and what a person reads on the board.
    o.number("distance_m", std::round(r.distance_m * 10) / 10);
  } else {
    o.null("distance_m");
  }
  o.string("method", rota::to_string(r.method));
  if (with_note) o.string("note", r.note);
  o.end();
}

template <class Index, class Write>
void append_array(std::string& out, std::span<const Index> items, Write write) {
  out += '[';
  bool first = true;
  for (const Index i : items) {
    if (!first) out += ',';
    first = false;
    write(i);
  }
  out += ']';
}

// ---------------------------------------------------------------------------------------
// Summaries

std::string hhmm(const rota::Engine& engine, const rota::Visit& v, TimePoint t) {
  return engine.branch(v.branch).zone.format_local(t, "%H:%M");
}

/// `12 min`, `1 h`, `1 h 30 min`.
std::string minutes_text(Duration d) {
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(d).count();
  if (minutes < 60) return std::to_string(minutes) + " min";
  std::string text = std::to_string(minutes / 60) + " h";
  if (minutes % 60 != 0) text += " " + std::to_string(minutes % 60) + " min";
  return text;
}

/// `850 m`, `3.4 km`.
std::string distance_text(double metres) {
  if (metres < 1000) return std::to_string(std::lround(metres)) + " m";
  std::array<char, 32> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%.1f km", metres / 1000);
  return buffer.data();
}

/// `; expected at 09:20 (traffic)` when the carer said they are running late.
std::string eta_text(const rota::Engine& engine, const rota::Visit& v) {
  if (!v.eta) return {};
  std::string text = "; expected at " + hhmm(engine, v, *v.eta);
  if (!v.eta_reason.empty()) text += " (" + v.eta_reason + ")";
  return text;
}

/// The carer whose phone matters for a visit: the first assigned carer not yet there, while
/// nobody has finished it; none once everyone is in or the visit is over.
rota::CarerIndex awaited_carer(const rota::Visit& v) {
  if (v.state == rota::VisitState::completed || v.state == rota::VisitState::cancelled) {
    return kNoIndex;
  }
  for (const rota::CarerIndex c : v.carers) {
    if (!v.checked_in(c)) return c;
  }
  return kNoIndex;
}

std::optional<TimePoint> offline_since(const rota::Engine& engine, rota::CarerIndex carer,
                                       const Presence* presence) {
  if (presence == nullptr || carer == kNoIndex) return std::nullopt;
  return presence->offline_since(engine.carer(carer).id);
}

/// Whether an alert is about a carer not being where they should be: the phone's silence
/// tells the office something.
bool about_arrival(const rota::Alert& a) {
  return a.open() && (a.phase == rota::AlertPhase::start || a.phase == rota::AlertPhase::double_up);
}

/// The at-risk estimate as of the engine's time: a carer still at an overrunning visit
/// leaves no earlier than now (the engine estimates again only when that changes a decision).
std::optional<TimePoint> expected_at(const rota::Engine& engine, const rota::Visit& v) {
  if (v.risk.basis == rota::RiskBasis::none) return std::nullopt;
  if (v.risk.basis == rota::RiskBasis::overrunning) {
    return std::max(v.risk.eta, engine.now() + v.risk.drive);
  }
  return v.risk.eta;
}

std::optional<TimePoint> alert_eta(const rota::Engine& engine, const rota::Visit& v,
                                   const rota::Alert& a) {
  if (a.phase != rota::AlertPhase::start) return std::nullopt;
  if (const auto expected = expected_at(engine, v)) return expected;
  return v.eta;
}

std::string geofence_text(const rota::Engine& engine, const rota::Visit& v, const rota::Alert& a,
                          const std::string& who, const std::string& client_name) {
  const rota::Client& client = engine.client(v.client);
  const rota::CheckRecord* record = nullptr;
  for (const auto& r : v.check_ins) {
    if (r.carer == a.carer) {
      record = &r;
      break;
    }
  }
  // The alert covers a fix outside the geofence and a tag that is not the client's; say
  // which one this carer's check-in showed.
  bool outside = false;
  if (record != nullptr && record->fix) {
    const double radius = client.geofence_m.value_or(engine.thresholds(v).geofence_m);
    outside =
        geo::check_geofence(client.location, radius, record->fix->position, record->fix->accuracy_m)
            .fence == geo::Fence::outside;
  }
  const bool tag = record != nullptr && (v.flags & rota::kTagMismatch) != 0 &&
                   (record->method == rota::Method::nfc || record->method == rota::Method::qr);
  const bool far = record != nullptr && record->distance_m >= 0 && (outside || !tag);
  std::string text = who + " checked in ";
  if (far) {
    text += distance_text(record->distance_m) + " from " + client_name;
    if (tag) text += ", with a tag that is not the client's";
  } else if (tag) {
    text += "at " + client_name + " with a tag that is not the client's";
  } else {
    text += "away from " + client_name;
  }
  return text;
}

// ---------------------------------------------------------------------------------------
// Reading client messages

Error bad_message(std::string message) { return Error{ErrorCode::bad_message, std::move(message)}; }

/// Every field a client message of any type may have.
enum class Field : std::uint8_t {
  type,
  id,
  visit,
  at,
  lat,
  lon,
  accuracy,
  method,
  tag,
  note,
  eta,
  reason,
  token,
  alert,
};
constexpr std::array<std::string_view, 14> kFieldNames = {
    "type",   "id",  "visit", "at",  "lat",    "lon",   "accuracy",
    "method", "tag", "note",  "eta", "reason", "token", "alert"};
static_assert(kFieldNames.size() == std::size_t(Field::alert) + 1);

std::string name_of(Field f) { return std::string(kFieldNames[std::size_t(f)]); }

/// The field a member's key names, if the protocol defines it. By length first: most keys
/// are then decided by one comparison.
std::optional<Field> field_named(std::string_view key) {
  const auto among = [&](std::initializer_list<Field> candidates) -> std::optional<Field> {
    for (const Field f : candidates) {
      if (key == kFieldNames[std::size_t(f)]) return f;
    }
    return std::nullopt;
  };
  switch (key.size()) {
    case 2:
      return among({Field::id, Field::at});
    case 3:
      return among({Field::lat, Field::lon, Field::tag, Field::eta});
    case 4:
      return among({Field::type, Field::note});
    case 5:
      return among({Field::visit, Field::token, Field::alert});
    case 6:
      return among({Field::method, Field::reason});
    case 8:
      return among({Field::accuracy});
    default:
      return std::nullopt;
  }
}

/// "note must be a string of at most 4096 bytes", for a string field's faults.
std::string string_rule(Field name, std::size_t min, std::size_t max) {
  std::string rule = name_of(name) + " must be a string";
  if (max == std::numeric_limits<std::size_t>::max()) {
    rule += " of at least " + std::to_string(min) + " byte" + (min == 1 ? "" : "s");
  } else if (min == 0) {
    rule += " of at most " + std::to_string(max) + " bytes";
  } else {
    rule += " of " + std::to_string(min) + " to " + std::to_string(max) + " bytes";
  }
  return rule;
}

/// Reads the fields of one message object. The first fault wins: once one is found, later
/// reads return empty values and the caller reports that fault.
class FieldReader {
 public:
  /// Sorts the object's members into the fields of the protocol in one pass; the rest are
  /// ignored. (One pass, rather than a lookup in the object per field read: a message's
  /// fields are read a dozen times and the lookups showed in profiles.)
  explicit FieldReader(const json::object& object) {
    for (const auto& member : object) {
      if (member.value().is_null()) continue;  // null means "not given"
      if (const auto f = field_named(member.key())) fields_[std::size_t(*f)] = &member.value();
    }
  }

  [[nodiscard]] bool failed() const { return fault_.has_value(); }
  [[nodiscard]] Error fault() const { return *fault_; }

  /// The field, or nullptr when it is absent or null (both mean "not given").
  [[nodiscard]] const json::value* find(Field f) const { return fields_[std::size_t(f)]; }
  [[nodiscard]] bool has(Field f) const { return find(f) != nullptr; }

  void fail(std::string message) {
    if (!fault_) fault_ = bad_message(std::move(message));
  }

  /// A string of min..max bytes; "" when absent (a fault too when required).
  std::string text(Field name, std::size_t min, std::size_t max, bool required,
                   std::string_view missing = {}) {
    if (failed()) return {};
    const json::value* v = find(name);
    if (v == nullptr) {
      if (required) fail(missing.empty() ? name_of(name) + " is missing" : std::string(missing));
      return {};
    }
    if (!v->is_string()) {
      fail(string_rule(name, min, max) + ", not " + std::string(json_kind(*v)));
      return {};
    }
    const json::string& s = v->get_string();
    if (s.size() < min || s.size() > max) {
      fail(string_rule(name, min, max) + "; it has " + std::to_string(s.size()));
      return {};
    }
    return std::string(s);
  }

  std::optional<TimePoint> time(Field name) {
    if (failed()) return std::nullopt;
    const json::value* v = find(name);
    if (v == nullptr) {
      fail(name_of(name) + " is missing");
      return std::nullopt;
    }
    const auto rule = [&] {
      return name_of(name) + " must be an RFC 3339 time with an offset, e.g. 2026-11-23T09:02:10Z";
    };
    if (!v->is_string()) {
      fail(rule() + ", not " + std::string(json_kind(*v)));
      return std::nullopt;
    }
    const auto t = parse_rfc3339(v->get_string());
    if (!t) fail(rule());
    return t;
  }

  /// A finite number in [min, max]. Integers are numbers too. JSON has no NaN; a literal
  /// too large for a double (1e400) reads as infinite and is out of range.
  double number(Field name, double min, double max, std::string_view rule) {
    if (failed()) return 0;
    const json::value* v = find(name);
    if (v == nullptr) {
      fail(name_of(name) + " is missing");
      return 0;
    }
    double d = 0;
    if (v->is_double()) {
      d = v->get_double();
    } else if (v->is_int64()) {
      d = static_cast<double>(v->get_int64());
    } else if (v->is_uint64()) {
      d = static_cast<double>(v->get_uint64());
    } else {
      fail(std::string(rule) + ", not " + std::string(json_kind(*v)));
      return 0;
    }
    if (!std::isfinite(d) || d < min || d > max) fail(std::string(rule));
    return d;
  }

  rota::Method method() {
    if (failed()) return rota::Method::gps;
    const json::value* v = find(Field::method);
    if (v == nullptr) return rota::Method::gps;  // what phones without NFC or QR send
    const auto m = v->is_string() ? rota::method_from_string(v->get_string()) : std::nullopt;
    if (!m) fail("method must be one of gps, nfc, qr, manual");
    return m.value_or(rota::Method::gps);
  }

  /// lat, lon and accuracy: all three or none. `needed_by` says who requires them
  /// ("method gps"), or is empty when they are optional.
  std::optional<rota::Fix> fix(std::string_view needed_by) {
    if (failed()) return std::nullopt;
    static constexpr std::array<Field, 3> kParts = {Field::lat, Field::lon, Field::accuracy};
    std::size_t given = 0;
    std::optional<Field> absent;
    for (const Field part : kParts) {
      if (has(part)) {
        ++given;
      } else if (!absent) {
        absent = part;
      }
    }
    if (given == 0 && needed_by.empty()) return std::nullopt;
    if (given == 0) {
      fail("lat is missing: " + std::string(needed_by) + " needs lat, lon and accuracy");
      return std::nullopt;
    }
    if (given < kParts.size()) {
      fail(name_of(*absent) + " is missing: lat, lon and accuracy go together");
      return std::nullopt;
    }
    rota::Fix f;
    f.position.lat = number(Field::lat, -90, 90, "lat must be a number between -90 and 90");
    f.position.lon = number(Field::lon, -180, 180, "lon must be a number between -180 and 180");
    f.accuracy_m = number(Field::accuracy, 0, kMaxAccuracyM,
                          "accuracy must be a number of metres from 0 to 100000");
    if (failed()) return std::nullopt;
    return f;
  }

 private:
  std::array<const json::value*, kFieldNames.size()> fields_{};
  std::optional<Error> fault_;
};

std::string event_id(FieldReader& r) { return r.text(Field::id, 1, kMaxEventIdBytes, true); }
std::string visit_id(FieldReader& r) { return r.text(Field::visit, 1, kMaxVisitIdBytes, true); }

/// The presence proof shared by check-in and check-out: method, fix, tag.
struct ArrivalProof {
  rota::Method method = rota::Method::gps;
  std::optional<rota::Fix> fix;
  std::string tag;
};

ArrivalProof arrival_proof(FieldReader& r) {
  ArrivalProof p;
  p.method = r.method();
  const bool by_tag = p.method == rota::Method::nfc || p.method == rota::Method::qr;
  const std::string needed_by = by_tag ? "" : "method " + std::string(rota::to_string(p.method));
  p.fix = r.fix(needed_by);
  if (by_tag) {
    p.tag = r.text(Field::tag, 1, kMaxTagBytes, true,
                   "tag is missing: method " + std::string(rota::to_string(p.method)) +
                       " needs the tag read at the door");
  } else {
    p.tag = r.text(Field::tag, 0, kMaxTagBytes, false);
  }
  return p;
}

Result<Message> finish(FieldReader& r, rota::Command command) {
  if (r.failed()) return r.fault();
  return Message{std::move(command)};
}

Result<Message> read_check_in(FieldReader& r, std::string_view carer) {
  rota::CheckIn c;
  c.event_id = event_id(r);
  c.carer = std::string(carer);
  c.visit = visit_id(r);
  const auto at = r.time(Field::at);
  ArrivalProof p = arrival_proof(r);
  if (r.failed()) return r.fault();
  c.at = *at;
  c.fix = p.fix;
  c.method = p.method;
  c.tag = std::move(p.tag);
  return finish(r, std::move(c));
}

Result<Message> read_check_out(FieldReader& r, std::string_view carer) {
  rota::CheckOut c;
  c.event_id = event_id(r);
  c.carer = std::string(carer);
  c.visit = visit_id(r);
  const auto at = r.time(Field::at);
  ArrivalProof p = arrival_proof(r);
  c.note = r.text(Field::note, 0, kMaxNoteBytes, false);
  if (r.failed()) return r.fault();
  c.at = *at;
  c.fix = p.fix;
  c.method = p.method;
  c.tag = std::move(p.tag);
  return finish(r, std::move(c));
}

Result<Message> read_location(FieldReader& r, std::string_view carer) {
  rota::LocationPing c;
  c.event_id = event_id(r);
  c.carer = std::string(carer);
  const auto at = r.time(Field::at);
  const auto fix = r.fix("a location ping");
  if (r.failed()) return r.fault();
  c.at = *at;
  c.fix = *fix;
  return finish(r, std::move(c));
}

Result<Message> read_running_late(FieldReader& r, std::string_view carer) {
  rota::RunningLate c;
  c.event_id = event_id(r);
  c.carer = std::string(carer);
  c.visit = visit_id(r);
  const auto eta = r.time(Field::eta);
  c.reason = r.text(Field::reason, 0, kMaxReasonBytes, false);
  if (r.failed()) return r.fault();
  c.eta = *eta;
  return finish(r, std::move(c));
}

template <class AlertCommand>
Result<Message> read_alert_command(FieldReader& r, std::string_view user) {
  AlertCommand c;
  c.alert = r.text(Field::alert, 1, kMaxAlertIdBytes, true);
  c.by = std::string(user);
  c.note = r.text(Field::note, 0, kMaxNoteBytes, false);
  return finish(r, std::move(c));
}

Result<Message> read_auth(FieldReader& r) {
  AuthMessage m;
  m.token = r.text(Field::token, 1, std::numeric_limits<std::size_t>::max(), true);
  if (r.failed()) return r.fault();
  return Message{std::move(m)};
}

json::parse_options parse_options() {
  json::parse_options options;
  options.max_depth = kMaxDepth;
  // Strict JSON: no comments, no trailing commas, UTF-8 only (the defaults, said aloud).
  options.allow_comments = false;
  options.allow_trailing_commas = false;
  options.allow_invalid_utf8 = false;
  return options;
}

Error bad_json(std::string message) { return Error{ErrorCode::bad_json, std::move(message)}; }

Error parse_failure(std::string_view text, json::error_code ec, std::size_t at) {
  const std::size_t valid = utf8_valid_prefix(text);
  if (valid < text.size() && valid <= at) {
    return bad_json("the message is not valid UTF-8 (byte " + std::to_string(valid) + ")");
  }
  if (ec == json::error::too_deep) {
    return bad_json("the message is nested more than " + std::to_string(kMaxDepth) +
                    " levels deep");
  }
  return bad_json("the message is not valid JSON: " + ec.message() + " at byte " +
                  std::to_string(at));
}

}  // namespace

// ---------------------------------------------------------------------------------------
// MessageParser

std::string_view to_string(Channel channel) {
  return channel == Channel::carer ? "/ws/carer" : "/ws/board";
}

MessageParser::MessageParser(Channel channel)
    : document_buffer_{},
      stack_buffer_{},
      parser_(json::storage_ptr(), parse_options(), stack_buffer_.data(), stack_buffer_.size()),
      channel_(channel) {}

Parsed MessageParser::parse(std::string_view text, std::string_view user) {
  // The previous document is gone (each parse destroys its own); the parser lets go of any
  // half-built one before its memory goes too.
  parser_.reset();
  document_memory_.emplace(document_buffer_.data(), document_buffer_.size());
  parser_.reset(json::storage_ptr(&*document_memory_));
  json::error_code ec;
  const std::size_t used = parser_.write(text.data(), text.size(), ec);
  if (ec) return Parsed{parse_failure(text, ec, used), std::nullopt};
  const json::value document = parser_.release();

  if (!document.is_object()) {
    return Parsed{
        bad_json("the message must be a JSON object, not " + std::string(json_kind(document))),
        std::nullopt};
  }

  // Fields a message does not define are ignored rather than refused: a phone app released
  // with a newer field must still be able to talk to an older daemon.
  FieldReader reader(document.get_object());

  std::optional<std::string> id;
  if (const json::value* v = reader.find(Field::id); v != nullptr && v->is_string()) {
    const json::string& s = v->get_string();
    if (!s.empty() && s.size() <= kMaxEventIdBytes) id.emplace(s);
  }

  const json::value* type = reader.find(Field::type);
  if (type == nullptr) {
    return Parsed{bad_message("type is missing"), std::move(id)};
  }
  if (!type->is_string()) {
    return Parsed{bad_message("type must be a string, not " + std::string(json_kind(*type))),
                  std::move(id)};
  }
  const std::string_view name = type->get_string();

  std::optional<Result<Message>> message;
  if (name == "auth") {
    message = read_auth(reader);
  } else if (channel_ == Channel::carer) {
    if (name == "check_in") {
      message = read_check_in(reader, user);
    } else if (name == "check_out") {
      message = read_check_out(reader, user);
    } else if (name == "location") {
      message = read_location(reader, user);
    } else if (name == "running_late") {
      message = read_running_late(reader, user);
    }
  } else {
    if (name == "ack_alert") {
      message = read_alert_command<rota::AckAlert>(reader, user);
    } else if (name == "resolve_alert") {
      message = read_alert_command<rota::ResolveAlert>(reader, user);
    }
  }
  if (!message) {
    std::string m = "unknown message type \"";
    m += clip(name, 64);
    m += "\"; ";
    m += to_string(channel_);
    m += channel_ == Channel::carer ? " takes auth, check_in, check_out, location, running_late"
                                    : " takes auth, ack_alert, resolve_alert";
    return Parsed{Error{ErrorCode::unknown_type, std::move(m)}, std::move(id)};
  }
  return Parsed{std::move(*message), std::move(id)};
}

// ---------------------------------------------------------------------------------------
// Building blocks

void append_json_number(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  std::array<char, 32> buffer{};
  // Shortest text that reads back as the same double: 51.5014, not 51.501399999999997.
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  out.append(buffer.data(), result.ptr);
}

// ---------------------------------------------------------------------------------------
// Server messages

void append_ack(std::string& out, std::string_view event_id, const rota::Reply& reply,
                const rota::Engine& engine) {
  assert(reply.status == rota::Status::accepted || reply.status == rota::Status::duplicate);
  ObjectWriter o(out);
  o.string("type", "ack");
  o.string("id", event_id);
  o.string("status", reply.status == rota::Status::duplicate ? "duplicate" : "accepted");
  if (reply.visit != kNoIndex) {
    o.string("visit", engine.visit(reply.visit).id);
    o.string("state", rota::to_string(reply.state));
    append_flags(o.key("flags"), reply.flags);
  } else {
    o.null("visit");
    o.null("state");
    o.key("flags") += "[]";
  }
  o.end();
}

void append_error(std::string& out, std::optional<std::string_view> id, const Error& error) {
  ObjectWriter o(out);
  o.string("type", "error");
  if (id) {
    o.string("id", *id);
  } else {
    o.null("id");
  }
  o.string("code", to_string(error.code));
  o.string("message", error.message);
  o.end();
}

namespace {

std::string risk_reason(const rota::Engine& engine, const rota::Visit& v) {
  const rota::Risk& r = v.risk;
  const auto from = [&] { return engine.client(engine.visit(r.from).client).name + "'s"; };
  const std::string drive = "; " + minutes_text(r.drive) + " drive";
  switch (r.basis) {
    case rota::RiskBasis::none:
      return {};
    case rota::RiskBasis::stated: {
      std::string text = "said running late, expected at " + hhmm(engine, v, r.eta);
      if (!v.eta_reason.empty()) text += " (" + v.eta_reason + ")";
      return text;
    }
    case rota::RiskBasis::location:
      return "last located at " + hhmm(engine, v, r.since) + ", " + minutes_text(r.drive) +
             " drive away";
    case rota::RiskBasis::left:
      return "left " + from() + " at " + hhmm(engine, v, r.since) + drive;
    case rota::RiskBasis::in_visit:
      return "at " + from() + " until " + hhmm(engine, v, r.since) + drive;
    case rota::RiskBasis::overrunning:
      return "still at " + from() + ", visit overrunning by " +
             minutes_text(std::max(Duration{0}, engine.now() - r.since)) + drive;
  }
  return {};
}

}  // namespace

void append_visit(std::string& out, const rota::Engine& engine, rota::VisitIndex index,
                  const Presence* presence) {
  const rota::Visit& v = engine.visit(index);
  const rota::Client& client = engine.client(v.client);
  ObjectWriter o(out);
  o.string("id", v.id);
  o.string("branch", engine.branch(v.branch).id);
  {
    ObjectWriter c(o.key("client"));
    c.string("id", client.id);
    c.string("name", client.name);
    c.number("lat", client.location.lat);
    c.number("lon", client.location.lon);
    c.end();
  }
  append_array(o.key("carers"), std::span<const rota::CarerIndex>(v.carers),
               [&](rota::CarerIndex c) { append_json_string(out, engine.carer(c).id); });
  o.time("start", v.start);
  o.time("end", v.end);
  o.string("type", v.type);
  o.boolean("time_critical", v.time_critical);
  o.string("state", rota::to_string(v.state));
  append_flags(o.key("flags"), v.flags);
  for (const bool outs : {false, true}) {
    const auto& records = outs ? v.check_outs : v.check_ins;
    std::string& a = o.key(outs ? "check_outs" : "check_ins");
    a += '[';
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (i != 0) a += ',';
      append_check_record(a, engine, records[i], outs);
    }
    a += ']';
  }
  o.integer("late_by_s", v.late_by_s);
  o.string("notes", v.notes);
  o.time("eta", v.eta);
  o.string("eta_reason", v.eta_reason);
  o.string("cancel_reason", v.cancel_reason);
  o.time("expected_at", expected_at(engine, v));
  if (v.cause != rota::LateCause::none) {
    o.string("late_cause", rota::to_string(v.cause));
  } else {
    o.null("late_cause");
  }
  o.time("phone_offline_since", offline_since(engine, awaited_carer(v), presence));
  // Where each of its carers was last located, for the office: only carers on shift now.
  std::string& seen = o.key("carer_locations");
  seen += '[';
  bool first = true;
  for (const rota::CarerIndex c : v.carers) {
    const auto sighting = engine.last_seen(c, engine.now());
    if (!sighting) continue;
    if (!first) seen += ',';
    first = false;
    ObjectWriter w(seen);
    w.string("carer", engine.carer(c).id);
    w.number("lat", sighting->fix.position.lat);
    w.number("lon", sighting->fix.position.lon);
    w.number("accuracy", sighting->fix.accuracy_m);
    w.time("at", sighting->at);
    w.number("distance_m",
             std::round(geo::distance_m(client.location, sighting->fix.position) * 10) / 10);
    w.end();
  }
  seen += ']';
  o.end();
}

void append_alert(std::string& out, const rota::Engine& engine, rota::AlertIndex index,
                  const Presence* presence) {
  const rota::Alert& a = engine.alert(index);
  const rota::Visit& v = engine.visit(a.visit);
  ObjectWriter o(out);
  o.string("id", a.id());
  o.string("key", a.key(v.id));
  o.string("kind", rota::to_string(a.kind));
  o.string("severity", rota::to_string(a.severity));
  o.string("state", rota::to_string(a.state));
  o.string("visit", v.id);
  o.string("branch", engine.branch(v.branch).id);
  if (a.carer != kNoIndex) {
    o.string("carer", engine.carer(a.carer).id);
  } else {
    o.null("carer");
  }
  o.string("client", engine.client(v.client).id);
  o.time("raised_at", a.raised_at);
  o.time("updated_at", a.updated_at);
  o.string_or_null("acked_by", a.acked_by);
  o.time("acked_at", a.acked_at);
  o.time("resolved_at", a.resolved_at);
  if (a.resolution != rota::Resolution::none) {
    o.string("resolution", rota::to_string(a.resolution));
  } else {
    o.null("resolution");
  }
  o.integer("escalation_level", a.escalation_level);
  std::string& notified = o.key("notified");
  notified += '[';
  for (std::size_t i = 0; i < a.notified.size(); ++i) {
    if (i > 0) notified += ',';
    const rota::Notified& n = a.notified[i];
    ObjectWriter w(notified);
    w.string("receiver", n.receiver);
    w.string("transition", n.transition);
    w.integer("level", n.level);
    w.time("at", n.at);
    w.end();
  }
  notified += ']';
  o.integer("seq", a.seq);
  o.string("summary", alert_summary(engine, a, presence));
  o.time("eta", alert_eta(engine, v, a));
  const bool start = a.phase == rota::AlertPhase::start;
  const std::string reason = start ? risk_reason(engine, v) : std::string();
  o.string_or_null("reason", reason);
  if (start && v.cause != rota::LateCause::none) {
    o.string("cause", rota::to_string(v.cause));
  } else {
    o.null("cause");
  }
  o.boolean("pages_held", a.held);
  o.time("phone_offline_since",
         about_arrival(a) ? offline_since(engine, a.carer, presence) : std::nullopt);
  o.end();
}

std::string alert_summary(const rota::Engine& engine, const rota::Alert& a,
                          const Presence* presence) {
  std::string text = alert_sentence(engine, a);
  if (about_arrival(a)) {
    if (const auto since = offline_since(engine, a.carer, presence)) {
      text += "; phone offline since " + hhmm(engine, engine.visit(a.visit), *since);
    }
  }
  return text;
}

namespace {

std::string late_cause_text(const rota::Engine& engine, const rota::Visit& v) {
  switch (v.cause) {
    case rota::LateCause::none:
      return {};
    case rota::LateCause::previous_overrun:
      return "; " + risk_reason(engine, v) + "; no page unless missed";
    case rota::LateCause::running_late:
      return v.eta ? "; no page unless not there by " + hhmm(engine, v, *v.eta) : std::string();
  }
  return {};
}

}  // namespace

std::string alert_sentence(const rota::Engine& engine, const rota::Alert& a) {
  const rota::Visit& v = engine.visit(a.visit);
  const std::string& client = engine.client(v.client).name;
  const std::string who = a.carer != kNoIndex ? engine.carer(a.carer).id : "the carer";
  const std::string due = "(due " + hhmm(engine, v, v.start) + ")";
  // The engine measures the end phase from the first check-in, not from the planned end.
  const TimePoint finish = v.check_ins.empty() ? v.end : v.check_ins.front().at + v.planned();
  const std::string due_to_finish = "(due to finish " + hhmm(engine, v, finish) + ")";
  switch (a.kind) {
    case rota::AlertKind::at_risk:
      if (v.risk.basis == rota::RiskBasis::none) {
        return who + " may not reach " + client + " in time " + due + eta_text(engine, v);
      }
      return who + " may not reach " + client + " in time " + due + ": expected about " +
             hhmm(engine, v, *expected_at(engine, v)) + "; " + risk_reason(engine, v);
    case rota::AlertKind::late:
      return who + " has not checked in at " + client + " " + due + eta_text(engine, v) +
             late_cause_text(engine, v);
    case rota::AlertKind::missed:
      return who + " has not checked in at " + client + " " + due + ": the visit is missed" +
             eta_text(engine, v);
    case rota::AlertKind::overrunning:
      return who + " is still at " + client + " " + due_to_finish;
    case rota::AlertKind::no_checkout:
      return who + " has not checked out at " + client + " " + due_to_finish;
    case rota::AlertKind::short_visit: {
      Duration worked{0};
      if (!v.check_ins.empty() && !v.check_outs.empty()) {
        TimePoint first = v.check_ins.front().at;
        for (const auto& r : v.check_ins) first = std::min(first, r.at);
        TimePoint last = first;
        for (const auto& r : v.check_outs) last = std::max(last, r.at);
        worked = last - first;
      }
      return who + " was at " + client + " for " + minutes_text(worked) + " of the planned " +
             minutes_text(v.planned());
    }
    case rota::AlertKind::outside_geofence:
      return geofence_text(engine, v, a, who, client);
    case rota::AlertKind::double_up_incomplete:
      return who + " has not joined the double-up at " + client + " " + due;
  }
  return who + " at " + client + " " + due;
}

std::vector<rota::VisitIndex> carer_rota(const rota::Engine& engine, rota::CarerIndex carer,
                                         TimePoint from, TimePoint to) {
  std::vector<rota::VisitIndex> visits;
  for (const rota::VisitIndex i : engine.carer(carer).visits) {
    const rota::Visit& v = engine.visit(i);
    if (v.assigned(carer) && v.state != rota::VisitState::cancelled && v.end > from &&
        v.start < to) {
      visits.push_back(i);
    }
  }
  return visits;
}

void append_rota(std::string& out, const rota::Engine& engine,
                 std::span<const rota::VisitIndex> visits) {
  ObjectWriter o(out);
  o.string("type", "rota");
  append_array(o.key("visits"), visits, [&](rota::VisitIndex i) { append_visit(out, engine, i); });
  o.end();
}

void append_snapshot(std::string& out, const rota::Engine& engine, TimePoint server_time,
                     std::span<const rota::VisitIndex> visits,
                     std::span<const rota::AlertIndex> alerts, double clock_rate,
                     const Presence* presence) {
  ObjectWriter o(out);
  o.string("type", "snapshot");
  o.time("server_time", server_time);
  if (clock_rate != 1.0) o.number("clock_rate", clock_rate);
  append_array(o.key("visits"), visits,
               [&](rota::VisitIndex i) { append_visit(out, engine, i, presence); });
  append_array(o.key("alerts"), alerts,
               [&](rota::AlertIndex i) { append_alert(out, engine, i, presence); });
  o.end();
}

void append_visit_message(std::string& out, const rota::Engine& engine, rota::VisitIndex visit,
                          const Presence* presence) {
  ObjectWriter o(out);
  o.string("type", "visit");
  append_visit(o.key("visit"), engine, visit, presence);
  o.end();
}

void append_alert_message(std::string& out, const rota::Engine& engine, rota::AlertIndex alert,
                          const Presence* presence) {
  ObjectWriter o(out);
  o.string("type", "alert");
  append_alert(o.key("alert"), engine, alert, presence);
  o.end();
}

void append_ok(std::string& out, std::string_view ref, std::optional<std::string_view> id) {
  ObjectWriter o(out);
  o.string("type", "ok");
  o.string("ref", ref);
  if (id) o.string("id", *id);
  o.end();
}

void append_carer_message(std::string& out, std::string_view from, std::string_view text) {
  ObjectWriter o(out);
  o.string("type", "message");
  o.string("from", from);
  o.string("text", text);
  o.end();
}

void append_visit_list(std::string& out, const rota::Engine& engine,
                       std::span<const rota::VisitIndex> visits, const Presence* presence) {
  ObjectWriter o(out);
  append_array(o.key("visits"), visits,
               [&](rota::VisitIndex i) { append_visit(out, engine, i, presence); });
  o.end();
}

void append_alert_list(std::string& out, const rota::Engine& engine,
                       std::span<const rota::AlertIndex> alerts, const Presence* presence) {
  ObjectWriter o(out);
  append_array(o.key("alerts"), alerts,
               [&](rota::AlertIndex i) { append_alert(out, engine, i, presence); });
  o.end();
}

void append_http_error(std::string& out, const Error& error,
                       std::span<const rota::ImportIssue> details) {
  ObjectWriter o(out);
  ObjectWriter e(o.key("error"));
  e.string("code", to_string(error.code));
  e.string("message", error.message);
  std::string& d = e.key("details");
  d += '[';
  for (std::size_t i = 0; i < details.size(); ++i) {
    if (i != 0) d += ',';
    ObjectWriter issue(d);
    issue.integer("line", details[i].line);
    issue.string("field", details[i].field);
    issue.string("message", details[i].message);
    issue.end();
  }
  d += ']';
  e.end();
  o.end();
}

}  // namespace visitd::websocket
