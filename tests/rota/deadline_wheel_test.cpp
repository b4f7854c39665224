// The engine's deadline wheel: deadlines pop in (time, insertion order) order, each exactly
// once, however far apart they are and however the clock jumps; cancelled ones never pop.
// The last case checks all of it against a sorted reference under a seeded random workload
// (VISITD_SEED=<n> replays a failure).

#include "visitd/rota/deadline_wheel.hpp"

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using visitd::Duration;
using visitd::TimePoint;
using visitd::rota::DeadlineWheel;

namespace {

// 2026-11-23T00:00:00Z
const TimePoint kMonday =
    TimePoint(std::chrono::sys_days(std::chrono::year(2026) / std::chrono::November / 23));

/// Everything due at or before `now`, in the order the wheel gives it.
std::vector<std::pair<TimePoint, std::uint64_t>> drain(DeadlineWheel& wheel, TimePoint now) {
  std::vector<std::pair<TimePoint, std::uint64_t>> out;
  while (auto due = wheel.pop_due(now)) out.emplace_back(due->at, due->payload);
  return out;
}

using Popped = std::vector<std::pair<TimePoint, std::uint64_t>>;

}  // namespace

TEST_CASE("Deadlines pop in time order, and equal times in the order they were scheduled",
          "[rota][wheel]") {
  DeadlineWheel wheel(kMonday);
  wheel.schedule(kMonday + 2h, 1);
  wheel.schedule(kMonday + 15min, 2);
  wheel.schedule(kMonday + 2h, 3);
  wheel.schedule(kMonday + 1ms, 4);
  wheel.schedule(kMonday + 15min, 5);
  wheel.schedule(kMonday + 3s, 6);
  CHECK(wheel.size() == 6);

  CHECK(drain(wheel, kMonday + 1h) ==
        Popped{{kMonday + 1ms, 4}, {kMonday + 3s, 6}, {kMonday + 15min, 2}, {kMonday + 15min, 5}});
  CHECK(wheel.size() == 2);
  CHECK(drain(wheel, kMonday + 2h) == Popped{{kMonday + 2h, 1}, {kMonday + 2h, 3}});
  CHECK(wheel.empty());
}

TEST_CASE("Equal times keep their scheduling order when one was cascaded from a higher level",
          "[rota][wheel]") {
  DeadlineWheel wheel(kMonday);
  // A lands on an upper level; by the time B is scheduled the clock has moved on and B may
  // land on a lower one. Both are due at the same instant: A was first, so A pops first.
  wheel.schedule(kMonday + 70s, 1);
  CHECK_FALSE(wheel.pop_due(kMonday + 40s));
  CHECK(wheel.now() == kMonday + 40s);
  wheel.schedule(kMonday + 70s, 2);
  CHECK_FALSE(wheel.pop_due(kMonday + 69'990ms));
  wheel.schedule(kMonday + 70s, 3);
  CHECK(drain(wheel, kMonday + 70s) ==
        Popped{{kMonday + 70s, 1}, {kMonday + 70s, 2}, {kMonday + 70s, 3}});

  SECTION("also across days and several levels") {
    const TimePoint t = kMonday + 3 * 24h + 5h + 17min + 250ms;
    wheel.schedule(t, 10);
    for (TimePoint step = kMonday + 1h; step < t; step += 7h) {
      CHECK_FALSE(wheel.pop_due(step));
      wheel.schedule(t, 11 + std::uint64_t((step - kMonday) / 7h));
    }
    const Popped got = drain(wheel, t);
    REQUIRE(got.size() == 12);
    for (std::size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i] == std::pair{t, std::uint64_t(10 + i)});
    }
  }
}

TEST_CASE("A cancelled deadline never pops, and cancelling it again says so", "[rota][wheel]") {
  DeadlineWheel wheel(kMonday);
  const auto late = wheel.schedule(kMonday + 15min, 1);
  const auto missed = wheel.schedule(kMonday + 60min, 2);
  CHECK(wheel.pending(late));
  CHECK(wheel.cancel(late));
  CHECK_FALSE(wheel.pending(late));
  CHECK_FALSE(wheel.cancel(late));
  CHECK(wheel.size() == 1);
  CHECK(drain(wheel, kMonday + 2h) == Popped{{kMonday + 60min, 2}});
  CHECK_FALSE(wheel.pending(missed));
}

