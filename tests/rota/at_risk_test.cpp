// "At risk" in the engine, with an injected clock (issue 8): a carer's arrival at their next
// visit estimated from where they are (a visit under way, a location fix, a check-out), the
// start alert raised as at_risk before it is late, rising in place, resolving when the
// estimate comes back; a late alert whose cause is known (an overrunning previous visit, the
// carer's own running_late eta) that waits before it pages; all of it across snapshots.

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <string_view>

#include "visitd/core/time.hpp"
#include "visitd/rota/engine.hpp"
#include "visitd/rota/import.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::rota;

namespace {

TimePoint at(const char* rfc3339) { return *parse_rfc3339(rfc3339); }

// Mrs A's home, and Mrs B's 10 km due north of it: 10 km x 1.4 (road) at 30 km/h = 28 min.
const geo::LatLon kHomeA{51.5014, -0.1419};
const geo::LatLon kHomeB{51.5014 + 0.08983, -0.1419};
const Fix kNearB{{51.5014 + 0.0880, -0.1419}, 10};  // about 230 m from Mrs B's
const Fix kAtA{{51.50141, -0.14191}, 10};

config::Settings agency() {
  config::Settings s;
  s.branches.push_back(config::Branch{"B1", "North", "Europe/London", {}});
  // late at +15m, missed at +60m (the defaults); time-critical: late +5m, missed +30m.
  s.thresholds.time_critical.late_after = 5min;
  s.thresholds.time_critical.missed_after = 30min;
  s.escalation.warning = {{0s, {"office"}}, {20min, {"oncall"}}};
  s.escalation.critical = {{0s, {"oncall"}}};
  return s;
}

VisitPlan plan(std::string id, geo::LatLon home, const char* start, const char* end,
               bool time_critical = false) {
  VisitPlan p;
  p.id = std::move(id);
  p.client = ClientPlan{"CL-" + p.id, "Mrs " + p.id, home, std::nullopt, ""};
  p.carers = {"C1"};
  p.start = at(start);
  p.end = at(end);
  p.time_critical = time_critical;
  return p;
}

/// C1 visits Mrs A 09:00-10:00, then Mrs B (28 min away) 10:30-11:00: late at 10:45.
std::vector<VisitPlan> two_visits(bool second_time_critical = false) {
  return {plan("A", kHomeA, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z"),
          plan("B", kHomeB, "2026-11-23T10:30:00Z", "2026-11-23T11:00:00Z", second_time_critical)};
}

struct Day {
  std::shared_ptr<config::Settings> settings;
  std::unique_ptr<Engine> engine;
  TimePoint now = at("2026-11-23T06:00:00Z");
  Effects fx;  ///< every effect since the last clear()
  int event = 0;

  explicit Day(std::vector<VisitPlan> visits, config::Settings s = agency())
      : settings(std::make_shared<config::Settings>(std::move(s))),
        engine(std::make_unique<Engine>(*settings, at("2026-11-23T00:00:00Z"))) {
    ImportRota import{"B1", LocalDays(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch()),
                      std::move(visits), "office"};
    REQUIRE(engine->apply(import, now, fx).status == Status::accepted);
  }
  Reply apply(const Command& c) { return engine->apply(c, now, fx); }
  /// Moves the clock to `t` in one-minute steps, as the daemon's timer would.
  void run_to(const char* t) {
    const TimePoint end = at(t);
    while (now < end) {
      now = std::min(end, now + 1min);
      engine->advance(now, fx);
    }
  }
  std::string id() { return "e" + std::to_string(++event); }
  Reply check_in(const char* visit, const Fix& fix) {
    return apply(CheckIn{id(), "C1", visit, now, fix, Method::gps, ""});
  }
  Reply check_out(const char* visit, const Fix& fix) {
    return apply(CheckOut{id(), "C1", visit, now, fix, Method::gps, "", ""});
  }
  Reply ping(const Fix& fix) { return apply(LocationPing{id(), "C1", now, fix}); }
  /// C1 says they will reach visit B at `eta`.
  Reply running_late(const char* eta, std::string reason = "") {
    return apply(RunningLate{id(), "C1", "B", at(eta), std::move(reason)});
  }

  const Visit& visit(const char* id) const { return engine->visit(*engine->find_visit(id)); }
  const Alert* start_alert(const char* id) const {
    const AlertIndex a = visit(id).alerts[std::size_t(AlertPhase::start)];
    return a == kNoIndex ? nullptr : &engine->alert(a);
  }
  /// Pages so far: escalation steps fired about the visit's start alert.
  int pages(const char* id) const {
    const AlertIndex a = visit(id).alerts[std::size_t(AlertPhase::start)];
    int n = 0;
    for (const Effect& e : fx) {
      n += e.kind == Effect::Kind::alert_changed && e.index == a &&
           e.transition == AlertTransition::escalated;
    }
    return n;
  }
};

/// C1's day of two_visits(), at 09:00 with C1 just checked in at Mrs A's.
struct AtFirstVisit : Day {
  explicit AtFirstVisit(config::Settings s = agency(), bool second_time_critical = false)
      : Day(two_visits(second_time_critical), std::move(s)) {
    run_to("2026-11-23T09:00:00Z");
    REQUIRE(check_in("A", kAtA).status == Status::accepted);
  }
};

}  // namespace

TEST_CASE("An overrunning visit puts the carer's next visit at risk before it is late") {
  AtFirstVisit day;

  // Due to leave at 10:00 with 28 min to drive: inside the window until 10:17.
  day.run_to("2026-11-23T10:17:00Z");
  CHECK(day.start_alert("B") == nullptr);

  day.run_to("2026-11-23T10:18:00Z");
  const Alert* a = day.start_alert("B");
  REQUIRE(a != nullptr);
  CHECK(a->kind == AlertKind::at_risk);
  CHECK(a->severity == Severity::info);
  CHECK(a->state == AlertState::triggered);
  CHECK(a->raised_at > at("2026-11-23T10:17:00Z"));
  CHECK(a->raised_at < at("2026-11-23T10:45:00Z"));  // before the late deadline
  CHECK(day.engine->ladder(*a).empty());             // info: never pages
  const Risk& r = day.visit("B").risk;
  CHECK(r.basis == RiskBasis::overrunning);
  CHECK(r.from == *day.engine->find_visit("A"));
  CHECK(r.since == at("2026-11-23T10:00:00Z"));  // the planned finish it overruns
  CHECK(r.drive == 28min);
  CHECK(r.eta > at("2026-11-23T10:45:00Z"));
  CHECK(day.visit("B").state == VisitState::scheduled);

  SECTION("it rises in place to late, says why, and pages only once missed") {
    day.fx.clear();
    day.run_to("2026-11-23T10:45:00Z");
    const Alert* late = day.start_alert("B");
    CHECK(late == a);  // the same alert
    CHECK(late->kind == AlertKind::late);
    CHECK(late->severity == Severity::warning);
    CHECK(day.visit("B").cause == LateCause::previous_overrun);
    CHECK(late->held);
    day.run_to("2026-11-23T11:29:00Z");
    CHECK(day.pages("B") == 0);  // the office sees why; nobody is woken

    day.run_to("2026-11-23T11:30:00Z");
    CHECK(late->kind == AlertKind::missed);
    CHECK(late->severity == Severity::critical);
    CHECK_FALSE(late->held);
    CHECK(day.pages("B") == 1);
  }

  SECTION("checking out and a ping from nearby bring it back on track") {
    day.run_to("2026-11-23T10:19:00Z");
    REQUIRE(day.check_out("A", kAtA).status == Status::accepted);
    CHECK(a->open());  // left at 10:19 + 28 min: still after 10:45
    day.run_to("2026-11-23T10:40:00Z");
    REQUIRE(day.ping(kNearB).status == Status::accepted);
    CHECK(a->state == AlertState::resolved);
    CHECK(a->resolution == Resolution::on_track);
    CHECK(day.visit("B").risk.basis == RiskBasis::none);
    day.run_to("2026-11-23T10:46:00Z");
    // No check-in yet: late, as before, with a new alert and no known cause.
    const Alert* late = day.start_alert("B");
    REQUIRE(late != nullptr);
    CHECK(late != a);
    CHECK(late->kind == AlertKind::late);
    CHECK(day.visit("B").cause == LateCause::none);
    CHECK(day.pages("B") == 1);  // warning ladder, step at 0s
  }

  SECTION("the carer's check-in resolves it") {
    day.run_to("2026-11-23T10:20:00Z");
    REQUIRE(day.check_out("A", kAtA).status == Status::accepted);
    day.run_to("2026-11-23T10:44:00Z");
    REQUIRE(day.check_in("B", kNearB).status == Status::accepted);
    CHECK(a->resolution == Resolution::checked_in);
  }
}

TEST_CASE("A late visit whose carer is still at an overrunning visit pages when time-critical") {
  AtFirstVisit day(agency(), true);  // B is a medication round: late at 10:35
  day.run_to("2026-11-23T10:35:00Z");
  const Alert* a = day.start_alert("B");
  REQUIRE(a != nullptr);
  CHECK(a->kind == AlertKind::late);
  CHECK(day.visit("B").cause == LateCause::previous_overrun);
  CHECK_FALSE(a->held);
  CHECK(day.pages("B") == 1);
}

TEST_CASE("A carer who left late is at risk from the check-out alone when pings are off") {
  config::Settings s = agency();
  s.tracking.location_pings = false;
  AtFirstVisit day(s);

  SECTION("pings are refused and not kept") {
    const Reply r = day.ping(kNearB);
    REQUIRE(r.status == Status::rejected);
    CHECK(r.error->code == ErrorCode::forbidden);
    CHECK_FALSE(day.engine->carer(*day.engine->find_carer("C1")).last_fix.has_value());
  }
  SECTION("leaving at 10:10 is on track; leaving at 10:20 is not") {
    day.now = at("2026-11-23T10:10:00Z");
    // Device time says 10:10 but the phone was offline: it arrives at 10:12.
    day.engine->advance(at("2026-11-23T10:12:00Z"), day.fx);
    day.now = at("2026-11-23T10:12:00Z");
    REQUIRE(
        day.apply(CheckOut{"o1", "C1", "A", at("2026-11-23T10:10:00Z"), kAtA, Method::gps, "", ""})
            .status == Status::accepted);
    CHECK(day.start_alert("B") == nullptr);  // 10:10 + 28 min = 10:38
  }
}

TEST_CASE("A late check-out keeps the visit at risk, estimated from where and when they left") {
  config::Settings s = agency();
  s.tracking.location_pings = false;
  AtFirstVisit day(s);
  day.run_to("2026-11-23T10:14:00Z");  // still inside: 10:14 + 28 = 10:42
  CHECK(day.start_alert("B") == nullptr);
  day.run_to("2026-11-23T10:20:00Z");  // at risk from 10:17 on, by the recheck deadline
  REQUIRE(day.start_alert("B") != nullptr);
  REQUIRE(day.check_out("A", kAtA).status == Status::accepted);
  const Risk& r = day.visit("B").risk;
  CHECK(r.basis == RiskBasis::left);
  CHECK(r.since == at("2026-11-23T10:20:00Z"));
  CHECK(r.eta == at("2026-11-23T10:48:00Z"));
}

TEST_CASE("A location fix far from the next visit raises at_risk, one nearby resolves it") {
  Day day({plan("B", kHomeB, "2026-11-23T10:30:00Z", "2026-11-23T11:00:00Z")});
  day.run_to("2026-11-23T10:15:00Z");
  REQUIRE(day.ping(kAtA).status == Status::accepted);  // 28 min away at 10:15: 10:43
  CHECK(day.start_alert("B") == nullptr);
  day.run_to("2026-11-23T10:20:00Z");
  REQUIRE(day.ping(kAtA).status == Status::accepted);  // still there at 10:20: 10:48
  const Alert* a = day.start_alert("B");
  REQUIRE(a != nullptr);
  CHECK(a->kind == AlertKind::at_risk);
  CHECK(day.visit("B").risk.basis == RiskBasis::location);

  SECTION("pings closer together than min_ping_interval do not estimate again") {
    day.now += 30s;
    REQUIRE(day.ping(kNearB).status == Status::accepted);
    CHECK(a->open());
    day.now += 30s;
    REQUIRE(day.ping(kNearB).status == Status::accepted);
    CHECK(a->resolution == Resolution::on_track);
  }
}

TEST_CASE("Running late: no page while the carer's eta is to come, a page once it passes") {
  Day day({plan("B", kHomeB, "2026-11-23T10:30:00Z", "2026-11-23T11:00:00Z")});
  day.run_to("2026-11-23T10:20:00Z");
  REQUIRE(day.running_late("2026-11-23T11:05:00Z", "traffic").status == Status::accepted);
  // The carer's own word puts it at risk at once.
  const Alert* a = day.start_alert("B");
  REQUIRE(a != nullptr);
  CHECK(a->kind == AlertKind::at_risk);
  CHECK(day.visit("B").risk.basis == RiskBasis::stated);
  CHECK(day.visit("B").risk.eta == at("2026-11-23T11:05:00Z"));

  day.run_to("2026-11-23T11:04:00Z");
  CHECK(a->kind == AlertKind::late);
  CHECK(day.visit("B").cause == LateCause::running_late);
  CHECK(a->held);
  CHECK(day.pages("B") == 0);

  SECTION("the eta passes without a check-in: it pages") {
    day.run_to("2026-11-23T11:05:00Z");
    CHECK_FALSE(a->held);
    CHECK(day.pages("B") == 1);
    CHECK(a->kind == AlertKind::late);
  }
  SECTION("the carer checks in just before the eta: it never paged") {
    day.now = at("2026-11-23T11:04:59Z");
    REQUIRE(day.check_in("B", kNearB).status == Status::accepted);
    day.run_to("2026-11-23T12:00:00Z");
    CHECK(a->resolution == Resolution::checked_in);
    CHECK(day.pages("B") == 0);
  }
}

TEST_CASE(
    "Running late after the late alert paged holds its next step, an eta past missed does not") {
  Day day({plan("B", kHomeB, "2026-11-23T10:30:00Z", "2026-11-23T11:00:00Z")});
  day.run_to("2026-11-23T10:46:00Z");
  const Alert* a = day.start_alert("B");
  REQUIRE(a != nullptr);
  CHECK(day.pages("B") == 1);  // the office, at once

  SECTION("eta within missed_after: the on-call step at +20 min waits") {
    REQUIRE(day.running_late("2026-11-23T11:20:00Z").status == Status::accepted);
    CHECK(a->held);
    day.run_to("2026-11-23T11:19:00Z");
    CHECK(day.pages("B") == 1);
    day.run_to("2026-11-23T11:21:00Z");
    CHECK(day.pages("B") == 2);  // the eta passed: the on-call step, not the office again
  }
  SECTION("eta after missed_after: the ladder goes on") {
    REQUIRE(day.running_late("2026-11-23T11:40:00Z").status == Status::accepted);
    CHECK_FALSE(a->held);
    day.run_to("2026-11-23T11:06:00Z");
    CHECK(day.pages("B") == 2);
  }
}

TEST_CASE("With at_risk off no visit is ever at risk, and lateness pages as before") {
  config::Settings s = agency();
  s.tracking.at_risk = false;
  AtFirstVisit day(s);
  day.run_to("2026-11-23T10:44:00Z");
  CHECK(day.start_alert("B") == nullptr);
  day.run_to("2026-11-23T10:45:00Z");
  REQUIRE(day.start_alert("B") != nullptr);
  CHECK(day.start_alert("B")->kind == AlertKind::late);
  // The cause is still known and still holds the page.
  CHECK(day.visit("B").cause == LateCause::previous_overrun);
  CHECK(day.pages("B") == 0);
}

TEST_CASE("At-risk state survives a snapshot and a clone: both carry on as the original") {
  AtFirstVisit day;
  day.run_to("2026-11-23T10:00:00Z");  // the recheck deadline (10:17) is pending
  const std::string bytes = day.engine->snapshot();
  REQUIRE(bytes.substr(4, 1) == std::string(1, '\x03'));  // format 3
  auto restored = Engine::restore(*day.settings, bytes);
  REQUIRE(restored);
  std::unique_ptr<Engine> copy = day.engine->clone();
  CHECK((*restored)->canonical_dump() == day.engine->canonical_dump());

  std::vector<Engine*> engines{day.engine.get(), restored->get(), copy.get()};
  for (const char* t : {"2026-11-23T10:18:00Z", "2026-11-23T10:45:00Z", "2026-11-23T11:30:00Z"}) {
    for (Engine* e : engines) {
      Effects fx;
      e->advance(at(t), fx);
    }
    CHECK((*restored)->canonical_dump() == day.engine->canonical_dump());
    CHECK(copy->canonical_dump() == day.engine->canonical_dump());
  }
  const Visit& b = day.visit("B");
  CHECK(b.cause == LateCause::previous_overrun);
  CHECK(day.engine->alert(b.alerts[0]).kind == AlertKind::missed);
}

TEST_CASE("A snapshot of a format newer than this build is refused with the formats it reads") {
  AtFirstVisit day;
  day.run_to("2026-11-23T10:30:00Z");
  std::string bytes = day.engine->snapshot();
  bytes[4] = '\x04';  // a newer format than this build reads
  const auto refused = Engine::restore(*day.settings, bytes);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("1 to 3") != std::string::npos);
}

