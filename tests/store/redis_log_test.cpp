// The Redis store against a real redis-server (started per test on a free port, AOF with
// appendfsync always): what it refuses, what it keeps, and that nothing it called durable is
// lost when the server is killed under load and comes back.

#include "visitd/store/redis_log.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "../support/redis_server.hpp"
#include "visitd/store/crc32c.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::store;

namespace {

TimePoint at_ms(std::int64_t ms) { return TimePoint(Duration(ms)); }

RedisOptions options(const test::RedisServer& redis, std::string daemon_id = "visitd") {
  RedisOptions o;
  o.url = redis.url();
  o.daemon_id = std::move(daemon_id);
  o.command_timeout = 1000ms;
  return o;
}

// Everything about a record follows from its seq, so that a reader can check it.
std::string payload_for(std::uint64_t seq) {
  std::string p = "record " + std::to_string(seq) + " ";
  // Bytes Redis' protocol must carry untouched: NUL, CR LF, high bytes.
  for (std::uint64_t i = 0; i < seq % 40; ++i) p += static_cast<char>((seq * 31 + i * 7) % 256);
  p += "\r\n";
  p += '\0';
  return p;
}
RecordType type_for(std::uint64_t seq) {
  return seq % 3 == 0 ? RecordType::location : RecordType::command;
}

/// Waits until `pred` holds, up to `limit`.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::vector<Record> read_all(const Log& log) {
  std::vector<Record> out;
  log.replay(1, [&](const Record& r) { out.push_back(r); });
  return out;
}

}  // namespace

TEST_CASE("Redis: a server that does not fsync every write is refused unless allowed") {
  test::RedisServer redis({"--appendfsync", "everysec"});
  auto o = options(redis);
  try {
    RedisLog::open(o);
    FAIL("opened a server with appendfsync everysec");
  } catch (const JournalError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("appendfsync is \"everysec\""));
    CHECK_THAT(what, Catch::Contains("allow_unsafe_fsync"));
  }
  o.allow_unsafe_fsync = true;
  const auto log = RedisLog::open(o);
  CHECK_THAT(log->unsafe(), Catch::Contains("may lose acknowledged events"));

  test::RedisServer no_aof({"--appendonly", "no"});
  try {
    RedisLog::open(options(no_aof));
    FAIL("opened a server without appendonly");
  } catch (const JournalError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("appendonly is \"no\""));
  }
}

TEST_CASE("Redis: an unreachable server, a bad URL and a key of the wrong type stop start-up") {
  RedisOptions o;
  o.command_timeout = 500ms;
  o.url = "redis://127.0.0.1:1";
  CHECK_THROWS_WITH(RedisLog::open(o), Catch::Contains("cannot reach Redis at 127.0.0.1:1/0"));
  o.url = "redis://127.0.0.1:port";
  CHECK_THROWS_WITH(RedisLog::open(o), Catch::Contains("the port must be 1-65535"));
  o.url = "redis:///3";
  CHECK_THROWS_WITH(RedisLog::open(o), Catch::Contains("no host"));

  test::RedisServer redis;
  REQUIRE(redis.command("SET visitd:{agency}:log oops") == "+OK\r\n");
  CHECK_THROWS_WITH(RedisLog::open(options(redis)), Catch::Contains("not a stream"));
}

TEST_CASE("Redis: a password and a database number in the URL are used, a wrong one is refused") {
  test::RedisServer redis({"--requirepass", "s3cret"});
  auto o = options(redis);
  o.url = "redis://:wrong@127.0.0.1:" + std::to_string(redis.port()) + "/3";
  CHECK_THROWS_WITH(RedisLog::open(o), Catch::Contains("refused AUTH"));
  o.url = "redis://:s3cret@127.0.0.1:" + std::to_string(redis.port()) + "/3";
  {
    const auto log = RedisLog::open(o);
    log->append(RecordType::command, 1, at_ms(1), "in db 3", {});
    log->flush();
    CHECK(log->durable_seq() == 1);
    CHECK(read_all(*log).at(0).payload == "in db 3");
  }
  // The records went to database 3, not 0.
  const std::string auth = "AUTH s3cret\r\n";
  CHECK(redis.command(auth + "SELECT 3\r\nXLEN visitd:{agency}:log").find(":1\r\n") !=
        std::string::npos);
  CHECK(redis.command(auth + "XLEN visitd:{agency}:log").find(":0\r\n") != std::string::npos);
}

