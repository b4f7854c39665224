#include "visitd/rota/engine.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

namespace visitd::rota {
namespace {

constexpr std::size_t kMaxEventId = 128;

std::uint64_t mix64(std::uint64_t x) {
  // splitmix64's finalizer: a strong, cheap avalanche.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

std::uint64_t hash_bytes(std::string_view s, std::uint64_t seed) {
  std::uint64_t h = seed ^ (s.size() * 0x9e3779b97f4a7c15ULL);
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  return mix64(h ^ tail ^ (std::uint64_t(s.size() - i) << 56));
}

Error error(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

Reply rejected(Error e) {
  Reply r;
  r.status = Status::rejected;
  r.error = std::move(e);
  return r;
}

Reply rejected(ErrorCode code, std::string message) {
  return rejected(error(code, std::move(message)));
}

bool is_terminal(VisitState s) { return s == VisitState::completed || s == VisitState::cancelled; }

bool valid_fix(const std::optional<Fix>& f) {
  return !f || (geo::valid(f->position) && std::isfinite(f->accuracy_m) && f->accuracy_m >= 0);
}

std::optional<Error> check_event_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxEventId) {
    return error(ErrorCode::bad_message, "id must be 1 to 128 characters");
  }
  return std::nullopt;
}

std::int32_t day_number(LocalDays d) { return std::int32_t(d.time_since_epoch().count()); }

}  // namespace

// ---------------------------------------------------------------------------------------
// Names

std::string_view to_string(Status s) {
  static constexpr std::string_view kNames[] = {"accepted", "duplicate", "unchanged", "rejected"};
  return kNames[std::size_t(s)];
}
std::string_view to_string(AlertTransition t) {
  static constexpr std::string_view kNames[] = {"raised",       "severity_rose", "updated",
                                                "acknowledged", "retargeted",    "resolved",
                                                "escalated",    "reopened"};
  return kNames[std::size_t(t)];
}
std::string_view to_string(AlertPhase p) {
  static constexpr std::string_view kNames[] = {"start", "end", "location", "duration",
                                                "double_up"};
  return kNames[std::size_t(p)];
}
std::string_view to_string(AlertKind k) {
  static constexpr std::string_view kNames[] = {
      "at_risk",     "late",        "missed",           "overrunning",
      "no_checkout", "short_visit", "outside_geofence", "double_up_incomplete"};
  return kNames[std::size_t(k)];
}
std::string_view to_string(Severity s) {
  static constexpr std::string_view kNames[] = {"info", "warning", "critical"};
  return kNames[std::size_t(s)];
}
std::string_view to_string(AlertState s) {
  static constexpr std::string_view kNames[] = {"triggered", "acknowledged", "resolved"};
  return kNames[std::size_t(s)];
}
std::string_view to_string(Resolution r) {
  static constexpr std::string_view kNames[] = {"none",        "checked_in",  "checked_out",
                                                "synced_late", "cancelled",   "reassigned",
                                                "user",        "rescheduled", "on_track"};
  return kNames[std::size_t(r)];
}
std::string_view to_string(RiskBasis b) {
  static constexpr std::string_view kNames[] = {"none", "stated",   "location",
                                                "left", "in_visit", "overrunning"};
  return kNames[std::size_t(b)];
}
std::string_view to_string(LateCause c) {
  static constexpr std::string_view kNames[] = {"none", "previous_overrun", "running_late"};
  return kNames[std::size_t(c)];
}

std::string Alert::key(std::string_view visit_id) const {
  std::string k = "visit/";
  k += visit_id;
  k += '/';
  k += to_string(phase);
  return k;
}

EventKey EventKey::of(std::string_view carer, std::string_view event_id) {
  const std::uint64_t c = hash_bytes(carer, 0x243f6a8885a308d3ULL);
  return EventKey{hash_bytes(event_id, c ^ 0x13198a2e03707344ULL),
                  hash_bytes(event_id, mix64(c) ^ 0xa4093822299f31d0ULL)};
}

bool Visit::checked_in(CarerIndex c) const {
  return std::any_of(check_ins.begin(), check_ins.end(),
                     [c](const CheckRecord& r) { return r.carer == c; });
}
bool Visit::checked_out(CarerIndex c) const {
  return std::any_of(check_outs.begin(), check_outs.end(),
                     [c](const CheckRecord& r) { return r.carer == c; });
}
bool Visit::assigned(CarerIndex c) const {
  return std::find(carers.begin(), carers.end(), c) != carers.end();
}

// ---------------------------------------------------------------------------------------
// Engine: entry points

Engine::Engine(const config::Settings& settings, TimePoint origin)
    : settings_(&settings), now_(origin), wheel_(origin) {
  for (const auto& b : settings.branches) {
    auto zone = TimeZone::locate(b.timezone);
    // The config loader validated every zone; a bad one here is a programming error.
    assert(zone.has_value());
    branches_.push_back(BranchInfo{b.id, zone ? *zone : TimeZone::utc()});
  }
}

std::optional<Error> Engine::reconfigure(std::shared_ptr<const config::Settings> settings,
                                         TimePoint now, Effects& effects) {
  for (const BranchInfo& b : branches_) {
    const config::Branch* next = settings->find_branch(b.id);
    if (next == nullptr) {
      return Error{ErrorCode::conflict,
                   "branch " + b.id +
                       " is missing from the new config: a "
                       "branch the daemon has seen cannot be removed while it runs"};
    }
    if (next->timezone != b.zone.name()) {
      return Error{ErrorCode::conflict, "branch " + b.id + " changes time zone from " +
                                            std::string(b.zone.name()) + " to " + next->timezone +
                                            ": not while its rota is loaded"};
    }
  }
  // Everything due under the old settings fires first: the new ones apply from `now` on.
  advance(now, effects);
  owned_settings_ = std::move(settings);
  settings_ = owned_settings_.get();
  for (const auto& b : settings_->branches) {
    if (find_branch(b.id)) continue;
    auto zone = TimeZone::locate(b.timezone);
    assert(zone.has_value());  // validated by the config loader
    branches_.push_back(BranchInfo{b.id, zone ? *zone : TimeZone::utc()});
  }
  // Each resolved threshold set is keyed branch \0 type \0 c|n (see thresholds_index).
  for (const auto& [key, index] : thresholds_ids_) {
    const auto first = key.find('\0');
    const auto last = key.rfind('\0');
    thresholds_[index] = settings_->thresholds_for(
        std::string_view(key).substr(0, first),
        std::string_view(key).substr(first + 1, last - first - 1), key.substr(last + 1) == "c");
  }
  longest_late_after_ = Duration{0};
  for (const auto& th : thresholds_)
    longest_late_after_ = std::max(longest_late_after_, th.late_after);
  for (CarerIndex c = 0; c < carers_.size(); ++c) rebuild_shifts(c);
  for (VisitIndex v = 0; v < visits_.size(); ++v) {
    plan_start(v);
    plan_end(v);
  }
  // Ladders stay frozen on their alerts; only a new ack_timeout or max_reopens applies.
  for (AlertIndex a = 0; a < alerts_.size(); ++a) {
    if (alerts_[a].state == AlertState::acknowledged) plan_escalation(a);
  }
  // The travel model or the switches may have changed.
  for (CarerIndex c = 0; c < carers_.size(); ++c) assess(c, now_, effects);
  advance(now, effects);
  return std::nullopt;
}

Reply Engine::apply(const Command& command, TimePoint now, Effects& effects) {
  advance(now, effects);
  // What the command makes due at once (a ladder whose first step is `after = "0s"`) fires
  // at the next advance(): next_deadline() says it is due now, so the daemon's timer fires
  // straight away, and the reply still tells the state this command left.
  return std::visit([&](const auto& c) { return on(c, effects); }, command);
}

void Engine::advance(TimePoint now, Effects& effects) {
  now_ = std::max(now_, now);
  while (auto due = wheel_.pop_due(now_)) {
    fire(std::uint32_t(due->payload >> 2), DeadlineKind(due->payload & 3), due->at, effects);
  }
  // Location pings are remembered only for the offline window.
  while (!pings_.empty() && pings_.front().forget_at <= now_) {
    decided_.erase(pings_.front().key);
    pings_.pop_front();
  }
  while (!pings_ahead_.empty() && pings_ahead_.begin()->first <= now_) {
    decided_.erase(pings_ahead_.begin()->second);
    pings_ahead_.erase(pings_ahead_.begin());
  }
}

std::optional<TimePoint> Engine::next_deadline() const {
  auto next = wheel_.next_deadline();
  if (!pings_.empty() && (!next || pings_.front().forget_at < *next)) {
    next = pings_.front().forget_at;
  }
  if (!pings_ahead_.empty() && (!next || pings_ahead_.begin()->first < *next)) {
    next = pings_ahead_.begin()->first;
  }
  return next;
}

std::optional<VisitIndex> Engine::find_visit(std::string_view id) const {
  auto it = visit_ids_.find(id);
  if (it == visit_ids_.end()) return std::nullopt;
  return it->second;
}

std::optional<AlertIndex> Engine::find_alert(std::string_view id) const {
  if (id.size() < 2 || id.size() > 11 || id[0] != 'A') return std::nullopt;
  std::uint64_t n = 0;
  for (char ch : id.substr(1)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    n = n * 10 + std::uint64_t(ch - '0');
  }
  if (n == 0 || n > alerts_.size() || id[1] == '0') return std::nullopt;
  return AlertIndex(n - 1);
}

std::optional<CarerIndex> Engine::find_carer(std::string_view id) const {
  auto it = carer_ids_.find(id);
  if (it == carer_ids_.end()) return std::nullopt;
  return it->second;
}

std::optional<BranchIndex> Engine::find_branch(std::string_view id) const {
  for (std::size_t i = 0; i < branches_.size(); ++i) {
    if (branches_[i].id == id) return BranchIndex(i);
  }
  return std::nullopt;
}

std::span<const VisitIndex> Engine::visits_on(BranchIndex branch, LocalDays day) const {
  const auto it = days_.find({branch, day_number(day)});
  if (it == days_.end()) return {};
  return it->second;
}

// ---------------------------------------------------------------------------------------
// Carer events

Result<Engine::CarerVisit> Engine::carer_visit(std::string_view carer,
                                               std::string_view visit) const {
  const auto v = find_visit(visit);
  if (!v) return error(ErrorCode::unknown_visit, "visit " + std::string(visit) + " is unknown");
  const auto c = find_carer(carer);
  if (!c || !visits_[*v].assigned(*c)) {
    return error(ErrorCode::not_assigned,
                 "visit " + std::string(visit) + " is not assigned to carer " + std::string(carer));
  }
  if (visits_[*v].state == VisitState::cancelled) {
    return error(ErrorCode::visit_cancelled, "visit " + std::string(visit) + " was cancelled");
  }
  return CarerVisit{*v, *c};
}

std::optional<Reply> Engine::duplicate_of(const EventKey& key) const {
  const Decision* d = decided_.find(key);
  if (d == nullptr) return std::nullopt;
  Reply r;
  r.status = Status::duplicate;
  r.visit = d->visit;
  r.state = d->state;
  r.flags = d->flags;
  return r;
}

Reply Engine::accepted(VisitIndex v) const {
  Reply r;
  r.visit = v;
  r.state = visits_[v].state;
  r.flags = visits_[v].flags;
  return r;
}

void Engine::remember(const EventKey& key, VisitIndex v) {
  const Visit& visit = visits_[v];
  decided_.insert(key, Decision{v, visit.state, visit.flags});
}

TimePoint Engine::plausible(TimePoint device, TimePoint not_before, Flags& flags) const {
  if (device > now_ + settings_->tracking.device_skew || device < not_before) {
    flags |= kDeviceTimeSkew;
    return now_;
  }
  return device;
}

Reply Engine::on(const CheckIn& c, Effects& fx) {
  const EventKey key = EventKey::of(c.carer, c.event_id);
  if (auto dup = duplicate_of(key)) return *dup;
  if (auto e = check_event_id(c.event_id)) return rejected(*e);
  if (!valid_fix(c.fix)) return rejected(ErrorCode::bad_message, "lat/lon/accuracy out of range");
  if (c.at < now_ - settings_->tracking.offline_window) {
    return rejected(ErrorCode::too_old,
                    "check-in at " + format_rfc3339(c.at) + " is older than the offline window");
  }
  const auto found = carer_visit(c.carer, c.visit);
  if (!found) return rejected(found.error());
  const auto [vi, carer] = *found;
  Visit& v = visits_[vi];
  if (v.checked_in(carer)) {
    return rejected(ErrorCode::already_checked_in,
                    "carer " + c.carer + " has already checked in to visit " + v.id);
  }

  const auto& th = thresholds_[v.thresholds];
  Flags flags = 0;
  const TimePoint at = plausible(c.at, v.start - settings_->tracking.early_window, flags);
  if (at < v.start - settings_->tracking.early_window ||
      at > v.end + settings_->tracking.late_window) {
    return rejected(ErrorCode::outside_visit_window,
                    "visit " + v.id + " is not open for check-in at " + format_rfc3339(at));
  }

  CheckRecord rec{carer, IdKey(c.event_id), at, c.at, now_, c.fix, -1, c.method, {}};
  const Client& client = clients_[v.client];
  bool outside = false;
  if (c.fix) {
    const double radius = client.geofence_m.value_or(th.geofence_m);
    const auto fence =
        geo::check_geofence(client.location, radius, c.fix->position, c.fix->accuracy_m);
    rec.distance_m = fence.distance_m;
    outside = fence.fence == geo::Fence::outside;
  }
  const bool tag_mismatch = (c.method == Method::nfc || c.method == Method::qr) &&
                            !client.tag.empty() && c.tag != client.tag;

  const bool first = v.check_ins.empty();
  v.check_ins.push_back(std::move(rec));
  v.flags |= flags;
  if (outside) v.flags |= kOutsideGeofence;
  if (tag_mismatch) v.flags |= kTagMismatch;

  if (first) {
    v.late_by_s = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::seconds>(at - v.start).count());
    if (at > v.start + th.late_after) v.flags |= kLateArrival;
    // An offline check-in that shows the carer was there on time clears the late alert as
    // a sync delay, not a late arrival.
    const AlertIndex start_alert = open_alert(v, AlertPhase::start);
    if (start_alert != kNoIndex) {
      const bool on_time = at <= v.start + th.late_after;
      const bool predicted = alerts_[start_alert].kind == AlertKind::at_risk;
      resolve(start_alert, on_time && !predicted ? Resolution::synced_late : Resolution::checked_in,
              c.carer, now_, fx);
    }
    v.risk = Risk{};
    v.state = VisitState::in_progress;
    plan_end(vi);
  } else if (v.state == VisitState::completed) {
    // A double-up's second carer arriving after the first left: the visit is under way again.
    v.state = VisitState::in_progress;
    plan_end(vi);
  }
  if (outside || tag_mismatch) {
    raise(vi, AlertPhase::location, AlertKind::outside_geofence, Severity::warning, carer, now_,
          fx);
  }
  if (v.carers.size() > 1 && missing_carer(v) == kNoIndex) {
    resolve_phase(vi, AlertPhase::double_up, Resolution::checked_in, now_, fx);
  }
  plan_start(vi);
  touch(vi, fx);
  assess(carer, now_, fx);
  remember(key, vi);
  return accepted(vi);
}

