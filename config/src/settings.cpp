#include "visitd/config/settings.hpp"

#include "threshold_layers.hpp"

namespace visitd::config {

Thresholds ThresholdOverrides::apply_to(Thresholds base) const {
  if (late_after) base.late_after = *late_after;
  if (missed_after) base.missed_after = *missed_after;
  if (overrun_after) base.overrun_after = *overrun_after;
  if (no_checkout_after) base.no_checkout_after = *no_checkout_after;
  if (short_ratio) base.short_ratio = *short_ratio;
  if (geofence_m) base.geofence_m = *geofence_m;
  return base;
}

bool ThresholdOverrides::empty() const {
  return !late_after && !missed_after && !overrun_after && !no_checkout_after && !short_ratio &&
         !geofence_m;
}

const Branch* Settings::find_branch(std::string_view id) const {
  // A handful of branches per agency: a linear scan beats keeping an index in sync.
  for (const Branch& b : branches) {
    if (b.id == id) return &b;
  }
  return nullptr;
}

Thresholds Settings::thresholds_for(std::string_view branch, std::string_view visit_type,
                                    bool time_critical) const {
  Thresholds out;
  detail::for_each_threshold_layer(
      *this, branch, visit_type, time_critical,
      [&](const ThresholdOverrides& layer) { out = layer.apply_to(out); });
  return out;
}

Result<TimePoint> Settings::demo_start(TimePoint real_now) const {
  if (clock->start) return *clock->start;
  if (!clock->start_time) return real_now;
  auto zone = branches.empty() ? Result<TimeZone>(TimeZone::utc())
                               : TimeZone::locate(branches.front().timezone);
  if (!zone) return zone.error();
  return zone->to_sys(LocalTime(zone->local_day(real_now)) + *clock->start_time);
}

}  // namespace visitd::config