TEST_CASE("Redis: records come back exactly as appended, and a restart continues the sequence") {
  test::RedisServer redis;
  std::vector<std::uint64_t> durable;
  std::mutex mu;
  {
    const auto log = RedisLog::open(options(redis));
    CHECK(log->last_seq() == 0);
    CHECK(log->unavailable().empty());
    CHECK(log->unsafe().empty());
    for (std::uint64_t i = 1; i <= 200; ++i) {
      const auto seq = log->append(type_for(i), static_cast<std::uint8_t>(1 + i % 3),
                                   at_ms(1'790'000'000'000 + std::int64_t(i)), payload_for(i),
                                   [&](std::uint64_t s, std::error_code ec) {
                                     const std::lock_guard lock(mu);
                                     durable.push_back(ec ? 0 : s);
                                   });
      REQUIRE(seq == i);
    }
    log->flush();
    CHECK(log->durable_seq() == 200);
  }
  // Reported once each, in order.
  REQUIRE(durable.size() == 200);
  for (std::size_t i = 0; i < durable.size(); ++i) REQUIRE(durable[i] == i + 1);

  redis.kill9();  // and the server itself restarts from its AOF
  redis.start();
  const auto log = RedisLog::open(options(redis));
  CHECK(log->last_seq() == 200);
  const auto records = read_all(*log);
  REQUIRE(records.size() == 200);
  for (const Record& r : records) {
    REQUIRE(r.type == type_for(r.seq));
    REQUIRE(r.version == 1 + r.seq % 3);
    REQUIRE(r.time == at_ms(1'790'000'000'000 + std::int64_t(r.seq)));
    REQUIRE(r.payload == payload_for(r.seq));
  }
  std::vector<Record> tail;
  log->replay(190, [&](const Record& r) { tail.push_back(r); });
  REQUIRE(tail.size() == 11);
  CHECK(tail.front().seq == 190);
  CHECK(log->append(RecordType::command, 1, at_ms(0), "next", {}) == 201);
  log->flush();
  CHECK(log->durable_seq() == 201);
}