Reply Engine::on(const CheckOut& c, Effects& fx) {
  const EventKey key = EventKey::of(c.carer, c.event_id);
  if (auto dup = duplicate_of(key)) return *dup;
  if (auto e = check_event_id(c.event_id)) return rejected(*e);
  if (!valid_fix(c.fix)) return rejected(ErrorCode::bad_message, "lat/lon/accuracy out of range");
  if (c.at < now_ - settings_->tracking.offline_window) {
    return rejected(ErrorCode::too_old,
                    "check-out at " + format_rfc3339(c.at) + " is older than the offline window");
  }
  const auto found = carer_visit(c.carer, c.visit);
  if (!found) return rejected(found.error());
  const auto [vi, carer] = *found;
  Visit& v = visits_[vi];
  const auto in = std::find_if(v.check_ins.begin(), v.check_ins.end(),
                               [carer](const CheckRecord& r) { return r.carer == carer; });
  if (in == v.check_ins.end()) {
    return rejected(ErrorCode::not_checked_in,
                    "carer " + c.carer + " has not checked in to visit " + v.id);
  }
  if (v.checked_out(carer)) {
    return rejected(ErrorCode::not_checked_in,
                    "carer " + c.carer + " has already checked out of visit " + v.id);
  }
  Flags flags = 0;
  const TimePoint at = plausible(c.at, in->at, flags);
  CheckRecord rec{carer, IdKey(c.event_id), std::max(at, in->at), c.at, now_, c.fix, -1, c.method,
                  c.note};
  if (c.fix) {
    const Client& client = clients_[v.client];
    rec.distance_m = geo::near_distance_m(client.location, c.fix->position);
  }
  v.check_outs.push_back(std::move(rec));
  v.flags |= flags;
  complete_if_done(vi, now_, fx);
  touch(vi, fx);
  assess(carer, now_, fx);
  remember(key, vi);
  return accepted(vi);
}

