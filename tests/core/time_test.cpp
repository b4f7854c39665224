#include "visitd/core/time.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

using visitd::Duration;
using visitd::format_duration;
using visitd::format_rfc3339;
using visitd::parse_duration;
using visitd::parse_rfc3339;
using visitd::TimePoint;
using namespace std::chrono_literals;
using std::chrono::November;
using std::chrono::sys_days;
using std::chrono::year;

namespace {

// 2026-11-23T00:00:00Z
const TimePoint kMonday = TimePoint(sys_days(year(2026) / November / 23));

}  // namespace

TEST_CASE("RFC 3339 timestamps in UTC parse to the instant they name", "[core][time]") {
  CHECK(parse_rfc3339("2026-11-23T09:00:00Z") == kMonday + 9h);
  CHECK(parse_rfc3339("2026-11-23T00:00:00Z") == kMonday);
  CHECK(parse_rfc3339("2026-11-23T23:59:59Z") == kMonday + 23h + 59min + 59s);
  CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == TimePoint(0ms));
  CHECK(parse_rfc3339("1969-12-31T23:59:59Z") == TimePoint(-1s));
}

TEST_CASE("RFC 3339 offsets are applied to reach UTC", "[core][time]") {
  CHECK(parse_rfc3339("2026-11-23T10:00:00+01:00") == kMonday + 9h);
  CHECK(parse_rfc3339("2026-11-23T03:30:00-05:30") == kMonday + 9h);
  CHECK(parse_rfc3339("2026-11-23T09:00:00+00:00") == kMonday + 9h);
  CHECK(parse_rfc3339("2026-11-23T09:00:00-00:00") == kMonday + 9h);
  SECTION("an offset can carry the instant into another day") {
    CHECK(parse_rfc3339("2026-11-23T00:30:00+01:00") == kMonday - 30min);
    CHECK(parse_rfc3339("2026-11-22T23:30:00-01:00") == kMonday + 30min);
  }
}

TEST_CASE("RFC 3339 fractional seconds are kept to the millisecond", "[core][time]") {
  CHECK(parse_rfc3339("2026-11-23T09:00:00.250Z") == kMonday + 9h + 250ms);
  CHECK(parse_rfc3339("2026-11-23T09:00:00.5Z") == kMonday + 9h + 500ms);
  CHECK(parse_rfc3339("2026-11-23T09:00:00.05Z") == kMonday + 9h + 50ms);
  CHECK(parse_rfc3339("2026-11-23T10:00:00.250+01:00") == kMonday + 9h + 250ms);
  SECTION("digits beyond milliseconds are truncated, not rounded") {
    CHECK(parse_rfc3339("2026-11-23T09:00:00.123999Z") == kMonday + 9h + 123ms);
    CHECK(parse_rfc3339("2026-11-23T09:00:00.999999999Z") == kMonday + 9h + 999ms);
  }
}

TEST_CASE("RFC 3339 lowercase t and z and a space separator are accepted", "[core][time]") {
  CHECK(parse_rfc3339("2026-11-23t09:00:00z") == kMonday + 9h);
  CHECK(parse_rfc3339("2026-11-23 09:00:00Z") == kMonday + 9h);
  CHECK(parse_rfc3339("2026-11-23 10:00:00+01:00") == kMonday + 9h);
}

TEST_CASE("A leap second is folded onto the next second", "[core][time]") {
  CHECK(parse_rfc3339("2026-12-31T23:59:60Z") == parse_rfc3339("2027-01-01T00:00:00Z"));
}

TEST_CASE("Timestamps that are not RFC 3339 are refused", "[core][time]") {
  const std::string text = GENERATE(as<std::string>{},
                                    "",                            // empty
                                    "hello",                       // garbage
                                    "2026-11-23T09:00:00",         // missing offset
                                    "2026-11-23T09:00:00.250",     // missing offset
                                    "2026-11-23",                  // a date alone
                                    "2026-13-01T09:00:00Z",        // month 13
                                    "2026-00-01T09:00:00Z",        // month 0
                                    "2026-02-30T09:00:00Z",        // Feb 30
                                    "2026-02-29T09:00:00Z",        // not a leap year
                                    "2026-11-00T09:00:00Z",        // day 0
                                    "2026-11-23T24:00:00Z",        // 24:00
                                    "2026-11-23T09:60:00Z",        // minute 60
                                    "2026-11-23T09:00:61Z",        // second 61
                                    "2026-11-23T09:00:00Zx",       // trailing characters
                                    "2026-11-23T09:00:00+01:00 ",  // trailing space
                                    " 2026-11-23T09:00:00Z",       // leading space
                                    "2026-11-23T09:00:00+0100",    // offset without colon
                                    "2026-11-23T09:00:00+01",      // offset without minutes
                                    "2026-11-23T09:00:00+24:00",   // offset out of range
                                    "2026-11-23T09:00:00+01:60",   // offset minutes 60
                                    "2026-11-23T09:00:00.Z",       // empty fraction
                                    "2026-11-23T09:00Z",           // no seconds
                                    "2026-11-23X09:00:00Z",        // bad separator
                                    "2026/11/23T09:00:00Z",        // bad date separator
                                    "2026-11-23T9:00:00Z",         // one-digit hour
                                    "2026-11-23T09:00:00UTC",      // zone name
                                    "+2026-11-23T09:00:00Z");      // sign on the year
  CAPTURE(text);
  CHECK_FALSE(parse_rfc3339(text).has_value());
}