TEST_CASE("Redis: snapshots are kept with the seq they cover, a damaged one is refused") {
  test::RedisServer redis;
  const auto log = RedisLog::open(options(redis));
  CHECK_FALSE(log->latest_snapshot());
  for (int i = 0; i < 5; ++i) log->append(RecordType::command, 1, at_ms(i), "c", {});
  CHECK_THROWS_WITH(log->write_snapshot(6, "too far"), Catch::Contains("not durable yet"));
  log->flush();
  const std::string bytes = std::string("snap\0shot\r\n", 11) + std::string(100'000, 'x');
  log->write_snapshot(5, bytes);
  const auto snap = log->latest_snapshot();
  REQUIRE(snap);
  CHECK(snap->seq == 5);
  CHECK(snap->bytes == bytes);

  REQUIRE(redis.command("HSET visitd:{agency}:snapshot crc 12345") == ":0\r\n");
  CHECK_THROWS_WITH(log->latest_snapshot(), Catch::Contains("fails its checksum"));
}

TEST_CASE("Redis: compaction drops only location fixes older than the retention and covered") {
  test::RedisServer redis;
  const auto log = RedisLog::open(options(redis));
  // seq 1..30 at minute i; every third a location fix.
  for (std::uint64_t i = 1; i <= 30; ++i) {
    log->append(type_for(i), 1, at_ms(std::int64_t(i) * 60'000), payload_for(i), {});
  }
  log->flush();
  log->write_snapshot(24, "state at 24");
  // Fixes before minute 20 go (3, 6, ..., 18: six of them); 21 and 24 are within the
  // retention, 27 and 30 are not covered by the snapshot.
  CHECK(log->compact(at_ms(20 * 60'000)) == 6);
  std::set<std::uint64_t> seqs;
  for (const Record& r : read_all(*log)) seqs.insert(r.seq);
  CHECK(seqs.size() == 24);
  for (std::uint64_t gone : {3, 6, 9, 12, 15, 18}) CHECK(seqs.count(gone) == 0);
  for (std::uint64_t kept : {1, 2, 4, 20, 21, 24, 27, 30}) CHECK(seqs.count(kept) == 1);
  // Later, with a later snapshot and cut-off, the rest follow; nothing is dropped twice.
  log->write_snapshot(30, "state at 30");
  CHECK(log->compact(at_ms(31 * 60'000)) == 4);
  CHECK(read_all(*log).size() == 20);
}

TEST_CASE(
    "Redis: while the server refuses writes nothing is durable, then all of it is, in order") {
  test::RedisServer redis;
  auto o = options(redis);
  o.command_timeout = 300ms;
  const auto log = RedisLog::open(o);
  for (int i = 1; i <= 5; ++i) log->append(type_for(i), 1, at_ms(i), payload_for(i), {});
  log->flush();
  REQUIRE(log->durable_seq() == 5);

  // No replica can take the writes: every append is refused with NOREPLICAS.
  REQUIRE(redis.command("CONFIG SET min-replicas-to-write 1") == "+OK\r\n");
  for (int i = 6; i <= 20; ++i) log->append(type_for(i), 1, at_ms(i), payload_for(i), {});
  REQUIRE(eventually([&] { return !log->unavailable().empty(); }));
  CHECK_THAT(log->unavailable(), Catch::Contains("NOREPLICAS"));
  std::this_thread::sleep_for(300ms);
  CHECK(log->durable_seq() == 5);

  REQUIRE(redis.command("CONFIG SET min-replicas-to-write 0") == "+OK\r\n");
  REQUIRE(eventually([&] { return log->durable_seq() == 20; }));
  CHECK(log->unavailable().empty());
  const auto records = read_all(*log);
  REQUIRE(records.size() == 20);
  for (std::size_t i = 0; i < records.size(); ++i) {
    CHECK(records[i].seq == i + 1);
    CHECK(records[i].payload == payload_for(i + 1));
  }
}

TEST_CASE("Redis: killed and restarted under load, nothing reported durable is lost") {
  std::uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("VISITD_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::fprintf(stderr, "redis outage test: seed %llu\n", static_cast<unsigned long long>(seed));
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);

  test::RedisServer redis;
  auto o = options(redis);
  o.command_timeout = 300ms;
  const auto log = RedisLog::open(o);

  std::mutex mu;
  std::vector<std::uint64_t> reported;  // in the order the callbacks came
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> appended{0};
  std::atomic<bool> wrong_seq{false};
  std::thread writer([&] {
    while (!stop.load()) {
      // At most 64 records waiting, like phones that wait for their acks.
      if (appended.load() - log->durable_seq() >= 64) {
        std::this_thread::sleep_for(1ms);
        continue;
      }
      const std::uint64_t next = appended.load() + 1;
      const auto seq = log->append(type_for(next), 1, at_ms(std::int64_t(next)), payload_for(next),
                                   [&](std::uint64_t s, std::error_code ec) {
                                     if (ec) return;
                                     const std::lock_guard lock(mu);
                                     reported.push_back(s);
                                   });
      if (seq != next) wrong_seq.store(true);
      appended.store(next);
    }
  });

  int outages_seen = 0;
  for (int kill = 0; kill < 5; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 200));
    redis.kill9();
    // Nothing can become durable now, and the store says why.
    if (eventually([&] { return !log->unavailable().empty(); }, 5s)) ++outages_seen;
    const std::uint64_t stuck = log->durable_seq();
    std::this_thread::sleep_for(100ms);
    CHECK(log->durable_seq() == stuck);
    redis.start();
    REQUIRE(eventually([&] { return log->unavailable().empty(); }));
    REQUIRE(eventually([&] { return log->durable_seq() > stuck; }));
  }
  stop.store(true);
  writer.join();
  REQUIRE_FALSE(wrong_seq.load());
  log->flush();
  REQUIRE(log->durable_seq() == appended.load());
  CHECK(outages_seen == 5);
  CHECK(log->connections() >= 6);

  // Every seq reported durable exactly once and in order; the stream holds 1..N, each intact.
  // (durable_seq() moves just before the callbacks run, on the store's thread.)
  CHECK(eventually([&] {
    const std::lock_guard lock(mu);
    return reported.size() == appended.load();
  }));
  {
    const std::lock_guard lock(mu);
    REQUIRE(reported.size() == appended.load());
    for (std::size_t i = 0; i < reported.size(); ++i) REQUIRE(reported[i] == i + 1);
  }
  redis.kill9();
  redis.start();
  const auto reopened = RedisLog::open(options(redis));
  const auto records = read_all(*reopened);
  REQUIRE(records.size() == appended.load());
  for (std::size_t i = 0; i < records.size(); ++i) {
    REQUIRE(records[i].seq == i + 1);
    REQUIRE(records[i].payload == payload_for(i + 1));
  }
  std::fprintf(stderr, "redis outage test: %llu records through 5 kills\n",
               static_cast<unsigned long long>(appended.load()));
}

TEST_CASE(
    "Redis: a standby follows every record the owner writes, writes nothing, and takes over "
    "once the owner's lease lapses") {
  test::RedisServer redis;
  auto owner_options = options(redis, "owner");
  owner_options.lease_ttl = 600ms;
  auto owner = RedisLog::open(owner_options);
  for (std::uint64_t i = 1; i <= 30; ++i) {
    owner->append(type_for(i), 1, at_ms(std::int64_t(i)), payload_for(i), {});
  }
  owner->flush();

  auto standby_options = options(redis, "standby");
  standby_options.lease_ttl = 600ms;
  const auto standby = RedisLog::open_standby(standby_options);
  CHECK(standby->last_seq() == 30);  // what a recovery replays
  std::mutex mu;
  std::vector<Record> followed;
  std::atomic<bool> promoted{false};
  // It goes on from record 10, as if its snapshot covered 1-10.
  standby->follow(
      10,
      [&](const Record& r) {
        const std::lock_guard lock(mu);
        followed.push_back(r);
      },
      [&] { promoted.store(true); });
  REQUIRE(eventually([&] { return standby->standby() == "owner"; }));
  bool refused = false;
  CHECK(standby->append(RecordType::command, 1, at_ms(0), "not mine",
                        [&](std::uint64_t, std::error_code ec) { refused = bool(ec); }) == 0);
  CHECK(refused);

  // The owner goes on writing; the standby sees each record once, in order, as written.
  for (std::uint64_t i = 31; i <= 60; ++i) {
    owner->append(type_for(i), 1, at_ms(std::int64_t(i)), payload_for(i), {});
  }
  owner->flush();
  REQUIRE(eventually([&] {
    const std::lock_guard lock(mu);
    return followed.size() == 50;
  }));
  CHECK_FALSE(promoted.load());

  // The owner stops renewing (as if killed): its lease lapses and the standby takes over,
  // having read everything, and continues the sequence.
  owner.reset();
  REQUIRE(redis.command("DEL visitd:{agency}:lease") == ":1\r\n");
  REQUIRE(eventually([&] { return promoted.load(); }, 5s));
  CHECK(standby->standby().empty());
  {
    const std::lock_guard lock(mu);
    REQUIRE(followed.size() == 50);
    for (std::size_t i = 0; i < followed.size(); ++i) {
      REQUIRE(followed[i].seq == i + 11);
      REQUIRE(followed[i].payload == payload_for(i + 11));
      REQUIRE(followed[i].type == type_for(i + 11));
    }
  }
  CHECK(standby->append(RecordType::command, 1, at_ms(61), payload_for(61), {}) == 61);
  standby->flush();
  CHECK(standby->durable_seq() == 61);
  CHECK(read_all(*standby).size() == 61);
}

TEST_CASE(
    "Redis: a standby's forwarded command is answered by the owner or, unanswered, times out, "
    "and an owner that comes later drops it rather than apply it late") {
  test::RedisServer redis;
  auto owner = RedisLog::open(options(redis, "owner"));

  auto standby_options = options(redis, "standby");
  standby_options.forward_timeout = 1500ms;
  const auto standby = RedisLog::open_standby(standby_options);
  standby->follow(
      0, [](const Record&) {}, [] {});
  REQUIRE(eventually([&] { return standby->standby() == "owner"; }));

  std::mutex mu;
  std::vector<std::optional<std::string>> answers;
  const auto ask = [&](std::string payload) {
    standby->forward(std::move(payload), [&](std::optional<std::string> answer) {
      const std::lock_guard lock(mu);
      answers.push_back(std::move(answer));
    });
  };
  const auto answered = [&](std::size_t n) {
    return eventually([&] {
      const std::lock_guard lock(mu);
      return answers.size() == n;
    });
  };

  // Nobody serves the inbox yet: no answer within the forward timeout.
  ask("early");
  REQUIRE(answered(1));
  CHECK_FALSE(answers[0].has_value());

  // The owner serves: what it answers comes back, bytes intact; the late one is dropped.
  std::vector<std::string> served;
  std::vector<std::chrono::steady_clock::duration> time_left;  // to apply_by, when served
  owner->serve_forwarded([&](Log::Forwarded forwarded) {
    {
      const std::lock_guard lock(mu);
      served.push_back(forwarded.payload);
      time_left.push_back(forwarded.apply_by - std::chrono::steady_clock::now());
    }
    forwarded.answer("done: " + forwarded.payload);
  });
  const std::string binary("b\0\r\n\xff", 5);
  ask(binary);
  REQUIRE(answered(2));
  REQUIRE(answers[1].has_value());
  CHECK(*answers[1] == "done: " + binary);
  {
    const std::lock_guard lock(mu);
    CHECK(served == std::vector<std::string>{binary});  // "early" was past its time
    // It may be applied until a fifth of the standby's timeout before it gives up: the
    // margin for its XADD's way in and the answer's way back.
    REQUIRE(time_left.size() == 1);
    CHECK(time_left[0] > 0ms);
    CHECK(time_left[0] <= 1200ms);
  }
  owner->stop_following();
}

TEST_CASE(
    "Redis: an inbox entry the owner was handed but never got (a lost reply) is found later, "
    "and dropped and deleted once past its time") {
  test::RedisServer redis;
  auto owner_options = options(redis, "owner");
  owner_options.forward_timeout = 500ms;  // a pass for such entries every second
  auto owner = RedisLog::open(owner_options);
  std::mutex mu;
  std::vector<std::string> served;
  owner->serve_forwarded([&](Log::Forwarded forwarded) {
    const std::lock_guard lock(mu);
    served.push_back(forwarded.payload);
    forwarded.answer("done");
  });
  const std::string inbox = "visitd:{agency}:inbox";
  REQUIRE(eventually([&] { return redis.command("EXISTS " + inbox) == ":1\r\n"; }));

  // An entry added 10 s ago with a 500 ms timeout, read by another consumer in the same
  // transaction (so the owner's blocked read never sees it), then made the owner's, idle:
  // what the owner's pending list holds when a read's reply was lost with the connection.
  const auto added = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()) -
                     10s;
  const std::string id = std::to_string(added.count()) + "-0";
  redis.command("MULTI\r\nXADD " + inbox + " " + id +
                " from standby req r1 timeout 500 p lost\r\nXREADGROUP GROUP owners ghost "
                "COUNT 1 STREAMS " +
                inbox + " >\r\nEXEC");
  CHECK(redis.command("XCLAIM " + inbox + " owners owner 0 " + id + " IDLE 600000 JUSTID")
            .starts_with("*1\r\n"));
  CHECK(redis.command("XLEN " + inbox) == ":1\r\n");

  REQUIRE(eventually([&] { return redis.command("XLEN " + inbox) == ":0\r\n"; }));
  const std::lock_guard lock(mu);
  CHECK(served.empty());  // past its time: dropped, never applied
  owner->stop_following();
}
