#pragma once
// Time as visitd sees it: UTC instants with millisecond precision, durations in
// milliseconds. Nothing here reads the wall clock; see clock.hpp for that.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace visitd {

using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::sys_time<Duration>;

/// Parses an RFC 3339 timestamp with a mandatory offset (`2026-11-23T09:00:00Z`,
/// `2026-11-23T10:00:00.250+01:00`). Lowercase `t`/`z` and a space separator are accepted
/// as RFC 3339 allows. Fractions beyond milliseconds are truncated. Returns nullopt for
/// anything else, including out-of-range fields and a missing offset.
std::optional<TimePoint> parse_rfc3339(std::string_view text);

/// Formats as RFC 3339 in UTC: `2026-11-23T09:00:00Z`, with `.mmm` only when non-zero.
std::string format_rfc3339(TimePoint t);

/// Parses a config duration: one or more `<integer><unit>` parts, units `ms`, `s`, `m`,
/// `h`, `d` (`90s`, `15m`, `1h30m`). Returns nullopt for an empty, negative, unit-less or
/// overflowing value.
std::optional<Duration> parse_duration(std::string_view text);

/// Formats a duration the way config writes it, largest units first: `15m`, `1h30m`,
/// `1m30s`, `250ms`, `0s`.
std::string format_duration(Duration d);

}  // namespace visitd
