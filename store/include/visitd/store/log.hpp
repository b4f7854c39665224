#pragma once
// The record log the engine is rebuilt from: every accepted command, settings change and
// outbox entry, in sequence, each acknowledged only once it is durable. Two stores implement
// it: the embedded journal (journal.hpp, the default) and Redis (redis_log.hpp). The engine
// host, recovery and the pager use only this interface, so both stores decide, replay and
// page identically.
//
// Sequence numbers start at 1 and increase by one per append. A record is durable when the
// store says so: fdatasync returned (journal), or the server answered the write with
// `appendfsync always` (Redis). Only then may anyone be acknowledged.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "visitd/core/time.hpp"

namespace visitd::store {

/// What a record holds; the stores treat payloads as opaque bytes.
enum class RecordType : std::uint8_t {
  command = 1,   ///< an accepted engine command (rota/codec.hpp)
  location = 2,  ///< an accepted location ping: a raw fix, dropped after location_retention
  settings = 3,  ///< the tracking settings put in force at this point (config::describe_tracking)
  outbox = 4,    ///< a notice decided, written before it is sent (alerts/notice.hpp)
  delivery = 5,  ///< how an attempt to deliver notices ended: the paging audit trail
  /// Deadlines fell due up to this record's time (no payload): a standby following the log
  /// advances its engine here, so its boards see a visit turn late when the owner's do.
  tick = 6,
};
constexpr std::uint8_t kMaxRecordType = 6;

struct Record {
  std::uint64_t seq = 0;
  RecordType type = RecordType::command;
  std::uint8_t version = 1;  ///< payload format version, so newer visitd reads older logs
  TimePoint time;            ///< when it was decided (the command's `now`)
  std::string payload;
};

/// Damage, unreadable data, a store that cannot be used safely, and other reasons not to
/// start. (Named for the journal, which came first; the Redis store throws it too.)
class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Log {
 public:
  virtual ~Log() = default;

  /// Reads every record with seq >= from, in order.
  virtual void replay(std::uint64_t from,
                      const std::function<void(const Record&)>& visit) const = 0;

  /// Queues a record; returns its sequence number. `on_durable(seq, error)` is called once,
  /// on the store's own thread, in seq order, when the record is durable (error empty) or can
  /// never be (error set: the store has failed for good). After such a failure the store
  /// accepts nothing more: append() then returns 0 and the callback gets seq 0 and the error.
  /// Callbacks must not throw or call flush().
  using Durable = std::function<void(std::uint64_t seq, std::error_code error)>;
  virtual std::uint64_t append(RecordType type, std::uint8_t version, TimePoint time,
                               std::string_view payload, Durable on_durable) = 0;

  virtual std::uint64_t last_seq() const = 0;     ///< the last appended
  virtual std::uint64_t durable_seq() const = 0;  ///< the last made durable
  /// The store failed for good (an fsync failed): stop, fail /readyz, never ack again.
  virtual bool failed() const = 0;
  virtual std::error_code failure() const = 0;
  /// What failed() means, as a sentence for /readyz and refusals.
  virtual std::string failure_text() const {
    return "the journal failed (" + failure().message() +
           "): no event is accepted; restart visitd once the disk is fixed";
  }
  /// Why records cannot be made durable just now although the store has not failed (the
  /// Redis server is unreachable: appends wait and are written when it returns); empty when
  /// they can. /readyz fails meanwhile.
  virtual std::string unavailable() const { return {}; }
  /// A standing warning for /readyz and the log (Redis without `appendfsync always`, allowed
  /// by `allow_unsafe_fsync`); empty when there is none.
  virtual std::string unsafe() const { return {}; }
  /// Empty unless this store is a standby that follows another daemon's writes (Redis):
  /// then who holds the lease. Nothing can be appended until it takes over.
  virtual std::string standby() const { return {}; }

  /// A standby's way to the owner (Redis): carries `payload` (an encoded command) to the
  /// daemon that owns the store; `done` gets its answer, or nothing when none came in time
  /// (the owner died) or this store cannot forward. Any thread; `done` runs on a store thread.
  virtual void forward(std::string payload,
                       std::function<void(std::optional<std::string> answer)> done) {
    (void)payload;
    done(std::nullopt);
  }
  /// How the owner answers a forwarded command: exactly once, from any thread.
  using Answer = std::function<void(std::string answer)>;
  /// A forwarded command as the owner gets it.
  struct Forwarded {
    std::string payload;
    /// The latest moment (this process's steady clock) to apply it. Past it, its sender may
    /// have stopped waiting and told its user to send it again: applying it then could undo
    /// what the user did next. Refuse it instead (the answer goes nowhere).
    std::chrono::steady_clock::time_point apply_by;
    Answer answer;
  };
  /// The owner's side of forward(): `serve` gets each forwarded command (on a store thread).
  /// Call once this daemon owns the store.
  virtual void serve_forwarded(std::function<void(Forwarded forwarded)> serve) { (void)serve; }

  /// Blocks until everything appended so far is durable, the store failed, or (Redis) it has
  /// been unavailable for the store's flush timeout; durable_seq() tells which.
  virtual void flush() = 0;

  /// Writes a snapshot covering every record up to and including `seq`, atomically. Throws
  /// JournalError if `seq` is not durable yet, or on an I/O error.
  virtual void write_snapshot(std::uint64_t seq, std::string_view bytes) = 0;
  struct Snapshot {
    std::uint64_t seq;
    std::string bytes;
  };
  /// The newest snapshot whose checksum is good.
  virtual std::optional<Snapshot> latest_snapshot() const = 0;

  /// Drops `location` records covered by the newest snapshot whose time is before
  /// `drop_locations_before`; keeps every other record. Returns the number dropped.
  virtual std::uint64_t compact(TimePoint drop_locations_before) = 0;
};

}  // namespace visitd::store
