// The tracking engine, one behaviour at a time, with an injected clock: every transition and
// flag of ../shared/design.md's visit lifecycle, and every error a carer can meet.

#include "visitd/rota/engine.hpp"

#include <catch2/catch.hpp>

#include "visitd/core/time.hpp"
#include "visitd/rota/import.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::rota;

namespace {

TimePoint at(const char* rfc3339) { return *parse_rfc3339(rfc3339); }

config::Settings agency() {
  config::Settings s;
  s.branches.push_back(config::Branch{"B1", "North", "Europe/London", {}});
  s.branches.push_back(config::Branch{"B2", "South", "Europe/London", {}});
  s.thresholds.time_critical.late_after = 5min;
  s.thresholds.time_critical.missed_after = 30min;
  return s;
}

const geo::LatLon kHome{51.5014, -0.1419};
const Fix kAtHome{{51.50141, -0.14191}, 10};
const Fix kFarAway{{51.5200, -0.1000}, 15};  // about 3.5 km away

VisitPlan plan(std::string id, std::vector<std::string> carers, const char* start, const char* end,
               bool time_critical = false) {
  VisitPlan p;
  p.id = std::move(id);
  p.client = ClientPlan{"CL-" + p.id, "Mrs " + p.id, kHome, std::nullopt, ""};
  p.carers = std::move(carers);
  p.start = at(start);
  p.end = at(end);
  p.time_critical = time_critical;
  return p;
}

/// An engine with a rota and a clock the test moves by hand.
struct Day {
  config::Settings settings = agency();
  Engine engine{settings, at("2026-11-23T00:00:00Z")};
  TimePoint now = at("2026-11-23T06:00:00Z");
  Effects fx;

  explicit Day(std::vector<VisitPlan> visits, std::string branch = "B1") {
    ImportRota import{std::move(branch),
                      LocalDays(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch()),
                      std::move(visits), "office"};
    const Reply r = engine.apply(import, now, fx);
    REQUIRE(r.status == Status::accepted);
  }

  Reply apply(const Command& c) {
    fx.clear();
    return engine.apply(c, now, fx);
  }
  void advance_to(const char* t) {
    now = at(t);
    fx.clear();
    engine.advance(now, fx);
  }
  const Visit& visit(const char* id) { return engine.visit(*engine.find_visit(id)); }
  const Alert* alert_of(const char* id, AlertPhase phase) {
    const AlertIndex a = visit(id).alerts[std::size_t(phase)];
    return a == kNoIndex ? nullptr : &engine.alert(a);
  }
  int count(AlertTransition t) const {
    int n = 0;
    for (const auto& e : fx) n += e.kind == Effect::Kind::alert_changed && e.transition == t;
    return n;
  }
};

CheckIn check_in(std::string id, std::string carer, std::string visit, const char* device,
                 std::optional<Fix> fix = kAtHome) {
  return CheckIn{
      std::move(id), std::move(carer), std::move(visit), at(device), fix, Method::gps, ""};
}

CheckOut check_out(std::string id, std::string carer, std::string visit, const char* device,
                   std::string note = "") {
  return CheckOut{
      std::move(id),  std::move(carer), std::move(visit), at(device), kAtHome, Method::gps, "",
      std::move(note)};
}

}  // namespace

TEST_CASE("A visit nobody checks in to turns late, then missed, with one alert rising in place") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});

  day.advance_to("2026-11-23T09:14:59Z");
  CHECK(day.visit("V1").state == VisitState::scheduled);
  CHECK(day.alert_of("V1", AlertPhase::start) == nullptr);

  day.advance_to("2026-11-23T09:15:00Z");
  CHECK(day.visit("V1").state == VisitState::late);
  const Alert* a = day.alert_of("V1", AlertPhase::start);
  REQUIRE(a != nullptr);
  CHECK(a->kind == AlertKind::late);
  CHECK(a->severity == Severity::warning);
  CHECK(a->state == AlertState::triggered);
  CHECK(a->raised_at == at("2026-11-23T09:15:00Z"));
  CHECK(day.engine.alert_key(day.visit("V1").alerts[0]) == "visit/V1/start");
  CHECK(day.count(AlertTransition::raised) == 1);

  day.advance_to("2026-11-23T10:00:00Z");
  CHECK(day.visit("V1").state == VisitState::missed);
  const Alert* b = day.alert_of("V1", AlertPhase::start);
  CHECK(b == a);  // the same alert, severity risen in place
  CHECK(b->kind == AlertKind::missed);
  CHECK(b->severity == Severity::critical);
  CHECK(b->seq == 2);
  CHECK(day.count(AlertTransition::severity_rose) == 1);
}