Reply Engine::on(const LocationPing& c, Effects& fx) {
  const EventKey key = EventKey::of(c.carer, c.event_id);
  if (auto dup = duplicate_of(key)) return *dup;
  if (auto e = check_event_id(c.event_id)) return rejected(*e);
  if (!settings_->tracking.location_pings) {
    return rejected(ErrorCode::forbidden,
                    "this agency does not track location: [tracking] location_pings is off; "
                    "location not kept");
  }
  if (!valid_fix(c.fix)) return rejected(ErrorCode::bad_message, "lat/lon/accuracy out of range");
  if (c.at < now_ - settings_->tracking.offline_window) {
    return rejected(ErrorCode::too_old,
                    "location at " + format_rfc3339(c.at) + " is older than the offline window");
  }
  if (c.at > now_ + settings_->tracking.offline_window) {
    // A clock this far ahead is broken; remembering the ping until it is "too old" by that
    // clock would hold memory for as long.
    return rejected(ErrorCode::bad_message, "at " + format_rfc3339(c.at) +
                                                " is further ahead of the server's clock than "
                                                "the offline window");
  }
  Flags ignored = 0;
  const TimePoint at = plausible(c.at, TimePoint::min(), ignored);
  const auto ci = find_carer(c.carer);
  if (!ci || !on_shift(carers_[*ci], at)) {
    return rejected(ErrorCode::off_shift, "carer " + c.carer + " is not on shift at " +
                                              format_rfc3339(at) + "; location not kept");
  }
  Carer& carer = carers_[*ci];
  if (!carer.last_fix || at >= carer.last_fix_at) {
    carer.last_fix = c.fix;
    carer.last_fix_at = at;
    // A phone may ping every few seconds; the estimate is made again at most this often, and
    // not while the carer is at a visit (it starts from there, whatever the phone says).
    if (now_ >= carer.assessed_at + settings_->tracking.min_ping_interval && !carer.at_visit) {
      carer.assessed_at = now_;
      assess(*ci, now_, fx);
    }
  }
  decided_.insert(key, Decision{kNoIndex, VisitState::scheduled, 0});
  // Kept until a resend would be refused as too old (by the device's own clock, which may be
  // ahead), so a resend is never taken as new.
  const auto& t = settings_->tracking;
  if (c.at <= now_ + t.device_skew) {
    pings_.push_back(PingMemory{now_ + t.offline_window + 2 * t.device_skew, key});
  } else {
    pings_ahead_.emplace(c.at + t.offline_window + t.device_skew, key);
  }
  Reply r;
  return r;
}

Reply Engine::on(const RunningLate& c, Effects& fx) {
  const EventKey key = EventKey::of(c.carer, c.event_id);
  if (auto dup = duplicate_of(key)) return *dup;
  if (auto e = check_event_id(c.event_id)) return rejected(*e);
  const auto found = carer_visit(c.carer, c.visit);
  if (!found) return rejected(found.error());
  const VisitIndex vi = found->visit;
  Visit& v = visits_[vi];
  if (!v.check_ins.empty()) {
    return rejected(ErrorCode::already_checked_in, "visit " + v.id + " is already under way");
  }
  if (c.eta < v.start - settings_->tracking.early_window ||
      c.eta > v.end + settings_->tracking.late_window) {
    return rejected(ErrorCode::bad_message,
                    "eta " + format_rfc3339(c.eta) + " is outside visit " + v.id + "'s window");
  }
  v.eta = c.eta;
  v.eta_reason = c.reason;
  const AlertIndex late = open_alert(v, AlertPhase::start);
  if (late != kNoIndex && alerts_[late].kind == AlertKind::late && !v.time_critical) {
    // Already late: the carer's word holds the pages while the eta is still to come and
    // within missed_after; an eta past that (or gone) lets them go on.
    const auto& th = thresholds_[v.thresholds];
    const bool believable = c.eta > now_ && c.eta <= v.start + th.missed_after;
    if (believable) {
      v.cause = LateCause::running_late;
      v.risk = Risk{RiskBasis::stated, c.eta, Duration{0}, kNoIndex, c.eta};
      if (!alerts_[late].held) {
        hold(late);
        alerts_[late].updated_at = now_;
        ++alerts_[late].seq;
        fx.push_back(Effect{Effect::Kind::alert_changed, late, AlertTransition::updated});
      }
    } else if (alerts_[late].held && v.cause == LateCause::running_late) {
      v.cause = LateCause::none;
      release(late, now_, fx);
    }
    plan_start(vi);
  }
  touch(vi, fx);
  assess(found->carer, now_, fx);
  remember(key, vi);
  return accepted(vi);
}

// ---------------------------------------------------------------------------------------
// Office commands

Reply Engine::on(const ImportRota& c, Effects& fx) {
  const auto b = find_branch(c.branch);
  if (!b) return rejected(ErrorCode::bad_message, "branch " + c.branch + " is not configured");
  const BranchInfo& branch = branches_[*b];

  // Validate everything before changing anything: the import is all or nothing.
  std::vector<ImportIssue> issues;
  std::set<std::string_view> in_plan;
  for (const auto& plan : c.visits) {
    if (!in_plan.insert(plan.id).second) {
      issues.push_back({plan.line, "visit_id", "visit " + plan.id + " appears twice"});
    }
    if (plan.carers.empty()) issues.push_back({plan.line, "carers", "no carer assigned"});
    for (std::size_t i = 0; i < plan.carers.size(); ++i) {
      if (std::find(plan.carers.begin(), plan.carers.begin() + std::ptrdiff_t(i), plan.carers[i]) !=
          plan.carers.begin() + std::ptrdiff_t(i)) {
        issues.push_back({plan.line, "carers", "carer " + plan.carers[i] + " is listed twice"});
      }
    }
    if (plan.end <= plan.start) issues.push_back({plan.line, "end", "end is not after start"});
    if (branch.zone.local_day(plan.start) != c.date) {
      issues.push_back({plan.line, "start",
                        "visit starts on " + format_local_date(branch.zone.local_day(plan.start)) +
                            ", not " + format_local_date(c.date)});
    }
    if (auto existing = find_visit(plan.id)) {
      const Visit& v = visits_[*existing];
      if (v.branch != *b) {
        issues.push_back({plan.line, "visit_id",
                          "visit " + plan.id + " belongs to branch " + branches_[v.branch].id});
      } else if (v.day != c.date) {
        issues.push_back({plan.line, "visit_id",
                          "visit " + plan.id + " is on the rota of " + format_local_date(v.day)});
      }
    }
  }
  if (!issues.empty()) {
    Reply r = rejected(ErrorCode::bad_rota,
                       "the rota was refused: " + std::to_string(issues.size()) + " problem(s)");
    r.issues = std::move(issues);
    return r;
  }

  Reply r;
  std::set<CarerIndex> touched_carers;
  auto& day = days_[{*b, day_number(c.date)}];

  // Visits no longer in the plan.
  for (VisitIndex vi : day) {
    Visit& v = visits_[vi];
    if (in_plan.count(v.id) || v.state == VisitState::cancelled) continue;
    if (!v.check_ins.empty()) {
      ++r.counts.kept;
      continue;
    }
    Cancel cancel{v.id, "removed from the rota", c.by};
    on(cancel, fx);
    ++r.counts.cancelled;
  }

  for (const auto& plan : c.visits) {
    const ClientIndex client = upsert_client(plan.client);
    CarerList carers;
    for (const auto& id : plan.carers) carers.push_back(carer_of(id));
    const std::uint16_t th = thresholds_index(*b, plan.type, plan.time_critical);

    auto existing = find_visit(plan.id);
    if (!existing) {
      const VisitIndex vi = VisitIndex(visits_.size());
      Visit v;
      v.id = plan.id;
      v.branch = *b;
      v.client = client;
      v.carers = carers;
      v.start = plan.start;
      v.end = plan.end;
      v.type = plan.type;
      v.time_critical = plan.time_critical;
      v.notes = plan.notes;
      v.day = c.date;
      v.thresholds = th;
      visits_.push_back(std::move(v));
      visit_ids_.emplace(IdKey(plan.id), vi);
      day.push_back(vi);
      for (CarerIndex ci : carers) {
        carers_[ci].visits.push_back(vi);
        touched_carers.insert(ci);
      }
      plan_start(vi);
      touch(vi, fx);
      ++r.counts.imported;
      continue;
    }

    const VisitIndex vi = *existing;
    Visit& v = visits_[vi];
    const bool same = v.client == client && clients_[client].id == plan.client.id &&
                      v.carers == carers && v.start == plan.start && v.end == plan.end &&
                      v.type == plan.type && v.time_critical == plan.time_critical &&
                      v.notes == plan.notes && v.state != VisitState::cancelled;
    if (same) {
      ++r.counts.unchanged;
      continue;
    }
    if (v.carers != carers) {
      Reassign re{v.id, plan.carers, c.by};
      if (v.state == VisitState::cancelled || v.state == VisitState::completed) {
        // Reassign refuses terminal visits; an import may still correct the record.
        for (CarerIndex old : v.carers) {
          touched_carers.insert(old);
          if (std::find(carers.begin(), carers.end(), old) == carers.end()) {
            auto& list = carers_[old].visits;
            list.erase(std::remove(list.begin(), list.end(), vi), list.end());
          }
        }
        v.carers = carers;
        for (CarerIndex ci : carers) {
          auto& list = carers_[ci].visits;
          if (std::find(list.begin(), list.end(), vi) == list.end()) list.push_back(vi);
        }
      } else {
        on(re, fx);
      }
      for (CarerIndex ci : carers) touched_carers.insert(ci);
    }
    const bool timing = v.start != plan.start || v.end != plan.end || v.thresholds != th;
    v.client = client;
    v.start = plan.start;
    v.end = plan.end;
    v.type = plan.type;
    v.time_critical = plan.time_critical;
    v.notes = plan.notes;
    v.thresholds = th;
    if (v.state == VisitState::cancelled) {
      // Put back on the rota by the office.
      v.cancel_reason.clear();
      v.state = v.check_ins.empty() ? VisitState::scheduled : VisitState::in_progress;
      complete_if_done(vi, now_, fx);
    }
    if (timing) settle_start_phase(vi, now_, fx);
    plan_start(vi);
    plan_end(vi);
    for (CarerIndex ci : v.carers) touched_carers.insert(ci);
    touch(vi, fx);
    ++r.counts.updated;
  }

  for (CarerIndex ci : touched_carers) {
    auto& list = carers_[ci].visits;
    std::sort(list.begin(), list.end(), [this](VisitIndex a, VisitIndex b) {
      return std::tie(visits_[a].start, visits_[a].id) < std::tie(visits_[b].start, visits_[b].id);
    });
    rebuild_shifts(ci);
    fx.push_back(Effect{Effect::Kind::rota_changed, ci});
    assess(ci, now_, fx);
  }
  return r;
}

