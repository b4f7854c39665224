// The simulator's generated agency and its phones' plan: reproducible from the seed, and a
// day the daemon would take (the importer's own parser reads it) that a real agency could
// work (no carer in two places at once, travel time between visits).

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>

#include "agency.hpp"
#include "forecast.hpp"
#include "options.hpp"
#include "plan.hpp"
#include "visitd/rota/import.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using sim::AgencyOptions;
using sim::Behaviour;
using sim::BranchDay;

namespace {

const LocalDays kDay = *parse_local_date("2026-11-23");

std::vector<sim::BranchPlace> branches() {
  return {{"B1", *TimeZone::locate("Europe/London")}, {"B2", *TimeZone::locate("Europe/London")}};
}

std::vector<BranchDay> agency(std::uint64_t seed, unsigned carers = 10) {
  AgencyOptions o;
  o.seed = seed;
  o.carers = carers;
  return sim::generate_agency(branches(), kDay, o);
}

std::string all_csv(const std::vector<BranchDay>& days) {
  std::string out;
  for (const auto& d : days) out += sim::rota_csv(d);
  return out;
}

}  // namespace

TEST_CASE("The same seed gives the same day, byte for byte, another seed another day") {
  const std::string first = all_csv(agency(7));
  CHECK(all_csv(agency(7)) == first);
  CHECK(all_csv(agency(8)) != first);

  const auto plan = [](std::uint64_t seed) {
    std::string events;
    for (const auto& carer : sim::plan_day(agency(seed), {}, seed, "t").carers) {
      for (const auto& step : carer.steps) {
        events += format_rfc3339(step.send_at) + (step.drop_before_ack ? " drop" : "") + "\n";
        for (const auto& e : step.events) events += e.to_json() + "\n";
      }
    }
    return events;
  };
  CHECK(plan(7) == plan(7));
  CHECK(plan(7) != plan(8));
}

TEST_CASE("A branch's day does not change when another branch gets more carers") {
  AgencyOptions o;
  o.seed = 3;
  const auto one = sim::generate_agency({branches()[0]}, kDay, o);
  const auto both = sim::generate_agency(branches(), kDay, o);
  CHECK(sim::rota_csv(one[0]) == sim::rota_csv(both[0]));
}

TEST_CASE("The generated rota is one the daemon's importer takes whole") {
  for (const BranchDay& day : agency(11)) {
    const auto parsed = rota::parse_rota_csv(sim::rota_csv(day), day.zone, kDay);
    INFO(day.branch);
    REQUIRE(parsed.issues.empty());
    REQUIRE(parsed.visits.size() == day.visits.size());
    for (std::size_t i = 0; i < parsed.visits.size(); ++i) {
      CHECK(parsed.visits[i].same_plan(day.visits[i]));
    }
  }
}