TEST_CASE("A late advance fires every deadline it passed, each at its own time") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T12:00:00Z");
  const Alert* a = day.alert_of("V1", AlertPhase::start);
  REQUIRE(a != nullptr);
  CHECK(day.visit("V1").state == VisitState::missed);
  CHECK(a->raised_at == at("2026-11-23T09:15:00Z"));
  CHECK(a->updated_at == at("2026-11-23T10:00:00Z"));
}

TEST_CASE("Time-critical visits use their own, shorter thresholds and page as critical") {
  Day day({plan("M1", {"C1"}, "2026-11-23T08:00:00Z", "2026-11-23T08:15:00Z", true)});
  day.advance_to("2026-11-23T08:05:00Z");
  CHECK(day.visit("M1").state == VisitState::late);
  CHECK(day.alert_of("M1", AlertPhase::start)->severity == Severity::critical);
  day.advance_to("2026-11-23T08:30:00Z");
  CHECK(day.visit("M1").state == VisitState::missed);
}

TEST_CASE("An on-time check-in and check-out complete the visit without any alert") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.now = at("2026-11-23T09:02:00Z");
  Reply r = day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:02:00Z"));
  CHECK(r.status == Status::accepted);
  CHECK(r.state == VisitState::in_progress);
  CHECK(r.flags == 0);
  CHECK(day.visit("V1").check_ins.at(0).distance_m < 5);
  CHECK(day.visit("V1").late_by_s == 120);

  day.advance_to("2026-11-23T09:20:00Z");  // past late_after: nothing may fire
  CHECK(day.alert_of("V1", AlertPhase::start) == nullptr);

  day.now = at("2026-11-23T09:31:00Z");
  r = day.apply(check_out("e2", "C1", "V1", "2026-11-23T09:31:00Z", "meds taken"));
  CHECK(r.state == VisitState::completed);
  CHECK(day.visit("V1").check_outs.at(0).note == "meds taken");
  day.advance_to("2026-11-23T23:00:00Z");
  CHECK(day.engine.alert_count() == 0);
  CHECK(day.engine.pending_deadlines() == 0);
}

TEST_CASE("A late arrival resolves the late alert as checked_in and is flagged") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T09:40:00Z");
  REQUIRE(day.visit("V1").state == VisitState::late);
  const Reply r = day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:40:00Z"));
  CHECK(r.state == VisitState::in_progress);
  CHECK((r.flags & kLateArrival) != 0);
  CHECK(day.visit("V1").late_by_s == 40 * 60);
  const Alert* a = day.alert_of("V1", AlertPhase::start);
  CHECK(a->state == AlertState::resolved);
  CHECK(a->resolution == Resolution::checked_in);
}

TEST_CASE("A missed visit still accepts a late check-in: the arrival is recorded") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T10:05:00Z");
  REQUIRE(day.visit("V1").state == VisitState::missed);
  const Reply r = day.apply(check_in("e1", "C1", "V1", "2026-11-23T10:05:00Z"));
  CHECK(r.status == Status::accepted);
  CHECK(r.state == VisitState::in_progress);
  CHECK(day.alert_of("V1", AlertPhase::start)->resolution == Resolution::checked_in);
}

TEST_CASE("An offline check-in that arrives after its late alert resolves it as synced_late") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T09:20:00Z");
  REQUIRE(day.alert_of("V1", AlertPhase::start)->state == AlertState::triggered);
  // The phone had no signal: its device time says 09:03.
  const Reply r = day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:03:00Z"));
  CHECK(r.state == VisitState::in_progress);
  CHECK((r.flags & kLateArrival) == 0);
  const Visit& v = day.visit("V1");
  CHECK(v.check_ins[0].at == at("2026-11-23T09:03:00Z"));
  CHECK(v.check_ins[0].received_at == at("2026-11-23T09:20:00Z"));
  CHECK(day.alert_of("V1", AlertPhase::start)->resolution == Resolution::synced_late);
}

TEST_CASE("A device clock far in the future is not trusted: receive time is used and flagged") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.now = at("2026-11-23T09:05:00Z");
  const Reply r = day.apply(check_in("e1", "C1", "V1", "2026-11-23T11:00:00Z"));
  CHECK((r.flags & kDeviceTimeSkew) != 0);
  CHECK(day.visit("V1").check_ins[0].at == at("2026-11-23T09:05:00Z"));
  CHECK(day.visit("V1").check_ins[0].device_at == at("2026-11-23T11:00:00Z"));
}

