#pragma once
// When each notice goes out, with which others, and what happens when a receiver fails.
//
// - Grouping: pages to one receiver for one carer in one branch that arrive within
//   `group_wait` of the first go out as one delivery (a carer whose car broke down misses four
//   visits: one page listing them). Acknowledgements and resolutions go at once.
// - Retries: a 5xx, a 429 or a network error is tried again after a delay that doubles from
//   `retry_initial` up to `retry_max`, with jitter (so a receiver coming back is not hit by
//   every daemon at the same instant), and never sooner than a 429's Retry-After. Any other
//   4xx is refused for good: retrying cannot fix it.
// - Fallback: after `fallback_after` failed attempts (or a refusal) the notices also go to
//   the receiver's `fallback`, once; the first receiver keeps being tried.
// - Idempotency: a delivery's key is derived from the notices it carries, so a retry, or a
//   resend after a restart, of the same delivery has the same key.
//
// Pure: time is what the caller says, the jitter comes from a seeded generator. No I/O.
// Thread-safety: none; one owner calls it.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "visitd/alerts/notice.hpp"
#include "visitd/config/settings.hpp"
#include "visitd/core/time.hpp"

namespace visitd::alerts {

/// One request the caller should make now.
struct Delivery {
  std::uint64_t id = 0;
  config::Receiver receiver;  ///< type empty when the config no longer has it
  std::vector<Notice> notices;
  unsigned attempt = 1;  ///< 1 for the first try
  std::string idempotency_key;
  TimePoint first_queued;  ///< when its first notice was queued, for delivery latency
};

/// How an attempt ended, as the caller saw it.
struct Attempt {
  int status = 0;  ///< the HTTP status; 0 when no answer came (network error, timeout)
  std::optional<Duration> retry_after;  ///< a 429's Retry-After
  std::string detail;                   ///< the error or the answer's first words
};

/// What the caller does after finish(): journal `record`; journal and add() `fallback`.
struct Settled {
  DeliveryRecord record;
  std::vector<Notice> fallback;  ///< copies for the fallback receiver, new to the outbox
  bool done = false;             ///< delivered or refused: the notices are settled
};

class Dispatcher {
 public:
  Dispatcher(const config::Settings& settings, std::uint64_t seed);

  /// New receivers and timings after a reload; queued deliveries keep their notices.
  void reconfigure(const config::Settings& settings);

  /// Queues a notice (already in the durable outbox) at `now`.
  void add(Notice notice, TimePoint now);

  /// When take() next has something; nullopt when nothing is queued (in-flight ones wait for
  /// finish()).
  std::optional<TimePoint> next_due() const;

  /// The deliveries due at `now`, oldest first, at most `limit` of them; each is in flight
  /// until finish() is called for it.
  std::vector<Delivery> take(TimePoint now, std::size_t limit = SIZE_MAX);

  /// Reports how an attempt ended.
  Settled finish(std::uint64_t delivery, const Attempt& attempt, TimePoint now);

  std::size_t queued() const { return batches_.size() - in_flight_; }
  std::size_t in_flight() const { return in_flight_; }

  /// The delay before attempt `attempt + 1` after `attempt` failed (jitter included).
  Duration backoff(unsigned attempt);

 private:
  struct Batch {
    std::string receiver;
    std::vector<Notice> notices;
    TimePoint due;
    TimePoint first_queued;
    unsigned attempts = 0;  ///< made so far
    bool in_flight = false;
    bool fell_back = false;
    bool open = false;  ///< still collecting pages (its group key maps to it)
  };
  using GroupKey = std::tuple<std::string, std::string, std::string, Transition>;

  static GroupKey group_of(const Notice& n) {
    return {n.receiver, n.branch, n.carer, n.transition};
  }
  std::string idempotency_key(const Batch& b) const;
  const config::Receiver* find_receiver(std::string_view name) const;

  std::vector<config::Receiver> receivers_;
  config::Escalation policy_;
  std::mt19937_64 random_;
  std::uint64_t next_id_ = 1;
  std::map<std::uint64_t, Batch> batches_;  ///< by id: oldest first
  std::map<GroupKey, std::uint64_t> open_groups_;
  std::size_t in_flight_ = 0;
};

}  // namespace visitd::alerts
