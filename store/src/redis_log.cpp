#include "visitd/store/redis_log.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "redis.hpp"
#include "visitd/core/log.hpp"
#include "visitd/store/crc32c.hpp"

namespace visitd::store {
namespace net = boost::asio;
using redis::Reply;

namespace {

constexpr std::size_t kReplayBatch = 1000;

/// Appends one record (KEYS[1] the stream; ARGV seq, t, v, ms, p) only if it follows the
/// last record written (KEYS[3], a counter XDEL does not move back): a pipelined write that
/// failed (a read-only replica, NOREPLICAS, out of memory) can then never leave a gap that
/// later records would hide. VISITD_HAVE: the record is already there (its answer was lost
/// with a connection); VISITD_GAP: its predecessor is not. KEYS[2] is the epoch key and
/// ARGV[6] this daemon's epoch: a daemon whose lease another has taken since (VISITD_FENCED)
/// can write nothing more. Only O(1) commands, so Redis spends little beyond the XADD.
constexpr std::string_view kAppendScript = R"lua(
if redis.call('GET', KEYS[2]) ~= ARGV[6] then
  return redis.error_reply('VISITD_FENCED epoch ' .. tostring(redis.call('GET', KEYS[2])))
end
local seq = tonumber(ARGV[1])
local top = tonumber(redis.call('GET', KEYS[3]) or '0')
if top >= seq then return redis.error_reply('VISITD_HAVE ' .. top) end
if top ~= seq - 1 then return redis.error_reply('VISITD_GAP ' .. top) end
redis.call('SET', KEYS[3], ARGV[1])
return redis.call('XADD', KEYS[1], ARGV[1] .. '-0', 't', ARGV[2], 'v', ARGV[3], 'ms', ARGV[4],
                  'p', ARGV[5])
)lua";
constexpr auto kBackoffFirst = std::chrono::milliseconds(100);
constexpr auto kBackoffMax = std::chrono::seconds(5);

std::optional<std::uint64_t> to_u64(std::string_view text) {
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<std::int64_t> to_i64(std::string_view text) {
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

/// Milliseconds since the Unix epoch on this host's clock.
std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The value of field `name` in a stream entry's field list (empty when absent).
std::string_view field(const Reply& fields, std::string_view name) {
  for (std::size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
    if (fields.elements[i].text == name) return fields.elements[i + 1].text;
  }
  return {};
}

/// A standby's replies stream: answers to the commands daemon `daemon` forwarded.
std::string replies_key_of(std::string_view keyspace, std::string_view daemon) {
  return "visitd:{" + std::string(keyspace) + "}:replies:" + std::string(daemon);
}

/// Takes the lease (KEYS[1]) for ARGV[1] for ARGV[2] ms if it is free or already this
/// daemon's (a restart), and starts a new epoch (KEYS[2]), which fences every earlier owner.
/// {1, epoch} when taken; {0, holder, ms left} when another daemon holds it.
constexpr std::string_view kAcquireScript = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, holder, redis.call('PTTL', KEYS[1])}
)lua";

/// Renews the lease (KEYS[1]) of ARGV[1] for ARGV[2] ms; takes it back if it expired and no
/// one took it since (the epoch KEYS[2] is still ARGV[3]). 1, or who holds it now.
constexpr std::string_view kRenewScript = R"lua(
local holder = redis.call('GET', KEYS[1])
local epoch = redis.call('GET', KEYS[2])
if holder == ARGV[1] and epoch == ARGV[3] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder == false and epoch == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 'held by ' .. (holder or 'nobody') .. ' at epoch ' .. (epoch or 'none')
)lua";

/// The seq in a stream entry ID "<seq>-0"; nothing for any other ID.
std::optional<std::uint64_t> seq_of(std::string_view id) {
  if (id.size() < 3 || id.substr(id.size() - 2) != "-0") return std::nullopt;
  return to_u64(id.substr(0, id.size() - 2));
}

/// The seq of the entry in an XRANGE/XREVRANGE reply's element; throws with `where`.
std::uint64_t entry_seq(const Reply& entry, const std::string& where) {
  if (entry.kind != Reply::Kind::array || entry.elements.size() != 2 ||
      entry.elements[0].kind != Reply::Kind::string) {
    throw JournalError(where + ": malformed stream entry (" + entry.describe() + ")");
  }
  const auto seq = seq_of(entry.elements[0].text);
  if (!seq || *seq == 0) {
    throw JournalError(where + ": entry " + entry.elements[0].text +
                       " was not written by visitd (IDs are <seq>-0)");
  }
  return *seq;
}

Record parse_entry(const Reply& entry, const std::string& key) {
  Record r;
  r.seq = entry_seq(entry, key);
  const std::string where = key + " entry " + entry.elements[0].text;
  const Reply& fields = entry.elements[1];
  if (fields.kind != Reply::Kind::array || fields.elements.size() % 2 != 0) {
    throw JournalError(where + ": malformed fields (" + fields.describe() + ")");
  }
  bool have_t = false, have_v = false, have_ms = false, have_p = false;
  for (std::size_t i = 0; i < fields.elements.size(); i += 2) {
    const Reply& name = fields.elements[i];
    const Reply& value = fields.elements[i + 1];
    if (name.kind != Reply::Kind::string || value.kind != Reply::Kind::string) {
      throw JournalError(where + ": a field is not a string");
    }
    if (name.text == "t") {
      const auto t = to_u64(value.text);
      if (!t || *t == 0 || *t > kMaxRecordType) {
        throw JournalError(where + ": unknown record type \"" + value.text + "\"");
      }
      r.type = static_cast<RecordType>(*t);
      have_t = true;
    } else if (name.text == "v") {
      const auto v = to_u64(value.text);
      if (!v || *v == 0 || *v > 255) {
        throw JournalError(where + ": bad payload version \"" + value.text + "\"");
      }
      r.version = static_cast<std::uint8_t>(*v);
      have_v = true;
    } else if (name.text == "ms") {
      const auto ms = to_i64(value.text);
      if (!ms) throw JournalError(where + ": bad time \"" + value.text + "\"");
      r.time = TimePoint(Duration(*ms));
      have_ms = true;
    } else if (name.text == "p") {
      r.payload = value.text;
      have_p = true;
    } else {
      throw JournalError(where + ": unknown field \"" + name.text + "\"");
    }
  }
  if (!(have_t && have_v && have_ms && have_p)) {
    throw JournalError(where + ": missing one of the fields t, v, ms, p");
  }
  return r;
}

/// The value of a `CONFIG GET name` reply, or why it cannot be read.
std::string config_value(const Reply& reply, std::string_view name, std::string& why) {
  if (reply.is_error()) {
    why = "CONFIG GET " + std::string(name) + " was refused: " + reply.text;
  } else if (reply.kind != Reply::Kind::array || reply.elements.size() != 2 ||
             reply.elements[1].kind != Reply::Kind::string) {
    why = "CONFIG GET " + std::string(name) + " answered " + reply.describe();
  } else {
    return reply.elements[1].text;
  }
  return {};
}

}  // namespace

