#pragma once
// On-call schedules (`[[oncall]]`): who an escalation step reaches when it names a schedule
// rather than a receiver. Office hours go to the office's receiver, nights and weekends to
// the on-call coordinator, holiday cover to whoever covers; the choice is made at the moment
// the step fires, in the schedule's own time zone, so a window from 08:00 to 18:00 means
// 08:00 to 18:00 on the wall clock on either side of a DST change.
//
// Thread-safety: immutable after construction; safe to share.

#include <string>
#include <string_view>
#include <vector>

#include "visitd/config/settings.hpp"
#include "visitd/core/error.hpp"
#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"

namespace visitd::alerts {

class OnCallSchedule {
 public:
  /// A schedule as the config describes it (already validated by config::load); an Error
  /// only for a time zone that cannot be found.
  static Result<OnCallSchedule> make(const config::OnCall& config);

  const std::string& name() const { return config_.name; }

  /// The receivers on call at `t`: the first override covering `t` ([from, to) in local
  /// time), else the first weekly window covering it, else the default.
  const std::vector<std::string>& on_call(TimePoint t) const;

 private:
  OnCallSchedule(config::OnCall config, TimeZone zone) : config_(std::move(config)), zone_(zone) {}
  config::OnCall config_;
  TimeZone zone_;
};

/// Every schedule of a config, by name.
class OnCallDirectory {
 public:
  /// Throws ConfigError (naming the schedule) if a time zone cannot be found.
  explicit OnCallDirectory(const config::Settings& settings);

  /// The receivers a step's `notify` list reaches at `t`: receiver names as they are, each
  /// schedule name replaced by who is on call then; in order, without repeats.
  std::vector<std::string> expand(const std::vector<std::string>& notify, TimePoint t) const;

  const OnCallSchedule* find(std::string_view name) const;

 private:
  std::vector<OnCallSchedule> schedules_;
};

}  // namespace visitd::alerts
