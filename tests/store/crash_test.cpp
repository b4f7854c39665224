// A child process appends under load and reports every sequence number the store reports
// durable; the parent kills it with SIGKILL at random moments and checks, after recovery,
// that every reported record is there, once, intact. On the journal, and on Redis (a real
// redis-server; the child is the daemon that dies, the server lives on).

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "../support/redis_server.hpp"
#include "store_test_util.hpp"
#include "visitd/store/journal.hpp"
#include "visitd/store/redis_log.hpp"

using namespace visitd;
using namespace visitd::store;
using namespace visitd::store::test;

namespace {

std::uint64_t mix(std::uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Everything about a record follows from its seq, so the parent can check it.
std::string payload_for(std::uint64_t seq) {
  std::string p(mix(seq) % 300, '\0');
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>(mix(seq * 1000 + i));
  return p;
}
RecordType type_for(std::uint64_t seq) {
  return seq % 3 == 0 ? RecordType::location : RecordType::command;
}
TimePoint time_for(std::uint64_t seq) {
  return at_ms(1'790'000'000'000 + static_cast<std::int64_t>(seq));
}

JournalOptions crash_options(const fs::path& dir) {
  JournalOptions o;
  o.dir = dir;
  o.segment_bytes = 128 << 10;  // small, so that kills also land around segment creation
  o.group_delay = std::chrono::microseconds(500);
  return o;
}

/// Where the records go: the journal in `dir`, or the Redis server at `redis_url` when set.
struct Target {
  fs::path dir;
  std::string redis_url;
  std::unique_ptr<Log> open() const {
    if (redis_url.empty()) return Journal::open(crash_options(dir));
    RedisOptions o;
    o.url = redis_url;
    o.daemon_id = "crash-test";  // the same daemon each time: it takes its lease back at once
    return RedisLog::open(o);
  }
};

// Runs in the forked child until it is killed. No Catch here, and never return: _exit.
[[noreturn]] void child_main(const Target& target, int out) {
  try {
    auto journal = target.open();
    std::mutex append_mu;  // makes the next seq predictable, so the payload can depend on it
    constexpr int kThreads = 4;
    constexpr int kWindow = 16;  // outstanding appends per writer, like phones awaiting acks
    std::atomic<int> outstanding[kThreads] = {};
    std::vector<std::thread> writers;
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        for (;;) {
          int now = outstanding[t].load();
          while (now >= kWindow) {
            outstanding[t].wait(now);
            now = outstanding[t].load();
          }
          ++outstanding[t];
          std::lock_guard lk(append_mu);
          const std::uint64_t seq = journal->last_seq() + 1;
          const auto got = journal->append(type_for(seq), 1, time_for(seq), payload_for(seq),
                                           [&, t](std::uint64_t s, std::error_code ec) {
                                             if (ec) ::_exit(4);
                                             if (::write(out, &s, sizeof s) != sizeof s) ::_exit(5);
                                             --outstanding[t];
                                             outstanding[t].notify_one();
                                           });
          if (got != seq) ::_exit(3);
        }
      });
    }
    for (auto& w : writers) w.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "crash test child: %s\n", e.what());
  }
  ::_exit(2);
}

struct Run {
  std::uint64_t max_durable = 0;  // the highest seq the child reported durable
  std::uint64_t reports = 0;
};

// Forks a child, lets it run for `run_for`, kills it and collects what it reported.
Run run_and_kill(const Target& target, std::chrono::microseconds run_for) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    child_main(target, fds[1]);
  }
  ::close(fds[1]);
  Run run;
  char buffer[8 * 512];
  std::size_t held = 0;
  const auto consume = [&](bool until_eof, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      int timeout = -1;
      if (!until_eof) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() < 0) return;
        timeout = static_cast<int>(left.count());
      }
      pollfd p{fds[0], POLLIN, 0};
      const int ready = ::poll(&p, 1, timeout);
      if (ready == 0) return;
      if (ready < 0) continue;
      const ssize_t n = ::read(fds[0], buffer + held, sizeof buffer - held);
      if (n <= 0) return;  // EOF: the child is gone
      held += static_cast<std::size_t>(n);
      std::size_t at = 0;
      for (; at + 8 <= held; at += 8) {
        std::uint64_t seq;
        std::memcpy(&seq, buffer + at, 8);
        run.max_durable = std::max(run.max_durable, seq);
        ++run.reports;
      }
      std::memmove(buffer, buffer + at, held - at);
      held -= at;
    }
  };
  consume(false, std::chrono::steady_clock::now() + run_for);
  ::kill(pid, SIGKILL);
  consume(true, {});  // whatever it reported before dying
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO("child status " << status);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
  return run;
}

void kill_repeatedly(int kills, bool on_redis = false) {
  std::uint64_t seed = std::random_device{}();
  if (const char* env = std::getenv("VISITD_SEED")) seed = std::strtoull(env, nullptr, 10);
  std::fprintf(stderr, "crash test: seed %llu, %d kills\n", static_cast<unsigned long long>(seed),
               kills);
  std::mt19937_64 rng(seed);
  std::optional<TempDir> dir;
  std::optional<visitd::test::RedisServer> redis;
  std::uint64_t ever_durable = 0, total_reports = 0, truncations = 0;
  for (int kill = 0; kill < kills; ++kill) {
    if (kill % 50 == 0) {  // a fresh journal now and then keeps the re-reads short
      dir.reset();
      dir.emplace("crash");
      redis.reset();
      if (on_redis) redis.emplace();
      ever_durable = 0;
    }
    const Target target{dir->path(), redis ? redis->url() : std::string()};
    // Some kills land while the child is still opening and recovering, most under load.
    const auto run_for =
        std::chrono::microseconds(rng() % 5 == 0 ? rng() % 5000 : 5000 + rng() % 75000);
    INFO("seed " << seed << ", kill " << kill << " after " << run_for.count() << " us");
    const Run run = run_and_kill(target, run_for);
    ever_durable = std::max(ever_durable, run.max_durable);
    total_reports += run.reports;

    std::unique_ptr<Log> journal;
    if (on_redis) {
      journal = target.open();
    } else {
      RecoveryReport report;
      journal = Journal::open(crash_options(dir->path()), &report);
      if (report.truncated_bytes > 0) ++truncations;
    }
    std::uint64_t expected = 1;
    journal->replay(1, [&](const Record& r) {
      REQUIRE(r.seq == expected);  // contiguous from 1: nothing lost in between, no duplicate
      REQUIRE(r.type == type_for(r.seq));
      REQUIRE(r.time == time_for(r.seq));
      REQUIRE(r.payload == payload_for(r.seq));
      ++expected;
    });
    // Every record ever reported durable, in this run or an earlier one, is still there.
    REQUIRE(journal->last_seq() == expected - 1);
    REQUIRE(journal->last_seq() >= ever_durable);
  }
  std::fprintf(stderr, "crash test: %llu durable reports checked, %llu torn tails truncated\n",
               static_cast<unsigned long long>(total_reports),
               static_cast<unsigned long long>(truncations));
  CHECK(total_reports > 0);
}

}  // namespace

TEST_CASE("Records reported durable survive SIGKILL at random moments") { kill_repeatedly(60); }

TEST_CASE("On Redis, records reported durable survive SIGKILL of the writer at random moments") {
  kill_repeatedly(30, /*on_redis=*/true);
}

TEST_CASE("Records reported durable survive 500 SIGKILLs", "[.slow]") { kill_repeatedly(500); }
