#pragma once
// The clock is injected everywhere time matters, so that tests and replays control it.

#include <atomic>
#include <chrono>
#include <functional>
#include <utility>

#include "visitd/core/time.hpp"

namespace visitd {

/// A source of the current time. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  /// How many of this clock's seconds pass in one real second: 1 but for a demo clock.
  /// Timers that wait for one of its instants wait real_wait() for it.
  virtual double rate() const { return 1.0; }
};

/// The real time to wait until `clock` has moved on by `span`, rounded up so that a timer
/// never fires before the instant it waits for.
inline Duration real_wait(const Clock& clock, Duration span) {
  const double rate = clock.rate();
  if (rate == 1.0 || span <= Duration::zero()) return span;
  return std::chrono::ceil<Duration>(
      std::chrono::duration<double, Duration::period>(static_cast<double>(span.count()) / rate));
}

/// The system's real-time clock.
class SystemClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
};

/// A clock that moves only when told to; for tests. Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start) : now_(start.time_since_epoch().count()) {}
  TimePoint now() const override { return TimePoint(Duration(now_.load())); }
  void set(TimePoint t) { now_.store(t.time_since_epoch().count()); }
  void advance(Duration d) { now_.fetch_add(d.count()); }

 private:
  std::atomic<Duration::rep> now_;
};

/// A demo clock: starts at `start` and runs `rate` times as fast as real time (rate 60: one
/// real second is one demo minute), measured on a steady source so that it never jumps
/// with the wall clock. For showing a day quickly; never for tokens, which stay in real
/// time. Thread-safe.
class ScaledClock final : public Clock {
 public:
  using Steady = std::function<std::chrono::steady_clock::time_point()>;

  /// `steady` is read once now and at every now(); tests inject their own.
  ScaledClock(TimePoint start, double rate, Steady steady = &std::chrono::steady_clock::now)
      : start_(start), rate_(rate), steady_(std::move(steady)), origin_(steady_()) {}

  TimePoint now() const override {
    const std::chrono::duration<double, Duration::period> elapsed = steady_() - origin_;
    return start_ + std::chrono::floor<Duration>(elapsed * rate_);
  }
  double rate() const override { return rate_; }

 private:
  TimePoint start_;
  double rate_;
  Steady steady_;
  std::chrono::steady_clock::time_point origin_;
};

}  // namespace visitd
