// How much warning at-risk alerts give on the simulator's agency day, and how often they cry
// wolf: the seeded day of tools/visit-sim (the same generator and phones as `visit-sim run`)
// played into the engine with an injected clock. Prints, per seed and over all seeds, the
// median minutes from the first at_risk alert to a late visit's late deadline, and the share
// of at-risk visits whose carer checked in on time after all.
//
//   at_risk_forecast [--seeds FIRST COUNT] [--carers N] [--date YYYY-MM-DD] [--silent-carers]
//
// --silent-carers: no carer sends running_late (the simulator's mix has 60% of late
// arrivals say so beforehand), so that the figures are the estimates' alone.
//
// Defaults: seeds 1..10, 10 carers and 36 clients per branch, two London branches,
// 2026-11-23. Figures go in docs/benchmarks.md with the command that printed them.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "agency.hpp"
#include "forecast.hpp"
#include "plan.hpp"
#include "visitd/core/zone.hpp"

using namespace visitd;

namespace {

void print(const char* label, const sim::Forecast& f) {
  std::printf(
      "%-8s visits %5zu  late %4zu  at-risk visits %4zu (alerts %4zu)  warned %4zu (%5.1f%% of "
      "late)  median lead %5.1f min  false alarms %4zu (%5.1f%%)  late alerts held %4zu\n",
      label, f.visits, f.late, f.at_risk_visits, f.at_risk_alerts, f.warned,
      f.late == 0 ? 0.0 : 100.0 * double(f.warned) / double(f.late), f.median_lead_minutes(),
      f.false_alarms, 100.0 * f.false_alarm_rate(), f.held_pages);
}

int usage() {
  std::fputs(
      "usage: at_risk_forecast [--seeds FIRST COUNT] [--carers N] [--date YYYY-MM-DD] "
      "[--silent-carers]\n",
      stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t first = 1;
  std::uint64_t count = 10;
  unsigned carers = 10;
  std::string date_text = "2026-11-23";
  sim::Mix mix;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--seeds" && i + 2 < argc) {
      first = std::strtoull(argv[++i], nullptr, 10);
      count = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--carers" && i + 1 < argc) {
      carers = unsigned(std::strtoul(argv[++i], nullptr, 10));
    } else if (arg == "--date" && i + 1 < argc) {
      date_text = argv[++i];
    } else if (arg == "--silent-carers") {
      mix.running_late = 0;
    } else {
      return usage();
    }
  }
  const auto date = parse_local_date(date_text);
  if (!date || count == 0 || carers == 0) return usage();
  const auto london = TimeZone::locate("Europe/London");
  const std::vector<sim::BranchPlace> branches{{"B1", *london}, {"B2", *london}};

  sim::Forecast all;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    sim::AgencyOptions options;
    options.seed = seed;
    options.carers = carers;
    const auto days = sim::generate_agency(branches, *date, options);
    const sim::Plan plan = sim::plan_day(days, mix, seed, "forecast");
    const config::Settings settings = sim::forecast_settings(days);
    const sim::Forecast f = sim::measure_forecast(settings, days, plan);
    print(("seed " + std::to_string(seed)).c_str(), f);
    all.visits += f.visits;
    all.late += f.late;
    all.at_risk_visits += f.at_risk_visits;
    all.at_risk_alerts += f.at_risk_alerts;
    all.warned += f.warned;
    all.false_alarms += f.false_alarms;
    all.held_pages += f.held_pages;
    all.lead_minutes.insert(all.lead_minutes.end(), f.lead_minutes.begin(), f.lead_minutes.end());
  }
  std::sort(all.lead_minutes.begin(), all.lead_minutes.end());
  print("all", all);
  return 0;
}