struct RedisLog::State {
  struct Entry {
    std::uint64_t seq;
    std::string type, version, ms, seq_text;  ///< as sent
    std::string payload;
    Durable done;
    std::chrono::steady_clock::time_point sent_at{};
  };

  State(RedisOptions o, redis::Endpoint e)
      : options(std::move(o)),
        endpoint(std::move(e)),
        log_key("visitd:{" + options.keyspace + "}:log"),
        snapshot_key("visitd:{" + options.keyspace + "}:snapshot"),
        lease_key("visitd:{" + options.keyspace + "}:lease"),
        epoch_key("visitd:{" + options.keyspace + "}:epoch"),
        seq_key("visitd:{" + options.keyspace + "}:seq"),
        followers_key("visitd:{" + options.keyspace + "}:followers"),
        inbox_key("visitd:{" + options.keyspace + "}:inbox"),
        replies_key(replies_key_of(options.keyspace, options.daemon_id)),
        sync(endpoint, options.command_timeout),
        work(net::make_work_guard(io)),
        retry_timer(io),
        watchdog(io),
        lease_timer(io) {}

  RedisOptions options;
  redis::Endpoint endpoint;
  std::string log_key, snapshot_key, lease_key, epoch_key, seq_key;
  std::string followers_key;  ///< standby id -> "<seq it has read> <unix ms>", for status
  std::string inbox_key;      ///< commands forwarded to the owner
  std::string replies_key;    ///< answers to this daemon's forwarded commands
  std::string unsafe;
  std::string epoch;  ///< this daemon's, as the epoch key holds it

  mutable std::mutex sync_mutex;
  mutable redis::SyncConnection sync;
  std::uint64_t compacted_through = 0;  ///< under sync_mutex

  // The append pipeline's thread and what only it touches.
  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> work;
  net::steady_timer retry_timer, watchdog, lease_timer;
  std::shared_ptr<redis::AsyncConnection> connection;
  std::uint64_t generation = 0;  ///< which connection a reply came on
  std::string script_sha;        ///< kAppendScript, loaded on the current connection
  bool synced = false;           ///< the connection knows the stream's end: appends may go
  std::chrono::steady_clock::time_point connecting_since{};
  std::chrono::milliseconds backoff = kBackoffFirst;
  bool stopping = false;
  std::thread thread;

  // Shared with appenders, under `mutex`.
  mutable std::mutex mutex;
  std::condition_variable durable_cv;
  std::deque<Entry> queue;  ///< appended, not yet durable, in seq order
  std::size_t sent = 0;     ///< how many at the front are sent on the current connection
  std::uint64_t last = 0;
  std::string outage;        ///< why nothing can be written now; empty when connected
  std::string failure_text;  ///< set once the lease is lost: nothing is written again

  std::atomic<std::uint64_t> durable{0};
  std::atomic<std::uint64_t> connections{0};
  /// A standby follows the owner's writes and appends nothing (see follow()).
  std::atomic<bool> standby{false};
  std::string holder;  ///< under `mutex`: who held the lease when a standby last looked
  std::thread follower;
  std::atomic<bool> stop_following{false};
  struct Follower;
  std::unique_ptr<Follower> following;

  // Forwarding (Log::forward): a standby's commands waiting for the owner's answer.
  struct Forward {
    std::function<void(std::optional<std::string>)> done;
    std::chrono::steady_clock::time_point deadline;
  };
  std::mutex forward_mutex;
  std::unordered_map<std::string, Forward> forwards;  ///< by request id
  std::uint64_t next_request = 0;                     ///< under forward_mutex
  std::string request_prefix = options.daemon_id + ":" + std::to_string(std::random_device{}());
  std::string replies_cursor = "0-0";  ///< the follower's: the last answer read

  // The sender: forwarded commands (standby) and answers (owner), in order, on a connection
  // of its own, so that neither waits behind a blocking read.
  std::mutex send_mutex;
  std::condition_variable send_cv;
  std::deque<std::vector<std::string>> to_send;
  bool send_stop = false;
  std::thread sender;
  std::thread inbox_reader;  ///< the owner's (serve_forwarded)
  std::atomic<bool> pump_posted{false};
  std::atomic<bool> failed{false};
  /// !outage.empty(), readable without the lock: the engine host asks on every command.
  std::atomic<bool> in_outage{false};

  // ---- the append pipeline (io thread) ---------------------------------------------------

  void connect() {
    if (stopping) return;
    connection = std::make_shared<redis::AsyncConnection>(io, endpoint);
    ++generation;
    script_sha.clear();
    synced = false;
    connecting_since = std::chrono::steady_clock::now();
    connection->connect([this] { on_connected(); },
                        [this](const std::string& reason) { on_down(reason); });
  }

  /// Connected: load the append script, learn the last record written, count what the server
  /// already has as durable (its answer was lost with the old connection), send the rest.
  void on_connected() {
    connection->command({"SCRIPT", "LOAD", kAppendScript},
                        [this, generation = generation](const Reply* reply, std::string_view) {
                          if (generation != this->generation || reply == nullptr) return;
                          if (reply->kind != Reply::Kind::string) {
                            connection->abort("SCRIPT LOAD answered " + reply->describe());
                            return;
                          }
                          script_sha = reply->text;
                        });
    connection->command(
        {"GET", seq_key}, [this, generation = generation](const Reply* reply, std::string_view) {
          if (generation != this->generation) return;
          // Lost again, or the script was refused: on_down retries.
          if (reply == nullptr || !connection->connected() || script_sha.empty()) return;
          std::uint64_t top = 0;
          if (reply->kind == Reply::Kind::string) {
            top = to_u64(reply->text).value_or(0);
          } else if (reply->kind != Reply::Kind::nil) {
            connection->abort(seq_key + ": GET answered " + reply->describe());
            return;
          }
          std::vector<std::pair<std::uint64_t, Durable>> done;
          {
            const std::lock_guard lock(mutex);
            if (top > last) {
              connection->abort(seq_key + " says record " + std::to_string(top) +
                                " was written, past this daemon's last, " + std::to_string(last) +
                                ": another writer is using this keyspace");
              return;
            }
            while (!queue.empty() && queue.front().seq <= top) {
              done.emplace_back(queue.front().seq, std::move(queue.front().done));
              queue.pop_front();
            }
            sent = 0;
            if (!done.empty()) durable.store(done.back().first);
            if (!outage.empty()) {
              log::info("redis_reconnected", {{"server", endpoint.text()}});
            }
            outage.clear();
            in_outage.store(false);
          }
          durable_cv.notify_all();
          for (auto& [seq, callback] : done) {
            if (callback) callback(seq, {});
          }
          connections.fetch_add(1);
          synced = true;
          pump();
        });
  }