TEST_CASE("Cancelling a deadline that already fired returns false", "[rota][wheel]") {
  DeadlineWheel wheel(kMonday);
  const auto h = wheel.schedule(kMonday + 5min, 7);
  const auto other = wheel.schedule(kMonday + 10min, 8);
  REQUIRE(wheel.pop_due(kMonday + 5min)->payload == 7);
  CHECK_FALSE(wheel.pending(h));
  CHECK_FALSE(wheel.cancel(h));
  CHECK(wheel.size() == 1);
  CHECK(wheel.pending(other));
}

TEST_CASE("A stale handle does not reach the deadline that reused its slot", "[rota][wheel]") {
  DeadlineWheel wheel(kMonday);
  const auto first = wheel.schedule(kMonday + 1h, 1);
  REQUIRE(wheel.cancel(first));
  const auto second = wheel.schedule(kMonday + 2h, 2);
  REQUIRE(second.slot == first.slot);  // the point of the test: the slot was reused

  CHECK_FALSE(wheel.pending(first));
  CHECK_FALSE(wheel.cancel(first));
  CHECK(wheel.pending(second));
  CHECK(wheel.size() == 1);
  CHECK(drain(wheel, kMonday + 3h) == Popped{{kMonday + 2h, 2}});

  SECTION("nor does a default handle") {
    const DeadlineWheel::Handle none;
    CHECK_FALSE(none.valid());
    CHECK_FALSE(wheel.pending(none));
    CHECK_FALSE(wheel.cancel(none));
  }
}

TEST_CASE("A deadline in the past pops at once with the time it was scheduled for",
          "[rota][wheel]") {
  DeadlineWheel wheel(kMonday);
  CHECK_FALSE(wheel.pop_due(kMonday + 1h));
  wheel.schedule(kMonday + 10min, 1);
  wheel.schedule(kMonday + 1h, 2);
  CHECK(wheel.next_deadline() == kMonday + 1h);
  CHECK(drain(wheel, kMonday + 1h) == Popped{{kMonday + 10min, 1}, {kMonday + 1h, 2}});
  // Popping it did not move the clock back.
  CHECK(wheel.now() == kMonday + 1h);
}

TEST_CASE("next_deadline is never later than the earliest deadline, and exact when close",
          "[rota][wheel]") {
  DeadlineWheel wheel(kMonday);
  CHECK_FALSE(wheel.next_deadline());

  SECTION("within the current 64 ms it is the deadline itself") {
    wheel.schedule(kMonday + 40ms, 1);
    wheel.schedule(kMonday + 20ms, 2);
    CHECK(wheel.next_deadline() == kMonday + 20ms);
  }

  SECTION("further out it may be earlier, and a timer set to it reaches the deadline") {
    const TimePoint target = kMonday + 26h + 3min + 7s + 5ms;
    wheel.schedule(target, 1);
    wheel.schedule(kMonday + 400 * 24h, 2);
    int wakeups = 0;
    std::optional<DeadlineWheel::Due> due;
    while (!due) {
      const auto next = wheel.next_deadline();
      REQUIRE(next);
      REQUIRE(*next <= target);
      REQUIRE(*next >= wheel.now());
      due = wheel.pop_due(*next);
      ++wakeups;
    }
    CHECK(due->at == target);
    CHECK(due->payload == 1);
    // At most one empty wake-up per level, then the one that fires.
    CHECK(wakeups <= 9);
  }

  SECTION("a deadline already due is due now") {
    CHECK_FALSE(wheel.pop_due(kMonday + 10s));
    wheel.schedule(kMonday + 1s, 1);
    CHECK(wheel.next_deadline() == kMonday + 10s);
  }

  SECTION("nothing pending after the last one fires or is cancelled") {
    const auto h = wheel.schedule(kMonday + 5h, 1);
    wheel.schedule(kMonday + 1h, 2);
    REQUIRE(wheel.pop_due(kMonday + 1h));
    CHECK(wheel.next_deadline() <= kMonday + 5h);
    wheel.cancel(h);
    CHECK_FALSE(wheel.next_deadline());
  }
}