TEST_CASE("A check-in outside the geofence is accepted, flagged and raises a location alert") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.now = at("2026-11-23T09:00:00Z");
  const Reply r = day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:00:00Z", kFarAway));
  CHECK(r.status == Status::accepted);
  CHECK(r.state == VisitState::in_progress);
  CHECK((r.flags & kOutsideGeofence) != 0);
  CHECK(day.visit("V1").check_ins[0].distance_m > 3000);
  const Alert* a = day.alert_of("V1", AlertPhase::location);
  REQUIRE(a != nullptr);
  CHECK(a->kind == AlertKind::outside_geofence);

  SECTION("but a fix whose accuracy circle reaches the home is not flagged") {
    Day near({plan("V2", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
    near.now = at("2026-11-23T09:00:00Z");
    // ~200 m away with 100 m accuracy: distance - accuracy < 150 m radius.
    const Reply r2 = near.apply(
        check_in("e1", "C1", "V2", "2026-11-23T09:00:00Z", Fix{{51.5032, -0.1419}, 100}));
    CHECK((r2.flags & kOutsideGeofence) == 0);
  }
}

TEST_CASE("An NFC check-in with the wrong tag is accepted and flagged tag_mismatch") {
  auto p = plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z");
  p.client.tag = "TAG-1";
  Day day({p});
  day.now = at("2026-11-23T09:00:00Z");
  CheckIn c{"e1", "C1", "V1", at("2026-11-23T09:00:00Z"), std::nullopt, Method::nfc, "TAG-9"};
  const Reply r = day.apply(c);
  CHECK(r.status == Status::accepted);
  CHECK((r.flags & kTagMismatch) != 0);
  CHECK(day.alert_of("V1", AlertPhase::location) != nullptr);
}

TEST_CASE(
    "A visit not checked out turns overrunning, then no_checkout, and a late check-out "
    "completes it") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z")});
  day.now = at("2026-11-23T09:10:00Z");
  day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:10:00Z"));
  // planned 60 min from 09:10 check-in: overrun at 10:10 + 15m, no_checkout at 10:10 + 2h.
  day.advance_to("2026-11-23T10:24:59Z");
  CHECK(day.visit("V1").state == VisitState::in_progress);
  day.advance_to("2026-11-23T10:25:00Z");
  CHECK(day.visit("V1").state == VisitState::overrunning);
  const Alert* a = day.alert_of("V1", AlertPhase::end);
  REQUIRE(a != nullptr);
  CHECK(a->kind == AlertKind::overrunning);
  day.advance_to("2026-11-23T12:10:00Z");
  CHECK(day.visit("V1").state == VisitState::no_checkout);
  CHECK(a->kind == AlertKind::no_checkout);
  CHECK(a->severity == Severity::warning);

  day.now = at("2026-11-23T13:00:00Z");
  const Reply r = day.apply(check_out("e2", "C1", "V1", "2026-11-23T13:00:00Z"));
  CHECK(r.state == VisitState::completed);
  CHECK(a->state == AlertState::resolved);
  CHECK(a->resolution == Resolution::checked_out);
}

TEST_CASE("A visit much shorter than planned is completed, flagged short, with an alert") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z")});
  day.now = at("2026-11-23T09:00:00Z");
  day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:00:00Z"));
  day.now = at("2026-11-23T09:20:00Z");
  const Reply r = day.apply(check_out("e2", "C1", "V1", "2026-11-23T09:20:00Z"));
  CHECK(r.state == VisitState::completed);
  CHECK((r.flags & kShort) != 0);
  REQUIRE(day.alert_of("V1", AlertPhase::duration) != nullptr);
  CHECK(day.alert_of("V1", AlertPhase::duration)->kind == AlertKind::short_visit);

  SECTION("while one at 75% of planned is not short") {
    Day ok({plan("V2", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z")});
    ok.now = at("2026-11-23T09:00:00Z");
    ok.apply(check_in("e1", "C1", "V2", "2026-11-23T09:00:00Z"));
    ok.now = at("2026-11-23T09:45:00Z");
    CHECK((ok.apply(check_out("e2", "C1", "V2", "2026-11-23T09:45:00Z")).flags & kShort) == 0);
  }
}

TEST_CASE("A double-up where one carer never comes is flagged and alerted, not marked late") {
  Day day({plan("D1", {"C1", "C2"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z")});
  day.now = at("2026-11-23T09:01:00Z");
  day.apply(check_in("e1", "C1", "D1", "2026-11-23T09:01:00Z"));
  day.advance_to("2026-11-23T09:15:00Z");
  const Visit& v = day.visit("D1");
  CHECK(v.state == VisitState::in_progress);
  CHECK((v.flags & kDoubleUpIncomplete) != 0);
  CHECK(day.alert_of("D1", AlertPhase::start) == nullptr);
  const Alert* a = day.alert_of("D1", AlertPhase::double_up);
  REQUIRE(a != nullptr);
  CHECK(a->kind == AlertKind::double_up_incomplete);
  CHECK(day.engine.carer(a->carer).id == "C2");

  SECTION("the visit completes when the carer who came checks out") {
    day.now = at("2026-11-23T10:00:00Z");
    const Reply r = day.apply(check_out("e2", "C1", "D1", "2026-11-23T10:00:00Z"));
    CHECK(r.state == VisitState::completed);
    CHECK(a->state == AlertState::resolved);
  }
  SECTION("the second carer arriving resolves the double-up alert") {
    day.now = at("2026-11-23T09:25:00Z");
    day.apply(check_in("e3", "C2", "D1", "2026-11-23T09:25:00Z"));
    CHECK(a->state == AlertState::resolved);
    CHECK(a->resolution == Resolution::checked_in);
  }
}

TEST_CASE(
    "A duplicate event after the visit completed is answered with its original outcome "
    "and changes nothing") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:45:00Z")});
  day.now = at("2026-11-23T09:00:00Z");
  const CheckIn in = check_in("e1", "C1", "V1", "2026-11-23T09:00:00Z", kFarAway);
  const Reply first = day.apply(in);
  day.now = at("2026-11-23T09:45:00Z");
  day.apply(check_out("e2", "C1", "V1", "2026-11-23T09:45:00Z"));
  REQUIRE(day.visit("V1").state == VisitState::completed);

  const std::string before = day.engine.canonical_dump();
  const Reply again = day.apply(in);
  CHECK(again.status == Status::duplicate);
  CHECK(again.state == first.state);
  CHECK(again.state == VisitState::in_progress);
  CHECK(again.flags == first.flags);
  CHECK(day.fx.empty());
  CHECK(day.engine.canonical_dump() == before);
}

TEST_CASE("Reassigning a late visit re-targets its open alert to the new carer") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T09:16:00Z");
  const Alert* a = day.alert_of("V1", AlertPhase::start);
  REQUIRE(a != nullptr);
  const auto seq = a->seq;
  const Reply r = day.apply(Reassign{"V1", {"C2"}, "office"});
  CHECK(r.status == Status::accepted);
  CHECK(day.engine.carer(a->carer).id == "C2");
  CHECK(a->seq == seq + 1);
  CHECK(a->open());
  CHECK(day.count(AlertTransition::retargeted) == 1);
  // The old carer may no longer act on it; the new one may.
  CHECK(day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:20:00Z")).error->code ==
        ErrorCode::not_assigned);
  CHECK(day.apply(check_in("e2", "C2", "V1", "2026-11-23T09:20:00Z")).status == Status::accepted);
  CHECK(a->resolution == Resolution::checked_in);
}

TEST_CASE("Cancelling a visit clears its timers and resolves its open alerts") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T09:16:00Z");
  const Reply r = day.apply(Cancel{"V1", "client in hospital", "office"});
  CHECK(r.state == VisitState::cancelled);
  CHECK(day.alert_of("V1", AlertPhase::start)->resolution == Resolution::cancelled);
  day.advance_to("2026-11-23T12:00:00Z");
  CHECK(day.visit("V1").state == VisitState::cancelled);
  CHECK(day.engine.pending_deadlines() == 0);
  CHECK(day.apply(check_in("e1", "C1", "V1", "2026-11-23T12:00:00Z")).error->code ==
        ErrorCode::visit_cancelled);
}

TEST_CASE("Alert acknowledgement is monotonic and a severity rise re-triggers it") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T09:15:00Z");
  const Alert* a = day.alert_of("V1", AlertPhase::start);
  const std::string id = a->id();
  CHECK(day.apply(AckAlert{id, "anna", "calling her"}).status == Status::accepted);
  CHECK(a->state == AlertState::acknowledged);
  CHECK(a->acked_by == "anna");
  CHECK(day.apply(AckAlert{id, "bob", ""}).status == Status::unchanged);
  CHECK(a->acked_by == "anna");

  day.advance_to("2026-11-23T10:00:00Z");  // missed: the acknowledged alert needs a person again
  CHECK(a->state == AlertState::triggered);
  CHECK(a->kind == AlertKind::missed);

  CHECK(day.apply(ResolveAlert{id, "anna", "visit moved"}).status == Status::accepted);
  CHECK(a->resolution == Resolution::user);
  const auto seq = a->seq;
  const Reply late_ack = day.apply(AckAlert{id, "bob", ""});
  CHECK(late_ack.status == Status::unchanged);
  CHECK(late_ack.note.find("resolved") != std::string::npos);
  CHECK(a->seq == seq);
  CHECK(day.apply(AckAlert{"A999", "bob", ""}).error->code == ErrorCode::unknown_alert);
}

TEST_CASE("Every carer mistake gets its own typed error and changes nothing") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z"),
           plan("V2", {"C2"}, "2026-11-23T15:00:00Z", "2026-11-23T15:30:00Z")});
  day.advance_to("2026-11-23T09:00:00Z");
  const std::string before = day.engine.canonical_dump();
  auto code = [&](const Command& c) {
    const Reply r = day.apply(c);
    REQUIRE(r.status == Status::rejected);
    return r.error->code;
  };
  CHECK(code(check_in("e1", "C1", "V9", "2026-11-23T09:00:00Z")) == ErrorCode::unknown_visit);
  CHECK(code(check_in("e1", "C1", "V2", "2026-11-23T09:00:00Z")) == ErrorCode::not_assigned);
  CHECK(code(check_in("e1", "C9", "V1", "2026-11-23T09:00:00Z")) == ErrorCode::not_assigned);
  CHECK(code(check_out("e1", "C1", "V1", "2026-11-23T09:00:00Z")) == ErrorCode::not_checked_in);
  CHECK(code(check_in("", "C1", "V1", "2026-11-23T09:00:00Z")) == ErrorCode::bad_message);
  CHECK(code(check_in("e1", "C1", "V1", "2026-11-23T09:00:00Z", Fix{{91, 0}, 5})) ==
        ErrorCode::bad_message);
  CHECK(code(check_in("e1", "C1", "V1", "2026-11-19T09:00:00Z")) == ErrorCode::too_old);
  // V2 opens for check-in two hours before its start (13:00).
  CHECK(code(check_in("e1", "C2", "V2", "2026-11-23T09:00:00Z")) ==
        ErrorCode::outside_visit_window);
  CHECK(code(LocationPing{"p1", "C9", at("2026-11-23T09:00:00Z"), kAtHome}) ==
        ErrorCode::off_shift);
  CHECK(day.engine.canonical_dump() == before);

  day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:00:00Z"));
  CHECK(code(check_in("e2", "C1", "V1", "2026-11-23T09:01:00Z")) == ErrorCode::already_checked_in);
  day.apply(check_out("e3", "C1", "V1", "2026-11-23T09:30:00Z"));
  CHECK(code(check_out("e4", "C1", "V1", "2026-11-23T09:31:00Z")) == ErrorCode::not_checked_in);
}

