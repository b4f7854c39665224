#include "visitd/core/zone.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

using visitd::ErrorCode;
using visitd::format_local_date;
using visitd::LocalDays;
using visitd::LocalTime;
using visitd::parse_local_date;
using visitd::parse_local_time;
using visitd::parse_rfc3339;
using visitd::TimePoint;
using visitd::TimeZone;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

TimeZone zone(std::string_view name) {
  auto z = TimeZone::locate(name);
  REQUIRE(z.has_value());
  return *z;
}

LocalTime local(std::string_view text) {
  const auto t = parse_local_time(text);
  REQUIRE(t.has_value());
  return *t;
}

TimePoint utc(std::string_view rfc3339) {
  const auto t = parse_rfc3339(rfc3339);
  REQUIRE(t.has_value());
  return *t;
}

LocalDays day(std::string_view text) {
  const auto d = parse_local_date(text);
  REQUIRE(d.has_value());
  return *d;
}

}  // namespace

TEST_CASE("A zone is found by its IANA name", "[core][zone]") {
  CHECK(zone("Europe/London").name() == "Europe/London");
  CHECK(zone("America/New_York").name() == "America/New_York");
  CHECK(zone("Europe/London") == zone("Europe/London"));
  CHECK_FALSE(zone("Europe/London") == zone("America/New_York"));
}

TEST_CASE("An unknown zone name is a bad_message error naming it", "[core][zone]") {
  const auto z = TimeZone::locate("Europe/Atlantis");
  REQUIRE_FALSE(z.has_value());
  CHECK(z.error().code == ErrorCode::bad_message);
  CHECK_THAT(z.error().message, Contains("Europe/Atlantis"));
  CHECK_FALSE(TimeZone::locate("").has_value());
}

TEST_CASE("UTC is always available and converts without offset", "[core][zone]") {
  const TimeZone z = TimeZone::utc();
  const auto t = z.to_sys(local("2026-07-01 09:00"));
  REQUIRE(t.has_value());
  CHECK(*t == utc("2026-07-01T09:00:00Z"));
}

TEST_CASE("London wall times convert at UTC+0 in winter and UTC+1 in summer", "[core][zone]") {
  const TimeZone london = zone("Europe/London");
  SECTION("winter") {
    const auto t = london.to_sys(local("2026-11-23 09:00"));
    REQUIRE(t.has_value());
    CHECK(*t == utc("2026-11-23T09:00:00Z"));
  }
  SECTION("summer") {
    const auto t = london.to_sys(local("2026-07-01 09:00"));
    REQUIRE(t.has_value());
    CHECK(*t == utc("2026-07-01T08:00:00Z"));
  }
  SECTION("seconds are kept") {
    const auto t = london.to_sys(local("2026-07-01 09:00:30"));
    REQUIRE(t.has_value());
    CHECK(*t == utc("2026-07-01T08:00:30Z"));
  }
  SECTION("and back again") {
    CHECK(london.to_local(utc("2026-11-23T09:00:00Z")) == local("2026-11-23 09:00"));
    CHECK(london.to_local(utc("2026-07-01T08:00:00Z")) == local("2026-07-01 09:00"));
  }
}

TEST_CASE("London times either side of the spring change are unique", "[core][zone]") {
  const TimeZone london = zone("Europe/London");
  const auto before = london.to_sys(local("2026-03-29 00:59"));
  const auto after = london.to_sys(local("2026-03-29 02:00"));
  REQUIRE(before.has_value());
  REQUIRE(after.has_value());
  CHECK(*before == utc("2026-03-29T00:59:00Z"));
  CHECK(*after == utc("2026-03-29T01:00:00Z"));
}

TEST_CASE("A London time skipped when clocks go forward is an error that says so", "[core][zone]") {
  const TimeZone london = zone("Europe/London");
  const auto t = london.to_sys(local("2026-03-29 01:30"));
  REQUIRE_FALSE(t.has_value());
  CHECK(t.error().code == ErrorCode::bad_message);
  CHECK_THAT(t.error().message, Contains("2026-03-29 01:30"));
  CHECK_THAT(t.error().message, Contains("does not exist"));
  CHECK_THAT(t.error().message, Contains("Europe/London"));
  CHECK_THAT(t.error().message, Contains("clocks go forward"));
  // The whole hour is missing, to the minute.
  CHECK_FALSE(london.to_sys(local("2026-03-29 01:00")).has_value());
  CHECK_FALSE(london.to_sys(local("2026-03-29 01:59")).has_value());
}

