// The daemon on the Redis store (`[store] kind = "redis"`), with a real redis-server per
// test: acked events survive killing both, an outage stops acks but not the boards, and a
// server that could lose acked events is refused unless the operator allows it.

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "../support/redis_server.hpp"
#include "daemon_fixture.hpp"
#include "receiver.hpp"

using namespace visitd::test;
using visitd::TimePoint;
using visitd::websocket::Role;
namespace json = boost::json;

namespace {

DaemonConfig on_redis(const RedisServer& redis) {
  DaemonConfig config;
  config.store = {{"kind", "\"redis\""}, {"url", "\"" + redis.url() + "\""}};
  return config;
}

/// Polls GET /readyz until its status is `status`, up to `limit`; returns the last answer.
HttpResponse readyz_when(const Daemon& d, unsigned status, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    HttpResponse r = d.http("GET", "/readyz");
    if (r.status == status || std::chrono::steady_clock::now() > deadline) return r;
    std::this_thread::sleep_for(50ms);
  }
}

/// What `visitd status --config FILE` prints.
std::string status_of(const std::filesystem::path& config) {
  const std::string command = std::string(VISITD_BINARY) + " status --config " + config.string();
  std::string out;
  if (FILE* p = ::popen(command.c_str(), "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    ::pclose(p);
  }
  return out;
}

/// Tomorrow in Europe/London, as `2026-11-24`, and 10:00 UTC that day (10 or 11 local).
std::pair<std::string, TimePoint> tomorrow() {
  int y = 0;
  unsigned m = 0;
  unsigned d = 0;
  REQUIRE(std::sscanf(today().c_str(), "%d-%u-%u", &y, &m, &d) == 3);
  using namespace std::chrono;
  const sys_days next = sys_days(year_month_day(year(y), month(m), day(d))) + days(1);
  const year_month_day ymd(next);
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()),
                unsigned(ymd.day()));
  return {text, TimePoint(next) + 10h};
}

}  // namespace

TEST_CASE("On Redis, acked events survive kill -9 of the daemon and of Redis", "[redis]") {
  RedisServer redis;
  Daemon d(on_redis(redis));
  const auto start = today_at(-5min);
  d.import_rota("B1", rota_csv({visit("V1", "C1", start), visit("V2", "C1", start)}));
  {
    WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
    REQUIRE(str(phone.next(), "type") == "rota");
    phone.send_text(check_in("in-V1", "V1"));
    REQUIRE(str(phone.next(), "status") == "accepted");
    phone.send_text(location("ping-1"));
    REQUIRE(str(phone.next(), "status") == "accepted");
  }
  d.kill9();
  redis.kill9();  // the ack was sent once Redis had fsync'd the record: it is in the AOF
  redis.start();
  d.start();
  CHECK_THAT(d.log(), Catch::Contains("redis_store stream=visitd:{agency}:log"));

  const std::string admin = token(Role::admin, "root", {"*"});
  const json::value v1 = d.api("GET", "/api/visits/V1", admin).json();
  CHECK(str(v1, "state") == "in_progress");
  CHECK(v1.at("check_ins").as_array().size() == 1);
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");
  phone.send_text(check_in("in-V1", "V1"));
  CHECK(str(phone.next(), "status") == "duplicate");
  phone.send_text(check_in("in-V2", "V2"));
  CHECK(str(phone.next(), "status") == "accepted");
}

