// The engine host without sockets: an outcome is delivered only once the journal has made
// its record durable, and a failed fsync stops everything (no ack, not ready, every later
// event refused).

#include "visitd/websocket/engine_host.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <random>

#include "visitd/store/engine_journal.hpp"
#include "visitd/store/journal.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::websocket;

namespace {

TimePoint at(const char* t) { return *parse_rfc3339(t); }

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("visitd-host-" + std::to_string(std::random_device{}()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};

config::Settings agency() {
  config::Settings s;
  s.branches.push_back(config::Branch{"B1", "North", "Europe/London", {}});
  return s;
}

rota::ImportRota rota_of_one_visit() {
  rota::VisitPlan p;
  p.id = "V1";
  p.client = rota::ClientPlan{"CL1", "Mrs A", {51.5, -0.14}, std::nullopt, ""};
  p.carers = {"C1"};
  p.start = at("2026-11-23T09:00:00Z");
  p.end = at("2026-11-23T09:30:00Z");
  return rota::ImportRota{
      "B1", LocalDays(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch()), {p}, "admin"};
}

rota::CheckIn check_in(std::string id) {
  return rota::CheckIn{
      std::move(id),     "C1", "V1", at("2026-11-23T09:01:00Z"), rota::Fix{{51.5, -0.14}, 10},
      rota::Method::gps, ""};
}

/// What one submitted command came to.
struct Outcome {
  bool decided = false;
  rota::Status status = rota::Status::rejected;
  std::optional<Error> error;
  bool delivered = false;
  std::error_code delivery_error;
  std::uint64_t durable_when_delivered = 0;
  std::string engine_dump;  ///< the engine's whole state right after the command was decided
};

struct Host {
  TempDir dir;
  config::Settings settings = agency();
  ManualClock clock{at("2026-11-23T09:01:00Z")};
  Metrics metrics;
  boost::asio::io_context io;
  // Keeps run_for() going between steps; the close test drops it, as a daemon has none.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
      boost::asio::make_work_guard(io);
  std::unique_ptr<store::Journal> journal;
  std::shared_ptr<EngineHost> host;
  bool closed = false;

  explicit Host(std::function<int(int)> sync_hook = {},
                const std::function<void(config::Settings&)>& tune = {}) {
    if (tune) tune(settings);
    store::JournalOptions o;
    o.dir = dir.path;
    o.sync_hook = std::move(sync_hook);
    journal = store::Journal::open(o);
    host = std::make_shared<EngineHost>(
        io, settings, std::make_unique<rota::Engine>(settings, at("2026-11-23T06:00:00Z")), 0,
        *journal, metrics, clock);
    host->start();
  }
  ~Host() {
    if (!closed) {
      host->close([&] { closed = true; });
      for (int i = 0; i < 500 && !closed; ++i) io.run_for(10ms);
      CHECK(closed);  // not REQUIRE: nothing may throw from a destructor
    }
    work.reset();
  }

  std::shared_ptr<Outcome> submit(rota::Command command) {
    auto out = std::make_shared<Outcome>();
    store::Journal* j = journal.get();
    host->submit(
        std::move(command), nullptr,
        [out, j](const rota::Reply& reply, const rota::Engine& engine) -> EngineHost::Deliver {
          out->decided = true;
          out->engine_dump = engine.canonical_dump();
          out->status = reply.status;
          out->error = reply.error;
          return [out, j](std::error_code ec) {
            out->durable_when_delivered = j->durable_seq();
            out->delivery_error = ec;
            out->delivered = true;  // last: the test thread polls it
          };
        });
    return out;
  }

  /// Runs the host until `done` holds (or 5 s pass).
  template <class Pred>
  bool run_until(Pred done) {
    for (int i = 0; i < 500; ++i) {
      io.run_for(10ms);
      if (done()) return true;
    }
    return false;
  }

  /// Sends C1 a location ping a minute after the last one (from 09:01), and runs the host
  /// until it is acknowledged.
  std::shared_ptr<Outcome> ping() {
    ++ping_minute;
    REQUIRE(ping_minute < 60);
    const std::string t = "2026-11-23T09:" + std::string(ping_minute < 10 ? "0" : "") +
                          std::to_string(ping_minute) + ":00Z";
    clock.set(at(t.c_str()));
    auto out = submit(rota::LocationPing{"p" + std::to_string(ping_minute), "C1", at(t.c_str()),
                                         rota::Fix{{51.5, -0.14}, 10}});
    REQUIRE(run_until([&] { return out->delivered; }));
    return out;
  }
  int ping_minute = 0;

  /// Pings until `count` snapshots taken the given way have been written. A snapshot falls
  /// due every snapshot_every records, but not while the one before is still being written:
  /// at idle priority, on a busy machine, that can outlast several records; then the next
  /// record makes it due again. Returns the last ping's outcome.
  std::shared_ptr<Outcome> ping_until_snapshots(bool forked, double count) {
    const auto written = [&] { return metrics.snapshots(forked).Value() >= count; };
    std::shared_ptr<Outcome> last;
    do {
      last = ping();
      for (int i = 0; i < 50 && !written(); ++i) io.run_for(10ms);
    } while (!written());
    return last;
  }
};

}  // namespace

TEST_CASE("An accepted event is delivered only once its record is durable") {
  Host h;
  auto import = h.submit(rota_of_one_visit());
  REQUIRE(h.run_until([&] { return import->delivered; }));
  CHECK(import->status == rota::Status::accepted);
  CHECK_FALSE(import->delivery_error);
  CHECK(import->durable_when_delivered >= 1);

  auto first = h.submit(check_in("e1"));
  REQUIRE(h.run_until([&] { return first->delivered; }));
  CHECK(first->status == rota::Status::accepted);
  CHECK(first->durable_when_delivered >= 2);

  // The resend is a duplicate: answered (after durability) without a new record.
  auto again = h.submit(check_in("e1"));
  REQUIRE(h.run_until([&] { return again->delivered; }));
  CHECK(again->status == rota::Status::duplicate);
  CHECK(h.journal->last_seq() == 2);  // the rota and the check-in; the resend added nothing
  CHECK(h.host->ready());
}

TEST_CASE("A snapshot taken by a forked child, or from a copy, restarts to the engine that ran") {
  // 0: every snapshot forks; 1 TiB: every snapshot copies the engine on the strand.
  const std::size_t fork_above = GENERATE(std::size_t{0}, std::size_t{1} << 40);
  const bool forked = fork_above == 0;
  CAPTURE(fork_above);
  Host h({}, [&](config::Settings& s) {
    s.store.snapshot_every = 3;
    s.store.snapshot_fork_above = fork_above;
  });
  const rota::Fix home{{51.5, -0.14}, 10};
  // Each at its device time (the host's clock follows): none is refused as from the future.
  const auto at_time = [&](const char* t, rota::Command command) {
    h.clock.set(at(t));
    return h.submit(std::move(command));
  };
  std::vector<std::shared_ptr<Outcome>> outcomes{
      h.submit(rota_of_one_visit()), h.submit(check_in("e1")),
      at_time("2026-11-23T09:05:00Z",
              rota::LocationPing{"p1", "C1", at("2026-11-23T09:05:00Z"), home})};
  REQUIRE(h.run_until([&] { return outcomes.back()->delivered; }));
  // The snapshot after the third record is written off the strand; the day goes on.
  outcomes.push_back(at_time("2026-11-23T09:10:00Z",
                             rota::LocationPing{"p2", "C1", at("2026-11-23T09:10:00Z"), home}));
  outcomes.push_back(
      at_time("2026-11-23T09:29:00Z", rota::CheckOut{"e2", "C1", "V1", at("2026-11-23T09:29:00Z"),
                                                     home, rota::Method::gps, "", "all well"}));
  REQUIRE(h.run_until([&] {
    const auto snap = h.journal->latest_snapshot();
    return outcomes.back()->delivered && snap && snap->seq == 3;
  }));
  for (const auto& o : outcomes) CHECK(o->status == rota::Status::accepted);

  const auto back = store::recover(h.settings, *h.journal, at("2026-11-23T06:00:00Z"));
  CHECK(back.snapshot_seq == 3);
  CHECK(back.replayed == 2);
  CHECK(back.engine->canonical_dump() == outcomes.back()->engine_dump);
  // Counted just after the file is in place.
  CHECK(h.run_until([&] { return h.metrics.snapshots(forked).Value() == 1; }));
  CHECK(h.metrics.snapshots(!forked).Value() == 0);
}

TEST_CASE("Snapshots are copied while the state is small, forked once it has grown") {
  // 1 byte: the first snapshot (nothing known of the state's size yet) is a copy; it is
  // bigger than that, so the next one forks.
  Host h({}, [](config::Settings& s) {
    s.store.snapshot_every = 2;
    s.store.snapshot_fork_above = 1;
  });
  auto last = h.submit(rota_of_one_visit());
  last = h.submit(check_in("e1"));
  REQUIRE(h.run_until([&] { return last->delivered; }));
  REQUIRE(h.run_until([&] { return h.metrics.snapshots(false).Value() == 1; }));
  last = h.ping_until_snapshots(true, 1);
  CHECK(h.metrics.snapshots(false).Value() == 1);
  const auto back = store::recover(h.settings, *h.journal, at("2026-11-23T06:00:00Z"));
  CHECK(back.snapshot_seq >= 4);
  CHECK(back.engine->canonical_dump() == last->engine_dump);
}

TEST_CASE("Closing keeps the io_context running until the journal is flushed and acks are out") {
  // The daemon's io.run() returns when nothing is left to do, and then the journal goes:
  // the close's flush, on the host's own thread, must count as something to do.
  Host h;
  const auto accepted = h.submit(check_in("E1"));
  h.work.reset();
  h.host->close([&] { h.closed = true; });
  h.io.run();
  CHECK(h.closed);
  CHECK(accepted->delivered);
  CHECK_FALSE(accepted->delivery_error);
}

TEST_CASE("A failed fsync delivers no ack, fails readiness and refuses every later event") {
  Host h([](int) { return EIO; });
  auto import = h.submit(rota_of_one_visit());
  REQUIRE(h.run_until([&] { return import->delivered; }));
  CHECK(import->status == rota::Status::accepted);  // decided, but never made durable...
  CHECK(import->delivery_error);                    // ... so the sender gets an error
  REQUIRE(h.run_until([&] { return !h.host->ready(); }));
  CHECK_THAT(h.host->not_ready_reason(), Catch::Contains("journal failed"));
  CHECK_THAT(h.metrics.serialize(), Catch::Contains("visitd_journal_failed 1"));

  auto later = h.submit(check_in("e2"));
  REQUIRE(h.run_until([&] { return later->delivered; }));
  CHECK(later->status == rota::Status::rejected);
  REQUIRE(later->error);
  CHECK(later->error->code == ErrorCode::internal);
}