TEST_CASE("Location pings are kept only on shift, deduplicated within the offline window") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z"),
           plan("V2", {"C1"}, "2026-11-23T16:00:00Z", "2026-11-23T17:00:00Z")});
  auto ping = [&](const char* id, const char* t) {
    day.now = std::max(day.now, at(t));
    return day.apply(LocationPing{id, "C1", at(t), kAtHome});
  };
  // Shift: 08:00 (09:00 - 1h lead) to 18:00 (17:00 + 1h tail), lunch gap included.
  CHECK(ping("p0", "2026-11-23T07:59:00Z").error->code == ErrorCode::off_shift);
  CHECK(ping("p1", "2026-11-23T08:00:00Z").status == Status::accepted);
  CHECK(ping("p2", "2026-11-23T13:00:00Z").status == Status::accepted);
  CHECK(day.engine.carer(*day.engine.find_carer("C1")).last_fix_at == at("2026-11-23T13:00:00Z"));
  CHECK(ping("p3", "2026-11-23T18:00:01Z").error->code == ErrorCode::off_shift);
  CHECK(ping("p2", "2026-11-23T13:00:00Z").status == Status::duplicate);

  const auto remembered = day.engine.remembered_events();
  day.advance_to("2026-11-26T14:00:00Z");  // 72h + skew later: the ping ids are forgotten
  CHECK(day.engine.remembered_events() == remembered - 2);
  // and a resend that old is refused as too old rather than taken as new.
  CHECK(day.apply(LocationPing{"p2", "C1", at("2026-11-23T13:00:00Z"), kAtHome}).error->code ==
        ErrorCode::too_old);
}

