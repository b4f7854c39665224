// From an alert's transitions to the notices people get, with the engine and an injected
// clock: who is paged at each step, who hears of the ack and the resolution, what a restart
// in the middle of a ladder makes again (only what was lost), and nobody paged twice.

#include "visitd/alerts/notifier.hpp"

#include <catch2/catch.hpp>
#include <memory>

#include "visitd/config/load.hpp"
#include "visitd/rota/engine.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::rota;
using alerts::Notice;
using alerts::Transition;

namespace {

TimePoint at(const char* t) { return *parse_rfc3339(t); }

constexpr const char* kConfig = R"(
[[branches]]
id = "B1"
name = "North"
timezone = "Europe/London"

[[receivers]]
name = "office"
type = "webhook"
url = "http://127.0.0.1:9000/office"

[[receivers]]
name = "night"
type = "pagerduty"
url = "http://127.0.0.1:9000/pd"
routing_key = "R0UT1NG"

[[receivers]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:9093"

[[oncall]]
name = "coordinator"
timezone = "Europe/London"
default = ["night"]
windows = [ { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "18:00", notify = ["office"] } ]

[escalation]
ack_timeout = "20m"
warning = [ { after = "10m", notify = ["coordinator", "am"] }, { after = "30m", notify = ["night"] } ]
critical = [ { after = "0s", notify = ["night"] } ]
)";

VisitPlan plan(std::string id, std::string carer, const char* start, const char* end) {
  VisitPlan p;
  p.id = std::move(id);
  p.client = ClientPlan{"CL-" + p.id, "Mrs " + p.id, {51.5014, -0.1419}, std::nullopt, ""};
  p.carers = {std::move(carer)};
  p.start = at(start);
  p.end = at(end);
  return p;
}

/// The engine and the notifier as the daemon runs them: every effect through the notifier.
struct Office {
  std::shared_ptr<const config::Settings> settings =
      std::make_shared<config::Settings>(config::load_string(kConfig, "notifier.toml"));
  std::unique_ptr<Engine> engine = std::make_unique<Engine>(*settings, at("2026-11-23T00:00:00Z"));
  alerts::Notifier notifier{*settings, render()};
  std::vector<Notice> sent;  ///< every notice, in order

  static alerts::RenderAlert render() {
    return [](const Engine& e, AlertIndex a) {
      return alerts::AlertText{"summary of " + e.alert(a).id(),
                               "{\"id\":\"" + e.alert(a).id() + "\"}"};
    };
  }

  Office() {
    Effects fx;
    ImportRota import{"B1",
                      LocalDays(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch()),
                      {plan("V1", "C1", "2026-11-23T09:00:00Z", "2026-11-23T11:30:00Z"),
                       plan("V2", "C2", "2026-11-23T09:00:00Z", "2026-11-23T11:30:00Z")},
                      "office"};
    REQUIRE(engine->apply(import, at("2026-11-23T06:00:00Z"), fx).status == Status::accepted);
  }
  std::vector<Notice> take(const Effects& fx) {
    std::vector<Notice> out;
    for (const auto& e : fx) {
      for (auto& n : notifier.on_effect(*engine, e)) out.push_back(std::move(n));
    }
    sent.insert(sent.end(), out.begin(), out.end());
    return out;
  }
  std::vector<Notice> advance(const char* t) {
    Effects fx;
    engine->advance(at(t), fx);
    return take(fx);
  }
  std::vector<Notice> apply(const Command& c, const char* t) {
    Effects fx;
    REQUIRE(engine->apply(c, at(t), fx).status == Status::accepted);
    return take(fx);
  }
  std::string alert_of(const char* visit) {
    return engine->alert(engine->visit(*engine->find_visit(visit)).alerts[0]).id();
  }
};

std::vector<std::string> receivers(const std::vector<Notice>& ns) {
  std::vector<std::string> out;
  for (const auto& n : ns) out.push_back(n.receiver);
  return out;
}

using Names = std::vector<std::string>;
const Fix kAtHome{{51.50141, -0.14191}, 10};

}  // namespace

TEST_CASE("Notifier: a check-in inside the grace period pages nobody") {
  Office o;
  CHECK(o.advance("2026-11-23T09:15:00Z").empty());  // late: on the board only, for now
  CHECK(o.apply(CheckIn{"e1", "C1", "V1", at("2026-11-23T09:20:00Z"), kAtHome, Method::gps, ""},
                "2026-11-23T09:20:00Z")
            .empty());
  o.advance("2026-11-23T10:30:00Z");  // V2's carer never came: V2 pages, V1 does not
  CHECK_FALSE(o.sent.empty());
  for (const auto& n : o.sent) CHECK(n.visit != "V1");
}