TEST_CASE("pop_due with nothing due moves the wheel's time to the target", "[rota][wheel]") {
  DeadlineWheel wheel(kMonday);
  CHECK(wheel.now() == kMonday);
  CHECK_FALSE(wheel.pop_due(kMonday + 90min));
  CHECK(wheel.now() == kMonday + 90min);

  wheel.schedule(kMonday + 3h, 1);
  CHECK_FALSE(wheel.pop_due(kMonday + 2h + 59min + 59s + 999ms));
  CHECK(wheel.now() == kMonday + 2h + 59min + 59s + 999ms);
  // An earlier target does not move it back.
  CHECK_FALSE(wheel.pop_due(kMonday));
  CHECK(wheel.now() == kMonday + 2h + 59min + 59s + 999ms);
  CHECK(wheel.size() == 1);

  SECTION("and after popping, the wheel's time is the time popped to") {
    REQUIRE(wheel.pop_due(kMonday + 5h));
    CHECK(wheel.now() == kMonday + 3h);
    CHECK_FALSE(wheel.pop_due(kMonday + 5h));
    CHECK(wheel.now() == kMonday + 5h);
  }
}

TEST_CASE("Jumps of years and deadlines centuries ahead pop in order", "[rota][wheel]") {
  constexpr auto kYear = 8766h;  // 365.25 days
  DeadlineWheel wheel(kMonday);

  SECTION("one jump over everything") {
    wheel.schedule(kMonday + 200 * kYear, 5);
    wheel.schedule(kMonday + 3 * kYear + 1ms, 4);
    wheel.schedule(kMonday + 24h, 2);
    wheel.schedule(kMonday + 1ms, 1);
    wheel.schedule(kMonday + 3 * kYear, 3);
    CHECK(drain(wheel, kMonday + 300 * kYear) == Popped{{kMonday + 1ms, 1},
                                                        {kMonday + 24h, 2},
                                                        {kMonday + 3 * kYear, 3},
                                                        {kMonday + 3 * kYear + 1ms, 4},
                                                        {kMonday + 200 * kYear, 5}});
    CHECK(wheel.now() == kMonday + 300 * kYear);
  }

  SECTION("a jump of years with nothing pending, then millisecond deadlines") {
    const TimePoint later = kMonday + 37 * kYear + 11h + 123ms;
    CHECK_FALSE(wheel.pop_due(later));
    wheel.schedule(later + 2ms, 2);
    wheel.schedule(later + 1ms, 1);
    wheel.schedule(later + 64ms, 3);
    CHECK(wheel.next_deadline() <= later + 1ms);
    CHECK_FALSE(wheel.pop_due(later));
    CHECK(drain(wheel, later + 1s) ==
          Popped{{later + 1ms, 1}, {later + 2ms, 2}, {later + 64ms, 3}});
  }

  SECTION("a deadline beyond the wheel's range waits until the end of time") {
    wheel.schedule(TimePoint::max(), 2);
    wheel.schedule(kMonday + 1000 * kYear, 1);
    CHECK(drain(wheel, kMonday + 5000 * kYear) == Popped{{kMonday + 1000 * kYear, 1}});
    CHECK(wheel.size() == 1);
    const auto last = wheel.pop_due(TimePoint::max());
    REQUIRE(last);
    CHECK(last->payload == 2);
    CHECK(last->at > kMonday + 5000 * kYear);
    CHECK(wheel.empty());
  }
}

TEST_CASE("Times before the epoch count as the epoch", "[rota][wheel]") {
  const TimePoint epoch{};
  DeadlineWheel wheel(epoch - 24h);
  CHECK(wheel.now() == epoch);
  wheel.schedule(epoch - 1h, 1);
  wheel.schedule(epoch + 1ms, 2);
  wheel.schedule(epoch - 1ms, 3);
  CHECK(wheel.next_deadline() == epoch);
  CHECK(drain(wheel, epoch - 5h) == Popped{{epoch, 1}, {epoch, 3}});
  CHECK(drain(wheel, epoch + 1ms) == Popped{{epoch + 1ms, 2}});
}