namespace {

// The at_risk_test day as visitd at 453920e (snapshot format 2, before at-risk) saved it at
// 10:00, C1 checked in at Mrs A's since 09:00 (written by that build's Engine::snapshot()).
constexpr std::string_view kFormat2AtTen =
    "56534e50028084c9fdc068010242310204434c2d41054d72732041711b0de02dc049400bb5a679c729c2bf00"
    "0004434c2d42054d727320420035b56cadcb49400bb5a679c729c2bf00000102433102000100000201410000"
    "010080ca91fac0688084c9fdc0680d706572736f6e616c5f636172650000d8c402030000010002653180ca91"
    "fac06880ca91fac06880ca91fac0680195f1ef332ec0494099d87c5c1b2ac2bf0000000000002440e434638b"
    "dafbf43f000000000000000000000001420001010080e1a4ffc06880be8081c1680d706572736f6e616c5f63"
    "6172650000d8c40200000000000000000000000000000001f6c1e8ded7d5fecdb201f3d8ff87c5e3f8860901"
    "030000000201c0f2b6fec06804c0cf9280c168";

std::string from_hex(std::string_view hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes += char(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return bytes;
}

}  // namespace

TEST_CASE("A snapshot of format 2 (before at-risk) is read, and the day goes on with at-risk") {
  const std::string bytes = from_hex(kFormat2AtTen);
  REQUIRE(bytes[4] == 2);
  Day day(two_visits());  // for its settings; the engine is the restored one
  auto restored = Engine::restore(*day.settings, bytes);
  REQUIRE(restored);
  day.engine = std::move(*restored);
  day.now = day.engine->now();
  CHECK(day.now == at("2026-11-23T10:00:00Z"));
  CHECK(day.visit("A").state == VisitState::in_progress);
  CHECK(day.visit("B").risk.basis == RiskBasis::none);  // what format 2 did not have

  SECTION("the late visit still waits for missed: its cause is read from the state") {
    day.run_to("2026-11-23T10:45:00Z");
    const Alert* a = day.start_alert("B");
    REQUIRE(a != nullptr);
    CHECK(a->kind == AlertKind::late);
    CHECK(day.visit("B").cause == LateCause::previous_overrun);
    CHECK(day.pages("B") == 0);
  }
  SECTION("the carer's next event estimates again") {
    day.run_to("2026-11-23T10:20:00Z");
    // "e1" was the check-in's id: decided before the snapshot, still a duplicate after it.
    REQUIRE(day.check_out("A", kAtA).status == Status::duplicate);
    REQUIRE(day.check_out("A", kAtA).status == Status::accepted);
    const Alert* a = day.start_alert("B");
    REQUIRE(a != nullptr);
    CHECK(a->kind == AlertKind::at_risk);
    CHECK(day.visit("B").risk.eta == at("2026-11-23T10:48:00Z"));
  }
}

TEST_CASE("The office sees where a carer was last located only while the carer is on shift") {
  // C1's shift: 08:00 (an hour before Mrs A's) to 12:00 (an hour after Mrs B's).
  Day day(two_visits());
  const CarerIndex c1 = *day.engine->find_carer("C1");
  day.run_to("2026-11-23T08:10:00Z");
  CHECK_FALSE(day.engine->last_seen(c1, day.now));  // nothing recorded yet
  REQUIRE(day.ping(kAtA).status == Status::accepted);
  const auto seen = day.engine->last_seen(c1, day.now);
  REQUIRE(seen);
  CHECK(seen->at == at("2026-11-23T08:10:00Z"));
  CHECK(seen->fix.position.lat == kAtA.position.lat);
  CHECK(day.engine->last_seen(c1, at("2026-11-23T12:00:00Z")));
  // Off shift, the fix is not shown, though the engine keeps it (until retention drops it).
  CHECK_FALSE(day.engine->last_seen(c1, at("2026-11-23T12:01:00Z")));

  // The next day's shift does not show the day before's fix either.
  ImportRota tomorrow{"B1",
                      LocalDays(std::chrono::sys_days(2026y / 11 / 24).time_since_epoch()),
                      {plan("C", kHomeA, "2026-11-24T09:00:00Z", "2026-11-24T10:00:00Z")},
                      "office"};
  REQUIRE(day.apply(tomorrow).status == Status::accepted);
  CHECK_FALSE(day.engine->last_seen(c1, at("2026-11-24T08:30:00Z")));
}