Reply Engine::on(const Reassign& c, Effects& fx) {
  const auto found = find_visit(c.visit);
  if (!found) return rejected(ErrorCode::unknown_visit, "visit " + c.visit + " is unknown");
  const VisitIndex vi = *found;
  if (c.carers.empty()) return rejected(ErrorCode::bad_message, "carers must not be empty");
  for (std::size_t i = 0; i < c.carers.size(); ++i) {
    if (c.carers[i].empty()) return rejected(ErrorCode::bad_message, "a carer id is empty");
    for (std::size_t j = 0; j < i; ++j) {
      if (c.carers[i] == c.carers[j]) {
        return rejected(ErrorCode::bad_message, "carer " + c.carers[i] + " is listed twice");
      }
    }
  }
  if (visits_[vi].state == VisitState::cancelled) {
    return rejected(ErrorCode::visit_cancelled, "visit " + c.visit + " was cancelled");
  }
  if (visits_[vi].state == VisitState::completed) {
    return rejected(ErrorCode::conflict, "visit " + c.visit + " is already completed");
  }
  CarerList carers;
  for (const auto& id : c.carers) carers.push_back(carer_of(id));
  Visit& v = visits_[vi];
  if (carers == v.carers) {
    Reply r = accepted(vi);
    r.status = Status::unchanged;
    r.note = "visit " + v.id + " already has these carers";
    return r;
  }
  const CarerList old = v.carers;
  v.carers = carers;
  for (CarerIndex ci : old) {
    if (!v.assigned(ci)) {
      auto& list = carers_[ci].visits;
      list.erase(std::remove(list.begin(), list.end(), vi), list.end());
      rebuild_shifts(ci);
      fx.push_back(Effect{Effect::Kind::rota_changed, ci});
    }
  }
  for (CarerIndex ci : carers) {
    auto& list = carers_[ci].visits;
    if (std::find(list.begin(), list.end(), vi) == list.end()) {
      list.insert(std::upper_bound(list.begin(), list.end(), vi,
                                   [this](VisitIndex a, VisitIndex b) {
                                     return std::tie(visits_[a].start, visits_[a].id) <
                                            std::tie(visits_[b].start, visits_[b].id);
                                   }),
                  vi);
      rebuild_shifts(ci);
      fx.push_back(Effect{Effect::Kind::rota_changed, ci});
    }
  }
  // Open alerts now concern the new carer (the one still missing, if any).
  const CarerIndex target = missing_carer(v) != kNoIndex ? missing_carer(v) : v.carers.front();
  for (AlertIndex a : v.alerts) {
    if (a == kNoIndex || !alerts_[a].open() || alerts_[a].carer == target) continue;
    if (alerts_[a].phase == AlertPhase::location) continue;  // about who was there: unchanged
    alerts_[a].carer = target;
    alerts_[a].updated_at = now_;
    ++alerts_[a].seq;
    fx.push_back(Effect{Effect::Kind::alert_changed, a, AlertTransition::retargeted});
  }
  if (v.carers.size() < 2 || missing_carer(v) == kNoIndex) {
    resolve_phase(vi, AlertPhase::double_up, Resolution::reassigned, now_, fx);
  }
  plan_start(vi);
  touch(vi, fx);
  for (CarerIndex ci : old) {
    carers_[ci].passed = 0;  // the visit's first carer may be another now
    assess(ci, now_, fx);
  }
  for (CarerIndex ci : v.carers) {
    carers_[ci].passed = 0;
    assess(ci, now_, fx);
  }
  return accepted(vi);
}

Reply Engine::on(const Cancel& c, Effects& fx) {
  const auto found = find_visit(c.visit);
  if (!found) return rejected(ErrorCode::unknown_visit, "visit " + c.visit + " is unknown");
  const VisitIndex vi = *found;
  Visit& v = visits_[vi];
  if (v.state == VisitState::cancelled) {
    return rejected(ErrorCode::visit_cancelled, "visit " + c.visit + " was already cancelled");
  }
  if (v.state == VisitState::completed) {
    return rejected(ErrorCode::conflict, "visit " + c.visit + " is already completed");
  }
  v.state = VisitState::cancelled;
  v.cancel_reason = c.reason;
  wheel_.cancel(v.start_deadline);
  wheel_.cancel(v.end_deadline);
  for (AlertIndex a : v.alerts) {
    if (a != kNoIndex && alerts_[a].open()) resolve(a, Resolution::cancelled, c.by, now_, fx);
  }
  for (CarerIndex ci : v.carers) {
    rebuild_shifts(ci);
    fx.push_back(Effect{Effect::Kind::rota_changed, ci});
    assess(ci, now_, fx);
  }
  touch(vi, fx);
  return accepted(vi);
}

Reply Engine::on(const AckAlert& c, Effects& fx) {
  const auto found = find_alert(c.alert);
  if (!found) return rejected(ErrorCode::unknown_alert, "alert " + c.alert + " is unknown");
  Alert& a = alerts_[*found];
  Reply r;
  r.alert = *found;
  r.visit = a.visit;
  if (a.state != AlertState::triggered) {
    r.status = Status::unchanged;
    r.note = "alert " + c.alert + " is already " + std::string(to_string(a.state));
    return r;
  }
  a.state = AlertState::acknowledged;
  a.acked_at = now_;
  a.acked_by = c.by;
  if (!c.note.empty()) a.note = c.note;
  a.updated_at = now_;
  ++a.seq;
  plan_escalation(*found);  // the ladder stops; the ack timeout starts
  fx.push_back(Effect{Effect::Kind::alert_changed, *found, AlertTransition::acknowledged});
  return r;
}

Reply Engine::on(const ResolveAlert& c, Effects& fx) {
  const auto found = find_alert(c.alert);
  if (!found) return rejected(ErrorCode::unknown_alert, "alert " + c.alert + " is unknown");
  Alert& a = alerts_[*found];
  Reply r;
  r.alert = *found;
  r.visit = a.visit;
  if (a.state == AlertState::resolved) {
    r.status = Status::unchanged;
    r.note = "alert " + c.alert + " is already resolved";
    return r;
  }
  if (!c.note.empty()) a.note = c.note;
  resolve(*found, Resolution::user, c.by, now_, fx);
  return r;
}

// ---------------------------------------------------------------------------------------
// Rota bookkeeping

CarerIndex Engine::carer_of(std::string_view id) {
  auto [it, inserted] = carer_ids_.try_emplace(IdKey(id), CarerIndex(carers_.size()));
  if (inserted) {
    Carer carer;
    carer.id = std::string(id);
    carers_.push_back(std::move(carer));
  }
  return it->second;
}