namespace {

/// splitmix64: the same sequence on every platform and standard library, so a seed replays
/// anywhere.
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n) (n > 0); the modulo bias is irrelevant here.
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  /// Roughly log-uniform in [1, max]: as many millisecond steps as multi-day ones.
  std::int64_t log_uniform(std::int64_t max) {
    const int bits = 1 + int(below(std::uint64_t(std::bit_width(std::uint64_t(max)))));
    const std::int64_t hi = std::min<std::int64_t>(max, (std::int64_t{1} << bits) - 1);
    const std::int64_t lo = std::int64_t{1} << (bits - 1);
    return lo + std::int64_t(below(std::uint64_t(hi - lo + 1)));
  }

 private:
  std::uint64_t state_;
};

std::uint64_t seed_from_environment() {
  if (const char* text = std::getenv("VISITD_SEED"); text != nullptr && *text != '\0') {
    return std::strtoull(text, nullptr, 0);
  }
  return 20261122;
}

/// What the wheel promises, written the obvious way: pending deadlines sorted by the time
/// they fall due (their own, or the wheel's time when scheduled in the past) and then by
/// scheduling order.
struct Reference {
  struct Entry {
    TimePoint at;
    std::uint64_t payload;
  };
  std::map<std::pair<TimePoint, std::uint64_t>, Entry> pending;  // (due, sequence)
  TimePoint now;
};

}  // namespace

