#pragma once
// Playing the day against a running visitd: the demo clock read from the board's snapshot,
// the rota imported over HTTP, and each carer's phone on its own thread over /ws/carer,
// sending its steps as demo time reaches them and waiting for every event's answer.
//
// Thread-safety: Stats is shared by the phone threads (atomics and a mutex); a DemoTime is
// immutable once made; each phone is used by one thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "plan.hpp"
#include "visitd/core/time.hpp"

namespace visitd::sim {

/// Where the daemon is.
struct Endpoint {
  std::string host = "127.0.0.1";
  std::string port = "8080";
};

/// The daemon's clock as a phone sees it: demo time at a steady instant, and its rate.
struct DemoTime {
  TimePoint at_sync{};
  std::chrono::steady_clock::time_point synced{};
  double rate = 1;

  TimePoint now() const;
  /// The steady instant at which demo time reaches `t`.
  std::chrono::steady_clock::time_point when(TimePoint t) const;
};

/// Opens /ws/board with `token` (office, coordinator or admin) and reads the snapshot's
/// `server_time` and `clock_rate`. Throws std::runtime_error saying what went wrong.
DemoTime read_demo_time(const Endpoint& daemon, const std::string& token);

/// PUT /api/rota?branch=..&date=.. (CSV); returns the answer's body. Throws
/// std::runtime_error with the status and body when it is not 200.
std::string put_rota(const Endpoint& daemon, const std::string& branch, LocalDays date,
                     const std::string& csv, const std::string& token);

/// GET `target` with `token`; the body. Throws std::runtime_error on a failure or non-200.
std::string http_get(const Endpoint& daemon, const std::string& target, const std::string& token);

struct Stats {
  std::atomic<std::uint64_t> sent{0};       ///< events written, resends included
  std::atomic<std::uint64_t> accepted{0};   ///< acks "accepted"
  std::atomic<std::uint64_t> duplicate{0};  ///< acks "duplicate"
  std::atomic<std::uint64_t> resent{0};     ///< events sent again after a reconnect
  std::atomic<std::uint64_t> reconnects{0};
  std::atomic<std::uint64_t> online{0};  ///< phones connected now
  std::atomic<std::uint64_t> finished{0};
  std::atomic<std::uint64_t> abandoned{0};  ///< events given up on after repeated failures

  void count_error(const std::string& code);
  std::map<std::string, std::uint64_t> errors() const;
  std::uint64_t error_total() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> errors_;
};

/// Plays one carer's script until it is done, `stop` is set, or demo time passes `until`.
/// `token` is the carer's. Never throws: failures are counted in `stats`.
void play_carer(const Endpoint& daemon, const CarerScript& script, const std::string& token,
                const DemoTime& clock, std::optional<TimePoint> until, Stats& stats,
                const std::atomic<bool>& stop);

}  // namespace visitd::sim