TEST_CASE("A generated day is workable: travel between visits, double-ups, medication rounds") {
  const auto days = agency(5, 12);
  std::size_t double_ups = 0;
  std::size_t critical = 0;
  std::size_t visits = 0;
  for (const BranchDay& day : days) {
    std::map<std::string, std::vector<const rota::VisitPlan*>> by_carer;
    std::set<std::string> ids;
    for (const auto& v : day.visits) {
      CHECK(ids.insert(v.id).second);
      CHECK(v.end > v.start);
      CHECK(day.zone.local_day(v.start) == kDay);
      double_ups += v.carers.size() > 1 ? 1 : 0;
      critical += v.time_critical ? 1 : 0;
      if (v.time_critical) CHECK(v.type == "medication");
      for (const auto& c : v.carers) by_carer[c].push_back(&v);
      // Around the branch's town, within a few kilometres of each other.
      CHECK(geo::distance_m(v.client.location, day.visits.front().client.location) < 12'000);
    }
    visits += day.visits.size();
    for (const auto& [carer, list] : by_carer) {
      for (std::size_t i = 1; i < list.size(); ++i) {
        const auto travel = geo::travel_time(list[i - 1]->client.location, list[i]->client.location,
                                             sim::travel_model());
        INFO(carer << " " << list[i - 1]->id << " -> " << list[i]->id);
        CHECK(list[i]->start >= list[i - 1]->end + travel);
      }
    }
  }
  CHECK(visits > 150);
  CHECK(double_ups > 0);
  CHECK(critical > visits / 10);
}

TEST_CASE("The phones' plan follows the behaviours it drew") {
  sim::Mix mix;
  const auto days = agency(9);
  const sim::Plan plan = sim::plan_day(days, mix, 9, "run1");
  std::map<std::string, const rota::VisitPlan*> visit;
  for (const auto& d : days) {
    for (const auto& v : d.visits) visit[v.id] = &v;
  }
  std::map<std::string, std::size_t> check_ins;
  std::set<std::string> ids;
  std::size_t drawn = 0;
  for (const auto n : plan.summary.behaviours) drawn += n;
  std::size_t assignments = 0;
  for (const auto& d : days) {
    for (const auto& v : d.visits) assignments += v.carers.size();
  }
  CHECK(drawn == assignments);

  for (const auto& carer : plan.carers) {
    TimePoint previous{};
    for (const auto& step : carer.steps) {
      CHECK(step.send_at >= previous);  // sent in order
      previous = step.send_at;
      for (const auto& e : step.events) {
        CHECK(ids.insert(e.id).second);  // ids are unique
        CHECK(e.id.starts_with("run1-" + carer.carer + "-"));
        if (e.type == "running_late") continue;
        CHECK(e.at <= step.send_at);  // device time never after sending (offline: before)
        if (e.type != "check_in") continue;
        ++check_ins[e.visit];
        const auto& v = *visit.at(e.visit);
        CHECK(std::find(v.carers.begin(), v.carers.end(), carer.carer) != v.carers.end());
      }
    }
  }
  REQUIRE_FALSE(plan.summary.no_show_visits.empty());
  for (const auto& id : plan.summary.no_show_visits) CHECK(check_ins[id] == 0);
  CHECK(plan.summary.drops > 0);
}

TEST_CASE("A mix of only no-shows sends nothing, a bad mix is refused naming the part") {
  const sim::Plan plan = sim::plan_day(agency(2), sim::Mix::parse("on_time=0,no_show=1"), 2, "t");
  CHECK(plan.summary.events == 0);
  CHECK(plan.summary.no_show_visits.size() == plan.summary.visits);

  CHECK_THROWS_WITH(sim::Mix::parse("lat=3"), Catch::Contains("unknown behaviour 'lat'"));
  CHECK_THROWS_WITH(sim::Mix::parse("late=-1"), Catch::Contains("late"));
  CHECK_THROWS_WITH(sim::Mix::parse("late"), Catch::Contains("name=weight"));
  CHECK_THROWS_WITH(sim::Mix::parse("on_time=0"), Catch::Contains("above 0"));
  CHECK(sim::Mix::parse("short=9").weights[std::size_t(Behaviour::short_visit)] == 9);
}

TEST_CASE("visit-sim's command line refuses bad options with a reason") {
  const auto refusal = [](std::vector<std::string_view> args) -> std::string {
    try {
      sim::parse_options(args);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  CHECK(refusal({"--config", "x.toml"}) == "accepted");
  CHECK_THAT(refusal({}), Catch::Contains("--config FILE is required"));
  CHECK_THAT(refusal({"--config", "x", "--carers", "0"}), Catch::Contains("--carers"));
  CHECK_THAT(refusal({"--config", "x", "--date", "2026-13-01"}), Catch::Contains("--date"));
  CHECK_THAT(refusal({"--config", "x", "--url", "ws://host"}), Catch::Contains("--url"));
  CHECK_THAT(refusal({"--config", "x", "--duplicates=2"}), Catch::Contains("--duplicates"));
  CHECK_THAT(refusal({"--config", "x", "--rota", "r.csv"}), Catch::Contains("--branches"));
  CHECK_THAT(refusal({"--config", "x", "--frobnicate"}), Catch::Contains("unknown option"));
  CHECK_THAT(refusal({"--config"}), Catch::Contains("needs a value"));
  CHECK(sim::parse_options({"--help"}).help);
  CHECK(sim::split_url("ws://127.0.0.1:8080") ==
        std::pair<std::string, std::string>{"127.0.0.1", "8080"});
}

TEST_CASE("At-risk alerts warn of most late visits of a seeded day, with few false alarms") {
  const auto days = agency(3);
  const sim::Plan plan = sim::plan_day(days, sim::Mix{}, 3, "forecast");
  const config::Settings settings = sim::forecast_settings(days);
  const sim::Forecast f = sim::measure_forecast(settings, days, plan);
  INFO("late " << f.late << ", warned " << f.warned << ", false alarms " << f.false_alarms
               << ", median lead " << f.median_lead_minutes() << " min");
  REQUIRE(f.late > 10);  // the mix makes late visits: overruns carry over, no-shows
  CHECK(f.warned * 2 > f.late);
  CHECK(f.false_alarm_rate() < 0.2);
  CHECK(f.median_lead_minutes() > 5);
  CHECK(f.lead_minutes.size() == f.warned);
  CHECK(f.held_pages > 0);  // some lateness had a known cause
  // The same day gives the same figures.
  CHECK(sim::measure_forecast(settings, days, plan).lead_minutes == f.lead_minutes);

  SECTION("with at_risk off nothing is forecast, and the late visits are the same") {
    config::Settings off = settings;
    off.tracking.at_risk = false;
    const sim::Forecast g = sim::measure_forecast(off, days, plan);
    CHECK(g.at_risk_alerts == 0);
    CHECK(g.warned == 0);
    CHECK(g.late == f.late);
  }
}