TEST_CASE(
    "While Redis is down nothing is acked and /readyz says why, the board still sees a visit "
    "turn late, and acks resume when it is back",
    "[redis]") {
  RedisServer redis;
  DaemonConfig config = on_redis(redis);
  config.thresholds = {{"late_after", "\"4s\""}};
  Daemon d(config);
  d.import_rota("B1",
                rota_csv({visit("V1", "C1", today_at(0min)), visit("V2", "C2", today_at(-5min))}));
  WsClient board = WsClient::with_token(d.port(), "/ws/board", token(Role::admin, "root", {"*"}));
  REQUIRE(str(board.next(), "type") == "snapshot");
  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C2"));
  REQUIRE(str(phone.next(), "type") == "rota");
  REQUIRE(d.http("GET", "/readyz").status == 200);

  redis.kill9();
  const HttpResponse down = readyz_when(d, 503);
  REQUIRE(down.status == 503);
  CHECK_THAT(str(down.json(), "reason"), Catch::Contains("Redis at 127.0.0.1:"));
  CHECK(sample(d.http("GET", "/metrics").body, "visitd_store_unavailable") == 1);

  // An event now is refused, not acked: the phone keeps it and sends it again later.
  phone.send_text(check_in("in-V2", "V2"));
  const json::value refused = phone.next();
  CHECK(str(refused, "type") == "error");
  CHECK(str(refused, "code") == "internal");
  CHECK_THAT(str(refused, "message"), Catch::Contains("send it again"));

  // V1's start passes with no check-in: the board is told although nothing can be written.
  const json::value late = board.next_of("alert", 15s);
  CHECK(str(late.at("alert"), "kind") == "late");
  CHECK(str(late.at("alert"), "visit") == "V1");

  redis.start();
  REQUIRE(readyz_when(d, 200).status == 200);
  CHECK(sample(d.http("GET", "/metrics").body, "visitd_store_unavailable") == 0);
  phone.send_text(check_in("in-V2", "V2"));
  CHECK(str(phone.next(), "status") == "accepted");
  const std::string admin = token(Role::admin, "root", {"*"});
  CHECK(str(d.api("GET", "/api/visits/V2", admin).json(), "state") == "in_progress");
}

TEST_CASE("A Redis that does not fsync every write is refused, or allowed with a warning",
          "[redis]") {
  RedisServer redis({"--appendfsync", "everysec"});
  try {
    Daemon refused(on_redis(redis));
    FAIL("the daemon started on a Redis with appendfsync everysec");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("appendfsync is"));
  }

  DaemonConfig config = on_redis(redis);
  config.store.push_back({"allow_unsafe_fsync", "true"});
  Daemon d(config);
  const HttpResponse ready = d.http("GET", "/readyz");
  CHECK(ready.status == 200);
  CHECK_THAT(str(ready.json(), "warning"), Catch::Contains("may lose acknowledged events"));
  CHECK(sample(d.http("GET", "/metrics").body, "visitd_store_unsafe_fsync") == 1);
}