ClientIndex Engine::upsert_client(const ClientPlan& plan) {
  auto [it, inserted] = client_ids_.try_emplace(IdKey(plan.id), ClientIndex(clients_.size()));
  if (inserted) clients_.emplace_back();
  Client& c = clients_[it->second];
  c.id = plan.id;
  c.name = plan.name;
  c.location = plan.location;
  if (homes_.size() < clients_.size()) homes_.resize(clients_.size());
  homes_[it->second] = plan.location;
  c.geofence_m = plan.geofence_m;
  c.tag = plan.tag;
  return it->second;
}

std::uint16_t Engine::thresholds_index(BranchIndex b, std::string_view type, bool tc) {
  std::string key = branches_[b].id;
  key += '\0';
  key += type;
  key += '\0';  // a char: the literal "\0c" would append nothing
  key += tc ? 'c' : 'n';
  auto it = thresholds_ids_.find(key);
  if (it != thresholds_ids_.end()) return it->second;
  thresholds_.push_back(settings_->thresholds_for(branches_[b].id, type, tc));
  longest_late_after_ = std::max(longest_late_after_, thresholds_.back().late_after);
  const auto index = std::uint16_t(thresholds_.size() - 1);
  thresholds_ids_.emplace(std::move(key), index);
  return index;
}

void Engine::rebuild_shifts(CarerIndex ci) {
  Carer& carer = carers_[ci];
  carer.shifts.clear();
  carer.passed = 0;  // the rota changed: any visit may be the next one again
  // One shift per local day: first visit's start - lead to last visit's end + tail.
  std::map<std::pair<BranchIndex, std::int32_t>, Shift> by_day;
  for (VisitIndex vi : carer.visits) {
    const Visit& v = visits_[vi];
    if (v.state == VisitState::cancelled) continue;
    auto [it, inserted] = by_day.try_emplace({v.branch, day_number(v.day)}, Shift{v.start, v.end});
    if (!inserted) {
      it->second.from = std::min(it->second.from, v.start);
      it->second.to = std::max(it->second.to, v.end);
    }
  }
  for (auto& [day, shift] : by_day) {
    carer.shifts.push_back(Shift{shift.from - settings_->tracking.shift_lead,
                                 shift.to + settings_->tracking.shift_tail});
    longest_shift_ = std::max(longest_shift_, carer.shifts.back().to - carer.shifts.back().from);
  }
  std::sort(carer.shifts.begin(), carer.shifts.end(),
            [](const Shift& a, const Shift& b) { return a.from < b.from; });
}

const Shift* Engine::shift_at(const Carer& carer, TimePoint t) const {
  // Shifts are sorted by start, one per branch and local day, and a carer keeps every day's:
  // find the last starting at or before t, then look back only as far as a shift can reach
  // (shifts of different branches may overlap), never over the carer's whole history.
  auto it = std::upper_bound(carer.shifts.begin(), carer.shifts.end(), t,
                             [](TimePoint x, const Shift& s) { return x < s.from; });
  const Shift* earliest = nullptr;
  while (it != carer.shifts.begin()) {
    --it;
    if (it->from < t - longest_shift_) break;  // it, and all before it, ended before t
    if (t <= it->to) earliest = &*it;
  }
  return earliest;
}

bool Engine::on_shift(const Carer& carer, TimePoint t) const {
  return shift_at(carer, t) != nullptr;
}

std::optional<Engine::Sighting> Engine::last_seen(CarerIndex c, TimePoint t) const {
  const Carer& carer = carers_[c];
  if (!carer.last_fix) return std::nullopt;
  const Shift* shift = shift_at(carer, t);
  if (shift == nullptr || carer.last_fix_at < shift->from) return std::nullopt;
  return Sighting{*carer.last_fix, carer.last_fix_at};
}

// ---------------------------------------------------------------------------------------
// Deadlines

void Engine::plan_start(VisitIndex vi) {
  Visit& v = visits_[vi];
  wheel_.cancel(v.start_deadline);
  v.start_deadline = {};
  if (v.state == VisitState::cancelled) return;
  const auto& th = thresholds_[v.thresholds];
  std::optional<TimePoint> at;
  if (v.check_ins.empty()) {
    if (v.state == VisitState::scheduled) at = v.start + th.late_after;
    if (v.state == VisitState::late) {
      at = v.start + th.missed_after;
      const AlertIndex a = open_alert(v, AlertPhase::start);
      if (v.cause == LateCause::running_late && v.eta && a != kNoIndex && alerts_[a].held) {
        at = std::min(*at, *v.eta);
      }
    }
  } else if (v.carers.size() > 1 && !(v.flags & kDoubleUpIncomplete) &&
             missing_carer(v) != kNoIndex && !is_terminal(v.state)) {
    at = v.start + th.late_after;
  }
  if (at) {
    v.start_deadline = wheel_.schedule(*at, payload(vi, DeadlineKind::start_phase));
  }
}

void Engine::plan_end(VisitIndex vi) {
  Visit& v = visits_[vi];
  wheel_.cancel(v.end_deadline);
  v.end_deadline = {};
  if (v.check_ins.empty()) return;
  const auto& th = thresholds_[v.thresholds];
  const TimePoint due = v.check_ins.front().at + v.planned();
  std::optional<TimePoint> at;
  if (v.state == VisitState::in_progress) at = due + th.overrun_after;
  if (v.state == VisitState::overrunning) at = due + th.no_checkout_after;
  if (at) {
    v.end_deadline = wheel_.schedule(*at, payload(vi, DeadlineKind::end_phase));
  }
}

void Engine::fire(std::uint32_t index, DeadlineKind kind, TimePoint at, Effects& fx) {
  switch (kind) {
    case DeadlineKind::start_phase:
      visits_[index].start_deadline = {};
      on_start_deadline(index, at, fx);
      break;
    case DeadlineKind::end_phase:
      visits_[index].end_deadline = {};
      on_end_deadline(index, at, fx);
      break;
    case DeadlineKind::escalation:
      alerts_[index].step = {};
      on_escalation_deadline(index, at, fx);
      break;
    case DeadlineKind::at_risk:
      carers_[index].recheck = {};
      assess(index, at, fx);
      break;
  }
}

Severity Engine::late_severity(const Visit& v) const {
  return v.time_critical ? Severity::critical : Severity::warning;
}

void Engine::on_start_deadline(VisitIndex vi, TimePoint at, Effects& fx) {
  Visit& v = visits_[vi];
  const auto& th = thresholds_[v.thresholds];
  if (!v.check_ins.empty()) {
    check_double_up(vi, at, fx);
    return;
  }
  const CarerIndex carer = v.carers.front();
  if (at >= v.start + th.missed_after && v.state != VisitState::missed) {
    v.state = VisitState::missed;
    raise(vi, AlertPhase::start, AlertKind::missed, Severity::critical, carer, at, fx);
  } else if (at >= v.start + th.late_after && v.state == VisitState::scheduled) {
    v.state = VisitState::late;
    Risk risk;
    v.cause = late_cause(vi, at, risk);
    if (v.cause != LateCause::none) v.risk = risk;
    const AlertIndex a =
        raise(vi, AlertPhase::start, AlertKind::late, late_severity(v), carer, at, fx);
    // A time-critical visit pages however plain the cause: someone else may have to go.
    if (v.cause != LateCause::none && !v.time_critical) hold(a);
  } else if (v.state == VisitState::late && v.cause == LateCause::running_late && v.eta &&
             at >= *v.eta) {
    // The carer's own eta passed without a check-in: now it needs a person.
    const AlertIndex a = open_alert(v, AlertPhase::start);
    if (a != kNoIndex && alerts_[a].held) release(a, at, fx);
  }
  touch(vi, fx);
  plan_start(vi);
  // The carer's next visit is another one now.
  for (CarerIndex c : v.carers) assess(c, at, fx);
}

void Engine::check_double_up(VisitIndex vi, TimePoint at, Effects& fx) {
  Visit& v = visits_[vi];
  const CarerIndex missing = missing_carer(v);
  if (missing == kNoIndex || is_terminal(v.state)) return;
  v.flags |= kDoubleUpIncomplete;
  raise(vi, AlertPhase::double_up, AlertKind::double_up_incomplete, late_severity(v), missing, at,
        fx);
  touch(vi, fx);
}

