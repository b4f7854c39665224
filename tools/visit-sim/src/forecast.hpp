#pragma once
// How well at-risk alerts forecast lateness on a simulated day: the day's phones (plan.hpp)
// played straight into a tracking engine with an injected clock (no daemon, no sockets), then
// every visit's start alerts compared with what happened. Pure and deterministic: the same
// days, plan and settings give the same figures.
//
//   lead time    minutes from a late visit's first at_risk alert to its late deadline
//                (start + late_after): the warning the office got
//   false alarm  a visit raised at_risk whose carer then checked in by its late deadline
//   missed       a late visit that was never at risk first

#include <cstddef>
#include <vector>

#include "agency.hpp"
#include "plan.hpp"
#include "visitd/config/settings.hpp"

namespace visitd::sim {

struct Forecast {
  std::size_t visits = 0;            ///< on the rota, not cancelled
  std::size_t late = 0;              ///< not checked in by start + late_after (missed included)
  std::size_t at_risk_visits = 0;    ///< visits that had at least one at_risk alert
  std::size_t at_risk_alerts = 0;    ///< at_risk alerts raised (one visit may have several)
  std::size_t warned = 0;            ///< late visits at risk before they were late
  std::size_t false_alarms = 0;      ///< at-risk visits checked in on time after all
  std::vector<double> lead_minutes;  ///< per warned visit, ascending
  std::size_t held_pages = 0;        ///< late alerts that waited (a known cause)

  double median_lead_minutes() const;
  /// false_alarms / at_risk_visits (0 when none were at risk).
  double false_alarm_rate() const;
};

/// Plays `plan` over `days` into an engine under `settings` (which must list the days'
/// branches) and measures the forecasts.
Forecast measure_forecast(const config::Settings& settings, const std::vector<BranchDay>& days,
                          const Plan& plan);

/// Settings for the simulated agency: its branches, the engine defaults, and the
/// simulator's own travel model (so estimates and the day agree on how long a drive takes).
config::Settings forecast_settings(const std::vector<BranchDay>& days);

}  // namespace visitd::sim
