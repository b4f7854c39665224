#pragma once
// What a load run counts, shared by every connection.
//
// Thread-safe: counters are relaxed atomics; the error tallies take a mutex (errors are
// rare, or the run is wrong). measure_from/measure_until are written once by the run before
// any connection is told to send (the post that tells it orders the write before the reads).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "latency_histogram.hpp"

namespace visitd::load {

using SteadyClock = std::chrono::steady_clock;

struct RunStats {
  SteadyClock::time_point measure_from = SteadyClock::time_point::max();
  SteadyClock::time_point measure_until = SteadyClock::time_point::max();

  /// Send-to-ack nanoseconds of the events sent in [measure_from, measure_until).
  LatencyHistogram latency;

  std::atomic<std::uint64_t> connected{0};
  std::atomic<std::uint64_t> connect_failures{0};
  std::atomic<std::uint64_t> disconnects{0};  ///< connections the server ended early
  std::atomic<std::int64_t> open{0};          ///< connections open now

  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> acked{0};            ///< acks matched to an event
  std::atomic<std::uint64_t> acked_in_window{0};  ///< ... received in the measured window
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> duplicate{0};
  std::atomic<std::uint64_t> errors{0};   ///< `error` messages, and acks nothing matched
  std::atomic<std::int64_t> pending{0};   ///< sent, not yet answered, connection open
  std::atomic<std::uint64_t> lost{0};     ///< pending when their connection ended
  std::atomic<std::uint64_t> skipped{0};  ///< --rate: not sent: connection closed or far behind

  bool in_window(SteadyClock::time_point t) const { return t >= measure_from && t < measure_until; }

  /// Counts an error under `code` and prints the first few in full on stderr.
  void count_error(std::string_view code, std::string_view carer, std::string_view message);
  /// Prints a connection failure on stderr (the first few of them).
  void report_failure(std::string_view carer, std::string_view what);
  std::map<std::string, std::uint64_t> errors_by_code() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> by_code_;
  unsigned errors_printed_ = 0;
  unsigned failures_printed_ = 0;
};

}  // namespace visitd::load
