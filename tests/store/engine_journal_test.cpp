// The engine on its record log: accepted commands become durable records, and start-up
// (newest snapshot, then the tail replayed) rebuilds exactly the engine that stopped. Every
// test runs on both stores: the embedded journal, and a real redis-server.

#include "visitd/store/engine_journal.hpp"

#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "../support/redis_server.hpp"
#include "visitd/store/journal.hpp"
#include "visitd/store/redis_log.hpp"
#include "visitd/store/snapshot_child.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::rota;

namespace {

TimePoint at(const char* t) { return *parse_rfc3339(t); }

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("visitd-ej-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

config::Settings settings() {
  config::Settings s;
  s.branches.push_back(config::Branch{"B1", "North", "Europe/London", {}});
  return s;
}

/// A small day: three carers, six visits, check-ins (one late, one never), pings, an ack.
std::vector<std::pair<Command, TimePoint>> day() {
  std::vector<VisitPlan> plans;
  for (int i = 0; i < 6; ++i) {
    VisitPlan p;
    p.id = "V" + std::to_string(i);
    p.client =
        ClientPlan{"CL" + std::to_string(i), "Client", {51.5 + i * 0.001, -0.14}, std::nullopt, ""};
    p.carers = {"C" + std::to_string(i % 3)};
    p.start = at("2026-11-23T09:00:00Z") + std::chrono::hours(i / 3);
    p.end = p.start + 30min;
    plans.push_back(p);
  }
  const LocalDays date(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch());
  const Fix home{{51.5, -0.14}, 10};
  return {
      {ImportRota{"B1", date, plans, "office"}, at("2026-11-23T06:00:00Z")},
      {LocationPing{"p1", "C0", at("2026-11-23T08:55:00Z"), home}, at("2026-11-23T08:55:00Z")},
      {CheckIn{"e1", "C0", "V0", at("2026-11-23T09:01:00Z"), home, Method::gps, ""},
       at("2026-11-23T09:01:00Z")},
      {CheckIn{"e2", "C1", "V1", at("2026-11-23T09:20:00Z"), home, Method::gps, ""},
       at("2026-11-23T09:20:00Z")},
      {AckAlert{"A1", "anna", "calling"}, at("2026-11-23T09:21:00Z")},
      {CheckOut{"e3", "C0", "V0", at("2026-11-23T09:31:00Z"), home, Method::gps, "", "ok"},
       at("2026-11-23T09:31:00Z")},
      {CheckIn{"e4", "C0", "V3", at("2026-11-23T10:02:00Z"), home, Method::gps, ""},
       at("2026-11-23T10:02:00Z")},
      {LocationPing{"p2", "C1", at("2026-11-23T10:05:00Z"), home}, at("2026-11-23T10:05:00Z")},
  };
}

/// Where a test's records live: "journal" (a temp dir) or "redis" (a redis-server of its
/// own). open() again is a restart on the same records.
struct Store {
  explicit Store(std::string kind) : kind(std::move(kind)) {
    if (this->kind == "redis") redis = std::make_unique<test::RedisServer>();
  }
  std::unique_ptr<store::Log> open() const {
    if (redis) {
      store::RedisOptions o;
      o.url = redis->url();
      return store::RedisLog::open(o);
    }
    store::JournalOptions o;
    o.dir = dir.path;
    return store::Journal::open(o);
  }
  /// Everything gone: a fresh store.
  void wipe() const {
    std::filesystem::remove_all(dir.path);
    if (redis) REQUIRE(redis->command("FLUSHALL") == "+OK\r\n");
  }
  std::string kind;
  TempDir dir;
  std::unique_ptr<test::RedisServer> redis;
};

/// Applies a command and journals it if accepted, as the daemon does.
bool run(Engine& engine, store::Log& journal, const Command& c, TimePoint now) {
  Effects fx;
  if (engine.apply(c, now, fx).status != Status::accepted) return false;
  store::record(journal, c, now, [](std::uint64_t, std::error_code) {});
  return true;
}

}  // namespace

TEST_CASE("Start-up from the journal alone rebuilds the engine that stopped") {
  const Store st(GENERATE(as<std::string>(), "journal", "redis"));
  CAPTURE(st.kind);
  const auto s = settings();
  Engine live(s, at("2026-11-23T00:00:00Z"));
  {
    auto journal = st.open();
    for (const auto& [c, now] : day()) run(live, *journal, c, now);
    journal->flush();
    REQUIRE(journal->durable_seq() == journal->last_seq());
  }
  auto journal = st.open();
  auto back = store::recover(s, *journal, at("2026-11-23T00:00:00Z"));
  CHECK(back.snapshot_seq == 0);
  CHECK(back.replayed == journal->last_seq());
  CHECK(back.diverged == 0);
  CHECK(back.engine->canonical_dump() == live.canonical_dump());
}

TEST_CASE("A replica applying the records as they come, ticks included, keeps the owner's state") {
  const Store st(GENERATE(as<std::string>(), "journal", "redis"));
  CAPTURE(st.kind);
  const auto s = settings();
  Engine owner(s, at("2026-11-23T00:00:00Z"));
  Engine replica(s, at("2026-11-23T00:00:00Z"));
  auto journal = st.open();
  std::uint64_t applied = 0;
  // What a standby does: each record, in order, as soon as it is written.
  const auto catch_up = [&] {
    journal->flush();
    Effects fx;
    journal->replay(applied + 1, [&](const store::Record& r) {
      store::apply_record(replica, r, fx);
      applied = r.seq;
    });
  };
  std::size_t ticks = 0;
  for (const auto& [c, now] : day()) {
    // The owner's timer: deadlines that fell due before this command, and a tick to say so.
    Effects fx;
    owner.advance(now - 1s, fx);
    if (!fx.empty()) {
      store::record_tick(*journal, owner.now(), {});
      ++ticks;
      catch_up();
      // The replica saw the same deadlines fall due, before the next command came.
      REQUIRE(replica.canonical_dump() == owner.canonical_dump());
    }
    run(owner, *journal, c, now);
  }
  catch_up();
  CHECK(ticks > 0);
  CHECK(replica.canonical_dump() == owner.canonical_dump());
}

TEST_CASE("Start-up from a snapshot plus the journal's tail equals never having stopped") {
  const Store st(GENERATE(as<std::string>(), "journal", "redis"));
  CAPTURE(st.kind);
  const auto s = settings();
  const auto commands = day();
  Engine live(s, at("2026-11-23T00:00:00Z"));
  std::uint64_t covered = 0;
  {
    auto journal = st.open();
    for (std::size_t i = 0; i < commands.size(); ++i) {
      run(live, *journal, commands[i].first, commands[i].second);
      if (i == 3) covered = store::snapshot(*journal, live);
    }
    journal->flush();
  }
  REQUIRE(covered > 0);
  auto journal = st.open();
  auto back = store::recover(s, *journal, at("2026-11-23T00:00:00Z"));
  CHECK(back.snapshot_seq == covered);
  CHECK(back.replayed == journal->last_seq() - covered);
  CHECK(back.engine->canonical_dump() == live.canonical_dump());

  // And both carry on identically: deadlines that fall due after the restart fire the same.
  Effects a, b;
  live.advance(at("2026-11-23T13:00:00Z"), a);
  back.engine->advance(at("2026-11-23T13:00:00Z"), b);
  CHECK(a == b);
  CHECK(back.engine->canonical_dump() == live.canonical_dump());
}

TEST_CASE("A forked child serializes the engine as it was at the fork, whatever came after") {
  const auto s = settings();
  const auto commands = day();
  Engine live(s, at("2026-11-23T00:00:00Z"));
  Effects fx;
  for (std::size_t i = 0; i < 4; ++i) live.apply(commands[i].first, commands[i].second, fx);
  live.advance(commands[3].second, fx);
  const std::string expected = store::snapshot_bytes(live);

  auto child = store::SnapshotChild::start(live);
  REQUIRE(child.has_value());
  // The rest of the day goes on in this process while the child works from its own pages.
  for (std::size_t i = 4; i < commands.size(); ++i) {
    live.apply(commands[i].first, commands[i].second, fx);
  }
  REQUIRE(store::snapshot_bytes(live) != expected);
  CHECK(child->finish() == expected);
  CHECK_THROWS_WITH(child->finish(), Catch::Contains("called twice"));

  // Those bytes restart to the engine of the fork, and the tail brings it to the end.
  TempDir dir;
  store::JournalOptions o;
  o.dir = dir.path;
  auto journal = store::Journal::open(o);
  Engine replay(s, at("2026-11-23T00:00:00Z"));
  for (std::size_t i = 0; i < commands.size(); ++i) {
    run(replay, *journal, commands[i].first, commands[i].second);
    if (i == 3) {
      replay.advance(commands[3].second, fx);
      journal->flush();
      journal->write_snapshot(journal->last_seq(), expected);
    }
  }
  journal->flush();
  auto back = store::recover(s, *journal, at("2026-11-23T00:00:00Z"));
  CHECK(back.snapshot_seq > 0);
  CHECK(back.engine->canonical_dump() == live.canonical_dump());
}

TEST_CASE("A snapshot child is never left behind, and a killed one gives no snapshot") {
  // Enough visits that the snapshot fills the pipe: the child cannot finish until it is read.
  const auto s = settings();
  std::vector<VisitPlan> plans;
  for (int i = 0; i < 2000; ++i) {
    VisitPlan p;
    p.id = "V" + std::to_string(i);
    p.client = ClientPlan{"CL" + std::to_string(i), "Client", {51.5, -0.14}, std::nullopt, ""};
    p.carers = {"C" + std::to_string(i % 50)};
    p.start = at("2026-11-23T09:00:00Z") + std::chrono::minutes(i % 600);
    p.end = p.start + 30min;
    plans.push_back(p);
  }
  Engine engine(s, at("2026-11-23T00:00:00Z"));
  Effects fx;
  const LocalDays date(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch());
  REQUIRE(engine.apply(ImportRota{"B1", date, plans, "office"}, at("2026-11-23T06:00:00Z"), fx)
              .status == Status::accepted);
  REQUIRE(store::snapshot_bytes(engine).size() > 128 * 1024);  // pipes hold 64 KiB

  pid_t pid = 0;
  {
    auto child = store::SnapshotChild::start(engine);
    REQUIRE(child.has_value());
    pid = child->pid();
  }  // not read: killed and reaped
  const int gone = ::kill(pid, 0);
  const int gone_errno = errno;
  CHECK(gone == -1);  // no such process, not even a zombie
  CHECK(gone_errno == ESRCH);

  // Killed before it is read (it is blocked on the full pipe), a child gives an error, never
  // part of a snapshot.
  auto child = store::SnapshotChild::start(engine);
  REQUIRE(child.has_value());
  ::kill(child->pid(), SIGKILL);
  CHECK_THROWS_WITH(child->finish(), Catch::Contains("killed by signal 9"));
}

TEST_CASE("Location pings are journaled as location records, other commands as commands") {
  const Store st(GENERATE(as<std::string>(), "journal", "redis"));
  CAPTURE(st.kind);
  const auto s = settings();
  Engine live(s, at("2026-11-23T00:00:00Z"));
  auto journal = st.open();
  int accepted_pings = 0, accepted_others = 0;
  for (const auto& [c, now] : day()) {
    if (run(live, *journal, c, now)) {
      (std::holds_alternative<LocationPing>(c) ? accepted_pings : accepted_others)++;
    }
  }
  journal->flush();
  REQUIRE(accepted_pings == 2);
  int locations = 0, commands = 0;
  journal->replay(1, [&](const store::Record& r) {
    (r.type == store::RecordType::location ? locations : commands)++;
  });
  CHECK(locations == accepted_pings);
  CHECK(commands == accepted_others);
}

TEST_CASE("Start-up days later keeps the times of every replayed decision") {
  // The daemon recovers with origin = now: without a snapshot, replayed decisions must keep
  // the times they were made at, not the restart's.
  const Store st(GENERATE(as<std::string>(), "journal", "redis"));
  CAPTURE(st.kind);
  const auto s = settings();
  Engine live(s, at("2026-11-23T00:00:00Z"));
  {
    auto journal = st.open();
    for (const auto& [c, now] : day()) run(live, *journal, c, now);
    journal->flush();
  }
  auto journal = st.open();
  auto back = store::recover(s, *journal, at("2026-11-26T12:00:00Z"));
  const auto v1 = back.engine->find_visit("V1");
  REQUIRE(v1);
  const Visit& visit = back.engine->visit(*v1);
  REQUIRE(visit.check_ins.size() == 1);
  CHECK(format_rfc3339(visit.check_ins[0].received_at) == "2026-11-23T09:20:00Z");
  const auto a1 = back.engine->find_alert("A1");
  REQUIRE(a1);
  CHECK(format_rfc3339(back.engine->alert(*a1).raised_at) == "2026-11-23T09:15:00Z");
  CHECK(back.engine->now() == at("2026-11-23T10:05:00Z"));
  CHECK(back.engine->canonical_dump() == live.canonical_dump());
}

TEST_CASE("A restart decides every replayed event under the settings recorded for it") {
  // The config file at restart says late_after = 40m; the journal says the day began with
  // the defaults (15m) and was reloaded to 3m at 09:05. Replay must follow the journal.
  const Store st(GENERATE(as<std::string>(), "journal", "redis"));
  CAPTURE(st.kind);
  const auto original = std::make_shared<config::Settings>(settings());
  auto tighter = std::make_shared<config::Settings>(settings());
  tighter->thresholds.values.late_after = 3min;
  config::Settings at_restart = settings();
  at_restart.thresholds.values.late_after = 40min;

  for (const bool with_snapshot : {false, true}) {
    CAPTURE(with_snapshot);
    st.wipe();
    const auto commands = day();
    Engine live(*original, at("2026-11-23T00:00:00Z"));
    {
      auto journal = st.open();
      Effects fx;
      REQUIRE_FALSE(live.reconfigure(original, at("2026-11-23T05:00:00Z"), fx));
      store::record_settings(*journal, live, live.now(), {});
      for (const auto& [c, now] : commands) {
        if (now > at("2026-11-23T09:05:00Z") &&
            live.settings().thresholds.values.late_after != 3min) {
          REQUIRE_FALSE(live.reconfigure(tighter, at("2026-11-23T09:05:00Z"), fx));
          store::record_settings(*journal, live, live.now(), {});
          if (with_snapshot) REQUIRE(store::snapshot(*journal, live) > 0);
        }
        run(live, *journal, c, now);
      }
      journal->flush();
    }
    auto journal = st.open();
    auto back = store::recover(at_restart, *journal, at("2026-11-24T12:00:00Z"));
    CHECK(back.settings_recorded);
    CHECK(back.diverged == 0);
    CHECK(back.engine->settings().thresholds.values.late_after == 3min);
    CHECK(back.engine->canonical_dump() == live.canonical_dump());
  }
}

TEST_CASE("The outbox survives a restart and compaction: only what no receiver took is owed") {
  const Store st(GENERATE(as<std::string>(), "journal", "redis"));
  CAPTURE(st.kind);
  const auto s = settings();
  Engine live(s, at("2026-11-23T00:00:00Z"));
  const auto notice = [](std::string subject, std::string receiver) {
    alerts::Notice n;
    n.subject = std::move(subject);
    n.receiver = std::move(receiver);
    n.transition = alerts::Transition::triggered;
    n.alert = "A1";
    n.at = at("2026-11-23T09:25:00Z");
    n.alert_json = R"({"id":"A1"})";
    return n;
  };
  const auto delivery = [](std::vector<std::string> ids, alerts::DeliveryResult result) {
    alerts::DeliveryRecord d;
    d.receiver = "pager";
    d.notices = std::move(ids);
    d.result = result;
    d.status = result == alerts::DeliveryResult::delivered ? 200 : 503;
    return d;
  };
  const auto ignore = [](std::uint64_t, std::error_code) {};
  {
    auto journal = st.open();
    const auto commands = day();
    for (std::size_t i = 0; i < commands.size(); ++i) {
      run(live, *journal, commands[i].first, commands[i].second);
      if (i == 3) {
        const TimePoint t = commands[i].second;
        // As the daemon does: on the alert, then in the outbox.
        for (const char* receiver : {"pager", "office", "boss"}) {
          const auto n = notice("A1/page/warning/L1/R0", receiver);
          live.note_notified(*live.find_alert("A1"), alerts::notified(n));
          store::record_notice(*journal, n, t, ignore);
        }
        store::record_delivery(
            *journal, delivery({"A1/page/warning/L1/R0/pager"}, alerts::DeliveryResult::delivered),
            t, ignore);
        store::record_delivery(
            *journal, delivery({"A1/page/warning/L1/R0/office"}, alerts::DeliveryResult::failed), t,
            ignore);
        store::record_delivery(
            *journal, delivery({"A1/page/warning/L1/R0/boss"}, alerts::DeliveryResult::refused), t,
            ignore);
      }
    }
    journal->flush();
    // Without a snapshot, the replay puts the outbox's notices back on the alert.
    const auto replayed = store::recover(s, *journal, at("2026-11-23T00:00:00Z"));
    CHECK(replayed.engine->canonical_dump() == live.canonical_dump());
    CHECK(replayed.engine->alert(*replayed.engine->find_alert("A1")).notified.size() == 3);
    REQUIRE(store::snapshot(*journal, live) > 0);
    journal->compact(at("2026-11-23T00:00:00Z"));
    journal->flush();
  }
  auto journal = st.open();
  std::vector<std::string> decided;
  const auto owed =
      store::read_outbox(*journal, [&](const alerts::Notice& n) { decided.push_back(n.id()); });
  CHECK(decided == std::vector<std::string>{"A1/page/warning/L1/R0/pager",
                                            "A1/page/warning/L1/R0/office",
                                            "A1/page/warning/L1/R0/boss"});
  REQUIRE(owed.size() == 1);  // failed once, never delivered: still owed
  CHECK(owed[0].id() == "A1/page/warning/L1/R0/office");
  CHECK(owed[0].alert_json == R"({"id":"A1"})");

  // The engine's own replay passes over them.
  const auto back = store::recover(s, *journal, at("2026-11-23T00:00:00Z"));
  CHECK(back.diverged == 0);
  CHECK(back.engine->canonical_dump() == live.canonical_dump());
}