TEST_CASE("A London time that happens twice when clocks go back is an error suggesting an offset",
          "[core][zone]") {
  const TimeZone london = zone("Europe/London");
  const auto t = london.to_sys(local("2026-10-25 01:30"));
  REQUIRE_FALSE(t.has_value());
  CHECK(t.error().code == ErrorCode::bad_message);
  const std::string& message = t.error().message;
  CHECK_THAT(message, Contains("2026-10-25 01:30"));
  CHECK_THAT(message, Contains("happens twice"));
  CHECK_THAT(message, Contains("Europe/London"));
  CHECK_THAT(message, Contains("clocks go back"));
  CHECK_THAT(message, Contains("2026-10-25T01:30:00+01:00"));

  SECTION("the suggested timestamp is valid and names the first 01:30") {
    const auto suggested = parse_rfc3339("2026-10-25T01:30:00+01:00");
    REQUIRE(suggested.has_value());
    CHECK(*suggested == utc("2026-10-25T00:30:00Z"));
    CHECK(london.to_local(*suggested) == local("2026-10-25 01:30"));
  }
  SECTION("either side of the repeated hour is unique") {
    const auto before = london.to_sys(local("2026-10-25 00:59"));
    const auto after = london.to_sys(local("2026-10-25 02:00"));
    REQUIRE(before.has_value());
    REQUIRE(after.has_value());
    CHECK(*before == utc("2026-10-24T23:59:00Z"));
    CHECK(*after == utc("2026-10-25T02:00:00Z"));
  }
}

TEST_CASE("New York wall times convert at UTC-5 in winter and UTC-4 in summer", "[core][zone]") {
  const TimeZone new_york = zone("America/New_York");
  const auto winter = new_york.to_sys(local("2026-01-15 09:00"));
  const auto summer = new_york.to_sys(local("2026-07-15 09:00"));
  REQUIRE(winter.has_value());
  REQUIRE(summer.has_value());
  CHECK(*winter == utc("2026-01-15T14:00:00Z"));
  CHECK(*summer == utc("2026-07-15T13:00:00Z"));
  CHECK(new_york.to_local(utc("2026-07-15T13:00:00Z")) == local("2026-07-15 09:00"));
}

TEST_CASE("New York DST changes are reported with a negative offset suggestion", "[core][zone]") {
  const TimeZone new_york = zone("America/New_York");
  SECTION("2026-03-08 02:30 does not exist") {
    const auto t = new_york.to_sys(local("2026-03-08 02:30"));
    REQUIRE_FALSE(t.has_value());
    CHECK_THAT(t.error().message, Contains("does not exist"));
    CHECK_THAT(t.error().message, Contains("America/New_York"));
  }
  SECTION("2026-11-01 01:30 happens twice") {
    const auto t = new_york.to_sys(local("2026-11-01 01:30"));
    REQUIRE_FALSE(t.has_value());
    CHECK_THAT(t.error().message, Contains("happens twice"));
    CHECK_THAT(t.error().message, Contains("2026-11-01T01:30:00-04:00"));
    const auto suggested = parse_rfc3339("2026-11-01T01:30:00-04:00");
    REQUIRE(suggested.has_value());
    CHECK(new_york.to_local(*suggested) == local("2026-11-01 01:30"));
  }
}

