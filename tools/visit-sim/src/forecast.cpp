#include "forecast.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include "visitd/rota/engine.hpp"

namespace visitd::sim {
namespace {

/// An event as the engine takes it from this carer.
rota::Command command(const Event& e, const std::string& carer) {
  std::optional<rota::Fix> fix;
  if (e.where) fix = rota::Fix{*e.where, e.accuracy};
  if (e.type == "check_in") {
    return rota::CheckIn{e.id, carer, e.visit, e.at, fix, rota::Method::gps, ""};
  }
  if (e.type == "check_out") {
    return rota::CheckOut{e.id, carer, e.visit, e.at, fix, rota::Method::gps, "", e.note};
  }
  if (e.type == "running_late") {
    return rota::RunningLate{e.id, carer, e.visit, e.eta.value_or(e.at), e.reason};
  }
  return rota::LocationPing{e.id, carer, e.at, fix.value_or(rota::Fix{})};
}

}  // namespace

double Forecast::median_lead_minutes() const {
  if (lead_minutes.empty()) return 0;
  const std::size_t n = lead_minutes.size();
  return n % 2 == 1 ? lead_minutes[n / 2] : (lead_minutes[n / 2 - 1] + lead_minutes[n / 2]) / 2;
}

double Forecast::false_alarm_rate() const {
  return at_risk_visits == 0 ? 0 : double(false_alarms) / double(at_risk_visits);
}

config::Settings forecast_settings(const std::vector<BranchDay>& days) {
  config::Settings s;
  for (const BranchDay& d : days) {
    s.branches.push_back(config::Branch{d.branch, d.branch, std::string(d.zone.name()), {}});
  }
  const geo::TravelModel model = travel_model();
  s.tracking.road_factor = model.road_factor;
  s.tracking.speed_kmh = model.speed_kmh;
  s.tracking.travel_minimum = model.minimum;
  s.thresholds.time_critical.late_after = std::chrono::minutes(5);
  s.thresholds.time_critical.missed_after = std::chrono::minutes(30);
  return s;
}

Forecast measure_forecast(const config::Settings& settings, const std::vector<BranchDay>& days,
                          const Plan& plan) {
  struct Send {
    TimePoint at;
    std::size_t carer;
    std::size_t step;
  };
  std::vector<Send> sends;
  for (std::size_t c = 0; c < plan.carers.size(); ++c) {
    for (std::size_t s = 0; s < plan.carers[c].steps.size(); ++s) {
      sends.push_back({plan.carers[c].steps[s].send_at, c, s});
    }
  }
  std::stable_sort(sends.begin(), sends.end(), [](const Send& a, const Send& b) {
    return std::tie(a.at, a.carer, a.step) < std::tie(b.at, b.carer, b.step);
  });

  TimePoint first = sends.empty() ? TimePoint{} : sends.front().at;
  for (const BranchDay& d : days) {
    if (!d.visits.empty()) first = std::min(first, d.visits.front().start);
  }
  const TimePoint origin = first - std::chrono::hours(3);
  rota::Engine engine(settings, origin);
  rota::Effects fx;
  for (const BranchDay& d : days) {
    engine.apply(rota::ImportRota{d.branch, d.date, d.visits, "sim"}, origin, fx);
  }
  // The kind each alert had when raised: the final kind says only where it rose to.
  std::map<rota::AlertIndex, rota::AlertKind> raised_as;
  const auto note = [&] {
    for (const rota::Effect& e : fx) {
      if (e.kind == rota::Effect::Kind::alert_changed &&
          e.transition == rota::AlertTransition::raised) {
        raised_as.emplace(e.index, engine.alert(e.index).kind);
      }
    }
    fx.clear();
  };
  note();
  for (const Send& s : sends) {
    const CarerScript& script = plan.carers[s.carer];
    for (const Event& e : script.steps[s.step].events) {
      engine.apply(command(e, script.carer), s.at, fx);
      note();
    }
  }
  engine.advance((sends.empty() ? origin : sends.back().at) + std::chrono::hours(6), fx);
  note();

  Forecast f;
  for (rota::VisitIndex vi = 0; vi < engine.visit_count(); ++vi) {
    const rota::Visit& v = engine.visit(vi);
    if (v.state == rota::VisitState::cancelled) continue;
    ++f.visits;
    const TimePoint late_at = v.start + engine.thresholds(v).late_after;
    bool late = v.check_ins.empty();
    if (!late) {
      TimePoint arrived = v.check_ins.front().at;
      for (const auto& r : v.check_ins) arrived = std::min(arrived, r.at);
      late = arrived > late_at;
    }
    f.late += late;
    std::optional<TimePoint> first_risk;
    for (rota::AlertIndex a = 0; a < engine.alert_count(); ++a) {
      const rota::Alert& alert = engine.alert(a);
      if (alert.visit != vi || alert.phase != rota::AlertPhase::start) continue;
      const auto kind = raised_as.find(a);
      if (kind != raised_as.end() && kind->second == rota::AlertKind::at_risk) {
        ++f.at_risk_alerts;
        if (!first_risk || alert.raised_at < *first_risk) first_risk = alert.raised_at;
      }
      if (alert.kind != rota::AlertKind::at_risk && v.cause != rota::LateCause::none) {
        ++f.held_pages;
      }
    }
    if (!first_risk) continue;
    ++f.at_risk_visits;
    if (late && *first_risk < late_at) {
      ++f.warned;
      f.lead_minutes.push_back(std::chrono::duration<double>(late_at - *first_risk).count() / 60);
    } else if (!late) {
      ++f.false_alarms;
    }
  }
  std::sort(f.lead_minutes.begin(), f.lead_minutes.end());
  return f;
}

}  // namespace visitd::sim