TEST_CASE("A random workload pops exactly what a sorted reference pops, in the same order",
          "[rota][wheel]") {
  const std::uint64_t seed = seed_from_environment();
  INFO("replay with VISITD_SEED=" << seed);
  Random random(seed);

  const TimePoint origin = kMonday;
  DeadlineWheel wheel(origin);
  Reference ref{{}, origin};

  struct Scheduled {
    DeadlineWheel::Handle handle;
    std::pair<TimePoint, std::uint64_t> key;
  };
  std::vector<Scheduled> handles;  // live and stale, for cancel
  std::vector<TimePoint> recent;   // times used before, to make ties common

  constexpr int kOperations = 250'000;
  constexpr std::int64_t kThreeDays = 3 * 24 * 3600 * 1000LL;
  std::uint64_t sequence = 0;
  std::size_t popped = 0;
  std::size_t cancelled = 0;
  std::size_t max_pending = 0;

  auto fail = [&](int op, const std::string& what) {
    FAIL("operation " << op << ": " << what << " (VISITD_SEED=" << seed << ")");
  };

  for (int op = 0; op < kOperations; ++op) {
    // Alternate between stretches where the clock creeps (a backlog builds up) and
    // stretches where it leaps by up to days (the backlog drains through every level).
    const bool creeping = (op / 25'000) % 2 == 0;
    const std::int64_t max_step = creeping ? 60'000 : kThreeDays;
    if (op % 1000 == 0) {
      // Forget most handles that fired; keep a few, stale, for cancel to meet.
      std::erase_if(handles, [&](const Scheduled& s) {
        return !ref.pending.contains(s.key) && random.below(8) != 0;
      });
    }
    const std::uint64_t dice = random.below(100);
    if (dice < 45) {
      // Schedule: mostly ahead, sometimes exactly at a time already used, sometimes in the
      // past, rarely years ahead.
      TimePoint at;
      const std::uint64_t shape = random.below(100);
      if (shape < 20 && !recent.empty()) {
        at = recent[random.below(recent.size())];
      } else if (shape < 28) {
        at = ref.now - Duration(random.log_uniform(kThreeDays));
      } else if (shape < 32) {
        at = ref.now;
      } else if (shape < 34) {
        at = ref.now + Duration(random.log_uniform(50 * 365 * 24 * 3600 * 1000LL));
      } else if (shape < 67) {
        at = ref.now + Duration(random.log_uniform(kThreeDays));
      } else {
        at = ref.now + Duration(std::int64_t(random.below(kThreeDays)));
      }
      const std::uint64_t payload = ++sequence;
      const auto handle = wheel.schedule(at, payload);
      const auto key = std::pair{std::max(at, ref.now), payload};
      ref.pending.emplace(key, Reference::Entry{at, payload});
      handles.push_back({handle, key});
      if (recent.size() < 64) {
        recent.push_back(at);
      } else {
        recent[random.below(recent.size())] = at;
      }
    } else if (dice < 65) {
      if (handles.empty()) continue;
      const std::size_t i = random.below(handles.size());
      const Scheduled s = handles[i];
      const bool expected = ref.pending.erase(s.key) == 1;
      if (wheel.pending(s.handle) != expected) fail(op, "pending() disagrees before cancel");
      if (wheel.cancel(s.handle) != expected) fail(op, "cancel() disagrees");
      if (wheel.pending(s.handle)) fail(op, "still pending after cancel");
      if (expected) ++cancelled;
      // Keep some stale handles around: cancelling them must stay harmless.
      if (random.below(4) != 0) {
        handles[i] = handles.back();
        handles.pop_back();
      }
    } else {
      const TimePoint target =
          random.below(10) == 0 ? ref.now : ref.now + Duration(random.log_uniform(max_step));
      if (const auto next = wheel.next_deadline(); ref.pending.empty()) {
        if (next) fail(op, "next_deadline() with nothing pending");
      } else {
        const TimePoint earliest = ref.pending.begin()->first.first;
        if (!next || *next > earliest) fail(op, "next_deadline() later than the earliest");
        const auto block = [](TimePoint t) { return t.time_since_epoch().count() >> 6; };
        if (block(earliest) == block(wheel.now()) && *next != earliest) {
          fail(op, "next_deadline() not exact within the current 64 ms");
        }
      }
      for (;;) {
        const auto due = wheel.pop_due(target);
        const auto expected = ref.pending.begin();
        const bool expect_one = expected != ref.pending.end() && expected->first.first <= target;
        if (!due) {
          if (expect_one)
            fail(op, "pop_due() missed payload " + std::to_string(expected->second.payload));
          ref.now = std::max(ref.now, target);
          break;
        }
        if (!expect_one)
          fail(op, "pop_due() gave payload " + std::to_string(due->payload) + " that is not due");
        if (due->payload != expected->second.payload || due->at != expected->second.at) {
          fail(op, "pop_due() gave payload " + std::to_string(due->payload) + " at " +
                       std::to_string(due->at.time_since_epoch().count()) + ", expected " +
                       std::to_string(expected->second.payload) + " at " +
                       std::to_string(expected->second.at.time_since_epoch().count()));
        }
        ref.now = expected->first.first;
        ref.pending.erase(expected);
        ++popped;
      }
      if (wheel.now() != ref.now) fail(op, "now() disagrees");
    }
    if (wheel.size() != ref.pending.size()) fail(op, "size() disagrees");
    max_pending = std::max(max_pending, ref.pending.size());
    if (op % 5000 == 0) {
      // What a snapshot records: every pending deadline, in the order pop_due would give them.
      const std::vector<DeadlineWheel::Due> listed = wheel.pending_in_order();
      if (listed.size() != ref.pending.size()) fail(op, "pending_in_order() has the wrong size");
      auto expected = ref.pending.begin();
      for (std::size_t i = 0; i < listed.size() && expected != ref.pending.end(); ++i, ++expected) {
        if (listed[i].payload != expected->second.payload || listed[i].at != expected->second.at) {
          fail(op, "pending_in_order() differs from pop order at position " + std::to_string(i));
        }
      }
    }
  }

  // Everything left pops at the end of time, still in order.
  for (const auto& [key, entry] : ref.pending) {
    const auto due = wheel.pop_due(TimePoint::max());
    REQUIRE(due);
    REQUIRE(due->payload == entry.payload);
  }
  CHECK_FALSE(wheel.pop_due(TimePoint::max()));
  CHECK(wheel.empty());
  // The workload did what it is meant to: many pops, many cancels, a real backlog.
  INFO("popped " << popped << ", cancelled " << cancelled << ", at most " << max_pending
                 << " pending");
  CHECK(popped > 40'000);
  CHECK(cancelled > 15'000);
  CHECK(max_pending > 800);
  WARN("VISITD_SEED=" << seed << ": popped " << popped << ", cancelled " << cancelled
                      << ", at most " << max_pending);
}
