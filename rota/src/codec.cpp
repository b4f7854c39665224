#include "visitd/rota/codec.hpp"

#include <type_traits>

#include "fix_coding.hpp"
#include "visitd/core/binary.hpp"

namespace visitd::rota {
namespace {

using detail::get_fix;
using detail::get_opt_fix;
using detail::put_fix;
using detail::put_opt_fix;

// The variant's alternatives, by tag. Tags are part of the on-disk format: append only.
enum class Tag : std::uint8_t {
  check_in = 1,
  check_out = 2,
  location = 3,
  running_late = 4,
  import_rota = 5,
  reassign = 6,
  cancel = 7,
  ack_alert = 8,
  resolve_alert = 9,
};

Method get_method(Reader& r);

// Check-ins and check-outs share these fields, in this order.
template <class Event>
void put_presence(Writer& w, const Event& c) {
  w.str(c.event_id);
  w.str(c.carer);
  w.str(c.visit);
  w.time(c.at);
  put_opt_fix(w, c.fix);
  w.u8(std::uint8_t(c.method));
  w.str(c.tag);
}
template <class Event>
void get_presence(Reader& r, Event& c) {
  c.event_id = r.str();
  c.carer = r.str();
  c.visit = r.str();
  c.at = r.time();
  c.fix = get_opt_fix(r);
  c.method = get_method(r);
  c.tag = r.str();
}

Method get_method(Reader& r) {
  const auto m = r.u8();
  if (m > std::uint8_t(Method::manual)) r.fail();
  return Method(m);
}
void put_strings(Writer& w, const std::vector<std::string>& v) {
  w.varint(v.size());
  for (const auto& s : v) w.str(s);
}
std::vector<std::string> get_strings(Reader& r) {
  std::vector<std::string> v(r.count());
  for (auto& s : v) s = r.str();
  return v;
}

void put_plan(Writer& w, const VisitPlan& p) {
  w.str(p.id);
  w.str(p.client.id);
  w.str(p.client.name);
  w.f64(p.client.location.lat);
  w.f64(p.client.location.lon);
  w.boolean(p.client.geofence_m.has_value());
  if (p.client.geofence_m) w.f64(*p.client.geofence_m);
  w.str(p.client.tag);
  put_strings(w, p.carers);
  w.time(p.start);
  w.time(p.end);
  w.str(p.type);
  w.boolean(p.time_critical);
  w.str(p.notes);
  w.svarint(p.line);
}
VisitPlan get_plan(Reader& r) {
  VisitPlan p;
  p.id = r.str();
  p.client.id = r.str();
  p.client.name = r.str();
  p.client.location.lat = r.f64();
  p.client.location.lon = r.f64();
  if (r.boolean()) p.client.geofence_m = r.f64();
  p.client.tag = r.str();
  p.carers = get_strings(r);
  p.start = r.time();
  p.end = r.time();
  p.type = r.str();
  p.time_critical = r.boolean();
  p.notes = r.str();
  p.line = int(r.svarint());
  return p;
}

}  // namespace

void encode(const Command& command, std::string& out) {
  Writer w(out);
  std::visit(
      [&](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CheckIn>) {
          w.u8(std::uint8_t(Tag::check_in));
          put_presence(w, c);
        } else if constexpr (std::is_same_v<T, CheckOut>) {
          w.u8(std::uint8_t(Tag::check_out));
          put_presence(w, c);
          w.str(c.note);
        } else if constexpr (std::is_same_v<T, LocationPing>) {
          w.u8(std::uint8_t(Tag::location));
          w.str(c.event_id);
          w.str(c.carer);
          w.time(c.at);
          put_fix(w, c.fix);
        } else if constexpr (std::is_same_v<T, RunningLate>) {
          w.u8(std::uint8_t(Tag::running_late));
          w.str(c.event_id);
          w.str(c.carer);
          w.str(c.visit);
          w.time(c.eta);
          w.str(c.reason);
        } else if constexpr (std::is_same_v<T, ImportRota>) {
          w.u8(std::uint8_t(Tag::import_rota));
          w.str(c.branch);
          w.svarint(c.date.time_since_epoch().count());
          w.varint(c.visits.size());
          for (const auto& p : c.visits) put_plan(w, p);
          w.str(c.by);
        } else if constexpr (std::is_same_v<T, Reassign>) {
          w.u8(std::uint8_t(Tag::reassign));
          w.str(c.visit);
          put_strings(w, c.carers);
          w.str(c.by);
        } else if constexpr (std::is_same_v<T, Cancel>) {
          w.u8(std::uint8_t(Tag::cancel));
          w.str(c.visit);
          w.str(c.reason);
          w.str(c.by);
        } else if constexpr (std::is_same_v<T, AckAlert>) {
          w.u8(std::uint8_t(Tag::ack_alert));
          w.str(c.alert);
          w.str(c.by);
          w.str(c.note);
        } else {
          static_assert(std::is_same_v<T, ResolveAlert>);
          w.u8(std::uint8_t(Tag::resolve_alert));
          w.str(c.alert);
          w.str(c.by);
          w.str(c.note);
        }
      },
      command);
}

Result<Command> decode(std::string_view payload, std::uint8_t version) {
  if (version != 1) {
    return Error{ErrorCode::internal, "command payload version " + std::to_string(version) +
                                          " is newer than this "
                                          "visitd understands (1)"};
  }
  Reader r(payload);
  Command out;
  switch (Tag(r.u8())) {
    case Tag::check_in: {
      CheckIn c;
      get_presence(r, c);
      out = std::move(c);
      break;
    }
    case Tag::check_out: {
      CheckOut c;
      get_presence(r, c);
      c.note = r.str();
      out = std::move(c);
      break;
    }
    case Tag::location: {
      LocationPing c;
      c.event_id = r.str();
      c.carer = r.str();
      c.at = r.time();
      c.fix = get_fix(r);
      out = std::move(c);
      break;
    }
    case Tag::running_late: {
      RunningLate c;
      c.event_id = r.str();
      c.carer = r.str();
      c.visit = r.str();
      c.eta = r.time();
      c.reason = r.str();
      out = std::move(c);
      break;
    }
    case Tag::import_rota: {
      ImportRota c;
      c.branch = r.str();
      c.date = LocalDays(std::chrono::days(r.svarint()));
      c.visits.resize(r.count(16));
      for (auto& p : c.visits) p = get_plan(r);
      c.by = r.str();
      out = std::move(c);
      break;
    }
    case Tag::reassign: {
      Reassign c;
      c.visit = r.str();
      c.carers = get_strings(r);
      c.by = r.str();
      out = std::move(c);
      break;
    }
    case Tag::cancel: {
      Cancel c;
      c.visit = r.str();
      c.reason = r.str();
      c.by = r.str();
      out = std::move(c);
      break;
    }
    case Tag::ack_alert:
    case Tag::resolve_alert: {
      const bool ack = Tag(payload.empty() ? 0 : payload[0]) == Tag::ack_alert;
      std::string alert = r.str();
      std::string by = r.str();
      std::string note = r.str();
      if (ack) {
        out = AckAlert{std::move(alert), std::move(by), std::move(note)};
      } else {
        out = ResolveAlert{std::move(alert), std::move(by), std::move(note)};
      }
      break;
    }
    default:
      r.fail();
  }
  if (!r.ok() || !r.at_end()) {
    return Error{ErrorCode::internal, "command payload is malformed"};
  }
  return out;
}

}  // namespace visitd::rota