void Engine::on_end_deadline(VisitIndex vi, TimePoint at, Effects& fx) {
  Visit& v = visits_[vi];
  const auto& th = thresholds_[v.thresholds];
  const TimePoint due = v.check_ins.front().at + v.planned();
  CarerIndex carer = v.check_ins.front().carer;
  for (const auto& in : v.check_ins) {
    if (!v.checked_out(in.carer)) {
      carer = in.carer;
      break;
    }
  }
  if (at >= due + th.no_checkout_after && v.state != VisitState::no_checkout) {
    v.state = VisitState::no_checkout;
    raise(vi, AlertPhase::end, AlertKind::no_checkout, Severity::warning, carer, at, fx);
  } else if (at >= due + th.overrun_after && v.state == VisitState::in_progress) {
    v.state = VisitState::overrunning;
    raise(vi, AlertPhase::end, AlertKind::overrunning, Severity::info, carer, at, fx);
  }
  touch(vi, fx);
  plan_end(vi);
}

void Engine::complete_if_done(VisitIndex vi, TimePoint at, Effects& fx) {
  Visit& v = visits_[vi];
  if (v.check_ins.empty() || v.check_outs.size() < v.check_ins.size()) return;
  v.state = VisitState::completed;
  wheel_.cancel(v.end_deadline);
  v.end_deadline = {};
  wheel_.cancel(v.start_deadline);
  v.start_deadline = {};
  resolve_phase(vi, AlertPhase::end, Resolution::checked_out, at, fx);
  resolve_phase(vi, AlertPhase::double_up, Resolution::checked_out, at, fx);
  TimePoint first = v.check_ins.front().at;
  for (const auto& r : v.check_ins) first = std::min(first, r.at);
  TimePoint last = first;
  for (const auto& r : v.check_outs) last = std::max(last, r.at);
  const auto& th = thresholds_[v.thresholds];
  const double worked = double((last - first).count());
  if (worked < th.short_ratio * double(v.planned().count()) && !(v.flags & kShort)) {
    v.flags |= kShort;
    raise(vi, AlertPhase::duration, AlertKind::short_visit, Severity::warning,
          v.check_outs.back().carer, at, fx);
  }
}

void Engine::settle_start_phase(VisitIndex vi, TimePoint at, Effects& fx) {
  // The office moved a visit nobody has checked in to yet: its lateness is judged afresh.
  Visit& v = visits_[vi];
  if (!v.check_ins.empty() || v.state == VisitState::cancelled) return;
  const auto& th = thresholds_[v.thresholds];
  const AlertIndex a = open_alert(v, AlertPhase::start);
  if (at < v.start + th.late_after) {
    v.state = VisitState::scheduled;
    if (a != kNoIndex) resolve(a, Resolution::rescheduled, "", at, fx);
  } else if (at < v.start + th.missed_after && v.state == VisitState::missed) {
    v.state = VisitState::late;
    if (a != kNoIndex) {
      Alert& alert = alerts_[a];
      alert.kind = AlertKind::late;
      alert.severity = late_severity(v);
      alert.updated_at = at;
      ++alert.seq;
      fx.push_back(Effect{Effect::Kind::alert_changed, a, AlertTransition::updated});
    }
  }
}

// ---------------------------------------------------------------------------------------
// Alerts

AlertIndex Engine::open_alert(const Visit& v, AlertPhase phase) const {
  const AlertIndex a = v.alerts[std::size_t(phase)];
  return a != kNoIndex && alerts_[a].open() ? a : kNoIndex;
}

AlertIndex Engine::raise(VisitIndex vi, AlertPhase phase, AlertKind kind, Severity severity,
                         CarerIndex carer, TimePoint at, Effects& fx) {
  Visit& v = visits_[vi];
  const AlertIndex existing = open_alert(v, phase);
  if (existing != kNoIndex) {
    Alert& a = alerts_[existing];
    if (severity <= a.severity && kind == a.kind) return existing;
    const bool rose = severity > a.severity;
    a.kind = kind;
    a.severity = std::max(a.severity, severity);
    a.updated_at = at;
    ++a.seq;
    if (rose) a.held = false;  // missed pages whatever the cause
    if (rose && a.state == AlertState::acknowledged) {
      // A rise needs a person's attention again.
      a.state = AlertState::triggered;
      a.acked_at.reset();
      a.acked_by.clear();
    }
    // A rise is a new condition (late → missed): the new severity's ladder, from its start.
    if (rose) start_ladder(existing, at);
    fx.push_back(Effect{Effect::Kind::alert_changed, existing,
                        rose ? AlertTransition::severity_rose : AlertTransition::updated});
    return existing;
  }
  Alert a;
  a.number = std::uint32_t(alerts_.size() + 1);
  a.visit = vi;
  a.phase = phase;
  a.kind = kind;
  a.severity = severity;
  a.carer = carer;
  a.raised_at = at;
  a.updated_at = at;
  const auto index = AlertIndex(alerts_.size());
  alerts_.push_back(std::move(a));
  mark_open(index, true);
  v.alerts[std::size_t(phase)] = index;
  start_ladder(index, at);
  fx.push_back(Effect{Effect::Kind::alert_changed, index, AlertTransition::raised});
  return index;
}

void Engine::mark_open(AlertIndex a, bool open) {
  const std::size_t word = a / 64;
  if (word >= open_bits_.size()) open_bits_.resize(word + 1, 0);
  const std::uint64_t bit = std::uint64_t(1) << (a % 64);
  open_bits_[word] = open ? open_bits_[word] | bit : open_bits_[word] & ~bit;
}

std::vector<AlertIndex> Engine::open_alerts() const {
  std::vector<AlertIndex> open;
  for (std::size_t w = 0; w < open_bits_.size(); ++w) {
    for (std::uint64_t bits = open_bits_[w]; bits != 0; bits &= bits - 1) {
      open.push_back(AlertIndex(w * 64 + std::size_t(std::countr_zero(bits))));
    }
  }
  return open;
}

void Engine::resolve(AlertIndex ai, Resolution why, std::string_view by, TimePoint at,
                     Effects& fx) {
  Alert& a = alerts_[ai];
  if (!a.open()) return;
  a.state = AlertState::resolved;
  mark_open(ai, false);
  a.resolution = why;
  a.resolved_by = std::string(by);
  a.resolved_at = at;
  a.updated_at = at;
  ++a.seq;
  plan_escalation(ai);  // cancels the next step or the ack timeout
  fx.push_back(Effect{Effect::Kind::alert_changed, ai, AlertTransition::resolved});
}

// ---------------------------------------------------------------------------------------
// Escalation

std::uint16_t Engine::intern_ladder(const std::vector<config::EscalationStep>& steps) {
  for (std::size_t i = 0; i < ladders_.size(); ++i) {
    if (ladders_[i] == steps) return std::uint16_t(i);
  }
  // Every distinct ladder a config ever had: a handful, far below the cap.
  if (ladders_.size() >= Alert::kNoLadder) return Alert::kNoLadder;
  ladders_.push_back(steps);
  return std::uint16_t(ladders_.size() - 1);
}

void Engine::start_ladder(AlertIndex ai, TimePoint at) {
  Alert& a = alerts_[ai];
  const config::Escalation& policy = settings_->escalation;
  const std::vector<config::EscalationStep>* steps = nullptr;
  if (a.severity == Severity::critical) steps = &policy.critical;
  if (a.severity == Severity::warning) steps = &policy.warning;
  if (steps != nullptr && visits_[a.visit].time_critical && !policy.time_critical.empty()) {
    steps = &policy.time_critical;
  }
  a.ladder = steps == nullptr || steps->empty() ? Alert::kNoLadder : intern_ladder(*steps);
  a.ladder_from = at;
  a.escalation_level = 0;
  plan_escalation(ai);
}

void Engine::plan_escalation(AlertIndex ai) {
  Alert& a = alerts_[ai];
  wheel_.cancel(a.step);
  a.step = {};
  const auto steps = ladder(a);
  if (steps.empty()) return;
  std::optional<TimePoint> at;
  if (a.state == AlertState::triggered && !a.held &&
      std::size_t(a.escalation_level) < steps.size()) {
    at = a.ladder_from + steps[std::size_t(a.escalation_level)].after;
  }
  if (a.state == AlertState::acknowledged && a.reopens < settings_->escalation.max_reopens &&
      a.acked_at) {
    at = *a.acked_at + settings_->escalation.ack_timeout;
  }
  if (at) a.step = wheel_.schedule(*at, payload(ai, DeadlineKind::escalation));
}

