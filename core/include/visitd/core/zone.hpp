#pragma once
// IANA time zones (the OS tz database through Howard Hinnant's date library): local wall
// times of a branch converted to UTC instants, correctly across DST changes.

#include <chrono>
#include <string>
#include <string_view>

#include "visitd/core/error.hpp"
#include "visitd/core/time.hpp"

namespace date {
class time_zone;
}

namespace visitd {

using LocalTime = std::chrono::local_time<Duration>;
using LocalDays = std::chrono::local_days;

/// A named IANA zone. Cheap to copy (a pointer into the process-wide tz database).
/// Thread-safe: all members are const.
class TimeZone {
 public:
  /// Looks up `Europe/London` and the like; an unknown name is a bad_message Error.
  static Result<TimeZone> locate(std::string_view name);
  /// UTC, always available.
  static TimeZone utc();

  std::string_view name() const;

  /// The instant a local wall time denotes. A time that happens twice (clocks go back) or
  /// never (clocks go forward) is an Error whose message says which and what to write
  /// instead.
  Result<TimePoint> to_sys(LocalTime local) const;
  /// The local wall time of an instant.
  LocalTime to_local(TimePoint t) const;
  /// The local calendar day an instant falls on.
  LocalDays local_day(TimePoint t) const;
  /// The local wall time formatted `2026-11-23 09:00`.
  std::string format_local(TimePoint t, std::string_view fmt = "%Y-%m-%d %H:%M") const;

  bool operator==(const TimeZone& other) const { return zone_ == other.zone_; }

 private:
  explicit TimeZone(const date::time_zone* zone) : zone_(zone) {}
  const date::time_zone* zone_;
};

/// Parses `2026-11-23` into a day; nullopt when malformed or not a real date.
std::optional<LocalDays> parse_local_date(std::string_view text);
/// Parses a local wall time `2026-11-23 09:00` (or `T`, optional `:ss`); nullopt otherwise.
std::optional<LocalTime> parse_local_time(std::string_view text);
/// `2026-11-23`.
std::string format_local_date(LocalDays day);

}  // namespace visitd