TEST_CASE("The local day of an instant follows the zone's midnight", "[core][zone]") {
  const TimeZone london = zone("Europe/London");
  const TimeZone new_york = zone("America/New_York");
  SECTION("London summer: 23:30 UTC is already tomorrow") {
    CHECK(london.local_day(utc("2026-07-01T22:59:59Z")) == day("2026-07-01"));
    CHECK(london.local_day(utc("2026-07-01T23:00:00Z")) == day("2026-07-02"));
    CHECK(london.local_day(utc("2026-07-01T23:30:00Z")) == day("2026-07-02"));
  }
  SECTION("London winter: the day turns at UTC midnight") {
    CHECK(london.local_day(utc("2026-01-15T23:59:59.999Z")) == day("2026-01-15"));
    CHECK(london.local_day(utc("2026-01-16T00:00:00Z")) == day("2026-01-16"));
  }
  SECTION("New York: early UTC morning is still the previous evening") {
    CHECK(new_york.local_day(utc("2026-07-02T03:30:00Z")) == day("2026-07-01"));
    CHECK(new_york.local_day(utc("2026-07-02T04:00:00Z")) == day("2026-07-02"));
    CHECK(new_york.local_day(utc("2026-01-16T04:59:00Z")) == day("2026-01-15"));
  }
}

TEST_CASE("Instants are formatted as the zone's wall time", "[core][zone]") {
  const TimeZone london = zone("Europe/London");
  CHECK(london.format_local(utc("2026-07-01T08:00:00Z")) == "2026-07-01 09:00");
  CHECK(london.format_local(utc("2026-11-23T09:00:00Z")) == "2026-11-23 09:00");
  CHECK(london.format_local(utc("2026-07-01T23:30:00Z")) == "2026-07-02 00:30");
  CHECK(london.format_local(utc("2026-07-01T08:05:00Z"), "%H:%M") == "09:05");
  CHECK(zone("America/New_York").format_local(utc("2026-07-02T03:30:00Z"), "%d/%m %H:%M") ==
        "01/07 23:30");
}

TEST_CASE("Local dates parse when they are real dates", "[core][zone]") {
  using std::chrono::year;
  CHECK(parse_local_date("2026-11-23") == LocalDays(year(2026) / 11 / 23));
  CHECK(parse_local_date("2028-02-29") == LocalDays(year(2028) / 2 / 29));
  CHECK(format_local_date(day("2026-11-23")) == "2026-11-23");
  CHECK(format_local_date(day("0999-01-05")) == "0999-01-05");
}

TEST_CASE("Malformed or impossible local dates are refused", "[core][zone]") {
  const std::string text =
      GENERATE(as<std::string>{}, "", "2026-11-2", "2026-11-233", "2026/11/23", "2026-13-01",
               "2026-00-10", "2026-02-29", "2026-04-31", "2026-11-00", "26-11-23xx", "2026-11-2x",
               "-026-11-23", "2026--1-23", "2026-11--1", "2026-+1-23", "2026-11-23 ", "abcd-ef-gh");
  CAPTURE(text);
  CHECK_FALSE(parse_local_date(text).has_value());
}

TEST_CASE("Local wall times parse with a space or T and optional seconds", "[core][zone]") {
  const LocalTime nine = LocalTime(day("2026-11-23").time_since_epoch()) + 9h;
  CHECK(parse_local_time("2026-11-23 09:00") == nine);
  CHECK(parse_local_time("2026-11-23T09:00") == nine);
  CHECK(parse_local_time("2026-11-23 09:00:30") == nine + 30s);
  CHECK(parse_local_time("2026-11-23 00:00") == nine - 9h);
  CHECK(parse_local_time("2026-11-23 23:59:59") == nine + 14h + 59min + 59s);
}

TEST_CASE("Malformed or impossible local wall times are refused", "[core][zone]") {
  const std::string text = GENERATE(
      as<std::string>{}, "", "2026-11-23", "2026-11-23 9:00", "2026-11-23 09:0", "2026-11-23 24:00",
      "2026-11-23 09:60", "2026-11-23 09:00:60", "2026-11-23 09.00", "2026-11-23_09:00",
      "2026-02-30 09:00", "2026-11-23 09:00Z", "2026-11-23 09:00:5", "2026-11-23 -1:00",
      "2026-11-23 09:-1", "2026-11-23 09:00:-1", "2026-11-23 +9:00", "-026-11-23 09:00");
  CAPTURE(text);
  CHECK_FALSE(parse_local_time(text).has_value());
}
