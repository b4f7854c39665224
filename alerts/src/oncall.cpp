#include "visitd/alerts/oncall.hpp"

#include <algorithm>
#include <chrono>

namespace visitd::alerts {
namespace {

/// Whether a weekly window covers the local wall time `local`. A window belongs to the day
/// it starts on; one that ends at or before its start runs past midnight into the next day.
bool covers(const config::OnCallWindow& w, LocalTime local) {
  using namespace std::chrono;
  const auto day = floor<days>(local);
  const Duration time_of_day = local - day;
  const auto starts_on = [&](local_days d) {
    const unsigned weekday = std::chrono::weekday(d).c_encoding();  // 0 = Sunday
    return ((w.days >> weekday) & 1u) != 0;
  };
  if (w.to > w.from) {
    return starts_on(day) && time_of_day >= w.from && time_of_day < w.to;
  }
  // Overnight: the evening part on a start day, or the morning part the day after one.
  return (starts_on(day) && time_of_day >= w.from) ||
         (starts_on(day - days(1)) && time_of_day < w.to);
}

}  // namespace

Result<OnCallSchedule> OnCallSchedule::make(const config::OnCall& config) {
  auto zone = TimeZone::locate(config.timezone);
  if (!zone) return zone.error();
  return OnCallSchedule(config, *zone);
}

const std::vector<std::string>& OnCallSchedule::on_call(TimePoint t) const {
  const LocalTime local = zone_.to_local(t);
  for (const auto& cover : config_.overrides) {
    if (local >= cover.from && local < cover.to) return cover.notify;
  }
  for (const auto& window : config_.windows) {
    if (covers(window, local)) return window.notify;
  }
  return config_.fallback;
}

OnCallDirectory::OnCallDirectory(const config::Settings& settings) {
  for (const auto& o : settings.oncall) {
    auto schedule = OnCallSchedule::make(o);
    if (!schedule) {
      throw ConfigError(settings.source, 0, "oncall", o.name + ": " + schedule.error().message);
    }
    schedules_.push_back(std::move(*schedule));
  }
}

const OnCallSchedule* OnCallDirectory::find(std::string_view name) const {
  const auto it = std::find_if(schedules_.begin(), schedules_.end(),
                               [&](const OnCallSchedule& s) { return s.name() == name; });
  return it == schedules_.end() ? nullptr : &*it;
}

std::vector<std::string> OnCallDirectory::expand(const std::vector<std::string>& notify,
                                                 TimePoint t) const {
  std::vector<std::string> out;
  const auto add = [&](const std::string& receiver) {
    if (std::find(out.begin(), out.end(), receiver) == out.end()) out.push_back(receiver);
  };
  for (const auto& name : notify) {
    if (const OnCallSchedule* schedule = find(name)) {
      for (const auto& receiver : schedule->on_call(t)) add(receiver);
    } else {
      add(name);
    }
  }
  return out;
}

}  // namespace visitd::alerts