void Engine::on_escalation_deadline(AlertIndex ai, TimePoint at, Effects& fx) {
  Alert& a = alerts_[ai];
  const auto steps = ladder(a);
  if (a.state == AlertState::triggered) {
    ++a.escalation_level;
    a.updated_at = at;
    ++a.seq;
    plan_escalation(ai);
    fx.push_back(
        Effect{Effect::Kind::alert_changed, ai, AlertTransition::escalated, a.escalation_level});
  } else if (a.state == AlertState::acknowledged) {
    // Acknowledged, then nothing: someone said "mine" and the client is still waiting.
    // The step that paged last pages again, and the ladder goes on from there.
    a.state = AlertState::triggered;
    a.acked_at.reset();
    a.acked_by.clear();
    ++a.reopens;
    a.updated_at = at;
    ++a.seq;
    const std::size_t fired = std::size_t(a.escalation_level);
    a.ladder_from = fired == 0 ? at : at - steps[fired - 1].after;
    plan_escalation(ai);
    fx.push_back(
        Effect{Effect::Kind::alert_changed, ai, AlertTransition::reopened, a.escalation_level});
  }
}

void Engine::resolve_phase(VisitIndex vi, AlertPhase phase, Resolution why, TimePoint at,
                           Effects& fx) {
  const AlertIndex a = open_alert(visits_[vi], phase);
  if (a != kNoIndex) resolve(a, why, "", at, fx);
}

void Engine::touch(VisitIndex vi, Effects& fx) {
  const Effect e{Effect::Kind::visit_changed, vi};
  if (fx.empty() || !(fx.back() == e)) fx.push_back(e);
}

CarerIndex Engine::missing_carer(const Visit& v) const {
  for (CarerIndex c : v.carers) {
    if (!v.checked_in(c)) return c;
  }
  return kNoIndex;
}

// ---------------------------------------------------------------------------------------
// At risk
//
// Each carer's next visit (the first not yet due late) is estimated from where the carer is:
// still at a previous visit (leaving at its planned finish, or now if it overruns), else the
// later of the last location fix and the last check-out of the same shift. The estimate is
// made again only when something about that carer changes (a check-in or -out, a ping at
// most every min_ping_interval, a rota change, their visit turning late) or when time alone
// would change it (a carer still at a visit: one deadline per carer): never by a sweep.

namespace {

/// Worth a board update: another basis, or an arrival a minute or more away from the last.
bool worth_telling(const Risk& was, const Risk& now) {
  const auto moved = was.eta > now.eta ? was.eta - now.eta : now.eta - was.eta;
  return was.basis != now.basis || was.from != now.from || moved >= std::chrono::minutes(1);
}

}  // namespace

std::size_t Engine::next_visit(CarerIndex ci, TimePoint at) const {
  const Carer& carer = carers_[ci];
  // Where the last search ended (nothing before it can be the next visit again until the
  // carer's rota changes), else the first visit that may not be due late yet: those started
  // at most the longest late_after ago.
  auto it = carer.visits.begin() + std::ptrdiff_t(std::min(carer.passed, carer.visits.size()));
  if (carer.passed == 0) {
    it = std::lower_bound(carer.visits.begin(), carer.visits.end(), at - longest_late_after_,
                          [this](VisitIndex v, TimePoint t) { return visits_[v].start < t; });
  }
  for (; it != carer.visits.end(); ++it) {
    const Visit& v = visits_[*it];
    // Cheapest first: the carers' list is one more memory access away.
    if (v.state != VisitState::scheduled || !v.check_ins.empty()) continue;
    if (at >= v.start + thresholds_[v.thresholds].late_after) continue;
    if (v.carers.front() != ci) continue;
    carer.passed = std::size_t(it - carer.visits.begin());
    return carer.passed;
  }
  carer.passed = carer.visits.size();
  return kNoPosition;
}

std::size_t Engine::position(CarerIndex ci, VisitIndex vi) const {
  const auto& list = carers_[ci].visits;
  auto it = std::lower_bound(list.begin(), list.end(), visits_[vi].start,
                             [this](VisitIndex v, TimePoint t) { return visits_[v].start < t; });
  while (it != list.end() && *it != vi && visits_[*it].start == visits_[vi].start) ++it;
  return it != list.end() && *it == vi ? std::size_t(it - list.begin()) : kNoPosition;
}

Risk Engine::whereabouts(CarerIndex ci, std::size_t pos, TimePoint at,
                         std::optional<TimePoint>* recheck) const {
  // Visits a carer skipped (no check-in) are passed over, up to this many.
  constexpr int kLookBack = 16;
  const Carer& carer = carers_[ci];
  const Visit& v = visits_[carer.visits[pos]];
  const auto& t = settings_->tracking;
  const TimePoint late_at = v.start + thresholds_[v.thresholds].late_after;

  // Only what happened on this visit's shift says where the carer is.
  const Shift* shift = shift_at(carer, v.start);
  const TimePoint shift_from = shift != nullptr ? shift->from : v.start - t.shift_lead;
  // The latest visit (by start) the carer came to: still under way, or left.
  const CheckRecord* open = nullptr;
  const CheckRecord* left = nullptr;
  VisitIndex previous = kNoIndex;
  for (std::size_t i = pos, n = 0; i > 0 && n < kLookBack; ++n) {
    const VisitIndex wi = carer.visits[--i];
    const Visit& w = visits_[wi];
    if (w.end < shift_from) break;
    if (w.state == VisitState::cancelled) continue;
    // A check-out implies the check-in: look there first (the usual case: the carer left).
    const auto out = std::find_if(w.check_outs.begin(), w.check_outs.end(),
                                  [ci](const CheckRecord& r) { return r.carer == ci; });
    if (out != w.check_outs.end()) {
      left = &*out;
    } else {
      const auto in = std::find_if(w.check_ins.begin(), w.check_ins.end(),
                                   [ci](const CheckRecord& r) { return r.carer == ci; });
      if (in == w.check_ins.end()) continue;
      if (!is_terminal(w.state)) open = &*in;
    }
    previous = wi;
    break;
  }

  Risk r;
  geo::LatLon origin;
  TimePoint leave;
  if (open != nullptr) {
    const TimePoint finish = open->at + visits_[previous].planned();
    r.basis = at > finish ? RiskBasis::overrunning : RiskBasis::in_visit;
    r.from = previous;
    r.since = finish;
    origin = homes_[visits_[previous].client];
    leave = std::max(at, finish);
  } else if (t.location_pings && carer.last_fix && carer.last_fix_at >= shift_from &&
             (left == nullptr || carer.last_fix_at > left->at)) {
    r.basis = RiskBasis::location;
    r.since = carer.last_fix_at;
    origin = carer.last_fix->position;
    leave = carer.last_fix_at;
  } else if (left != nullptr) {
    r.basis = RiskBasis::left;
    r.from = previous;
    r.since = left->at;
    origin = homes_[visits_[previous].client];
    leave = left->at;
  } else {
    return Risk{};
  }
  // Carers drive a few kilometres: the local estimate is the geodesic one to the second, at
  // a fraction of its cost (this runs on pings).
  r.drive = geo::travel_time_local(origin, homes_[v.client],
                                   geo::TravelModel{t.road_factor, t.speed_kmh, t.travel_minimum});
  r.eta = leave + r.drive;
  const bool waiting = r.basis == RiskBasis::in_visit || r.basis == RiskBasis::overrunning;
  if (recheck != nullptr && waiting && r.eta <= late_at) {
    // Still at a visit: from its finish on, every minute there is a minute later.
    *recheck = late_at - r.drive + Duration(1);
  }
  return r;
}

void Engine::assess(CarerIndex ci, TimePoint at, Effects& fx) {
  Carer& carer = carers_[ci];
  wheel_.cancel(carer.recheck);
  carer.recheck = {};
  if (!settings_->tracking.at_risk && carer.at_risk == kNoIndex) return;
  VisitIndex next = kNoIndex;
  Risk risk;
  std::optional<TimePoint> recheck;
  if (settings_->tracking.at_risk) {
    const std::size_t pos = next_visit(ci, at);
    if (pos != kNoPosition) {
      next = carer.visits[pos];
      const Visit& v = visits_[next];
      risk = v.eta ? Risk{RiskBasis::stated, *v.eta, Duration{0}, kNoIndex, *v.eta}
                   : whereabouts(ci, pos, at, &recheck);
    }
  }
  const bool at_risk =
      risk.basis != RiskBasis::none &&
      risk.eta > visits_[next].start + thresholds_[visits_[next].thresholds].late_after;

  const VisitIndex was = carer.at_risk;
  if (was != kNoIndex && (was != next || !at_risk)) {
    Visit& w = visits_[was];
    const AlertIndex a = open_alert(w, AlertPhase::start);
    if (a != kNoIndex && alerts_[a].kind == AlertKind::at_risk) {
      const bool still_theirs = w.assigned(ci) && w.state != VisitState::cancelled;
      resolve(a, still_theirs ? Resolution::on_track : Resolution::reassigned, "", at, fx);
      w.risk = Risk{};
      touch(was, fx);
    }
  }
  carer.at_risk = at_risk ? next : kNoIndex;
  carer.at_visit = risk.basis == RiskBasis::in_visit || risk.basis == RiskBasis::overrunning;
  // Already flagged with much the same estimate (the usual case on a ping): nothing to tell.
  // (An at_risk alert the office resolved by hand stays resolved until the estimate moves.)
  const bool same = at_risk && visits_[next].risk.basis != RiskBasis::none &&
                    !worth_telling(visits_[next].risk, risk);
  if (at_risk && !same) {
    Visit& v = visits_[next];
    const AlertIndex open = open_alert(v, AlertPhase::start);
    if (open == kNoIndex) {
      v.risk = risk;
      raise(next, AlertPhase::start, AlertKind::at_risk, Severity::info, ci, at, fx);
      touch(next, fx);
    } else if (alerts_[open].kind == AlertKind::at_risk && worth_telling(v.risk, risk)) {
      v.risk = risk;
      alerts_[open].updated_at = at;
      ++alerts_[open].seq;
      fx.push_back(Effect{Effect::Kind::alert_changed, open, AlertTransition::updated});
      touch(next, fx);
    }
  }
  if (recheck) carer.recheck = wheel_.schedule(*recheck, payload(ci, DeadlineKind::at_risk));
}

