// Escalation inside the engine, with an injected clock: the ladder frozen on an alert when it
// triggers, steps firing at their times, an ack stopping it, the ack timeout re-triggering
// it (a limited number of times), a severity rise starting the new severity's ladder, and a
// restored snapshot carrying on exactly where the ladder stood.

#include <catch2/catch.hpp>
#include <memory>

#include "visitd/core/time.hpp"
#include "visitd/rota/engine.hpp"
#include "visitd/rota/import.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::rota;

namespace {

TimePoint at(const char* rfc3339) { return *parse_rfc3339(rfc3339); }

config::Settings agency() {
  config::Settings s;
  s.branches.push_back(config::Branch{"B1", "North", "Europe/London", {}});
  // late at +15m, missed at +60m (the defaults); time-critical: late +5m, missed +30m.
  s.thresholds.time_critical.late_after = 5min;
  s.thresholds.time_critical.missed_after = 30min;
  s.escalation.ack_timeout = 20min;
  s.escalation.max_reopens = 2;
  s.escalation.warning = {{10min, {"office"}}, {30min, {"oncall"}}};
  s.escalation.critical = {{0s, {"oncall"}}, {15min, {"manager"}}};
  return s;
}

const Fix kAtHome{{51.50141, -0.14191}, 10};

VisitPlan plan(std::string id, const char* start, const char* end, bool time_critical = false) {
  VisitPlan p;
  p.id = std::move(id);
  p.client = ClientPlan{"CL-" + p.id, "Mrs " + p.id, {51.5014, -0.1419}, std::nullopt, ""};
  p.carers = {"C1"};
  p.start = at(start);
  p.end = at(end);
  p.time_critical = time_critical;
  return p;
}

struct Day {
  std::shared_ptr<config::Settings> settings = std::make_shared<config::Settings>(agency());
  std::unique_ptr<Engine> engine = std::make_unique<Engine>(*settings, at("2026-11-23T00:00:00Z"));
  TimePoint now = at("2026-11-23T06:00:00Z");
  Effects fx;

  explicit Day(std::vector<VisitPlan> visits) {
    ImportRota import{"B1", LocalDays(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch()),
                      std::move(visits), "office"};
    REQUIRE(engine->apply(import, now, fx).status == Status::accepted);
  }
  Reply apply(const Command& c) {
    fx.clear();
    return engine->apply(c, now, fx);
  }
  void advance_to(const char* t) {
    now = at(t);
    fx.clear();
    engine->advance(now, fx);
  }
  const Alert& start_alert(const char* visit) {
    const AlertIndex a = engine->visit(*engine->find_visit(visit)).alerts[0];
    REQUIRE(a != kNoIndex);
    return engine->alert(a);
  }
  int count(AlertTransition t) const {
    int n = 0;
    for (const auto& e : fx) n += e.kind == Effect::Kind::alert_changed && e.transition == t;
    return n;
  }
};

}  // namespace

TEST_CASE("Escalation: a check-in inside the grace before the first step pages nobody") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T09:15:00Z");  // late: the warning ladder is frozen on it
  const Alert& a = day.start_alert("V1");
  CHECK(a.state == AlertState::triggered);
  CHECK(day.engine->ladder(a).size() == 2);
  CHECK(a.escalation_level == 0);

  day.now = at("2026-11-23T09:24:00Z");
  day.apply(CheckIn{"e1", "C1", "V1", day.now, kAtHome, Method::gps, ""});
  CHECK(a.state == AlertState::resolved);
  day.advance_to("2026-11-23T12:00:00Z");
  CHECK(day.count(AlertTransition::escalated) == 0);
  CHECK(a.escalation_level == 0);
  CHECK(day.engine->pending_deadlines() == 1);  // only the visit's own end deadline
}

TEST_CASE("Escalation: steps fire at the alert's trigger time plus their `after`, in order") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T11:30:00Z")});
  day.advance_to("2026-11-23T09:15:00Z");
  const Alert& a = day.start_alert("V1");

  day.advance_to("2026-11-23T09:24:59Z");
  CHECK(a.escalation_level == 0);
  const auto seq = a.seq;
  day.advance_to("2026-11-23T09:25:00Z");
  CHECK(a.escalation_level == 1);
  CHECK(day.count(AlertTransition::escalated) == 1);
  CHECK(a.seq == seq + 1);
  CHECK(a.updated_at == at("2026-11-23T09:25:00Z"));

  // Missed at 10:00 rises to critical before the warning ladder's second step (09:45)? No:
  // 09:45 comes first, so the second warning step fires, then the rise restarts the ladder.
  day.advance_to("2026-11-23T09:45:00Z");
  CHECK(a.escalation_level == 2);
  day.advance_to("2026-11-23T09:59:59Z");
  CHECK(day.count(AlertTransition::escalated) == 0);
}