TEST_CASE("A carer with weeks of shifts is on shift exactly when one of them covers the time") {
  Day day({plan("V0", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z")});
  // Five weeks of morning visits in B1, and on 5 December a 17-hour visit in B2 that starts
  // before that day's B1 shift and ends long after it: shifts of two branches overlapping.
  for (int d = 24; d <= 31 + 28; ++d) {
    const auto date = std::chrono::sys_days(2026y / 11 / 23) + std::chrono::days(d - 23);
    const TimePoint start = TimePoint(date) + 9h;
    VisitPlan p =
        plan("V" + std::to_string(d), {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T10:00:00Z");
    p.start = start;
    p.end = start + 1h;
    const Reply r =
        day.apply(ImportRota{"B1", LocalDays(date.time_since_epoch()), {std::move(p)}, "office"});
    REQUIRE(r.status == Status::accepted);
  }
  VisitPlan night = plan("N1", {"C1"}, "2026-12-05T06:00:00Z", "2026-12-05T23:00:00Z");
  REQUIRE(day.apply(ImportRota{"B2",
                               LocalDays(std::chrono::sys_days(2026y / 12 / 5).time_since_epoch()),
                               {night},
                               "office"})
              .status == Status::accepted);
  int n = 0;
  auto ping = [&](const char* t) {
    day.now = at(t);
    return day.apply(LocationPing{"p" + std::to_string(++n), "C1", at(t), kAtHome});
  };
  // B1's shift that day: 08:00 to 11:00; B2's: 05:00 to 00:00 the next day.
  CHECK(ping("2026-12-05T04:59:00Z").error->code == ErrorCode::off_shift);
  CHECK(ping("2026-12-05T05:00:00Z").status == Status::accepted);
  CHECK(ping("2026-12-05T10:30:00Z").status == Status::accepted);
  CHECK(ping("2026-12-05T20:00:00Z").status == Status::accepted);  // B2's alone covers it
  CHECK(ping("2026-12-06T00:00:00Z").status == Status::accepted);
  CHECK(ping("2026-12-06T00:00:01Z").error->code == ErrorCode::off_shift);
  CHECK(ping("2026-12-06T07:59:59Z").error->code == ErrorCode::off_shift);
  CHECK(ping("2026-12-06T08:00:00Z").status == Status::accepted);
  CHECK(ping("2026-12-29T11:00:00Z").status == Status::accepted);  // the last day's tail
  CHECK(ping("2026-12-29T11:00:01Z").error->code == ErrorCode::off_shift);
}

TEST_CASE("Running late records the carer's expected arrival on the visit") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.now = at("2026-11-23T08:50:00Z");
  const Reply r = day.apply(RunningLate{"r1", "C1", "V1", at("2026-11-23T09:20:00Z"), "traffic"});
  CHECK(r.status == Status::accepted);
  CHECK(day.visit("V1").eta == at("2026-11-23T09:20:00Z"));
  CHECK(day.visit("V1").eta_reason == "traffic");
}

TEST_CASE("Re-importing a day adds, updates and cancels, and keeps what was checked in") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z"),
           plan("V2", {"C1"}, "2026-11-23T11:00:00Z", "2026-11-23T11:30:00Z"),
           plan("V3", {"C2"}, "2026-11-23T12:00:00Z", "2026-11-23T12:30:00Z")});
  day.now = at("2026-11-23T09:00:00Z");
  day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:00:00Z"));

  const LocalDays date(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch());
  ImportRota again{"B1",
                   date,
                   {plan("V2", {"C3"}, "2026-11-23T11:30:00Z", "2026-11-23T12:00:00Z"),
                    plan("V4", {"C1"}, "2026-11-23T14:00:00Z", "2026-11-23T14:30:00Z")},
                   "office"};
  const Reply r = day.apply(again);
  REQUIRE(r.status == Status::accepted);
  CHECK(r.counts.imported == 1);   // V4
  CHECK(r.counts.updated == 1);    // V2
  CHECK(r.counts.cancelled == 1);  // V3
  CHECK(r.counts.kept == 1);       // V1: checked in
  CHECK(day.visit("V1").state == VisitState::in_progress);
  CHECK(day.visit("V2").carers.size() == 1);
  CHECK(day.engine.carer(day.visit("V2").carers[0]).id == "C3");
  CHECK(day.visit("V2").start == at("2026-11-23T11:30:00Z"));
  CHECK(day.visit("V3").state == VisitState::cancelled);

  SECTION("and a rota for another branch may not take over a visit") {
    ImportRota steal{
        "B2", date, {plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")}, "office"};
    const std::string before = day.engine.canonical_dump();
    const Reply refused = day.apply(steal);
    CHECK(refused.status == Status::rejected);
    REQUIRE(refused.issues.size() == 1);
    CHECK(refused.issues[0].field == "visit_id");
    CHECK(day.engine.canonical_dump() == before);
  }
}

TEST_CASE("Moving a late visit later by re-import puts it back on schedule") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.advance_to("2026-11-23T09:20:00Z");
  REQUIRE(day.visit("V1").state == VisitState::late);
  const LocalDays date(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch());
  day.apply(ImportRota{
      "B1", date, {plan("V1", {"C1"}, "2026-11-23T13:00:00Z", "2026-11-23T13:30:00Z")}, "office"});
  CHECK(day.visit("V1").state == VisitState::scheduled);
  CHECK(day.alert_of("V1", AlertPhase::start)->resolution == Resolution::rescheduled);
  day.advance_to("2026-11-23T13:15:00Z");
  CHECK(day.visit("V1").state == VisitState::late);
}

TEST_CASE("DST days: deadlines follow real elapsed time across the clock change") {
  config::Settings settings = agency();
  Engine engine(settings, at("2026-10-24T00:00:00Z"));
  Effects fx;
  const auto zone = *TimeZone::locate("Europe/London");

  SECTION("fall back: a visit 00:30-02:30 local on 2026-10-25 lasts three real hours") {
    const LocalDays date(std::chrono::sys_days(2026y / 10 / 25).time_since_epoch());
    const auto rota = parse_rota_csv(
        "visit_id,client_id,client_name,lat,lon,carers,start,end\n"
        "N1,CL1,Mr N,51.5,-0.14,C1,2026-10-25 00:30,2026-10-25 02:30\n",
        zone, date);
    REQUIRE(rota.ok());
    engine.apply(ImportRota{"B1", date, rota.visits, "office"}, at("2026-10-24T20:00:00Z"), fx);
    const Visit& v = engine.visit(0);
    CHECK(v.start == at("2026-10-24T23:30:00Z"));  // BST
    CHECK(v.end == at("2026-10-25T02:30:00Z"));    // GMT
    engine.apply(check_in("e1", "C1", "N1", "2026-10-24T23:30:00Z"), at("2026-10-24T23:30:00Z"),
                 fx);
    engine.advance(at("2026-10-25T02:44:59Z"), fx);
    CHECK(v.state == VisitState::in_progress);
    engine.advance(at("2026-10-25T02:45:00Z"), fx);
    CHECK(v.state == VisitState::overrunning);
  }
  SECTION("spring forward: a 09:00 visit on 2026-03-29 is due at 08:00 UTC") {
    Engine spring(settings, at("2026-03-28T00:00:00Z"));
    const LocalDays date(std::chrono::sys_days(2026y / 3 / 29).time_since_epoch());
    const auto rota = parse_rota_csv(
        "visit_id,client_id,client_name,lat,lon,carers,start,end\n"
        "S1,CL1,Mr S,51.5,-0.14,C1,2026-03-29 09:00,2026-03-29 09:30\n",
        zone, date);
    REQUIRE(rota.ok());
    spring.apply(ImportRota{"B1", date, rota.visits, "office"}, at("2026-03-29T00:00:00Z"), fx);
    spring.advance(at("2026-03-29T08:14:59Z"), fx);
    CHECK(spring.visit(0).state == VisitState::scheduled);
    spring.advance(at("2026-03-29T08:15:00Z"), fx);
    CHECK(spring.visit(0).state == VisitState::late);
  }
}

TEST_CASE("An import that lists a carer twice on one visit is refused whole") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  const LocalDays date(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch());
  const Reply r = day.apply(
      ImportRota{"B1",
                 date,
                 {plan("V2", {"C2", "C2"}, "2026-11-23T10:00:00Z", "2026-11-23T10:30:00Z")},
                 "office"});
  REQUIRE(r.status == Status::rejected);
  REQUIRE(r.issues.size() == 1);
  CHECK(r.issues[0].field == "carers");
  CHECK_FALSE(day.engine.find_visit("V2").has_value());
}

TEST_CASE("Re-importing a completed visit with another carer moves it off the old carer's rota") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  day.now = at("2026-11-23T09:00:00Z");
  day.apply(check_in("e1", "C1", "V1", "2026-11-23T09:00:00Z"));
  day.now = at("2026-11-23T09:30:00Z");
  day.apply(check_out("e2", "C1", "V1", "2026-11-23T09:30:00Z"));
  const LocalDays date(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch());
  day.apply(ImportRota{
      "B1", date, {plan("V1", {"C2"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")}, "office"});
  CHECK(day.engine.carer(*day.engine.find_carer("C1")).visits.empty());
  CHECK(day.engine.carer(*day.engine.find_carer("C2")).visits.size() == 1);
  CHECK(day.visit("V1").state == VisitState::completed);
}

TEST_CASE("A time-critical visit keeps its thresholds beside an ordinary one of the same type") {
  // Both are personal_care in B1: one threshold set each, not one shared by whichever came
  // first (the ordinary visit is imported first here).
  Day day({plan("V1", {"C1"}, "2026-11-23T08:00:00Z", "2026-11-23T08:30:00Z"),
           plan("M1", {"C2"}, "2026-11-23T08:00:00Z", "2026-11-23T08:15:00Z", true)});
  day.advance_to("2026-11-23T08:06:00Z");
  CHECK(day.visit("M1").state == VisitState::late);
  CHECK(day.visit("V1").state == VisitState::scheduled);
  day.advance_to("2026-11-23T08:15:00Z");
  CHECK(day.visit("V1").state == VisitState::late);
}

TEST_CASE("A reconfigured engine plans every open visit again from the new thresholds") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z"),
           plan("V2", {"C2"}, "2026-11-23T10:00:00Z", "2026-11-23T10:30:00Z")});
  day.advance_to("2026-11-23T09:05:00Z");
  auto next = std::make_shared<config::Settings>(agency());
  next->thresholds.values.late_after = 3min;  // tighter than the 15m default
  day.fx.clear();
  REQUIRE_FALSE(day.engine.reconfigure(next, day.now, day.fx));
  // V1 is already more than 3 minutes past its start: late at once, raised at its due time.
  CHECK(day.visit("V1").state == VisitState::late);
  CHECK(day.alert_of("V1", AlertPhase::start)->raised_at == at("2026-11-23T09:03:00Z"));
  CHECK(day.count(AlertTransition::raised) == 1);
  day.advance_to("2026-11-23T10:03:00Z");
  CHECK(day.visit("V2").state == VisitState::late);
  CHECK(day.engine.settings().thresholds.values.late_after == 3min);
}

TEST_CASE("A reconfigure that drops a branch or moves its zone is refused and changes nothing") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  const std::string before = day.engine.canonical_dump();
  auto dropped = std::make_shared<config::Settings>(agency());
  dropped->branches.pop_back();
  auto error = day.engine.reconfigure(dropped, day.now, day.fx);
  REQUIRE(error);
  CHECK(error->code == ErrorCode::conflict);
  CHECK_THAT(error->message, Catch::Contains("B2"));
  auto moved = std::make_shared<config::Settings>(agency());
  moved->branches[0].timezone = "America/New_York";
  error = day.engine.reconfigure(moved, day.now, day.fx);
  REQUIRE(error);
  CHECK_THAT(error->message, Catch::Contains("time zone"));
  CHECK(day.engine.canonical_dump() == before);
}

TEST_CASE("A reconfigure adds new branches, whose rotas can then be imported") {
  Day day({plan("V1", {"C1"}, "2026-11-23T09:00:00Z", "2026-11-23T09:30:00Z")});
  auto next = std::make_shared<config::Settings>(agency());
  next->branches.push_back(config::Branch{"B3", "East", "Europe/London", {}});
  REQUIRE_FALSE(day.engine.reconfigure(next, day.now, day.fx));
  ImportRota import{"B3",
                    LocalDays(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch()),
                    {plan("E1", {"C9"}, "2026-11-23T11:00:00Z", "2026-11-23T11:30:00Z")},
                    "office"};
  CHECK(day.apply(import).status == Status::accepted);
  CHECK(day.engine.find_branch("B3"));
}
