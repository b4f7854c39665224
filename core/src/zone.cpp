#include "visitd/core/zone.hpp"

#include <date/date.h>
#include <date/tz.h>

#include <charconv>

namespace visitd {
namespace {

// std::chrono and date:: have distinct but layout-identical time_point types on GCC 12;
// these convert between them through the count.
date::local_time<Duration> to_date(LocalTime t) {
  return date::local_time<Duration>(t.time_since_epoch());
}
LocalTime from_date(date::local_time<Duration> t) { return LocalTime(t.time_since_epoch()); }

bool parse_int(std::string_view s, int& out) {
  // from_chars accepts a leading '-': "09:-1" must not parse as 08:59.
  if (s.empty() || s.front() < '0' || s.front() > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

Result<TimeZone> TimeZone::locate(std::string_view name) {
  try {
    return TimeZone(date::locate_zone(name));
  } catch (const std::exception&) {
    return Error{ErrorCode::bad_message, "unknown time zone '" + std::string(name) + "'"};
  }
}

TimeZone TimeZone::utc() { return TimeZone(date::locate_zone("UTC")); }

std::string_view TimeZone::name() const { return zone_->name(); }

Result<TimePoint> TimeZone::to_sys(LocalTime local) const {
  const auto lt = to_date(local);
  const auto info = zone_->get_info(date::floor<std::chrono::seconds>(lt));
  switch (info.result) {
    case date::local_info::unique:
      return TimePoint(lt.time_since_epoch() - info.first.offset);
    case date::local_info::ambiguous:
      return Error{ErrorCode::bad_message,
                   format_local_date(std::chrono::floor<std::chrono::days>(local)) + " " +
                       date::format("%H:%M", lt) + " happens twice in " +
                       std::string(zone_->name()) +
                       " (clocks go back); give the time with its offset, e.g. " +
                       date::format("%Y-%m-%dT%H:%M:%S", date::floor<std::chrono::seconds>(lt)) +
                       (info.first.offset.count() >= 0 ? "+" : "-") +
                       date::format("%H:%M", date::local_time<std::chrono::seconds>(
                                                 std::chrono::abs(info.first.offset)))};
    case date::local_info::nonexistent:
    default:
      return Error{ErrorCode::bad_message,
                   format_local_date(std::chrono::floor<std::chrono::days>(local)) + " " +
                       date::format("%H:%M", lt) + " does not exist in " +
                       std::string(zone_->name()) + " (clocks go forward)"};
  }
}

LocalTime TimeZone::to_local(TimePoint t) const {
  return from_date(zone_->to_local(date::sys_time<Duration>(t.time_since_epoch())));
}

LocalDays TimeZone::local_day(TimePoint t) const {
  return std::chrono::floor<std::chrono::days>(to_local(t));
}

std::string TimeZone::format_local(TimePoint t, std::string_view fmt) const {
  return date::format(std::string(fmt), to_date(to_local(t)));
}

std::optional<LocalDays> parse_local_date(std::string_view s) {
  // YYYY-MM-DD exactly.
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int y = 0, m = 0, d = 0;
  if (!parse_int(s.substr(0, 4), y) || !parse_int(s.substr(5, 2), m) ||
      !parse_int(s.substr(8, 2), d)) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(unsigned(m)),
                                        std::chrono::day(unsigned(d))};
  if (!ymd.ok()) return std::nullopt;
  return LocalDays(ymd);
}

std::optional<LocalTime> parse_local_time(std::string_view s) {
  // YYYY-MM-DD[ T]HH:MM[:SS]
  if (s.size() != 16 && s.size() != 19) return std::nullopt;
  const auto day = parse_local_date(s.substr(0, 10));
  if (!day || (s[10] != ' ' && s[10] != 'T') || s[13] != ':') return std::nullopt;
  int hh = 0, mm = 0, ss = 0;
  if (!parse_int(s.substr(11, 2), hh) || !parse_int(s.substr(14, 2), mm)) return std::nullopt;
  if (s.size() == 19 && (s[16] != ':' || !parse_int(s.substr(17, 2), ss))) return std::nullopt;
  if (hh > 23 || mm > 59 || ss > 59) return std::nullopt;
  return LocalTime(day->time_since_epoch()) + std::chrono::hours(hh) + std::chrono::minutes(mm) +
         std::chrono::seconds(ss);
}

std::string format_local_date(LocalDays day) {
  const std::chrono::year_month_day ymd{day};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()),
                unsigned(ymd.day()));
  return buf;
}

}  // namespace visitd