TEST_CASE(
    "Two daemons on one keyspace: the standby serves phones and a live board, when the owner is "
    "killed the standby takes over within the lease, with every acked event, fires what falls "
    "due, and pages nobody twice",
    "[redis]") {
  RedisServer redis;
  Receiver hook;
  const auto config_for = [&](const char* id) {
    DaemonConfig c = on_redis(redis);
    c.store.push_back({"daemon_id", std::string("\"") + id + "\""});
    c.store.push_back({"lease_ttl", "\"1s\""});
    c.thresholds = {{"late_after", "\"2s\""}, {"missed_after", "\"1h\""}};
    c.tables = "[[receivers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"" + hook.url() +
               "/hook\"\n[escalation]\ngroup_wait = \"0s\"\n"
               "warning = [ { after = \"0s\", notify = [\"hook\"] } ]\n";
    return c;
  };
  Daemon a(config_for("daemon-a"));
  // V1 is late at once and pages; V2 falls due 8 s from now, after the owner is gone; V3's
  // carer checks in a minute early (no alert, no page).
  a.import_rota("B1", rota_csv({visit("V1", "C1", now() - 1min), visit("V2", "C2", now() + 6s),
                                visit("V3", "C3", now() + 1min)}));
  REQUIRE(hook.wait_for(1, 15s).size() == 1);

  // The standby listens at once, follows the owner's writes, and says it is a standby.
  Daemon b(config_for("daemon-b"));
  const HttpResponse standby = b.http("GET", "/readyz");
  CHECK(standby.status == 503);
  CHECK_THAT(str(standby.json(), "reason"), Catch::Contains("standby: daemon-a owns the store"));
  CHECK_THAT(b.log(), Catch::Contains("held_by=daemon-a"));
  const std::string status = status_of(a.dir() / "visitd.toml");
  CHECK_THAT(status, Catch::Contains("owner     daemon-a (epoch 1)"));
  CHECK_THAT(status, Catch::Contains("standby   daemon-b follows: read to seq"));
  const std::string admin = token(Role::admin, "root", {"*"});
  WsClient board = WsClient::with_token(b.port(), "/ws/board", admin);
  const json::value snapshot = board.next();
  REQUIRE(str(snapshot, "type") == "snapshot");
  CHECK(snapshot.at("alerts").as_array().size() == 1);  // V1's, raised by the owner

  // A phone on the standby is served: its check-in goes to the owner, which decides and
  // records it, and the answer comes back through the standby once its replica has it; a
  // resend is answered as the duplicate it is. The standby's board sees the check-in.
  {
    WsClient phone = WsClient::with_token(b.port(), "/ws/carer", token(Role::carer, "C3"));
    REQUIRE(str(phone.next(), "type") == "rota");
    phone.send_text(check_in("in-V3", "V3"));
    const json::value ack = phone.next();
    CHECK(str(ack, "type") == "ack");
    CHECK(str(ack, "status") == "accepted");
    phone.send_text(check_in("in-V3", "V3"));
    CHECK(str(phone.next(), "status") == "duplicate");
  }
  CHECK(str(a.api("GET", "/api/visits/V3", admin).json(), "state") == "in_progress");
  // (Earlier deltas tell of the phone that came and went.)
  std::string v3_state;
  for (int i = 0; i < 5 && v3_state != "in_progress"; ++i) {
    const json::value delta = board.next_of("visit", 5s);
    if (str(delta.at("visit"), "id") == "V3") v3_state = str(delta.at("visit"), "state");
  }
  CHECK(v3_state == "in_progress");

  // A rota imported on the standby is decided by the owner too, and both show it; a rota
  // the owner refuses comes back through the standby with its problems, line by line.
  {
    const auto [date, start] = tomorrow();
    const auto put = [&, date = date](const std::string& csv) {
      return b.api("PUT", "/api/rota?branch=B1&date=" + date, admin, csv, "text/csv");
    };
    const HttpResponse imported = put(rota_csv({visit("V4", "C3", start)}));
    INFO(imported.body);
    REQUIRE(imported.status == 200);
    CHECK(imported.json().at("imported").to_number<int>() == 1);
    CHECK(str(b.api("GET", "/api/visits/V4", admin).json(), "state") == "scheduled");
    CHECK(str(a.api("GET", "/api/visits/V4", admin).json(), "state") == "scheduled");
    const HttpResponse refused = put(rota_csv({visit("V1", "C1", start)}));
    INFO(refused.body);
    CHECK(refused.status == 400);
    const json::value error = refused.json().at("error");
    CHECK(str(error, "code") == "bad_rota");
    const json::array& details = error.at("details").as_array();
    REQUIRE(details.size() == 1);
    CHECK(details[0].at("line").to_number<int>() == 2);
    CHECK(str(details[0], "field") == "visit_id");
    CHECK_THAT(str(details[0], "message"), Catch::Contains("is on the rota of " + today()));
  }

  // A standby keeps the owner's settings: a reload is refused (and leaves it able to take
  // over; it puts its file's settings in force then).
  b.reload(config_for("daemon-b"));
  const auto reloaded = std::chrono::steady_clock::now() + 5s;
  while (b.log().find("reload_refused") == std::string::npos) {
    REQUIRE(std::chrono::steady_clock::now() < reloaded);
    std::this_thread::sleep_for(20ms);
  }
  CHECK_THAT(b.log(), Catch::Contains("a standby keeps the owner's settings"));

  const auto killed = std::chrono::steady_clock::now();
  a.kill9();
  REQUIRE(readyz_when(b, 200, 15s).status == 200);
  const auto took = std::chrono::steady_clock::now() - killed;
  const auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  std::fprintf(stderr, "failover: the standby was ready %lld ms after the owner was killed\n",
               static_cast<long long>(took_ms));
  INFO("takeover took " << took_ms << " ms");
  CHECK(took < 1s + 4s);  // the lease, then reading the stream's end (a loaded CI machine)
  CHECK_THAT(b.log(), Catch::Contains("redis_promoted"));
  const std::string after = status_of(b.dir() / "visitd.toml");
  CHECK_THAT(after, Catch::Contains("owner     daemon-b (epoch 2)"));
  CHECK_THAT(after, !Catch::Contains("standby   daemon-b"));

  // The acked check-in is there; V2's late alert fires on the new owner, pages, and reaches
  // the board that stayed connected through the takeover; V1's page is not sent again.
  CHECK(str(b.api("GET", "/api/visits/V3", admin).json(), "state") == "in_progress");
  {
    // It decides now: the resend of the check-in it forwarded is a duplicate.
    WsClient phone = WsClient::with_token(b.port(), "/ws/carer", token(Role::carer, "C3"));
    REQUIRE(str(phone.next(), "type") == "rota");
    phone.send_text(check_in("in-V3", "V3"));
    CHECK(str(phone.next(), "status") == "duplicate");
  }
  const json::value late = board.next_of("alert", 15s);
  CHECK(str(late.at("alert"), "visit") == "V2");
  CHECK(str(late.at("alert"), "kind") == "late");
  const auto pages = hook.wait_for(2, 15s);
  REQUIRE(pages.size() == 2);
  std::this_thread::sleep_for(2500ms);
  const auto all = hook.received();
  std::multiset<std::string> visits;
  for (const auto& page : all) {
    const json::value body = page.json();
    for (const auto& alert : body.at("alerts").as_array()) visits.insert(str(alert, "visit"));
  }
  CHECK(visits == std::multiset<std::string>{"V1", "V2"});
  CHECK(all[0].idempotency_key != all[1].idempotency_key);
  CHECK(b.stop() == 0);  // a graceful stop of a promoted standby
}

