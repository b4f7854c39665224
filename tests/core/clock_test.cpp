#include "visitd/core/clock.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>

using namespace std::chrono_literals;
using visitd::Duration;
using visitd::ManualClock;
using visitd::ScaledClock;
using visitd::SystemClock;
using visitd::TimePoint;

namespace {

TimePoint at(std::chrono::sys_days day, Duration time_of_day) {
  return TimePoint(day) + time_of_day;
}

}  // namespace

TEST_CASE("A demo clock runs rate times as fast as the steady time elapsed since it started") {
  // The steady source the clock reads, moved by the test.
  auto steady = std::make_shared<std::chrono::steady_clock::time_point>(
      std::chrono::steady_clock::time_point(1000h));
  const TimePoint start = at(std::chrono::sys_days(std::chrono::November / 23 / 2026), 7h);
  const ScaledClock clock(start, 60, [steady] { return *steady; });

  CHECK(clock.now() == start);
  CHECK(clock.rate() == 60);
  *steady += 1s;
  CHECK(clock.now() == start + 1min);
  *steady += 15s;
  CHECK(clock.now() == start + 16min);
  *steady += 1ms;  // sub-millisecond demo time is floored, never rounded up
  CHECK(clock.now() == start + 16min + 60ms);

  SECTION("a fractional rate") {
    const ScaledClock slow(start, 0.5, [steady] { return *steady; });
    *steady += 3s;
    CHECK(slow.now() == start + 1500ms);
  }
}

TEST_CASE("Timers wait real time: a demo span divided by the rate, rounded up") {
  const ScaledClock demo(TimePoint{}, 60);
  CHECK(visitd::real_wait(demo, 15min) == 15s);
  CHECK(visitd::real_wait(demo, 1ms) == 1ms);   // never 0: it would fire early and spin
  CHECK(visitd::real_wait(demo, 61ms) == 2ms);  // 1.0166 ms rounds up
  CHECK(visitd::real_wait(demo, -5s) == -5s);   // overdue stays overdue
  const SystemClock real;
  CHECK(visitd::real_wait(real, 15min) == 15min);
  const ManualClock manual(TimePoint{});
  CHECK(manual.rate() == 1);
  CHECK(visitd::real_wait(manual, 90s) == 90s);
}