TEST_CASE("Notifier: page, then check-in: the paged receivers hear it was resolved") {
  Office o;
  // Monday 09:25 London: the coordinator schedule says office hours, so "office"; and "am".
  const auto pages = o.advance("2026-11-23T09:25:00Z");
  REQUIRE(pages.size() == 4);  // V1 and V2, each to office and am
  const auto a1 = o.alert_of("V1");
  std::vector<Notice> v1;
  for (const auto& n : pages) {
    if (n.alert == a1) v1.push_back(n);
  }
  CHECK(receivers(v1) == Names{"office", "am"});
  CHECK(v1[0].transition == Transition::triggered);
  CHECK(v1[0].level == 1);
  CHECK(v1[0].subject == a1 + "/page/warning/L1/R0");
  CHECK(v1[0].id() == a1 + "/page/warning/L1/R0/office");
  CHECK(v1[0].carer == "C1");
  CHECK(v1[0].alert_json == "{\"id\":\"" + a1 + "\"}");

  const auto resolved =
      o.apply(CheckIn{"e1", "C1", "V1", at("2026-11-23T09:40:00Z"), kAtHome, Method::gps, ""},
              "2026-11-23T09:40:00Z");
  CHECK(receivers(resolved) == Names{"office", "am"});
  for (const auto& n : resolved) {
    CHECK(n.transition == Transition::resolved);
    CHECK(n.subject == a1 + "/resolved");
  }
  CHECK(o.notifier.paged(a1) == nullptr);  // settled: forgotten
}

TEST_CASE(
    "Notifier: an ack tells the paged (not Alertmanager) and stops the ladder, its timeout "
    "re-pages") {
  Office o;
  o.advance("2026-11-23T09:25:00Z");
  const auto a1 = o.alert_of("V1");
  const auto acked = o.apply(AckAlert{a1, "sam", "on my way"}, "2026-11-23T09:30:00Z");
  CHECK(receivers(acked) == Names{"office"});  // Alertmanager has no acknowledgement
  CHECK(acked[0].transition == Transition::acknowledged);

  // V2's second step fires at 09:45; V1's does not: acknowledged.
  for (const auto& n : o.advance("2026-11-23T09:49:00Z")) CHECK(n.alert != a1);

  const auto again = o.advance("2026-11-23T09:50:00Z");  // 09:30 + ack_timeout
  REQUIRE(receivers(again) == Names{"office", "am"});
  CHECK(again[0].transition == Transition::escalated);
  CHECK(again[0].subject == a1 + "/page/warning/L1/R1");
}

TEST_CASE(
    "Notifier: late → missed re-triggers an acknowledged alert and pages the critical ladder") {
  Office o;
  o.advance("2026-11-23T09:25:00Z");
  const auto a1 = o.alert_of("V1");
  o.apply(AckAlert{a1, "sam", ""}, "2026-11-23T09:26:00Z");
  o.apply(AckAlert{o.alert_of("V2"), "sam", ""}, "2026-11-23T09:26:00Z");
  // 09:46 is the ack timeout; a check-in for V2 keeps it out of the way.
  o.apply(CheckIn{"e2", "C2", "V2", at("2026-11-23T09:27:00Z"), kAtHome, Method::gps, ""},
          "2026-11-23T09:27:00Z");
  o.apply(AckAlert{a1, "sam", ""}, "2026-11-23T09:47:00Z");  // after a reopen at 09:46
  const auto missed = o.advance("2026-11-23T10:00:00Z");
  REQUIRE(receivers(missed) == Names{"night"});
  CHECK(missed[0].severity == "critical");
  CHECK(missed[0].kind == "missed");
  CHECK(missed[0].subject == a1 + "/page/critical/L1/R1");
  CHECK(missed[0].transition == Transition::escalated);
}

TEST_CASE("Notifier: the on-call schedule is read when the step fires, in its own zone") {
  Office o;
  // Saturday: no weekday window, so the default (night).
  Effects fx;
  ImportRota import{"B1",
                    LocalDays(std::chrono::sys_days(2026y / 11 / 28).time_since_epoch()),
                    {plan("S1", "C3", "2026-11-28T09:00:00Z", "2026-11-28T10:00:00Z")},
                    "office"};
  REQUIRE(o.engine->apply(import, at("2026-11-28T06:00:00Z"), fx).status == Status::accepted);
  o.take(fx);
  std::vector<Notice> pages;
  for (const auto& n : o.advance("2026-11-28T09:25:00Z")) {
    if (n.visit == "S1") pages.push_back(n);
  }
  CHECK(receivers(pages) == Names{"night", "am"});
}

TEST_CASE(
    "Notifier: after a restart only the notices whose outbox record was lost are made again") {
  Office o;
  o.advance("2026-11-23T09:25:00Z");
  o.apply(AckAlert{o.alert_of("V2"), "sam", ""}, "2026-11-23T09:30:00Z");
  o.advance("2026-11-23T09:45:00Z");  // V1's second step: night
  REQUIRE_FALSE(o.sent.empty());

  SECTION("everything reached the outbox: nothing is made twice") {
    alerts::Notifier restarted(*o.settings, Office::render());
    for (const auto& n : o.sent) CHECK(restarted.remember(n));
    CHECK(restarted.missing(*o.engine).empty());
  }
  SECTION("the last page was lost between the step and its outbox record: it alone is made") {
    alerts::Notifier restarted(*o.settings, Office::render());
    const Notice lost = o.sent.back();
    CHECK(lost.subject == o.alert_of("V1") + "/page/warning/L2/R0");
    for (std::size_t i = 0; i + 1 < o.sent.size(); ++i) restarted.remember(o.sent[i]);
    const auto again = restarted.missing(*o.engine);
    REQUIRE(again.size() == 1);
    CHECK(again[0].id() == lost.id());
    CHECK(restarted.missing(*o.engine).empty());
  }
}