LateCause Engine::late_cause(VisitIndex vi, TimePoint at, Risk& risk) const {
  const Visit& v = visits_[vi];
  const TimePoint missed_at = v.start + thresholds_[v.thresholds].missed_after;
  if (v.eta && *v.eta > at && *v.eta <= missed_at) {
    risk = Risk{RiskBasis::stated, *v.eta, Duration{0}, kNoIndex, *v.eta};
    return LateCause::running_late;
  }
  const std::size_t pos = position(v.carers.front(), vi);
  risk = pos == kNoPosition ? Risk{} : whereabouts(v.carers.front(), pos, at, nullptr);
  if (risk.basis == RiskBasis::in_visit || risk.basis == RiskBasis::overrunning) {
    return LateCause::previous_overrun;
  }
  // On the way from a visit that overran (its end alert says so), due before missed.
  if (risk.basis == RiskBasis::left && risk.eta <= missed_at &&
      visits_[risk.from].alerts[std::size_t(AlertPhase::end)] != kNoIndex) {
    return LateCause::previous_overrun;
  }
  return LateCause::none;
}

void Engine::hold(AlertIndex a) {
  alerts_[a].held = true;
  plan_escalation(a);  // cancels the next step
}

void Engine::release(AlertIndex ai, TimePoint at, Effects& fx) {
  Alert& a = alerts_[ai];
  a.held = false;
  a.updated_at = at;
  ++a.seq;
  // The ladder goes on from the step it stood at, that step due now.
  const auto steps = ladder(a);
  const auto level = std::size_t(a.escalation_level);
  if (level < steps.size()) a.ladder_from = at - steps[level].after;
  plan_escalation(ai);
  fx.push_back(Effect{Effect::Kind::alert_changed, ai, AlertTransition::updated});
}

// ---------------------------------------------------------------------------------------
// Canonical dump

namespace {

void put(std::ostream& os, const std::optional<Fix>& f) {
  if (!f) {
    os << "-";
    return;
  }
  os << f->position.lat << ',' << f->position.lon << '~' << f->accuracy_m;
}

void put(std::ostream& os, const CheckRecord& r) {
  os << "  rec carer=" << r.carer << " id=" << r.event_id.view() << " at=" << format_rfc3339(r.at)
     << " device=" << format_rfc3339(r.device_at) << " recv=" << format_rfc3339(r.received_at)
     << " fix=";
  put(os, r.fix);
  os << " dist=" << r.distance_m << " method=" << to_string(r.method) << " note=" << r.note << '\n';
}

}  // namespace

std::string Engine::canonical_dump() const {
  std::ostringstream os;
  os.precision(17);
  os << "now " << format_rfc3339(now_) << '\n';
  for (const auto& c : clients_) {
    os << "client " << c.id << " " << c.name << " " << c.location.lat << "," << c.location.lon
       << " fence=" << c.geofence_m.value_or(-1) << " tag=" << c.tag << '\n';
  }
  for (const auto& c : carers_) {
    os << "carer " << c.id << " visits=";
    for (VisitIndex v : c.visits) os << visits_[v].id << ' ';
    os << "shifts=";
    for (const auto& s : c.shifts)
      os << format_rfc3339(s.from) << '/' << format_rfc3339(s.to) << ' ';
    os << "fix=";
    put(os, c.last_fix);
    os << '@' << format_rfc3339(c.last_fix_at)
       << " at_risk=" << (c.at_risk == kNoIndex ? -1 : std::int64_t(c.at_risk))
       << " assessed=" << format_rfc3339(c.assessed_at) << " at_visit=" << c.at_visit
       << " recheck=" << wheel_.pending(c.recheck) << '\n';
  }
  for (const auto& v : visits_) {
    os << "visit " << v.id << " branch=" << branches_[v.branch].id
       << " client=" << clients_[v.client].id << " carers=";
    for (CarerIndex c : v.carers) os << carers_[c].id << ' ';
    os << "start=" << format_rfc3339(v.start) << " end=" << format_rfc3339(v.end)
       << " type=" << v.type << " tc=" << v.time_critical << " notes=" << v.notes
       << " day=" << format_local_date(v.day) << " state=" << to_string(v.state)
       << " flags=" << v.flags << " late_by=" << v.late_by_s
       << " eta=" << (v.eta ? format_rfc3339(*v.eta) : "-") << " eta_reason=" << v.eta_reason
       << " cancel=" << v.cancel_reason << " risk=" << to_string(v.risk.basis) << '/'
       << format_rfc3339(v.risk.eta) << '/' << v.risk.drive.count() << '/'
       << (v.risk.from == kNoIndex ? -1 : std::int64_t(v.risk.from)) << '/'
       << format_rfc3339(v.risk.since) << " cause=" << to_string(v.cause) << " alerts=";
    for (AlertIndex a : v.alerts) os << (a == kNoIndex ? -1 : std::int64_t(a)) << ' ';
    os << "start_deadline=" << wheel_.pending(v.start_deadline)
       << " end_deadline=" << wheel_.pending(v.end_deadline) << '\n';
    for (const auto& r : v.check_ins) put(os, r);
    for (const auto& r : v.check_outs) put(os, r);
  }
  for (const auto& a : alerts_) {
    os << "alert " << a.id() << " " << a.key(visits_[a.visit].id) << " " << to_string(a.kind) << " "
       << to_string(a.severity) << " " << to_string(a.state) << " carer=" << carers_[a.carer].id
       << " raised=" << format_rfc3339(a.raised_at) << " updated=" << format_rfc3339(a.updated_at)
       << " acked=" << (a.acked_at ? format_rfc3339(*a.acked_at) : "-") << '/' << a.acked_by
       << " resolved=" << (a.resolved_at ? format_rfc3339(*a.resolved_at) : "-") << '/'
       << a.resolved_by << " why=" << to_string(a.resolution) << " note=" << a.note
       << " level=" << a.escalation_level << " seq=" << a.seq << " held=" << a.held << " ladder=";
    for (const auto& step : ladder(a)) {
      os << step.after.count() << ':';
      for (const auto& n : step.notify) os << n << ',';
      os << ';';
    }
    os << " from=" << format_rfc3339(a.ladder_from) << " reopens=" << unsigned(a.reopens)
       << " next_step=" << wheel_.pending(a.step) << " notified=";
    for (const auto& n : a.notified) {
      os << n.receiver << '/' << n.transition << '/' << n.level << '@' << format_rfc3339(n.at)
         << ';';
    }
    os << '\n';
  }
  std::vector<std::pair<EventKey, Decision>> decided;
  decided_.for_each([&](const EventKey& k, const Decision& d) { decided.emplace_back(k, d); });
  std::sort(decided.begin(), decided.end(), [](const auto& x, const auto& y) {
    return std::tie(x.first.hi, x.first.lo) < std::tie(y.first.hi, y.first.lo);
  });
  for (const auto& [k, d] : decided) {
    os << "event " << k.hi << ':' << k.lo
       << " visit=" << std::int64_t(d.visit == kNoIndex ? -1 : d.visit)
       << " state=" << to_string(d.state) << " flags=" << d.flags << '\n';
  }
  for (const auto& p : pings_) {
    os << "ping " << p.key.hi << ':' << p.key.lo << " until " << format_rfc3339(p.forget_at)
       << '\n';
  }
  for (const auto& [at, key] : pings_ahead_) {
    os << "ping-ahead " << key.hi << ':' << key.lo << " until " << format_rfc3339(at) << '\n';
  }
  os << "deadlines " << wheel_.size() << '\n';
  return os.str();
}

}  // namespace visitd::rota