TEST_CASE(
    "Three daemons, phones on each: the owner killed under load loses no acked event, a "
    "standby takes over and the other forwards to it",
    "[redis]") {
  RedisServer redis;
  const auto config_for = [&](const char* id) {
    DaemonConfig c = on_redis(redis);
    c.store.push_back({"daemon_id", std::string("\"") + id + "\""});
    c.store.push_back({"lease_ttl", "\"1s\""});
    return c;
  };
  constexpr int kCarers = 45;
  std::vector<VisitRow> rows;
  for (int i = 0; i < kCarers; ++i) {
    rows.push_back(visit("V" + std::to_string(i), "C" + std::to_string(i), now() + 30min));
  }
  std::vector<std::unique_ptr<Daemon>> daemons;
  daemons.push_back(std::make_unique<Daemon>(config_for("daemon-a")));
  daemons[0]->import_rota("B1", rota_csv(rows));
  daemons.push_back(std::make_unique<Daemon>(config_for("daemon-b")));
  daemons.push_back(std::make_unique<Daemon>(config_for("daemon-c")));
  std::vector<unsigned short> ports;
  for (const auto& d : daemons) ports.push_back(d->port());

  // Three phones' worth of carers, each on its own daemon first; a carer whose event is not
  // acked (refused, no answer, the socket gone) sends it again on the next daemon.
  std::atomic<bool> a_dead{false};
  std::atomic<int> acked{0};
  std::atomic<int> through_standbys{0};  // acked by b or c while a still owned the store
  std::mutex mu;
  std::set<std::string> acked_visits;
  std::vector<std::string> failures;
  const auto worker = [&](int first) {
    int daemon = first;
    for (int i = first; i < kCarers; i += 3) {
      const std::string carer = "C" + std::to_string(i);
      const std::string v = "V" + std::to_string(i);
      bool done = false;
      for (int attempt = 0; attempt < 40 && !done; ++attempt) {
        if (daemon == 0 && a_dead.load()) daemon = 1 + first % 2;
        try {
          WsClient phone = WsClient::with_token(ports[std::size_t(daemon)], "/ws/carer",
                                                token(Role::carer, carer));
          if (phone.status() == 101 && str(phone.next(), "type") == "rota") {
            phone.send_text(check_in("in-" + v, v));
            const json::value answer = phone.next(8s);
            const std::string status = str(answer, "status");
            done = status == "accepted" || status == "duplicate";
            if (done && daemon != 0 && !a_dead.load()) ++through_standbys;
          }
        } catch (const std::exception&) {
          // The daemon went away, or did not answer in time: the phone tries again.
        }
        if (!done) {
          daemon = (daemon + 1) % 3;
          std::this_thread::sleep_for(100ms);
        }
      }
      const std::lock_guard lock(mu);
      if (done) {
        acked_visits.insert(v);
        ++acked;
      } else {
        failures.push_back(v);
      }
    }
  };
  std::vector<std::thread> phones;
  for (int first = 0; first < 3; ++first) phones.emplace_back(worker, first);
  while (acked.load() < 10) std::this_thread::sleep_for(5ms);
  daemons[0]->kill9();
  a_dead.store(true);
  for (auto& t : phones) t.join();
  INFO("never acked: " << failures.size());
  CHECK(failures.empty());
  CHECK(through_standbys.load() > 0);  // the standbys forwarded, not only the owner decided
  CHECK(acked_visits.size() == std::size_t(kCarers));

  // One survivor owns the store, the other follows it; every acked check-in is there on both.
  Daemon* owner = nullptr;
  Daemon* standby = nullptr;
  for (std::size_t i = 1; i < 3; ++i) {
    (readyz_when(*daemons[i], 200, 3s).status == 200 ? owner : standby) = daemons[i].get();
  }
  REQUIRE(owner != nullptr);
  REQUIRE(standby != nullptr);
  const std::string admin = token(Role::admin, "root", {"*"});
  for (const std::string& v : acked_visits) {
    INFO(v);
    CHECK(str(owner->api("GET", "/api/visits/" + v, admin).json(), "state") == "in_progress");
  }
  std::this_thread::sleep_for(300ms);  // the standby's replica catches up
  for (const std::string& v : acked_visits) {
    INFO(v);
    CHECK(str(standby->api("GET", "/api/visits/" + v, admin).json(), "state") == "in_progress");
  }
  CHECK(standby->stop() == 0);  // graceful stops, a standby's too
  CHECK(owner->stop() == 0);
}

TEST_CASE("A daemon whose lease another took stops writing and exits", "[redis]") {
  RedisServer redis;
  DaemonConfig config = on_redis(redis);
  config.store.push_back({"daemon_id", "\"first\""});
  config.store.push_back({"lease_ttl", "\"1s\""});
  Daemon d(config);
  d.import_rota("B1", rota_csv({visit("V1", "C1", today_at(-5min))}));
  // As if it had been paused past its lease and another daemon had taken over.
  REQUIRE(redis.command("SET visitd:{agency}:lease other") == "+OK\r\n");
  REQUIRE(redis.command("INCR visitd:{agency}:epoch").rfind(":", 0) == 0);
  // It stops by itself (a SIGTERM from here could land after its handler is gone).
  CHECK(d.wait_exit(10s) == 1);
  CHECK_THAT(d.log(), Catch::Contains("redis_lease_lost"));
  CHECK_THAT(d.log(), Catch::Contains("stopped"));
  // Nothing it decided after losing the lease reached the stream: the epoch fenced it.
  CHECK(redis.command("XLEN visitd:{agency}:log") == ":2\r\n");  // settings + the import
}
