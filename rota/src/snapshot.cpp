// Engine snapshots: the whole state as versioned bytes, and back. What can be derived (id
// maps, rota days, shifts, thresholds) is rebuilt on restore rather than stored, so a
// snapshot cannot contradict itself.

#include <algorithm>
#include <tuple>

#include "fix_coding.hpp"
#include "visitd/core/binary.hpp"
#include "visitd/rota/engine.hpp"

namespace visitd::rota {
namespace {

using detail::get_opt_fix;
using detail::put_opt_fix;

constexpr std::string_view kMagic = "VSNP";
// 2: escalation (ladders, and each alert's ladder, start, reopens, notifications); deadline
//    payloads (index << 2) | kind.
// 3: at risk (each carer's flagged visit, last estimate and recheck deadline, kind 3; each
//    visit's estimate and late cause; each alert's hold).
// Versions 1 and 2 are still read: what they lack starts empty, and the next event or
// deadline of each carer estimates again.
constexpr std::uint8_t kVersion = 3;

void put_time(Writer& w, const std::optional<TimePoint>& t) {
  w.boolean(t.has_value());
  if (t) w.time(*t);
}
std::optional<TimePoint> get_time(Reader& r) {
  if (!r.boolean()) return std::nullopt;
  return r.time();
}
/// An index stored +1 so that kNoIndex is 0.
void put_index(Writer& w, std::uint32_t i) { w.varint(i == kNoIndex ? 0 : std::uint64_t(i) + 1); }
std::uint32_t get_index(Reader& r, std::size_t limit) {
  const auto v = r.varint();
  if (v == 0) return kNoIndex;
  if (v > limit) r.fail();
  return std::uint32_t(v - 1);
}
template <class E>
E get_enum(Reader& r, E last) {
  const auto v = r.u8();
  if (v > std::uint8_t(last)) r.fail();
  return E(v);
}

void put_record(Writer& w, const CheckRecord& c) {
  w.varint(c.carer);
  w.str(c.event_id.view());
  w.time(c.at);
  w.time(c.device_at);
  w.time(c.received_at);
  put_opt_fix(w, c.fix);
  w.f64(c.distance_m);
  w.u8(std::uint8_t(c.method));
  w.str(c.note);
}
CheckRecord get_record(Reader& r, std::size_t carers) {
  CheckRecord c;
  c.carer = CarerIndex(r.varint());
  if (c.carer >= carers) r.fail();
  c.event_id = IdKey(r.str());
  c.at = r.time();
  c.device_at = r.time();
  c.received_at = r.time();
  c.fix = get_opt_fix(r);
  c.distance_m = r.f64();
  c.method = get_enum(r, Method::manual);
  c.note = r.str();
  return c;
}

}  // namespace

std::string Engine::snapshot() const {
  std::string out;
  Writer w(out);
  out.append(kMagic);
  w.u8(kVersion);
  w.time(now_);

  w.varint(branches_.size());
  for (const auto& b : branches_) w.str(b.id);

  w.varint(clients_.size());
  for (const auto& c : clients_) {
    w.str(c.id);
    w.str(c.name);
    w.f64(c.location.lat);
    w.f64(c.location.lon);
    w.boolean(c.geofence_m.has_value());
    if (c.geofence_m) w.f64(*c.geofence_m);
    w.str(c.tag);
  }

  w.varint(carers_.size());
  for (const auto& c : carers_) {
    w.str(c.id);
    w.varint(c.visits.size());
    for (VisitIndex v : c.visits) w.varint(v);
    put_opt_fix(w, c.last_fix);
    w.time(c.last_fix_at);
    put_index(w, c.at_risk);
    w.time(c.assessed_at);
    w.boolean(c.at_visit);
  }

  w.varint(visits_.size());
  for (const auto& v : visits_) {
    w.str(v.id);
    w.varint(v.branch);
    w.varint(v.client);
    w.varint(v.carers.size());
    for (CarerIndex c : v.carers) w.varint(c);
    w.time(v.start);
    w.time(v.end);
    w.str(v.type);
    w.boolean(v.time_critical);
    w.str(v.notes);
    w.svarint(v.day.time_since_epoch().count());
    w.u8(std::uint8_t(v.state));
    w.varint(v.flags);
    w.svarint(v.late_by_s);
    w.varint(v.check_ins.size());
    for (const auto& c : v.check_ins) put_record(w, c);
    w.varint(v.check_outs.size());
    for (const auto& c : v.check_outs) put_record(w, c);
    put_time(w, v.eta);
    w.str(v.eta_reason);
    w.str(v.cancel_reason);
    for (AlertIndex a : v.alerts) put_index(w, a);
    w.u8(std::uint8_t(v.risk.basis));
    w.time(v.risk.eta);
    w.svarint(v.risk.drive.count());
    put_index(w, v.risk.from);
    w.time(v.risk.since);
    w.u8(std::uint8_t(v.cause));
  }

  w.varint(alerts_.size());
  for (const auto& a : alerts_) {
    w.varint(a.number);
    w.varint(a.visit);
    w.u8(std::uint8_t(a.phase));
    w.u8(std::uint8_t(a.kind));
    w.u8(std::uint8_t(a.severity));
    w.u8(std::uint8_t(a.state));
    put_index(w, a.carer);
    w.time(a.raised_at);
    w.time(a.updated_at);
    put_time(w, a.acked_at);
    w.str(a.acked_by);
    put_time(w, a.resolved_at);
    w.str(a.resolved_by);
    w.u8(std::uint8_t(a.resolution));
    w.str(a.note);
    w.svarint(a.escalation_level);
    w.varint(a.seq);
    w.varint(a.ladder);
    w.time(a.ladder_from);
    w.u8(a.reopens);
    w.boolean(a.held);
    w.varint(a.notified.size());
    for (const auto& n : a.notified) {
      w.str(n.receiver);
      w.str(n.transition);
      w.svarint(n.level);
      w.time(n.at);
    }
  }
  w.varint(ladders_.size());
  for (const auto& steps : ladders_) {
    w.varint(steps.size());
    for (const auto& step : steps) {
      w.svarint(step.after.count());
      w.varint(step.notify.size());
      for (const auto& n : step.notify) w.str(n);
    }
  }

  // Decisions in the order of the slots restore() will put them in (then by key, so equal
  // states give equal bytes): it then fills its table front to back. In key order each
  // insert was a cache miss, a third of restoring a 1,000,000-visit day.
  std::vector<std::pair<EventKey, Decision>> decided;
  decided_.for_each([&](const EventKey& k, const Decision& d) { decided.emplace_back(k, d); });
  using Table = decltype(decided_);
  const std::size_t capacity = Table::capacity_for(decided.size());
  std::sort(decided.begin(), decided.end(), [capacity](const auto& x, const auto& y) {
    return std::tuple(Table::home_slot(x.first, capacity), x.first.hi, x.first.lo) <
           std::tuple(Table::home_slot(y.first, capacity), y.first.hi, y.first.lo);
  });
  w.varint(decided.size());
  for (const auto& [k, d] : decided) {
    w.varint(k.hi);
    w.varint(k.lo);
    put_index(w, d.visit);
    w.u8(std::uint8_t(d.state));
    w.varint(d.flags);
  }
  w.varint(pings_.size());
  for (const auto& p : pings_) {
    w.time(p.forget_at);
    w.varint(p.key.hi);
    w.varint(p.key.lo);
  }
  w.varint(pings_ahead_.size());
  for (const auto& [at, key] : pings_ahead_) {
    w.time(at);
    w.varint(key.hi);
    w.varint(key.lo);
  }

  const auto deadlines = wheel_.pending_in_order();
  w.varint(deadlines.size());
  for (const auto& d : deadlines) {
    w.varint(d.payload);
    w.time(d.at);
  }
  return out;
}

Result<std::unique_ptr<Engine>> Engine::restore(std::shared_ptr<const config::Settings> settings,
                                                std::string_view bytes) {
  auto engine = restore(*settings, bytes);
  if (engine) (*engine)->owned_settings_ = std::move(settings);
  return engine;
}

Result<std::unique_ptr<Engine>> Engine::restore(const config::Settings& settings,
                                                std::string_view bytes) {
  auto damaged = [](std::string what) {
    return Error{ErrorCode::internal, "snapshot is damaged: " + std::move(what)};
  };
  if (bytes.substr(0, kMagic.size()) != kMagic) return damaged("not a visitd snapshot");
  Reader r(bytes.substr(kMagic.size()));
  const auto version = r.u8();
  if (version < 1 || version > kVersion) {
    return Error{ErrorCode::internal, "snapshot format " + std::to_string(version) +
                                          " is not one this visitd reads (1 to 3)"};
  }
  const TimePoint now = r.time();
  auto engine = std::make_unique<Engine>(settings, now);
  Engine& e = *engine;

  // Branches are matched by id: the config may list them in another order now.
  std::vector<BranchIndex> branch_map(r.count());
  for (auto& b : branch_map) {
    const std::string id = r.str();
    const auto found = e.find_branch(id);
    if (!r.ok()) return damaged("branches");
    if (!found) {
      return Error{ErrorCode::internal,
                   "the snapshot has branch " + id + ", which the config no longer lists"};
    }
    b = *found;
  }

  e.clients_.resize(r.count());
  for (auto& c : e.clients_) {
    c.id = r.str();
    c.name = r.str();
    c.location.lat = r.f64();
    c.location.lon = r.f64();
    if (r.boolean()) c.geofence_m = r.f64();
    c.tag = r.str();
  }

  e.carers_.resize(r.count());
  std::size_t visit_refs = 0;
  for (auto& c : e.carers_) {
    c.id = r.str();
    c.visits.resize(r.count());
    for (auto& v : c.visits) v = VisitIndex(r.varint());
    visit_refs += c.visits.size();
    c.last_fix = get_opt_fix(r);
    c.last_fix_at = r.time();
    if (version >= 3) {
      c.at_risk = get_index(r, std::numeric_limits<std::uint32_t>::max());
      c.assessed_at = r.time();
      c.at_visit = r.boolean();
    }
  }

  e.visits_.resize(r.count(8));
  for (auto& v : e.visits_) {
    v.id = r.str();
    const auto b = r.varint();
    if (b >= branch_map.size()) return damaged("visit branch");
    v.branch = branch_map[b];
    v.client = ClientIndex(r.varint());
    if (v.client >= e.clients_.size()) r.fail();
    v.carers.resize(r.count());
    for (auto& c : v.carers) {
      c = CarerIndex(r.varint());
      if (c >= e.carers_.size()) r.fail();
    }
    v.start = r.time();
    v.end = r.time();
    v.type = r.str();
    v.time_critical = r.boolean();
    v.notes = r.str();
    v.day = LocalDays(std::chrono::days(r.svarint()));
    v.state = get_enum(r, VisitState::cancelled);
    v.flags = Flags(r.varint());
    v.late_by_s = r.svarint();
    v.check_ins.resize(r.count());
    for (auto& c : v.check_ins) c = get_record(r, e.carers_.size());
    v.check_outs.resize(r.count());
    for (auto& c : v.check_outs) c = get_record(r, e.carers_.size());
    v.eta = get_time(r);
    v.eta_reason = r.str();
    v.cancel_reason = r.str();
    for (auto& a : v.alerts) a = get_index(r, std::numeric_limits<std::uint32_t>::max());
    if (version >= 3) {
      v.risk.basis = get_enum(r, RiskBasis::overrunning);
      v.risk.eta = r.time();
      v.risk.drive = Duration(r.svarint());
      v.risk.from = get_index(r, std::numeric_limits<std::uint32_t>::max());
      v.risk.since = r.time();
      v.cause = get_enum(r, LateCause::running_late);
    }
    if (!r.ok()) return damaged("visits");
  }
  for (const auto& c : e.carers_) {
    for (VisitIndex v : c.visits) {
      if (v >= e.visits_.size()) return damaged("carer's visits");
    }
    if (c.at_risk != kNoIndex && c.at_risk >= e.visits_.size()) return damaged("carer's at risk");
  }
  for (const auto& v : e.visits_) {
    if (v.risk.from != kNoIndex && v.risk.from >= e.visits_.size()) return damaged("visit's risk");
  }

  e.alerts_.resize(r.count(8));
  for (auto& a : e.alerts_) {
    a.number = std::uint32_t(r.varint());
    a.visit = VisitIndex(r.varint());
    if (a.visit >= e.visits_.size()) r.fail();
    a.phase = get_enum(r, AlertPhase::double_up);
    a.kind = get_enum(r, AlertKind::double_up_incomplete);
    a.severity = get_enum(r, Severity::critical);
    a.state = get_enum(r, AlertState::resolved);
    a.carer = get_index(r, e.carers_.size());
    a.raised_at = r.time();
    a.updated_at = r.time();
    a.acked_at = get_time(r);
    a.acked_by = r.str();
    a.resolved_at = get_time(r);
    a.resolved_by = r.str();
    a.resolution = get_enum(r, Resolution::on_track);
    a.note = r.str();
    a.escalation_level = int(r.svarint());
    a.seq = std::uint32_t(r.varint());
    if (version >= 2) {
      a.ladder = std::uint16_t(r.varint());
      a.ladder_from = r.time();
      a.reopens = r.u8();
      if (version >= 3) a.held = r.boolean();
      a.notified.resize(r.count(4));
      for (auto& n : a.notified) {
        n.receiver = r.str();
        n.transition = r.str();
        n.level = int(r.svarint());
        n.at = r.time();
      }
    }
    if (!r.ok()) return damaged("alerts");
  }
  if (version >= 2) {
    e.ladders_.resize(r.count());
    for (auto& steps : e.ladders_) {
      steps.resize(r.count(2));
      for (auto& step : steps) {
        step.after = Duration(r.svarint());
        step.notify.resize(r.count());
        for (auto& n : step.notify) n = r.str();
      }
    }
    if (!r.ok()) return damaged("escalation ladders");
  }
  for (const auto& a : e.alerts_) {
    if (a.ladder != Alert::kNoLadder && a.ladder >= e.ladders_.size()) {
      return damaged("alert's ladder");
    }
  }
  for (const auto& v : e.visits_) {
    for (AlertIndex a : v.alerts) {
      if (a != kNoIndex && a >= e.alerts_.size()) return damaged("visit's alerts");
    }
  }

  const std::size_t decided = r.count(4);
  e.decided_.reserve(decided);
  for (std::size_t i = 0; i < decided && r.ok(); ++i) {
    EventKey k{r.varint(), r.varint()};
    Decision d{get_index(r, e.visits_.size()), get_enum(r, VisitState::cancelled),
               Flags(r.varint())};
    e.decided_.insert(k, d);
  }
  const std::size_t pings = r.count(3);
  for (std::size_t i = 0; i < pings && r.ok(); ++i) {
    PingMemory p;
    p.forget_at = r.time();
    p.key.hi = r.varint();
    p.key.lo = r.varint();
    e.pings_.push_back(p);
  }
  const std::size_t ahead = r.count(3);
  for (std::size_t i = 0; i < ahead && r.ok(); ++i) {
    const TimePoint at = r.time();
    EventKey key;
    key.hi = r.varint();
    key.lo = r.varint();
    e.pings_ahead_.emplace(at, key);
  }

  const std::size_t deadlines = r.count(2);
  for (std::size_t i = 0; i < deadlines && r.ok(); ++i) {
    auto payload = r.varint();
    const TimePoint at = r.time();
    if (version == 1)
      payload = Engine::payload(std::uint32_t(payload >> 1), DeadlineKind(payload & 1));
    const auto index = std::uint32_t(payload >> 2);
    const auto kind = DeadlineKind(payload & 3);
    const std::size_t limit = kind == DeadlineKind::escalation ? e.alerts_.size()
                              : kind == DeadlineKind::at_risk  ? e.carers_.size()
                                                               : e.visits_.size();
    if (index >= limit || (kind == DeadlineKind::at_risk && version < 3)) {
      return damaged("deadlines");
    }
    const auto handle = e.wheel_.schedule(at, payload);
    switch (kind) {
      case DeadlineKind::start_phase:
        e.visits_[index].start_deadline = handle;
        break;
      case DeadlineKind::end_phase:
        e.visits_[index].end_deadline = handle;
        break;
      case DeadlineKind::escalation:
        e.alerts_[index].step = handle;
        break;
      case DeadlineKind::at_risk:
        e.carers_[index].recheck = handle;
        break;
    }
  }
  if (!r.ok() || !r.at_end()) return damaged("truncated or trailing bytes");

  // Derived state.
  for (VisitIndex vi = 0; vi < e.visits_.size(); ++vi) {
    Visit& v = e.visits_[vi];
    if (!e.visit_ids_.emplace(IdKey(v.id), vi).second) return damaged("visit " + v.id + " twice");
    e.days_[{v.branch, std::int32_t(v.day.time_since_epoch().count())}].push_back(vi);
    v.thresholds = e.thresholds_index(v.branch, v.type, v.time_critical);
  }
  for (ClientIndex ci = 0; ci < e.clients_.size(); ++ci) {
    e.client_ids_.emplace(IdKey(e.clients_[ci].id), ci);
    e.homes_.push_back(e.clients_[ci].location);
  }
  for (CarerIndex ci = 0; ci < e.carers_.size(); ++ci) {
    e.carer_ids_.emplace(IdKey(e.carers_[ci].id), ci);
    e.rebuild_shifts(ci);
  }
  for (AlertIndex a = 0; a < e.alerts_.size(); ++a) {
    if (e.alerts_[a].open()) e.mark_open(a, true);
  }
  return engine;
}

}  // namespace visitd::rota