TEST_CASE("Escalation: an ack stops the ladder, the ack timeout re-triggers it where it stood") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T11:30:00Z")});
  day.settings->escalation.ack_timeout = 5min;  // to come back before missed (10:00)
  day.advance_to("2026-11-23T09:25:00Z");       // late at 09:15, first step at 09:25
  const Alert& a = day.start_alert("V1");
  REQUIRE(a.escalation_level == 1);

  day.now = at("2026-11-23T09:26:00Z");
  CHECK(day.apply(AckAlert{a.id(), "coordinator", "calling her"}).status == Status::accepted);
  CHECK(a.state == AlertState::acknowledged);
  day.advance_to("2026-11-23T09:30:59Z");
  CHECK(a.state == AlertState::acknowledged);

  day.advance_to("2026-11-23T09:31:00Z");  // 09:26 + ack_timeout
  CHECK(day.count(AlertTransition::reopened) == 1);
  CHECK(a.state == AlertState::triggered);
  CHECK(a.acked_by.empty());
  CHECK(a.reopens == 1);
  // The ladder goes on as if from the step that paged last: step 2 came 20 min after step 1.
  day.advance_to("2026-11-23T09:50:59Z");
  CHECK(a.escalation_level == 1);
  day.advance_to("2026-11-23T09:51:00Z");
  CHECK(a.escalation_level == 2);
  CHECK(day.count(AlertTransition::escalated) == 1);
}

TEST_CASE("Escalation: an ack before the second step keeps it from firing") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T11:30:00Z")});
  day.advance_to("2026-11-23T09:25:00Z");
  const Alert& a = day.start_alert("V1");
  day.now = at("2026-11-23T09:30:00Z");
  REQUIRE(day.apply(AckAlert{a.id(), "coordinator", ""}).status == Status::accepted);
  day.advance_to("2026-11-23T09:49:59Z");  // the second step was due at 09:45
  CHECK(a.escalation_level == 1);
  CHECK(day.count(AlertTransition::escalated) == 0);
  CHECK(a.state == AlertState::acknowledged);
}

TEST_CASE("Escalation: after max_reopens ack timeouts an acknowledged alert stays acknowledged") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T13:30:00Z")});
  day.settings->escalation.ack_timeout = 5min;  // max_reopens = 2
  day.advance_to("2026-11-23T09:25:00Z");
  const Alert& a = day.start_alert("V1");
  int reopened = 0;
  for (const char* t : {"2026-11-23T09:26:00Z", "2026-11-23T09:32:00Z", "2026-11-23T09:38:00Z"}) {
    day.now = at(t);
    REQUIRE(day.apply(AckAlert{a.id(), "coordinator", ""}).status == Status::accepted);
    day.advance_to(format_rfc3339(day.now + 5min).c_str());
    reopened += day.count(AlertTransition::reopened);
  }
  CHECK(reopened == 2);
  CHECK(a.reopens == 2);
  day.advance_to("2026-11-23T09:59:00Z");
  CHECK(a.state == AlertState::acknowledged);
  CHECK(a.escalation_level == 1);
}

TEST_CASE("Escalation: late → missed re-triggers an acknowledged alert on the critical ladder") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T09:25:00Z");
  const Alert& a = day.start_alert("V1");
  day.now = at("2026-11-23T09:26:00Z");
  REQUIRE(day.apply(AckAlert{a.id(), "office", ""}).status == Status::accepted);

  day.advance_to("2026-11-23T10:00:00Z");  // missed: critical, whose first step is at 0s
  CHECK(a.kind == AlertKind::missed);
  CHECK(a.state == AlertState::triggered);
  CHECK(day.count(AlertTransition::severity_rose) == 1);
  CHECK(day.count(AlertTransition::escalated) == 1);
  CHECK(a.escalation_level == 1);
  CHECK(day.engine->ladder(a)[0].notify == std::vector<std::string>{"oncall"});
  day.advance_to("2026-11-23T10:15:00Z");
  CHECK(a.escalation_level == 2);
  CHECK(day.engine->ladder(a)[1].notify == std::vector<std::string>{"manager"});
}