  void on_down(const std::string& reason) {
    connection.reset();
    {
      const std::lock_guard lock(mutex);
      sent = 0;
      if (outage.empty()) {
        log::warn("redis_unreachable", {{"server", endpoint.text()},
                                        {"error", reason},
                                        {"waiting_records", std::to_string(queue.size())}});
      }
      outage = "Redis at " + endpoint.text() + " cannot take writes (" + reason + ")";
      in_outage.store(true);
    }
    if (stopping || failed.load()) return;  // a failed store never writes again
    retry_timer.expires_after(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
    retry_timer.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) connect();
    });
  }

  /// Sends every queued record not yet sent, pipelined.
  void pump() {
    pump_posted.store(false);
    if (!connection || !connection->connected() || !synced || failed.load()) return;
    const auto now = std::chrono::steady_clock::now();
    const std::lock_guard lock(mutex);
    for (; sent < queue.size(); ++sent) {
      Entry& e = queue[sent];
      e.sent_at = now;
      connection->command(
          {"EVALSHA", script_sha, "3", log_key, epoch_key, seq_key, e.seq_text, e.type, e.version,
           e.ms, e.payload, epoch},
          [this, seq = e.seq, generation = generation](const Reply* reply, std::string_view) {
            if (generation == this->generation && reply != nullptr) {
              written(seq, *reply);
            }
          });
    }
  }

  void written(std::uint64_t seq, const Reply& reply) {
    Durable callback;
    {
      const std::lock_guard lock(mutex);
      const std::string expected = std::to_string(seq) + "-0";
      const bool written = (reply.kind == Reply::Kind::string && reply.text == expected) ||
                           (reply.is_error() && reply.text.starts_with("VISITD_HAVE "));
      if (reply.is_error() && reply.text.starts_with("VISITD_FENCED")) {
        fail_later("another daemon has taken the lease on " + lease_key + " (" + reply.text +
                   ", this daemon's was " + epoch + ")");
        return;
      }
      if (!written || queue.empty() || queue.front().seq != seq) {
        // Not written: an error (out of memory, a read-only replica, a stream ID the server
        // already has...). Reconnecting re-reads the stream's end and sends again.
        connection->abort("XADD of record " + std::to_string(seq) + " answered " +
                          reply.describe());
        return;
      }
      callback = std::move(queue.front().done);
      queue.pop_front();
      --sent;
      durable.store(seq);
    }
    // Reset only once a write went through: a server that refuses writes (out of memory, a
    // read-only replica) is retried at the slow pace, not every 100 ms.
    backoff = kBackoffFirst;
    durable_cv.notify_all();
    if (callback) callback(seq, {});
  }

  /// The lease is lost: nothing more is written, what waits is told it never will be, and the
  /// owner of the store hears of it (the daemon stops, to stand by). Posted, so that it
  /// never runs inside a reply callback holding `mutex`.
  void fail_later(std::string why) {
    net::post(io, [this, why = std::move(why)] { fail(why); });
  }
  void fail(const std::string& why) {
    std::deque<Entry> waiting;
    {
      const std::lock_guard lock(mutex);
      if (failed.exchange(true)) return;
      failure_text = why;
      waiting.swap(queue);
      sent = 0;
    }
    log::error("redis_lease_lost", {{"keyspace", options.keyspace}, {"why", why}});
    durable_cv.notify_all();
    for (auto& e : waiting) {
      if (e.done) e.done(0, std::make_error_code(std::errc::operation_not_permitted));
    }
    if (connection) connection->abort("the lease is lost");
    retry_timer.cancel();
    lease_timer.cancel();
    if (options.on_failed) options.on_failed(why);
  }

  /// Renews the lease every third of its time to live; a renewal the server refuses (the
  /// lease expired and another daemon took it) fails the store.
  void arm_lease() {
    lease_timer.expires_after(options.lease_ttl / 3);
    lease_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping || failed.load()) return;
      if (connection && connection->connected()) {
        const std::string ttl = std::to_string(options.lease_ttl.count());
        connection->command(
            {"EVAL", kRenewScript, "2", lease_key, epoch_key, options.daemon_id, ttl, epoch},
            [this](const Reply* reply, std::string_view) {
              if (reply == nullptr) return;  // the connection went: retried next time
              if (reply->kind == Reply::Kind::integer && reply->integer == 1) return;  // renewed
              if (reply->kind == Reply::Kind::string) {
                fail_later("the lease on " + lease_key + " is " + reply->text +
                           ", not this daemon's (" + options.daemon_id + " at epoch " + epoch +
                           ")");
              } else {
                log::warn("redis_lease_renewal", {{"answer", reply->describe()}});
              }
            });
      }
      arm_lease();
    });
  }

  /// Drops a connection whose oldest command (or connect) has waited too long.
  void arm_watchdog() {
    watchdog.expires_after(std::max<std::chrono::milliseconds>(options.command_timeout / 4,
                                                               std::chrono::milliseconds(10)));
    watchdog.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      const auto now = std::chrono::steady_clock::now();
      if (connection) {
        if (connection->connecting() && now - connecting_since > options.command_timeout) {
          connection->abort("no connection within " +
                            std::to_string(options.command_timeout.count()) + " ms");
        } else if (connection->connected()) {
          bool late = false;
          {
            const std::lock_guard lock(mutex);
            late = sent > 0 && now - queue.front().sent_at > options.command_timeout;
          }
          if (late) {
            connection->abort("no answer within " +
                              std::to_string(options.command_timeout.count()) + " ms");
          }
        }
      }
      arm_watchdog();
    });
  }

  // ---- blocking helpers (under sync_mutex) -------------------------------------------------

  Reply run(const std::vector<std::string_view>& args) const { return sync.command(args); }

  std::uint64_t stream_top() const {
    const Reply r = run({"XREVRANGE", log_key, "+", "-", "COUNT", "1"});
    if (r.kind != Reply::Kind::array) {
      throw JournalError(log_key + ": XREVRANGE answered " + r.describe());
    }
    return r.elements.empty() ? 0 : entry_seq(r.elements[0], log_key);
  }

  /// One attempt at the lease: true when this daemon holds it now (free, or already ours
  /// after a restart; a new epoch fences every earlier owner); else `holder` and `left` (ms)
  /// say who has it and for how long.
  bool try_acquire(std::string& holder_now, long long& left) {
    const std::string ttl = std::to_string(options.lease_ttl.count());
    const Reply r =
        run({"EVAL", kAcquireScript, "2", lease_key, epoch_key, options.daemon_id, ttl});
    if (r.kind != Reply::Kind::array || r.elements.size() < 2 ||
        r.elements[0].kind != Reply::Kind::integer) {
      throw JournalError(lease_key + ": taking the lease answered " + r.describe());
    }
    if (r.elements[0].integer == 1) {
      epoch = std::to_string(r.elements[1].integer);
      log::info("redis_lease",
                {{"keyspace", options.keyspace}, {"daemon", options.daemon_id}, {"epoch", epoch}});
      return true;
    }
    holder_now = r.elements[1].text;
    left = r.elements.size() > 2 ? r.elements[2].integer : 0;
    return false;
  }

  /// Blocks until this daemon holds the lease: at once when it is free or already ours (a
  /// restart), else once the daemon holding it stops renewing it. Logs while it waits.
  void acquire() {
    auto said = std::chrono::steady_clock::time_point{};
    for (;;) {
      std::string holder_now;
      long long left = 0;
      if (try_acquire(holder_now, left)) return;
      const auto now = std::chrono::steady_clock::now();
      if (now - said > std::chrono::seconds(30)) {
        log::info("redis_standby", {{"keyspace", options.keyspace},
                                    {"held_by", holder_now},
                                    {"expires_in_ms", std::to_string(left)}});
        said = now;
      }
      const auto wait = std::clamp<std::chrono::milliseconds>(
          std::chrono::milliseconds(left > 0 ? left : 50), std::chrono::milliseconds(50),
          options.lease_ttl / 3);
      std::this_thread::sleep_for(wait);
    }
  }

  /// Checks the server keeps what it answers (see the header) and holds a stream at log_key.
  /// Under sync_mutex.
  void check_server() {
    const std::string server = "Redis at " + endpoint.text();
    // Durable means fsync'd: an answered XADD is on disk only with appendfsync always.
    std::string why;
    const std::string aof = config_value(run({"CONFIG", "GET", "appendonly"}), "appendonly", why);
    const std::string fsync =
        why.empty() ? config_value(run({"CONFIG", "GET", "appendfsync"}), "appendfsync", why)
                    : std::string();
    if (why.empty() && aof != "yes") {
      why = "appendonly is \"" + aof + "\" (it must be \"yes\")";
    } else if (why.empty() && fsync != "always") {
      why = "appendfsync is \"" + fsync + "\" (it must be \"always\")";
    }
    if (!why.empty()) {
      if (!options.allow_unsafe_fsync) {
        throw JournalError(server + " does not fsync every write: " + why +
                           ". An acknowledged event could be lost if Redis crashed. Set "
                           "appendonly yes and appendfsync always on the server, or (knowingly) "
                           "[store] allow_unsafe_fsync = true");
      }
      unsafe = server + " may lose acknowledged events: " + why;
      log::warn("redis_unsafe_fsync", {{"server", endpoint.text()}, {"why", why}});
    }
    // Streams' exclusive ranges and XAUTOCLAIM, which a takeover uses, came with Redis 6.2.
    const Reply info = run({"INFO", "server"});
    const auto at = info.text.find("redis_version:");
    if (info.kind == Reply::Kind::string && at != std::string::npos) {
      int major = 0, minor = 0;
      if (std::sscanf(info.text.c_str() + at, "redis_version:%d.%d", &major, &minor) == 2 &&
          (major < 6 || (major == 6 && minor < 2))) {
        throw JournalError(server + " runs Redis " + std::to_string(major) + "." +
                           std::to_string(minor) + ": visitd needs 6.2 or later");
      }
    }
    const Reply type = run({"TYPE", log_key});
    if (type.kind != Reply::Kind::status || (type.text != "none" && type.text != "stream")) {
      throw JournalError(server + ": " + log_key + " holds " + type.describe() + ", not a stream");
    }
  }

  /// This daemon has just taken the lease: learns where the stream ends and makes the append
  /// script continue from there. Under sync_mutex.
  void take_over() {
    const std::string server = "Redis at " + endpoint.text();
    const std::uint64_t top = stream_top();
    const std::uint64_t snap = snapshot_seq();
    if (snap > top) {
      // The stream lost its tail (a failover to a replica that lagged): continue after the
      // snapshot, and make the stream's last ID say so, or no append could follow it.
      log::warn("redis_stream_behind_snapshot",
                {{"stream_last", std::to_string(top)}, {"snapshot", std::to_string(snap)}});
      if (top > 0) {
        const Reply r = run({"XSETID", log_key, std::to_string(snap) + "-0"});
        if (r.is_error()) throw JournalError(server + ": XSETID answered " + r.describe());
      }
    }
    const std::uint64_t end = std::max(top, snap);
    {
      const std::lock_guard lock(mutex);
      last = end;
      durable.store(end);
    }
    // Where the append script continues from: this daemon holds the lease, so nothing else
    // writes the stream now.
    const Reply set = run({"SET", seq_key, std::to_string(end)});
    if (set.is_error()) throw JournalError(server + ": SET " + seq_key + ": " + set.text);
  }

  /// The longest a blocking read may wait: a stop, or the lease, is noticed within it.
  std::chrono::milliseconds longest_block() const {
    return std::max<std::chrono::milliseconds>(
        std::min<std::chrono::milliseconds>(options.lease_ttl / 3, options.command_timeout / 2),
        std::chrono::milliseconds(10));
  }

  /// Starts the append pipeline's thread: connection, watchdog, lease renewal.
  void start_pipeline() {
    thread = std::thread([this] { io.run(); });
    net::post(io, [this] {
      arm_watchdog();
      arm_lease();
      connect();
    });
  }

  // ---- forwarding ---------------------------------------------------------------------------

  void send(std::vector<std::string> command) {
    const std::lock_guard lock(send_mutex);
    if (send_stop) return;
    if (!sender.joinable()) sender = std::thread([this] { sender_loop(); });
    to_send.push_back(std::move(command));
    send_cv.notify_one();
  }

  void sender_loop() {
    redis::SyncConnection c(endpoint, options.command_timeout);
    std::unique_lock lock(send_mutex);
    for (;;) {
      send_cv.wait(lock, [&] { return send_stop || !to_send.empty(); });
      if (send_stop) return;  // what is left goes unsent: its requester times out, resends
      // Everything queued, pipelined: one round trip and one fsync for the lot.
      std::vector<std::vector<std::string>> batch(std::make_move_iterator(to_send.begin()),
                                                  std::make_move_iterator(to_send.end()));
      to_send.clear();
      lock.unlock();
      try {
        const std::vector<Reply> replies = c.pipeline(batch);
        for (std::size_t i = 0; i < replies.size(); ++i) {
          if (replies[i].is_error()) {
            log::warn("redis_forward", {{"command", batch[i][0]}, {"error", replies[i].text}});
          }
        }
      } catch (const std::exception& e) {
        log::warn("redis_forward",
                  {{"commands", std::to_string(batch.size())}, {"error", e.what()}});
      }
      lock.lock();
    }
  }

  /// The answers in an XREAD reply's entries for replies_key.
  void answers(const Reply& entries) {
    for (const Reply& entry : entries.elements) {
      if (entry.kind != Reply::Kind::array || entry.elements.size() != 2) continue;
      replies_cursor = entry.elements[0].text;
      const Reply& fields = entry.elements[1];
      std::function<void(std::optional<std::string>)> done;
      {
        const std::lock_guard lock(forward_mutex);
        const auto it = forwards.find(std::string(field(fields, "req")));
        if (it == forwards.end()) continue;  // timed out, or not ours
        done = std::move(it->second.done);
        forwards.erase(it);
      }
      done(std::string(field(fields, "a")));
    }
  }

  /// Tells every forwarded command still waiting that no answer will come (`all`), or only
  /// those past their time.
  void expire_forwards(bool all) {
    std::vector<std::function<void(std::optional<std::string>)>> expired;
    {
      const auto now = std::chrono::steady_clock::now();
      const std::lock_guard lock(forward_mutex);
      for (auto it = forwards.begin(); it != forwards.end();) {
        if (all || now > it->second.deadline) {
          expired.push_back(std::move(it->second.done));
          it = forwards.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& done : expired) done(std::nullopt);
  }

  /// An inbox entry answered (or dropped): acknowledged, then deleted, since a forwarded
  /// rota import may be megabytes that MAXLEN alone would keep for thousands of commands.
  void done_with(const std::string& id) {
    send({"XACK", inbox_key, "owners", id});
    send({"XDEL", inbox_key, id});
  }

  /// The owner's inbox reader (serve_forwarded): what standbys forward, answered through
  /// the sender, then XACKed.
  void serve_loop(const std::function<void(Forwarded)>& serve) {
    redis::SyncConnection c(endpoint, options.command_timeout);
    const auto block = longest_block();
    const std::string block_ms = std::to_string(block.count());
    bool ready = false;
    bool claimed = false;                             ///< a dead owner's entries taken over
    std::chrono::steady_clock::time_point claim_due;  ///< the next XAUTOCLAIM pass
    auto backoff = kBackoffFirst;
    // Redis' own clock: an entry's ID holds the time of its XADD, so the standby's and this
    // daemon's clocks need not agree.
    const auto redis_now_ms = [&]() -> std::int64_t {
      const Reply t = c.command({"TIME"});
      if (t.kind != Reply::Kind::array || t.elements.size() != 2) {
        throw JournalError("TIME answered " + t.describe());
      }
      return to_i64(t.elements[0].text).value_or(0) * 1000 +
             to_i64(t.elements[1].text).value_or(0) / 1000;
    };
    std::int64_t now_ms = 0;
    std::chrono::steady_clock::time_point read_at;  ///< when now_ms was Redis' time
    const auto handle = [&](const Reply& entry) {
      if (entry.kind != Reply::Kind::array || entry.elements.size() != 2) return;
      const std::string id = entry.elements[0].text;
      const Reply& fields = entry.elements[1];  // nil for an entry deleted since
      const std::string from(field(fields, "from"));
      const std::string req(field(fields, "req"));
      const std::int64_t timeout = to_i64(field(fields, "timeout")).value_or(0);
      const std::int64_t added_ms = to_i64(id.substr(0, id.find('-'))).value_or(0);
      // The sender's clock started before its XADD reached Redis (a large rota takes a
      // while to send), and the answer takes time to go back: a fifth of the timeout covers
      // both.
      const std::int64_t left_ms = added_ms + timeout - timeout / 5 - now_ms;
      if (from.empty() || req.empty() || left_ms <= 0) {
        // Malformed, or its sender has stopped waiting (and told its user to send again):
        // applying it now could undo what came after it.
        done_with(id);
        return;
      }
      serve(Forwarded{std::string(field(fields, "p")), read_at + std::chrono::milliseconds(left_ms),
                      [this, from, req, id](std::string answer) {
                        send({"XADD", replies_key_of(options.keyspace, from), "MAXLEN", "~", "1000",
                              "*", "req", req, "a", std::move(answer)});
                        done_with(id);
                      }});
    };
    while (!stop_following.load()) {
      try {
        if (!ready) {
          const Reply g = c.command({"XGROUP", "CREATE", inbox_key, "owners", "0", "MKSTREAM"});
          if (g.is_error() && !g.text.starts_with("BUSYGROUP")) {
            throw JournalError(inbox_key + ": XGROUP CREATE answered " + g.describe());
          }
          ready = true;
        }
        if (std::chrono::steady_clock::now() >= claim_due) {
          // First, what an earlier owner read and never answered (it died): this one answers
          // it. Then, now and again, what this owner read but never got (a reply lost with
          // its connection): only entries idle for twice the forward timeout, long past
          // their time (dropped), never one still in hand.
          const std::string min_idle =
              claimed ? std::to_string(2 * options.forward_timeout.count()) : "0";
          now_ms = redis_now_ms();
          read_at = std::chrono::steady_clock::now();
          for (std::string next = "0-0"; !stop_following.load();) {
            const Reply r = c.command({"XAUTOCLAIM", inbox_key, "owners", options.daemon_id,
                                       min_idle, next, "COUNT", "100"});
            if (r.kind != Reply::Kind::array || r.elements.size() < 2) {
              throw JournalError(inbox_key + ": XAUTOCLAIM answered " + r.describe());
            }
            next = r.elements[0].text;
            for (const Reply& entry : r.elements[1].elements) handle(entry);
            if (next == "0-0") break;
          }
          claimed = true;
          claim_due = std::chrono::steady_clock::now() + 2 * options.forward_timeout;
        }
        const Reply r = c.command({"XREADGROUP", "GROUP", "owners", options.daemon_id, "COUNT",
                                   "100", "BLOCK", block_ms, "STREAMS", inbox_key, ">"});
        if (r.kind == Reply::Kind::array) {
          now_ms = redis_now_ms();
          read_at = std::chrono::steady_clock::now();
          for (const Reply& stream : r.elements) {
            if (stream.kind == Reply::Kind::array && stream.elements.size() == 2) {
              for (const Reply& entry : stream.elements[1].elements) handle(entry);
            }
          }
        } else if (r.kind != Reply::Kind::nil) {
          throw JournalError(inbox_key + ": XREADGROUP answered " + r.describe());
        }
        backoff = kBackoffFirst;
      } catch (const std::exception& e) {
        log::warn("redis_inbox", {{"keyspace", options.keyspace}, {"error", e.what()}});
        ready = false;
        std::this_thread::sleep_for(backoff);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
      }
    }
  }

  /// What a standby's follow() keeps between reads.
  struct Follower {
    Follower(const redis::Endpoint& endpoint, std::chrono::milliseconds timeout)
        : reader(endpoint, timeout) {}
    std::uint64_t cursor = 0;  ///< the last record handed on
    std::function<void(const Record&)> on_record;
    std::function<void()> on_promoted;
    redis::SyncConnection reader;  ///< its own: XREAD BLOCK must not hold sync_mutex
    bool told = false;
    std::chrono::steady_clock::time_point reported{};  ///< when followers_key was last set
  };

  /// One turn of a standby: tries for the lease, then hands on what the owner wrote (waiting
  /// up to a third of the lease for it when `wait`); once the lease is held, reads the stream
  /// to its end, becomes the owner and returns true. Throws JournalError.
  bool follow_step(Follower& f, bool wait) {
    std::string holder_now;
    long long left = 0;
    bool held = false;
    {
      const std::lock_guard lock(sync_mutex);
      held = try_acquire(holder_now, left);
    }
    if (!held) {
      const std::lock_guard lock(mutex);
      holder = holder_now;
    }
    if (!held && !f.told) {
      log::info("redis_standby", {{"keyspace", options.keyspace},
                                  {"held_by", holder_now},
                                  {"following_from", std::to_string(f.cursor)}});
      f.told = true;
    }
    // Back for the lease as it expires: a takeover waits for the lease, not for a read.
    const auto longest = longest_block();
    const auto block = std::clamp<std::chrono::milliseconds>(
        std::chrono::milliseconds(left + 5), std::chrono::milliseconds(10), longest);
    const std::string block_ms = std::to_string(block.count());
    const std::string count = std::to_string(kReplayBatch);
    // What the owner wrote; once this daemon holds the lease, all of it to the end (the old
    // owner is fenced: nothing more can follow).
    for (;;) {
      const std::string from = std::to_string(f.cursor) + "-0";
      Reply r;
      if (held) {
        r = f.reader.command({"XRANGE", log_key, "(" + from, "+", "COUNT", count});
      } else if (wait) {
        r = f.reader.command({"XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", log_key,
                              replies_key, from, replies_cursor});
      } else {
        r = f.reader.command(
            {"XREAD", "COUNT", count, "STREAMS", log_key, replies_key, from, replies_cursor});
      }
      const Reply* entries = nullptr;
      const Reply* replies = nullptr;
      if (r.kind == Reply::Kind::array && held) {
        entries = &r;
      } else if (r.kind == Reply::Kind::array) {
        for (const Reply& stream : r.elements) {
          if (stream.kind != Reply::Kind::array || stream.elements.size() != 2) continue;
          if (stream.elements[0].text == log_key) entries = &stream.elements[1];
          if (stream.elements[0].text == replies_key) replies = &stream.elements[1];
        }
      } else if (r.kind != Reply::Kind::nil) {
        throw JournalError(log_key + ": " + std::string(held ? "XRANGE" : "XREAD") + " answered " +
                           r.describe());
      }
      const std::size_t got = entries != nullptr ? entries->elements.size() : 0;
      for (std::size_t i = 0; i < got; ++i) {
        const Record record = parse_entry(entries->elements[i], log_key);
        f.on_record(record);
        f.cursor = record.seq;
        // durable first: never a moment when last is ahead of it (a standby appends nothing).
        durable.store(std::max(durable.load(), f.cursor));
        {
          const std::lock_guard lock(mutex);
          last = std::max(last, f.cursor);
        }
      }
      // Answers after the records they speak of: the replica has what the answer describes.
      if (replies != nullptr) answers(*replies);
      if (!held || got < kReplayBatch) break;
    }
    if (!held) expire_forwards(/*all=*/false);
    const std::lock_guard lock(sync_mutex);
    if (!held) {
      // Where this standby is, for `visitd status` (its lag behind the owner); once a second
      // at most, as each write costs the server an fsync.
      if (std::chrono::steady_clock::now() - f.reported < std::chrono::seconds(1)) return false;
      f.reported = std::chrono::steady_clock::now();
      const auto ms = unix_ms();
      run({"HSET", followers_key, options.daemon_id,
           std::to_string(f.cursor) + " " + std::to_string(ms)});
      return false;
    }
    run({"HDEL", followers_key, options.daemon_id});
    take_over();
    standby.store(false);
    expire_forwards(/*all=*/true);  // an owner has no one to answer them any more
    start_pipeline();
    log::info("redis_promoted",
              {{"keyspace", options.keyspace}, {"last_seq", std::to_string(f.cursor)}});
    f.on_promoted();
    return true;
  }

  /// The standby's thread: follow_step until promoted or stopped; errors (the server gone)
  /// are logged and retried with backoff.
  void follow_loop(Follower& f) {
    auto backoff = kBackoffFirst;
    while (!stop_following.load()) {
      try {
        if (follow_step(f, /*wait=*/true)) return;
        backoff = kBackoffFirst;
      } catch (const std::exception& e) {
        log::warn("redis_follow", {{"keyspace", options.keyspace}, {"error", e.what()}});
        expire_forwards(/*all=*/false);  // the server gone: no answer is coming either
        std::this_thread::sleep_for(backoff);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
      }
    }
  }

  std::uint64_t snapshot_seq() const {
    const Reply r = run({"HGET", snapshot_key, "seq"});
    if (r.kind == Reply::Kind::nil) return 0;
    const auto seq = r.kind == Reply::Kind::string ? to_u64(r.text) : std::nullopt;
    if (!seq) throw JournalError(snapshot_key + ": HGET seq answered " + r.describe());
    return *seq;
  }
};

std::unique_ptr<RedisLog> RedisLog::connect(RedisOptions options) {
  auto endpoint = redis::parse_url(options.url);
  std::unique_ptr<RedisLog> log(new RedisLog());
  log->state_ = std::make_unique<State>(std::move(options), std::move(endpoint));
  const std::lock_guard lock(log->state_->sync_mutex);
  log->state_->check_server();
  return log;
}

std::unique_ptr<RedisLog> RedisLog::open(RedisOptions options) {
  auto log = connect(std::move(options));
  State& s = *log->state_;
  {
    const std::lock_guard lock(s.sync_mutex);
    s.acquire();
    s.take_over();
  }
  s.start_pipeline();
  return log;
}

std::unique_ptr<RedisLog> RedisLog::open_standby(RedisOptions options) {
  auto log = connect(std::move(options));
  State& s = *log->state_;
  const std::lock_guard lock(s.sync_mutex);
  // Replay (recovery) reads to here; follow() goes on from where recovery ended.
  s.last = s.stream_top();
  s.durable.store(s.last);
  s.standby.store(true);
  s.holder = "another daemon";
  return log;
}

void RedisLog::follow(std::uint64_t after, std::function<void(const Record&)> on_record,
                      std::function<void()> on_promoted) {
  State& s = *state_;
  if (!s.standby.load() || s.follower.joinable() || s.following) {
    throw std::logic_error("RedisLog::follow: only a standby follows, once");
  }
  s.following = std::make_unique<State::Follower>(s.endpoint, s.options.command_timeout);
  State::Follower& f = *s.following;
  f.cursor = after;
  f.on_record = std::move(on_record);
  f.on_promoted = std::move(on_promoted);
  try {
    // Answers from now on: earlier ones were to an earlier run of this daemon.
    const Reply last = f.reader.command({"XREVRANGE", s.replies_key, "+", "-", "COUNT", "1"});
    if (last.kind == Reply::Kind::array && !last.elements.empty() &&
        last.elements[0].kind == Reply::Kind::array && !last.elements[0].elements.empty()) {
      s.replies_cursor = last.elements[0].elements[0].text;
    }
  } catch (const std::exception& e) {
    log::warn("redis_follow", {{"keyspace", s.options.keyspace}, {"error", e.what()}});
  }
  // The first turn here, without waiting: a daemon that finds the lease free is the owner
  // before it takes its first command, not a moment after.
  try {
    if (s.follow_step(f, /*wait=*/false)) return;
  } catch (const std::exception& e) {
    log::warn("redis_follow", {{"keyspace", s.options.keyspace}, {"error", e.what()}});
  }
  s.follower = std::thread([&s, &f] { s.follow_loop(f); });
}

void RedisLog::stop_following() {
  State& s = *state_;
  s.stop_following.store(true);
  if (s.follower.joinable()) s.follower.join();
  s.following.reset();  // its callbacks hold what the caller is about to destroy
  if (s.inbox_reader.joinable()) s.inbox_reader.join();
  {
    const std::lock_guard lock(s.send_mutex);
    s.send_stop = true;
    s.send_cv.notify_all();
  }
  if (s.sender.joinable()) s.sender.join();
  const std::lock_guard lock(s.forward_mutex);
  s.forwards.clear();  // stopping: nobody is waiting any more
}

void RedisLog::forward(std::string payload,
                       std::function<void(std::optional<std::string> answer)> done) {
  State& s = *state_;
  std::string req;
  {
    // Checked under the lock that promotion expires every waiting forward under, after
    // clearing `standby`: none can slip in after it and wait for ever.
    std::unique_lock lock(s.forward_mutex);
    if (!s.standby.load() || s.stop_following.load()) {
      lock.unlock();
      done(std::nullopt);  // the owner itself, or stopping: nobody to forward to
      return;
    }
    req = s.request_prefix + ":" + std::to_string(++s.next_request);
    s.forwards[req] = {std::move(done),
                       std::chrono::steady_clock::now() + s.options.forward_timeout};
  }
  s.send({"XADD", s.inbox_key, "MAXLEN", "~", "10000", "*", "from", s.options.daemon_id, "req",
          std::move(req), "timeout", std::to_string(s.options.forward_timeout.count()), "p",
          std::move(payload)});
}

void RedisLog::serve_forwarded(std::function<void(Forwarded forwarded)> serve) {
  State& s = *state_;
  if (s.inbox_reader.joinable()) return;
  s.inbox_reader = std::thread([&s, serve = std::move(serve)] { s.serve_loop(serve); });
}

std::string RedisLog::standby() const {
  if (!state_->standby.load()) return {};
  const std::lock_guard lock(state_->mutex);
  return state_->holder;
}

RedisLog::~RedisLog() {
  if (!state_) return;
  State& s = *state_;
  stop_following();
  if (!s.thread.joinable()) return;  // refused at open(), or a standby that never took over
  flush();
  net::post(s.io, [&s] {
    s.stopping = true;
    s.retry_timer.cancel();
    s.watchdog.cancel();
    s.lease_timer.cancel();
    s.connection.reset();
  });
  s.work.reset();
  s.thread.join();
  // What never became durable: nobody was (or will be) acknowledged for it.
  std::deque<State::Entry> left;
  {
    const std::lock_guard lock(s.mutex);
    left.swap(s.queue);
  }
  for (auto& e : left) {
    if (e.done) e.done(0, std::make_error_code(std::errc::host_unreachable));
  }
}

std::uint64_t RedisLog::append(RecordType type, std::uint8_t version, TimePoint time,
                               std::string_view payload, Durable on_durable) {
  State& s = *state_;
  std::uint64_t seq = 0;
  {
    std::unique_lock lock(s.mutex);
    if (s.failed.load() || s.standby.load()) {
      lock.unlock();
      if (on_durable) on_durable(0, std::make_error_code(std::errc::operation_not_permitted));
      return 0;
    }
    seq = ++s.last;
    s.queue.push_back({seq, std::to_string(static_cast<unsigned>(type)),
                       std::to_string(static_cast<unsigned>(version)),
                       std::to_string(time.time_since_epoch().count()), std::to_string(seq),
                       std::string(payload), std::move(on_durable)});
  }
  if (!s.pump_posted.exchange(true)) net::post(s.io, [&s] { s.pump(); });
  return seq;
}

std::uint64_t RedisLog::last_seq() const {
  const std::lock_guard lock(state_->mutex);
  return state_->last;
}

std::uint64_t RedisLog::durable_seq() const { return state_->durable.load(); }

std::string RedisLog::unavailable() const {
  if (!state_->in_outage.load()) return {};
  const std::lock_guard lock(state_->mutex);
  return state_->outage;
}

std::string RedisLog::unsafe() const { return state_->unsafe; }

bool RedisLog::failed() const { return state_->failed.load(); }

std::error_code RedisLog::failure() const {
  return failed() ? std::make_error_code(std::errc::operation_not_permitted) : std::error_code();
}

std::string RedisLog::failure_text() const {
  const std::lock_guard lock(state_->mutex);
  return state_->failure_text + ": this daemon accepts no event; restart it to stand by";
}

void RedisLog::flush() {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  const std::uint64_t target = s.last;
  s.durable_cv.wait_for(lock, s.options.flush_timeout,
                        [&] { return s.durable.load() >= target || s.failed.load(); });
}

void RedisLog::replay(std::uint64_t from, const std::function<void(const Record&)>& visit) const {
  const State& s = *state_;
  const std::uint64_t until = s.durable.load();
  const std::lock_guard lock(s.sync_mutex);
  std::uint64_t cursor = std::max<std::uint64_t>(from, 1);
  const std::string count = std::to_string(kReplayBatch);
  while (cursor <= until) {
    const std::string start = std::to_string(cursor) + "-0";
    const std::string end = std::to_string(until) + "-0";
    const Reply r = s.run({"XRANGE", s.log_key, start, end, "COUNT", count});
    if (r.kind != Reply::Kind::array) {
      throw JournalError(s.log_key + ": XRANGE answered " + r.describe());
    }
    for (const Reply& entry : r.elements) {
      const Record record = parse_entry(entry, s.log_key);
      if (record.seq < cursor) throw JournalError(s.log_key + ": entries out of order");
      cursor = record.seq + 1;
      visit(record);
    }
    if (r.elements.size() < kReplayBatch) break;
  }
}

void RedisLog::write_snapshot(std::uint64_t seq, std::string_view bytes) {
  State& s = *state_;
  if (seq > s.durable.load()) {
    throw JournalError("snapshot at seq " + std::to_string(seq) + ": not durable yet (durable " +
                       std::to_string(s.durable.load()) + ")");
  }
  const std::string seq_text = std::to_string(seq);
  const std::string crc = std::to_string(crc32c(bytes));
  const std::lock_guard lock(s.sync_mutex);
  const Reply r = s.run({"HSET", s.snapshot_key, "seq", seq_text, "crc", crc, "bytes", bytes});
  if (r.kind != Reply::Kind::integer) {
    throw JournalError(s.snapshot_key + ": HSET answered " + r.describe());
  }
}

std::optional<Log::Snapshot> RedisLog::latest_snapshot() const {
  const State& s = *state_;
  const std::lock_guard lock(s.sync_mutex);
  const Reply r = s.run({"HMGET", s.snapshot_key, "seq", "crc", "bytes"});
  if (r.kind != Reply::Kind::array || r.elements.size() != 3) {
    throw JournalError(s.snapshot_key + ": HMGET answered " + r.describe());
  }
  const auto& e = r.elements;
  if (e[0].kind == Reply::Kind::nil && e[1].kind == Reply::Kind::nil &&
      e[2].kind == Reply::Kind::nil) {
    return std::nullopt;
  }
  const auto seq = e[0].kind == Reply::Kind::string ? to_u64(e[0].text) : std::nullopt;
  const auto crc = e[1].kind == Reply::Kind::string ? to_u64(e[1].text) : std::nullopt;
  if (!seq || !crc || e[2].kind != Reply::Kind::string) {
    throw JournalError(s.snapshot_key + " is malformed (fields seq, crc, bytes)");
  }
  if (crc32c(e[2].text) != *crc) {
    throw JournalError(s.snapshot_key + " (seq " + e[0].text +
                       ") fails its checksum: the snapshot is damaged");
  }
  return Snapshot{*seq, e[2].text};
}

std::uint64_t RedisLog::compact(TimePoint drop_locations_before) {
  State& s = *state_;
  const std::lock_guard lock(s.sync_mutex);
  const std::uint64_t covered = s.snapshot_seq();
  const std::int64_t before = drop_locations_before.time_since_epoch().count();
  std::uint64_t dropped = 0;
  std::uint64_t cursor = s.compacted_through + 1;
  while (cursor <= covered) {
    const Reply r = s.run({"XRANGE", s.log_key, std::to_string(cursor) + "-0",
                           std::to_string(covered) + "-0", "COUNT", std::to_string(kReplayBatch)});
    if (r.kind != Reply::Kind::array) {
      throw JournalError(s.log_key + ": XRANGE answered " + r.describe());
    }
    std::vector<std::string> ids;
    bool newer = false;  // a location fix still within its retention: later ones are too
    for (const Reply& entry : r.elements) {
      const Record record = parse_entry(entry, s.log_key);
      cursor = record.seq + 1;
      if (record.type != RecordType::location) {
        s.compacted_through = record.seq;
        continue;
      }
      if (record.time.time_since_epoch().count() >= before) {
        newer = true;
        break;
      }
      ids.push_back(entry.elements[0].text);
      s.compacted_through = record.seq;
    }
    if (!ids.empty()) {
      std::vector<std::string_view> args{"XDEL", s.log_key};
      args.insert(args.end(), ids.begin(), ids.end());
      const Reply d = s.run(args);
      if (d.kind != Reply::Kind::integer) {
        throw JournalError(s.log_key + ": XDEL answered " + d.describe());
      }
      dropped += static_cast<std::uint64_t>(d.integer);
    }
    if (newer || r.elements.size() < kReplayBatch) break;
  }
  return dropped;
}

std::string redis_status(const RedisOptions& options) {
  const redis::Endpoint endpoint = redis::parse_url(options.url);
  redis::SyncConnection c(endpoint, options.command_timeout);
  const std::string k = "visitd:{" + options.keyspace + "}:";
  const auto text = [&](const Reply& r) { return r.kind == Reply::Kind::string ? r.text : ""; };
  const Reply holder = c.command({"GET", k + "lease"});
  const Reply ttl = c.command({"PTTL", k + "lease"});
  const Reply epoch = c.command({"GET", k + "epoch"});
  const Reply length = c.command({"XLEN", k + "log"});
  const Reply last = c.command({"XREVRANGE", k + "log", "+", "-", "COUNT", "1"});
  const Reply snap = c.command({"HGET", k + "snapshot", "seq"});
  for (const Reply* r : {&holder, &ttl, &epoch, &length, &last, &snap}) {
    if (r->is_error()) throw JournalError("Redis at " + endpoint.text() + ": " + r->describe());
  }
  std::string out = "keyspace  " + options.keyspace + " on Redis at " + endpoint.text() + "\n";
  if (holder.kind == Reply::Kind::string) {
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", double(ttl.integer) / 1000);
    out += "owner     " + holder.text + " (epoch " + text(epoch) + "), lease expires in " +
           seconds + " s unless renewed\n";
  } else {
    out += "owner     none: the lease is free (epoch " +
           (epoch.kind == Reply::Kind::string ? epoch.text : std::string("none")) +
           "); the next daemon to start takes it\n";
  }
  std::uint64_t last_seq = 0;
  if (last.kind == Reply::Kind::array && !last.elements.empty()) {
    last_seq = entry_seq(last.elements[0], k + "log");
  }
  // Standbys say where they are at each read; one silent for three leases is gone.
  const Reply followers = c.command({"HGETALL", k + "followers"});
  if (followers.kind == Reply::Kind::array) {
    const auto now_ms = unix_ms();
    for (std::size_t i = 0; i + 1 < followers.elements.size(); i += 2) {
      const std::string& id = followers.elements[i].text;
      const std::string& value = followers.elements[i + 1].text;
      const auto space = value.find(' ');
      const auto seq = to_u64(value.substr(0, space));
      const auto at = space == std::string::npos ? std::nullopt : to_i64(value.substr(space + 1));
      if (!seq || !at) continue;
      const double ago = double(now_ms - *at) / 1000;
      if (ago > 3 * double(options.lease_ttl.count()) / 1000) continue;
      char seen[32];
      std::snprintf(seen, sizeof seen, "%.1f", ago);
      out += "standby   " + id + " follows: read to seq " + std::to_string(*seq) + ", " +
             std::to_string(last_seq > *seq ? last_seq - *seq : 0) + " records behind, " + seen +
             " s ago\n";
    }
  }
  out += "stream    " + k + "log: " + std::to_string(length.integer) + " entries, last seq " +
         std::to_string(last_seq) + "\n";
  if (snap.kind == Reply::Kind::string) {
    const auto covered = to_u64(snap.text).value_or(0);
    out += "snapshot  covers seq " + snap.text + "; a daemon starting replays " +
           std::to_string(last_seq > covered ? last_seq - covered : 0) + " records after it\n";
  } else {
    out += "snapshot  none yet; a daemon starting replays the whole stream\n";
  }
  return out;
}

const std::string& RedisLog::stream_key() const { return state_->log_key; }

std::uint64_t RedisLog::connections() const { return state_->connections.load(); }

}  // namespace visitd::store
