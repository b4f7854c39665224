#pragma once
// The Redis store (`[store] kind = "redis"`): the journal's records in a Redis Stream, for
// deployments that keep their state on a Redis server rather than the daemon's disk.
//
// Keys (the braces are a Redis Cluster hash tag, keeping one keyspace's keys on one node):
//   visitd:{K}:log       a Stream, one entry per record: ID "<seq>-0", fields
//                        t (type), v (payload version), ms (time, ms since the epoch), p (payload)
//   visitd:{K}:snapshot  a Hash: seq (the last record it covers), crc (crc32c of bytes), bytes
//   visitd:{K}:seq       the seq of the last record written (the append script's check)
//   visitd:{K}:lease     the daemon that owns the keyspace (SET PX), see Ownership
//   visitd:{K}:epoch     incremented by each new owner: the fencing token
//   visitd:{K}:followers a Hash: standby daemon id -> "<seq read> <unix ms>" (visitd status)
//   visitd:{K}:inbox     a Stream of commands standbys forward to the owner: fields from
//                        (daemon id), req (request id), p (payload); read by the owner in
//                        consumer group "owners", XACKed once answered; entries a dead
//                        owner read but never answered are XAUTOCLAIMed by the next
//   visitd:{K}:replies:D a Stream of answers to daemon D's forwarded commands: req, a
// where K is `[store] keyspace` ("agency" by default).
//
// Durability: a record is durable when the server has answered its XADD (made by a small
// Lua script that first checks the record follows the stream's last ID, so that a write
// refused in the middle of a pipeline cannot leave a gap behind later ones) and the server
// fsyncs every write (`appendonly yes`, `appendfsync always`), which open() checks: it
// refuses any other server unless `allow_unsafe_fsync`, when it warns (Log::unsafe()). The
// XADDs are pipelined on one asynchronous connection (hiredis on Asio, on the store's own
// thread): the group commit of this store is Redis' own, one fsync per event-loop turn.
//
// The entry ID is the record's seq, so a retried XADD can never add a record twice: when the
// connection drops, what was sent but not answered is sent again after reconnecting, from
// past the stream's last entry (what the server did write counts as durable). While the
// server is unreachable nothing becomes durable, Log::unavailable() says why, appends wait
// in memory in order, and reconnection is retried with backoff (100 ms doubling to 5 s).
// A command not answered within `command_timeout` drops the connection (and so retries).
//
// Ownership: one daemon writes a keyspace at a time. open() takes the lease
// visitd:{K}:lease (SET PX lease_ttl, renewed every third of it), waiting while another
// daemon holds it (a standby), and bumps visitd:{K}:epoch; every append checks the epoch,
// so a daemon whose lease lapsed and was taken (paused, partitioned) can write nothing more:
// its store fails (failed(), on_failed) and the daemon stops. A restart under the same
// daemon_id takes its own lease back at once.
//
// A standby (open_standby) does not wait for the lease: follow() reads every record the
// owner writes as it is written (XREAD BLOCK), so that the daemon's engine stays a replica
// and its boards stay live, while trying for the lease. Once it holds it, the standby reads
// the stream to its end (the old owner is fenced by then), becomes the owner and says so;
// taking over then costs no replay. A command a standby's phone or board sends goes to the
// owner through the inbox (forward()), and the answer comes back on the standby's replies
// stream, which the same XREAD reads.
//
// Compaction XDELs location records covered by the snapshot and older than the retention.
//
// Thread-safety: as Log. Start-up work (open, replay) and snapshots use a second, blocking
// connection, guarded by a mutex.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "visitd/store/log.hpp"

namespace visitd::store {

struct RedisOptions {
  std::string url;                  ///< redis://[[user]:password@]host[:port][/db]
  std::string keyspace = "agency";  ///< K in the key names
  bool allow_unsafe_fsync = false;
  std::chrono::milliseconds command_timeout{2000};  ///< also the connect timeout
  std::chrono::milliseconds flush_timeout{10000};   ///< flush() gives up after this outage
  /// Who this daemon is in the lease; a restart with the same id takes its lease back at once.
  std::string daemon_id = "visitd";
  std::chrono::milliseconds lease_ttl{10000};  ///< renewed every third of it
  /// Called (on the store's thread) when the lease is lost and the store has failed.
  std::function<void(const std::string& why)> on_failed;
  /// How long a standby waits for the owner's answer to a forwarded command.
  std::chrono::milliseconds forward_timeout{5000};
};

class RedisLog final : public Log {
 public:
  /// Connects, checks the server's persistence (see above) and reads where the stream ends.
  /// Throws JournalError when the server cannot be reached or used safely.
  static std::unique_ptr<RedisLog> open(RedisOptions options);
  /// As open(), without waiting for the lease: the store is a standby (standby() says whose
  /// writes it follows) and appends nothing until follow() has made it the owner.
  static std::unique_ptr<RedisLog> open_standby(RedisOptions options);
  ~RedisLog() override;  ///< flushes (within flush_timeout), then disconnects

  void replay(std::uint64_t from, const std::function<void(const Record&)>& visit) const override;
  std::uint64_t append(RecordType type, std::uint8_t version, TimePoint time,
                       std::string_view payload, Durable on_durable) override;
  std::uint64_t last_seq() const override;
  std::uint64_t durable_seq() const override;
  /// Outages are waited out; the store fails only when another daemon took its lease.
  bool failed() const override;
  std::error_code failure() const override;
  std::string failure_text() const override;
  std::string unavailable() const override;
  std::string unsafe() const override;
  void flush() override;
  void write_snapshot(std::uint64_t seq, std::string_view bytes) override;
  std::optional<Snapshot> latest_snapshot() const override;
  std::uint64_t compact(TimePoint drop_locations_before) override;

  std::string standby() const override;
  void forward(std::string payload,
               std::function<void(std::optional<std::string> answer)> done) override;
  void serve_forwarded(std::function<void(Forwarded forwarded)> serve) override;

  /// A standby's only way to become the owner; call once. On a thread of its own: hands
  /// `on_record` each record after `after` as the owner writes it, in order, while trying
  /// for the lease; once this daemon holds it and has read the stream to its end, appends
  /// go and `on_promoted` runs (on that thread). Stops with the store.
  void follow(std::uint64_t after, std::function<void(const Record&)> on_record,
              std::function<void()> on_promoted);
  /// Stops following, serving forwarded commands and sending answers (waits for those
  /// threads: within one blocking read); call before what their callbacks use goes away.
  /// The destructor does it too.
  void stop_following();

  /// The stream's key, for messages and tests.
  const std::string& stream_key() const;
  /// How many times the append connection has been (re)established.
  std::uint64_t connections() const;

 private:
  RedisLog() = default;
  /// A store connected to a server whose persistence was checked; nothing started yet.
  static std::unique_ptr<RedisLog> connect(RedisOptions options);
  struct State;
  std::unique_ptr<State> state_;
};

/// `visitd status`: who holds the keyspace's lease (epoch, expiry), where the stream ends,
/// what the snapshot covers. Reads only; throws JournalError when the server cannot be read.
std::string redis_status(const RedisOptions& options);

}  // namespace visitd::store