TEST_CASE("The leap day of a leap year is a real date", "[core][time]") {
  CHECK(parse_rfc3339("2028-02-29T12:00:00Z").has_value());
}

TEST_CASE("Instants are formatted as RFC 3339 in UTC", "[core][time]") {
  CHECK(format_rfc3339(kMonday + 9h) == "2026-11-23T09:00:00Z");
  CHECK(format_rfc3339(TimePoint(0ms)) == "1970-01-01T00:00:00Z");
  SECTION("milliseconds appear only when there are any") {
    CHECK(format_rfc3339(kMonday + 9h + 250ms) == "2026-11-23T09:00:00.250Z");
    CHECK(format_rfc3339(kMonday + 9h + 5ms) == "2026-11-23T09:00:00.005Z");
  }
  SECTION("before the epoch") {
    CHECK(format_rfc3339(TimePoint(-1ms)) == "1969-12-31T23:59:59.999Z");
  }
}

TEST_CASE("Formatting then parsing an instant gives the same instant", "[core][time]") {
  // as<> copies: an lvalue first argument would make Catch2 v2 generate dangling references.
  const TimePoint t = GENERATE(as<TimePoint>{}, kMonday, kMonday + 9h + 250ms, kMonday - 1ms,
                               TimePoint(0ms), TimePoint(-1ms), kMonday + 24h * 365 * 50 + 17ms);
  CAPTURE(t.time_since_epoch().count());
  CHECK(parse_rfc3339(format_rfc3339(t)) == t);
}

TEST_CASE("Parsing then formatting a UTC timestamp gives it back", "[core][time]") {
  const std::string text =
      GENERATE(as<std::string>{}, "2026-11-23T09:00:00Z", "2026-11-23T09:00:00.250Z",
               "2028-02-29T23:59:59.999Z", "1999-12-31T00:00:00.001Z");
  const auto t = parse_rfc3339(text);
  REQUIRE(t.has_value());
  CHECK(format_rfc3339(*t) == text);
}

TEST_CASE("Config durations parse with ms, s, m, h and d units", "[core][duration]") {
  CHECK(parse_duration("90s") == Duration(90s));
  CHECK(parse_duration("15m") == Duration(15min));
  CHECK(parse_duration("2h") == Duration(2h));
  CHECK(parse_duration("1h30m") == Duration(90min));
  CHECK(parse_duration("250ms") == Duration(250ms));
  CHECK(parse_duration("0s") == Duration(0ms));
  CHECK(parse_duration("1d") == Duration(24h));
  CHECK(parse_duration("1m30s") == Duration(90s));
  CHECK(parse_duration("1s500ms") == Duration(1500ms));
  CHECK(parse_duration("1d2h3m4s5ms") == Duration(24h + 2h + 3min + 4s + 5ms));
}

TEST_CASE("Config durations that are empty, unit-less, negative or malformed are refused",
          "[core][duration]") {
  const std::string text = GENERATE(as<std::string>{},
                                    "",        // empty
                                    "15",      // no unit
                                    "1h30",    // last part without a unit
                                    "-5m",     // negative
                                    "-0s",     // a sign at all
                                    "1h-5m",   // a negative part
                                    "+5m",     // a plus sign
                                    "5x",      // unknown unit
                                    "5M",      // units are lowercase
                                    "m",       // a unit without a number
                                    "1.5h",    // fractions
                                    " 5m",     // leading space
                                    "5m ",     // trailing space
                                    "5 m",     // inner space
                                    "5mm",     // a unit twice
                                    "15min");  // not a unit
  CAPTURE(text);
  CHECK_FALSE(parse_duration(text).has_value());
}

TEST_CASE("Config durations that overflow are refused", "[core][duration]") {
  // 106751991167 days is the most a signed 64-bit count of milliseconds can hold.
  CHECK(parse_duration("106751991167d").has_value());
  CHECK_FALSE(parse_duration("106751991168d").has_value());
  CHECK_FALSE(parse_duration("106751991167d1d").has_value());
  CHECK_FALSE(parse_duration("9223372036854775807h").has_value());
  CHECK_FALSE(parse_duration("99999999999999999999ms").has_value());
}

TEST_CASE("Durations are formatted the way config writes them", "[core][duration]") {
  CHECK(format_duration(15min) == "15m");
  CHECK(format_duration(90min) == "1h30m");
  CHECK(format_duration(2h) == "2h");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(0ms) == "0s");
  CHECK(format_duration(24h) == "1d");
  CHECK(format_duration(1500ms) == "1s500ms");
  // Largest units first: 90 seconds is written as a minute and a half.
  CHECK(format_duration(90s) == "1m30s");
}

TEST_CASE("Formatting then parsing a duration gives the same duration", "[core][duration]") {
  const Duration d =
      GENERATE(Duration(0ms), Duration(1ms), Duration(250ms), Duration(90s), Duration(15min),
               Duration(90min), Duration(26h + 3min + 4s + 5ms), Duration(24h * 400));
  CAPTURE(d.count());
  CHECK(parse_duration(format_duration(d)) == d);
}

TEST_CASE("Parsing then formatting a canonical duration gives it back", "[core][duration]") {
  const std::string text =
      GENERATE(as<std::string>{}, "15m", "1h30m", "250ms", "0s", "2h", "1d2h3m4s5ms");
  const auto d = parse_duration(text);
  REQUIRE(d.has_value());
  CHECK(format_duration(*d) == text);
}