TEST_CASE("Escalation: time-critical visits take the time_critical ladder, info never pages") {
  auto s = agency();
  s.escalation.time_critical = {{0s, {"medication-line"}}};
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z", true)});
  *day.settings = s;  // the engine reads its settings when an alert triggers
  day.advance_to("2026-11-23T09:05:00Z");
  const Alert& a = day.start_alert("V1");
  CHECK(a.severity == Severity::critical);
  CHECK(a.escalation_level == 1);
  CHECK(day.engine->ladder(a)[0].notify == std::vector<std::string>{"medication-line"});

  // Overrunning is an info alert: no ladder at all.
  day.now = at("2026-11-23T09:06:00Z");
  day.apply(CheckIn{"e1", "C1", "V1", day.now, kAtHome, Method::gps, ""});
  day.advance_to("2026-11-23T11:00:00Z");
  const AlertIndex overrun = day.engine->visit(0).alerts[std::size_t(AlertPhase::end)];
  REQUIRE(overrun != kNoIndex);
  CHECK(day.engine->alert(overrun).severity == Severity::info);
  CHECK(day.engine->ladder(day.engine->alert(overrun)).empty());
  CHECK(day.count(AlertTransition::escalated) == 0);
}

TEST_CASE("Escalation: a snapshot in the middle of a ladder restores to the same next step") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T11:30:00Z"),
           plan("V2", "2026-11-23T09:10:00Z", "2026-11-23T11:30:00Z")});
  day.advance_to("2026-11-23T09:26:00Z");
  day.now = at("2026-11-23T09:27:00Z");
  REQUIRE(day.apply(AckAlert{day.start_alert("V2").id(), "office", ""}).status == Status::accepted);

  auto restored = Engine::restore(day.settings, day.engine->snapshot());
  REQUIRE(restored);
  CHECK((*restored)->canonical_dump() == day.engine->canonical_dump());

  // Whatever the next hours bring (steps, an ack timeout, the rise to missed), both agree.
  for (const char* t : {"2026-11-23T09:45:00Z", "2026-11-23T09:47:00Z", "2026-11-23T10:00:00Z",
                        "2026-11-23T10:10:00Z", "2026-11-23T10:30:00Z"}) {
    Effects a;
    Effects b;
    day.engine->advance(at(t), a);
    (*restored)->advance(at(t), b);
    CHECK(a == b);
    CHECK((*restored)->canonical_dump() == day.engine->canonical_dump());
  }
}

TEST_CASE("Escalation: a reload changes the ladders of new alerts, not the frozen ones") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T11:30:00Z"),
           plan("V2", "2026-11-23T09:30:00Z", "2026-11-23T11:30:00Z")});
  day.advance_to("2026-11-23T09:15:00Z");
  auto next = std::make_shared<config::Settings>(*day.settings);
  next->escalation.warning = {{1min, {"somebody-else"}}};
  Effects fx;
  REQUIRE_FALSE(day.engine->reconfigure(next, day.now, fx));
  day.advance_to("2026-11-23T09:46:00Z");  // V1's frozen ladder: 09:25, 09:45; V2 late 09:45
  CHECK(day.start_alert("V1").escalation_level == 2);
  CHECK(day.engine->ladder(day.start_alert("V1"))[0].notify == std::vector<std::string>{"office"});
  CHECK(day.start_alert("V2").escalation_level == 1);
  CHECK(day.engine->ladder(day.start_alert("V2"))[0].notify ==
        std::vector<std::string>{"somebody-else"});
}

TEST_CASE("A clone is the same state and then goes its own way") {
  Day day({plan("V1", "2026-11-23T09:00:00Z", "2026-11-23T11:30:00Z")});
  day.advance_to("2026-11-23T09:25:00Z");
  const auto copy = day.engine->clone();
  CHECK(copy->canonical_dump() == day.engine->canonical_dump());
  CHECK(copy->snapshot() == day.engine->snapshot());

  day.advance_to("2026-11-23T10:30:00Z");  // the original moves on; the copy does not
  CHECK(copy->canonical_dump() != day.engine->canonical_dump());
  CHECK(copy->alert(0).escalation_level == 1);
  Effects fx;
  copy->advance(at("2026-11-23T10:30:00Z"), fx);
  CHECK(copy->canonical_dump() == day.engine->canonical_dump());
}
