// The tracking engine against the targets of its issue (figures in docs/benchmarks.md):
//
//   BM_Memory/1000000            memory an engine holds for 1,000,000 visits: after the rota
//                                import, and after a whole day of carer events     <= 1 GiB
//   BM_ApplyDay/100000/1         apply() throughput for a day of carer events on a 100,000-visit
//                                rota (70% location pings, 15% check-ins, 15% check-outs), with
//                                at-risk estimates on (the default)       >= 1,000,000 events/s
//   BM_ApplyDay/100000/0         ... the same day with [tracking] at_risk = false
//                                                           ratio (on/off) >= 0.8 (issue 8)
//   BM_AdvanceDeadlines/1000     advance() per fired deadline with 1,000 deadlines pending,
//   BM_AdvanceDeadlines/1000000  ... and with 1,000,000 pending            ratio (1M/1k) >= 0.9
//
// After the benchmarks a summary compares the figures with the targets. `engine_bench
// --memory [visits]` measures memory alone in a fresh process, where resident set growth is
// not blurred by what earlier benchmarks freed. `engine_bench --snapshot-hold [visits]`
// measures what taking a snapshot holds the engine for: a copy, or a fork (see below);
// `--write-snapshot FILE [visits]` then `--restore FILE` time a restore in a fresh process;
// `--table-growth [inserts]` the longest single insert into the decided-event table.
//
// Everything is generated from fixed seeds: the same binary runs the same workload.

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <numbers>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "visitd/config/settings.hpp"
#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"
#include "visitd/rota/engine.hpp"
#include "visitd/rota/event_table.hpp"
#include "visitd/rota/model.hpp"
#include "visitd/store/engine_journal.hpp"
#include "visitd/store/snapshot_child.hpp"

namespace {

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::rota;

constexpr std::uint64_t kSeed = 20261122;
constexpr int kBranches = 10;
constexpr std::size_t kVisitsPerCarer = 10;

// Monday 2026-11-23 (GMT, so local time is UTC): the day the workloads take place.
const LocalDays kDay{std::chrono::sys_days(std::chrono::year(2026) / 11 / 23).time_since_epoch()};

// ---------------------------------------------------------------------------------------
// Measuring

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

constexpr double kMiB = 1024.0 * 1024.0;

struct Footprint {
  double rss_bytes = 0;   ///< resident set size (/proc/self/statm)
  double heap_bytes = 0;  ///< bytes malloc has handed out and not had back (mallinfo2)
};

Footprint footprint() {
  Footprint f;
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  if (statm >> size >> resident) f.rss_bytes = double(resident) * double(sysconf(_SC_PAGESIZE));
  const struct mallinfo2 info = mallinfo2();
  f.heap_bytes = double(info.uordblks) + double(info.hblkhd);
  return f;
}

// What the summary after the benchmarks reports; every run of a benchmark adds to it.
struct Totals {
  struct Apply {
    double events = 0;
    double seconds = 0;
    double at_risk_alerts = 0;
  };
  std::map<std::pair<bool, bool>, Apply> apply;  // by (local rounds, at-risk on)
  std::size_t apply_visits = 0;
  struct Advance {
    double fired = 0;
    double seconds = 0;
    double pending = 0;  ///< summed over windows
    double windows = 0;
    std::vector<double> window_rates;  ///< deadlines per second of each window
  };
  std::map<std::int64_t, Advance> advance;  // by deadlines pending
  struct Memory {
    std::size_t visits = 0;
    std::size_t events = 0;
    Footprint imported;  ///< growth from before the import
    Footprint after_day;
  };
  std::optional<Memory> memory;  // the first measurement: later ones reuse freed memory
};
Totals totals;

// ---------------------------------------------------------------------------------------
// Generating a rota and a day of events

/// splitmix64: cheap, and the same sequence everywhere.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() { return mix(state_++ * 0x9e3779b97f4a7c15ULL); }
  std::int64_t below(std::int64_t n) { return std::int64_t(next() % std::uint64_t(n)); }
  double unit() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

std::string padded(std::uint64_t n, int width) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%0*llu", width, static_cast<unsigned long long>(n));
  return buf;
}

std::string branch_id(int b) { return "B" + padded(std::uint64_t(b), 2); }

/// A phone's event id: a version-4 UUID's 36 characters, derived from n.
std::string event_id(std::uint64_t n) {
  const std::uint64_t a = mix(n ^ 0x5eed);
  const std::uint64_t b = mix(a);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", unsigned(a >> 32),
                unsigned((a >> 16) & 0xffff), unsigned(a & 0xfff),
                unsigned(((b >> 48) & 0x3fff) | 0x8000),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

const TimeZone& london() {
  static const TimeZone zone = *TimeZone::locate("Europe/London");
  return zone;
}

/// A local wall time on `day` in London.
TimePoint local(LocalDays day, Duration since_midnight) {
  return *london().to_sys(LocalTime(day) + since_midnight);
}

config::Settings agency(int branches) {
  config::Settings s;
  for (int b = 0; b < branches; ++b) {
    s.branches.push_back(
        config::Branch{branch_id(b), "Branch " + std::to_string(b), "Europe/London", {}});
  }
  return s;
}

/// Client i of branch b: somewhere in Greater London, always in the same place.
ClientPlan client(int branch, std::uint64_t i) {
  Random r(mix((std::uint64_t(branch) << 40) ^ i));
  ClientPlan c;
  c.id = "CL-" + branch_id(branch) + "-" + padded(i, 6);
  c.name = "Client " + std::to_string(i) + " of " + branch_id(branch);
  c.location = geo::LatLon{51.30 + 0.40 * r.unit(), -0.50 + 0.80 * r.unit()};
  return c;
}

struct RotaVisit {
  std::uint16_t branch;
  std::uint32_t plan;   ///< index into the branch's import
  std::uint32_t carer;  ///< index into Rota::carers
};

/// One day's rota of many branches, as the office imports it.
struct Rota {
  std::vector<ImportRota> imports;  ///< one per branch
  std::vector<std::string> carers;
  std::vector<RotaVisit> visits;  ///< carer by carer, each carer's in order

  const VisitPlan& plan(const RotaVisit& v) const { return imports[v.branch].visits[v.plan]; }
};

/// `visit_count` visits over `branches` branches: each carer does 10 consecutive visits of 30
/// to 60 minutes, 5 to 20 minutes' travel apart, starting between 07:00 and 10:00; a client
/// is visited three times a day on average; one visit in ten is time-critical.
/// `local_rounds`: each carer's clients lie within 1.5 km of a point of their own instead of
/// anywhere in Greater London, so that the 5 to 20 minutes between visits cover the drive
/// (as in a real rota, and the simulator's); each visit has a client of its own.
Rota make_rota(std::size_t visit_count, int branches, bool local_rounds = false) {
  Random rng(kSeed);
  Rota rota;
  for (int b = 0; b < branches; ++b)
    rota.imports.push_back(ImportRota{branch_id(b), kDay, {}, "bench"});
  const std::size_t carers = (visit_count + kVisitsPerCarer - 1) / kVisitsPerCarer;
  const auto clients =
      std::int64_t(std::max<std::size_t>(1, visit_count / std::size_t(branches) / 3));
  const std::string date = "20261123";
  rota.visits.reserve(visit_count);
  for (std::size_t c = 0; c < carers; ++c) {
    const int b = int(c % std::size_t(branches));
    rota.carers.push_back("C-" + branch_id(b) + "-" + padded(c / std::size_t(branches), 6));
    TimePoint t = local(kDay, 7h + std::chrono::minutes(rng.below(180)));
    auto& plans = rota.imports[std::size_t(b)].visits;
    // Drawn only for local rounds: the London-wide day stays the one earlier figures measured.
    const geo::LatLon patch =
        local_rounds ? geo::LatLon{51.30 + 0.40 * rng.unit(), -0.50 + 0.80 * rng.unit()}
                     : geo::LatLon{};
    for (std::size_t k = 0; k < kVisitsPerCarer && rota.visits.size() < visit_count; ++k) {
      VisitPlan p;
      p.id = "V-" + branch_id(b) + "-" + date + "-" + padded(plans.size(), 7);
      p.client = client(b, std::uint64_t(rng.below(clients)));
      if (local_rounds) {
        p.client.id = "CL-" + p.id;
        // Up to about 1 km north-south and 1.4 km east-west of the carer's patch.
        p.client.location = {patch.lat + 0.009 * (2 * rng.unit() - 1),
                             patch.lon + 0.02 * (2 * rng.unit() - 1)};
      }
      p.carers = {rota.carers.back()};
      p.start = t;
      p.end = t + std::chrono::minutes(30 + 5 * rng.below(7));
      p.time_critical = rng.below(10) == 0;
      p.notes = "Key safe by the back door. Prompt tablets with breakfast.";
      t = p.end + std::chrono::minutes(5 + rng.below(16));
      rota.visits.push_back(RotaVisit{std::uint16_t(b), std::uint32_t(plans.size()),
                                      std::uint32_t(rota.carers.size() - 1)});
      plans.push_back(std::move(p));
    }
  }
  return rota;
}

enum class EventKind : std::uint8_t { check_in, check_out, ping };

/// A carer event, compact until it is turned into a Command.
struct EventSpec {
  TimePoint received;  ///< when visitd gets it: the `now` it is applied at
  TimePoint device;    ///< the phone's time
  std::uint64_t id;    ///< event id seed (a resend repeats it)
  std::uint32_t visit;
  EventKind kind;
  float north_m;  ///< where the phone is, relative to the client's home
  float east_m;
  float accuracy_m;
};

/// Every event of the rota's day, in the order visitd receives them. Per visit: a check-in
/// near the start (3% after the late threshold; 2% from outside the geofence), a check-out
/// near the end, and 4 or 5 location pings between check-in and the next visit: 70% pings,
/// 15% check-ins, 15% check-outs. Phones deliver within 3 s, 1% of check-ins after an
/// offline spell of 5 to 30 minutes, and 1% of all events twice.
std::vector<EventSpec> day_events(const Rota& rota) {
  Random rng(kSeed ^ 0xe7e7);
  std::vector<EventSpec> events;
  events.reserve(rota.visits.size() * 7);
  std::uint64_t next_id = 0;
  auto emit = [&](EventSpec e) {
    e.id = next_id++;
    events.push_back(e);
    if (rng.below(100) == 0) {
      e.received += Duration(1000 + rng.below(9000));
      events.push_back(e);
    }
  };
  auto near = [&](float metres) { return float((rng.unit() * 2 - 1) * metres); };
  for (std::uint32_t i = 0; i < rota.visits.size(); ++i) {
    const VisitPlan& p = rota.plan(rota.visits[i]);
    TimePoint in = p.start + std::chrono::seconds(-300 + rng.below(900));
    if (rng.below(100) < 3) in = p.start + std::chrono::minutes(16 + rng.below(25));
    TimePoint in_received = in + Duration(rng.below(3000));
    if (rng.below(100) == 0) in_received += std::chrono::minutes(5 + rng.below(26));
    const TimePoint out = std::max(p.end + std::chrono::seconds(-300 + rng.below(600)), in + 10min);
    const TimePoint out_received = std::max(out + Duration(rng.below(3000)), in_received + 1ms);
    const bool away = rng.below(50) == 0;
    emit(EventSpec{in_received, in, 0, i, EventKind::check_in, away ? 900.0f : near(20), near(20),
                   float(5 + rng.below(20))});
    emit(EventSpec{out_received, out, 0, i, EventKind::check_out, near(20), near(20),
                   float(5 + rng.below(20))});
    const int pings = rng.below(3) == 0 ? 4 : 5;
    const auto span = (out + 15min - in).count();
    for (int k = 0; k < pings; ++k) {
      const TimePoint at = in + Duration(rng.below(span));
      emit(EventSpec{at + Duration(rng.below(3000)), at, 0, i, EventKind::ping, near(400),
                     near(400), float(5 + rng.below(40))});
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const EventSpec& a, const EventSpec& b) { return a.received < b.received; });
  return events;
}

Command to_command(const EventSpec& e, const Rota& rota) {
  const RotaVisit& rv = rota.visits[e.visit];
  const VisitPlan& p = rota.plan(rv);
  const geo::LatLon home = p.client.location;
  const Fix fix{{home.lat + e.north_m / 111'320.0,
                 home.lon + e.east_m / (111'320.0 * std::cos(home.lat * std::numbers::pi / 180))},
                e.accuracy_m};
  switch (e.kind) {
    case EventKind::check_in:
      return CheckIn{event_id(e.id), rota.carers[rv.carer], p.id, e.device, fix, Method::gps, {}};
    case EventKind::check_out:
      return CheckOut{event_id(e.id),
                      rota.carers[rv.carer],
                      p.id,
                      e.device,
                      fix,
                      Method::gps,
                      {},
                      "All well; breakfast and tablets taken."};
    case EventKind::ping:
      break;
  }
  return LocationPing{event_id(e.id), rota.carers[rv.carer], e.device, fix};
}

/// Imports the rota into `engine` at midnight; aborts if the engine refuses it.
void import(Engine& engine, const Rota& rota) {
  Effects fx;
  for (const ImportRota& branch : rota.imports) {
    fx.clear();
    const Reply r = engine.apply(branch, local(kDay, 0h), fx);
    if (r.status != Status::accepted) {
      std::fprintf(stderr, "engine_bench: the rota of %s was refused (%zu issues)\n",
                   branch.branch.c_str(), r.issues.size());
      std::abort();
    }
  }
}

// ---------------------------------------------------------------------------------------
// apply(): a day of carer events

struct TimedCommand {
  TimePoint now;
  Command command;
};

config::Settings without_at_risk(config::Settings s) {
  s.tracking.at_risk = false;
  return s;
}

struct ApplyDay {
  config::Settings settings = agency(kBranches);
  config::Settings settings_off = without_at_risk(agency(kBranches));
  Rota rota;
  std::vector<TimedCommand> stream;
  std::size_t pings = 0;
};

const ApplyDay& apply_day(std::size_t visits, bool local_rounds) {
  static std::map<std::pair<std::size_t, bool>, std::unique_ptr<ApplyDay>> cache;
  auto& day = cache[{visits, local_rounds}];
  if (!day) {
    day = std::make_unique<ApplyDay>();
    day->rota = make_rota(visits, kBranches, local_rounds);
    const std::vector<EventSpec> events = day_events(day->rota);
    day->stream.reserve(events.size());
    for (const EventSpec& e : events) {
      day->stream.push_back(TimedCommand{e.received, to_command(e, day->rota)});
      if (e.kind == EventKind::ping) ++day->pings;
    }
  }
  return *day;
}

// Timed: engine.apply() over the day's whole stream, in receive order, on an engine that
// holds the imported rota, with at-risk estimates on (range 1 = 1) or off (0); the Effects vector
// is reused and cleared before each call, and the Reply is inspected (as the caller must). Not
// timed: generating the rota and the stream (once), importing the rota into a fresh engine before
// each iteration (a check-in happens once) and destroying the engine after it.
void BM_ApplyDay(benchmark::State& state) {
  const bool local_rounds = state.range(2) != 0;
  const ApplyDay& day = apply_day(std::size_t(state.range(0)), local_rounds);
  const bool at_risk = state.range(1) != 0;
  const config::Settings& settings = at_risk ? day.settings : day.settings_off;
  Effects fx;
  fx.reserve(256);
  double rejected = 0;
  double duplicates = 0;
  double alerts = 0;
  double at_risk_alerts = 0;
  double cpu = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto engine = std::make_unique<Engine>(settings, local(kDay, 0h));
    import(*engine, day.rota);
    state.ResumeTiming();

    const double started = thread_cpu_seconds();
    for (const TimedCommand& c : day.stream) {
      fx.clear();
      const Reply r = engine->apply(c.command, c.now, fx);
      rejected += r.status == Status::rejected;
      duplicates += r.status == Status::duplicate;
    }
    cpu += thread_cpu_seconds() - started;

    state.PauseTiming();
    alerts += double(engine->alert_count());
    for (AlertIndex a = 0; a < engine->alert_count(); ++a) {
      // Raised at risk: still at_risk, or risen from it (raised before its late deadline).
      const Alert& alert = engine->alert(a);
      const Visit& v = engine->visit(alert.visit);
      at_risk_alerts += alert.phase == AlertPhase::start &&
                        alert.raised_at < v.start + engine->thresholds(v).late_after;
    }
    engine.reset();
    state.ResumeTiming();
  }
  const double n = double(state.iterations());
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(day.stream.size()));
  state.counters["events"] = double(day.stream.size());
  state.counters["pings_pct"] = 100.0 * double(day.pings) / double(day.stream.size());
  state.counters["rejected"] = rejected / n;
  state.counters["duplicates"] = duplicates / n;
  state.counters["alerts"] = alerts / n;
  state.counters["at_risk_alerts"] = at_risk_alerts / n;
  Totals::Apply& t = totals.apply[{local_rounds, at_risk}];
  t.events += n * double(day.stream.size());
  t.seconds += cpu;
  t.at_risk_alerts = at_risk_alerts / n;
  totals.apply_visits = day.rota.visits.size();
}

// ---------------------------------------------------------------------------------------
// advance(): deadlines falling due with few or many pending

/// An engine that always has the same number of late deadlines pending, in hourly windows of
/// kPerWindow visits: window s holds the visits of branch s % 16 on day s / 16, starting between
/// 06:00 + h and 07:00 + h, so their late deadlines (start + 15 min) fall in the hour that ends
/// at window_end(s); the quarter that started before 06:15 + h also turn missed within it. The
/// rota is imported `ahead` visits (ahead / kPerWindow windows) in advance. After a window its
/// late carers check in and out (so no missed deadline is left over) and the rota of the window
/// `ahead` on is imported: every window starts with `ahead` deadlines pending.
class DeadlineConveyor {
 public:
  static constexpr int kWindowsPerDay = 16;
  static constexpr std::size_t kPerWindow = 1000;

  explicit DeadlineConveyor(std::size_t ahead)
      : settings_(agency(kWindowsPerDay)), engine_(settings_, local(kDay, 0h)) {
    windows_ahead_ = std::max<std::size_t>(1, ahead / kPerWindow);
    for (std::size_t s = 0; s < windows_ahead_; ++s) import(s);
  }

  Engine& engine() { return engine_; }
  std::size_t window() const { return window_; }

  /// Deadlines of window s fall due after window_end(s - 1) and no later than window_end(s).
  TimePoint window_end(std::size_t s) const {
    const LocalDays day = kDay + std::chrono::days(s / kWindowsPerDay);
    return local(day, 7h + std::chrono::hours(s % kWindowsPerDay) + 15min);
  }

  /// After the current window has fired: closes its visits and imports the one `ahead` on.
  void next_window() {
    settle(window_);
    import(window_ + windows_ahead_);
    ++window_;
  }

 private:
  ImportRota plan(std::size_t s) const {
    const int branch = int(s % kWindowsPerDay);
    const LocalDays day = kDay + std::chrono::days(s / kWindowsPerDay);
    const std::string date = format_local_date(day);
    Random rng(mix(kSeed ^ s));
    ImportRota rota{branch_id(branch), day, {}, "bench"};
    rota.visits.reserve(kPerWindow);
    for (std::size_t i = 0; i < kPerWindow; ++i) {
      VisitPlan p;
      p.id = "V-" + branch_id(branch) + "-" + date + "-" + padded(i, 7);
      p.client = client(branch, i);
      p.carers = {"C-" + branch_id(branch) + "-" + padded(i, 6)};
      p.start = local(day, 6h + std::chrono::hours(branch) + Duration(rng.below(3'600'000)));
      p.end = p.start + std::chrono::minutes(30 + 5 * rng.below(7));
      rota.visits.push_back(std::move(p));
    }
    return rota;
  }

  void import(std::size_t s) {
    fx_.clear();
    const Reply r = engine_.apply(plan(s), engine_.now(), fx_);
    if (r.status != Status::accepted) std::abort();
  }

  void settle(std::size_t s) {
    const TimePoint now = window_end(s);
    for (const VisitPlan& p : plan(s).visits) {
      fx_.clear();
      engine_.apply(
          CheckIn{
              event_id(++events_), p.carers.front(), p.id, now, std::nullopt, Method::manual, {}},
          now, fx_);
      engine_.apply(CheckOut{event_id(++events_),
                             p.carers.front(),
                             p.id,
                             now,
                             std::nullopt,
                             Method::manual,
                             {},
                             {}},
                    now, fx_);
    }
  }

  config::Settings settings_;
  Engine engine_;
  std::size_t windows_ahead_ = 1;
  std::size_t window_ = 0;
  std::uint64_t events_ = 1'000'000'000;
  Effects fx_;
};

constexpr std::size_t kAdvanceSizes[] = {1'000, 1'000'000};
constexpr int kWarmUpWindows = 50;

/// The conveyors of every size, built together and warmed up before any is timed, so that
/// neither meets a process heap the other has shaped (page faults and reuse of freed memory
/// otherwise differ between the two by more than the difference being measured).
DeadlineConveyor& conveyor(std::size_t ahead) {
  static const auto cache = [] {
    std::map<std::size_t, std::unique_ptr<DeadlineConveyor>> all;
    for (std::size_t n : kAdvanceSizes) all[n] = std::make_unique<DeadlineConveyor>(n);
    Effects fx;
    for (auto& [n, c] : all) {
      for (int w = 0; w < kWarmUpWindows; ++w) {
        fx.clear();
        c->engine().advance(c->window_end(c->window()), fx);
        c->next_window();
      }
    }
    return all;
  }();
  return *cache.at(ahead);
}

// Timed: what the daemon's engine timer does over one hour's window: ask next_deadline(),
// advance() to it, read the effects, until the next deadline is past the window. Each window
// fires kPerWindow late deadlines (each raising a late alert) and about kPerWindow / 4 missed
// ones (each raising the alert's severity); both count as items. Not timed: building the engine
// (once per size), and between windows closing the fired visits and importing the next rota.
void BM_AdvanceDeadlines(benchmark::State& state) {
  DeadlineConveyor& c = conveyor(std::size_t(state.range(0)));
  Engine& engine = c.engine();
  Effects fx;
  fx.reserve(256);
  double fired = 0;
  double wakeups = 0;
  double pending = 0;
  double cpu = 0;
  auto& t = totals.advance[state.range(0)];
  for (auto _ : state) {
    const TimePoint end = c.window_end(c.window());
    pending += double(engine.pending_deadlines());
    double fired_here = 0;
    const double started = thread_cpu_seconds();
    while (const auto next = engine.next_deadline()) {
      if (*next > end) break;
      fx.clear();
      engine.advance(*next, fx);
      ++wakeups;
      for (const Effect& e : fx) fired_here += e.kind == Effect::Kind::alert_changed;
    }
    const double spent = thread_cpu_seconds() - started;
    state.PauseTiming();
    cpu += spent;
    fired += fired_here;
    t.window_rates.push_back(fired_here / spent);
    c.next_window();
    state.ResumeTiming();
  }
  const double n = double(state.iterations());
  state.SetItemsProcessed(std::int64_t(fired));
  state.counters["pending"] = pending / n;
  state.counters["fired_per_window"] = fired / n;
  state.counters["wakeups_per_window"] = wakeups / n;
  t.fired += fired;
  t.seconds += cpu;
  t.pending += pending;
  t.windows += n;
}

// ---------------------------------------------------------------------------------------
// Memory

Totals::Memory measure_memory(std::size_t visits) {
  const Rota rota = make_rota(visits, kBranches);
  const std::vector<EventSpec> events = day_events(rota);
  const config::Settings settings = agency(kBranches);
  Totals::Memory m;
  m.visits = visits;
  m.events = events.size();

  const Footprint before = footprint();
  auto engine = std::make_unique<Engine>(settings, local(kDay, 0h));
  import(*engine, rota);
  const Footprint imported = footprint();
  Effects fx;
  for (const EventSpec& e : events) {
    fx.clear();
    engine->apply(to_command(e, rota), e.received, fx);
  }
  fx.clear();
  engine->advance(local(kDay, 24h), fx);
  const Footprint after = footprint();
  m.imported = {imported.rss_bytes - before.rss_bytes, imported.heap_bytes - before.heap_bytes};
  m.after_day = {after.rss_bytes - before.rss_bytes, after.heap_bytes - before.heap_bytes};
  return m;
}

// ---------------------------------------------------------------------------------------
// Snapshot hold: how long taking a snapshot holds the engine's thread, and what it costs
// the events applied while the snapshot is serialized off that thread.

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Applies `events` [from, to) to `engine`; returns the wall-clock seconds it took.
double apply_range(Engine& engine, const std::vector<EventSpec>& events, const Rota& rota,
                   std::size_t from, std::size_t to) {
  Effects fx;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = from; i < to; ++i) {
    fx.clear();
    engine.apply(to_command(events[i], rota), events[i].received, fx);
  }
  return seconds_since(start);
}

/// Two identical engines after 90% of an N-visit day. On one: Engine::clone() (what the
/// daemon's copy holds its strand for), then snapshot_bytes() of the copy (what runs off the
/// strand), then the day's last 10% applied with nothing else running. On the other:
/// store::SnapshotChild::start() (the fork), then the same 10% applied while the child
/// serializes (every page the parent writes first is copied: the fork's cost to the events),
/// then the child's bytes read. Then Engine::restore() of the copy's snapshot: the engine's
/// part of a start-up. Wall-clock seconds; the child runs at SCHED_BATCH, nice 19 (on the
/// other core, when the machine has one).
int measure_snapshot_hold(std::size_t visits) {
  const Rota rota = make_rota(visits, kBranches);
  const std::vector<EventSpec> events = day_events(rota);
  const config::Settings settings = agency(kBranches);
  const std::size_t split = events.size() * 9 / 10;
  std::printf("snapshot hold: %zu visits, %zu events applied, then %zu more measured\n", visits,
              split, events.size() - split);
  std::fflush(stdout);
  std::vector<std::unique_ptr<Engine>> engines;
  for (int i = 0; i < 2; ++i) {
    engines.push_back(std::make_unique<Engine>(settings, local(kDay, 0h)));
    import(*engines.back(), rota);
    apply_range(*engines.back(), events, rota, 0, split);
  }

  auto start = std::chrono::steady_clock::now();
  const std::unique_ptr<Engine> copy = engines[0]->clone();
  const double clone_s = seconds_since(start);
  start = std::chrono::steady_clock::now();
  const std::string copy_bytes = store::snapshot_bytes(*copy);
  const double serialize_s = seconds_since(start);
  const std::string engine_bytes = copy->snapshot();
  start = std::chrono::steady_clock::now();
  const auto restored = Engine::restore(settings, engine_bytes);
  const double restore_s = seconds_since(start);
  if (!restored) {
    std::printf("restore failed: %s\n", restored.error().message.c_str());
    return 1;
  }
  const double alone_s = apply_range(*engines[0], events, rota, split, events.size());

  start = std::chrono::steady_clock::now();
  std::optional<store::SnapshotChild> child = store::SnapshotChild::start(*engines[1]);
  const double fork_s = seconds_since(start);
  if (!child) {
    std::printf("fork failed: %s\n", std::strerror(errno));
    return 1;
  }
  const double beside_s = apply_range(*engines[1], events, rota, split, events.size());
  start = std::chrono::steady_clock::now();
  const std::string child_bytes = child->finish();
  const double finish_wait_s = seconds_since(start);

  const double tail = double(events.size() - split);
  std::printf(
      "  clone() (held): %.1f ms; snapshot_bytes() of the copy: %.0f ms (%zu bytes)\n"
      "  fork (held): %.1f ms; the child's bytes: %zu, read %.0f ms after the tail was applied\n"
      "  the tail applied alone: %.0f ns/event; beside the forked child: %.0f ns/event (%.2fx)\n"
      "  Engine::restore() of the snapshot (start-up's engine part, before the tail): %.0f ms\n",
      clone_s * 1e3, serialize_s * 1e3, copy_bytes.size(), fork_s * 1e3, child_bytes.size(),
      finish_wait_s * 1e3, alone_s / tail * 1e9, beside_s / tail * 1e9, beside_s / alone_s,
      restore_s * 1e3);
  if (child_bytes != copy_bytes) {
    std::printf("the child's snapshot differs from the copy's\n");
    return 1;
  }
  std::printf("  the child's snapshot equals the copy's, byte for byte\n");
  return 0;
}

/// `--table-growth [inserts]`: random keys inserted into the decided-event table one by one;
/// prints the longest single insert (a doubling that moves every entry at once would show
/// here as the engine's stall) and the total.
int measure_table_growth(std::size_t inserts) {
  EventTable<EventKey, std::uint64_t> table;
  std::mt19937_64 rng(kSeed);
  double worst_ms = 0;
  std::size_t worst_at = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < inserts; ++i) {
    const EventKey key{rng(), rng()};
    const auto before = std::chrono::steady_clock::now();
    table.insert(key, i);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - before)
            .count();
    if (ms > worst_ms) {
      worst_ms = ms;
      worst_at = i;
    }
  }
  std::printf(
      "%zu inserts into the decided-event table: %.0f ms in all, longest single insert "
      "%.2f ms (the %zu-th)\n",
      inserts, seconds_since(start) * 1e3, worst_ms, worst_at + 1);
  return 0;
}

/// `--write-snapshot FILE [visits]`: the snapshot the daemon would write after an N-visit
/// day (settings and engine, taken after advance), to FILE: for --restore here and for
/// journal_bench --startup N FILE.
int write_day_snapshot(const char* path, std::size_t visits) {
  const Rota rota = make_rota(visits, kBranches);
  const std::vector<EventSpec> events = day_events(rota);
  const config::Settings settings = agency(kBranches);  // the engine keeps a reference
  auto engine = std::make_unique<Engine>(settings, local(kDay, 0h));
  import(*engine, rota);
  apply_range(*engine, events, rota, 0, events.size());
  Effects fx;
  engine->advance(events.back().received, fx);
  const std::string bytes = store::snapshot_bytes(*engine);  // as the daemon writes it
  std::FILE* f = std::fopen(path, "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() ||
      std::fclose(f) != 0) {
    std::printf("cannot write %s: %s\n", path, std::strerror(errno));
    return 1;
  }
  std::printf("%zu visits, %zu events: snapshot of %zu bytes in %s\n", visits, events.size(),
              bytes.size(), path);
  return 0;
}

/// `--restore FILE`: in this fresh process (as at a daemon's start), reads FILE and times
/// store::restore_snapshot() of it (Engine::restore under the recorded settings): the
/// engine's part of a start-up, before the journal's tail.
int restore_snapshot(const char* path) {
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::printf("cannot read %s: %s\n", path, std::strerror(errno));
      return 1;
    }
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const config::Settings fallback = agency(kBranches);  // outlives the engine
  const Footprint before = footprint();
  const auto start = std::chrono::steady_clock::now();
  store::RestoredSnapshot restored;
  try {
    restored = store::restore_snapshot(fallback, bytes, 1);
  } catch (const std::exception& e) {
    std::printf("restore failed: %s\n", e.what());
    return 1;
  }
  const double seconds = seconds_since(start);
  std::printf(
      "restore (recorded settings, then Engine::restore) of %zu bytes (%zu visits): "
      "%.0f ms, heap +%.0f MiB\n",
      bytes.size(), restored.engine->visit_count(), seconds * 1e3,
      (footprint().heap_bytes - before.heap_bytes) / kMiB);
  return 0;
}

// Not a timing: one measurement of what an engine holds for N visits, as resident set growth
// and as malloc'd bytes (the latter is exact even when the process reuses freed memory).
void BM_Memory(benchmark::State& state) {
  Totals::Memory m;
  for (auto _ : state) m = measure_memory(std::size_t(state.range(0)));
  if (!totals.memory) totals.memory = m;
  const double v = double(m.visits);
  state.counters["rss_MiB_imported"] = m.imported.rss_bytes / kMiB;
  state.counters["heap_MiB_imported"] = m.imported.heap_bytes / kMiB;
  state.counters["heap_B_per_visit_imported"] = m.imported.heap_bytes / v;
  state.counters["rss_MiB_day"] = m.after_day.rss_bytes / kMiB;
  state.counters["heap_MiB_day"] = m.after_day.heap_bytes / kMiB;
  state.counters["heap_B_per_visit_day"] = m.after_day.heap_bytes / v;
}

BENCHMARK(BM_Memory)->Arg(1'000'000)->Iterations(1)->Unit(benchmark::kSecond);
// At-risk on, then off, on the same day's stream, in one run: their ratio is the cost. Then
// the same on a rota whose rounds are local (travel fits between visits, as in real rotas).
BENCHMARK(BM_ApplyDay)
    ->ArgNames({"visits", "at_risk", "local"})
    ->Args({100'000, 1, 0})
    ->Args({100'000, 0, 0})
    ->Args({100'000, 1, 1})
    ->Args({100'000, 0, 1})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(BM_AdvanceDeadlines)
    ->Arg(1'000)
    ->Arg(1'000'000)
    ->Iterations(200)
    ->Unit(benchmark::kMicrosecond);

const char* verdict(bool met) { return met ? "met" : "MISSED"; }

void print_memory(const Totals::Memory& m) {
  const double v = double(m.visits);
  std::printf(
      "memory, %zu visits imported:  RSS +%.0f MiB, heap +%.0f MiB (%.0f B/visit)"
      "  target <= 1024 MiB: %s\n",
      m.visits, m.imported.rss_bytes / kMiB, m.imported.heap_bytes / kMiB,
      m.imported.heap_bytes / v,
      verdict(std::max(m.imported.rss_bytes, m.imported.heap_bytes) <= 1024 * kMiB));
  std::printf(
      "memory, after a day (%zu events): RSS +%.0f MiB, heap +%.0f MiB (%.0f B/visit)"
      "  target <= 1024 MiB: %s\n",
      m.events, m.after_day.rss_bytes / kMiB, m.after_day.heap_bytes / kMiB,
      m.after_day.heap_bytes / v,
      verdict(std::max(m.after_day.rss_bytes, m.after_day.heap_bytes) <= 1024 * kMiB));
}

void print_summary() {
  std::printf(
      "\nSummary against the tracking engine issue's targets (thread CPU time of the "
      "timed regions, all runs):\n");
  for (const bool local_rounds : {false, true}) {
    const char* rota = local_rounds ? "local rounds" : "London-wide rounds";
    for (const bool at_risk : {true, false}) {
      const auto t = totals.apply.find({local_rounds, at_risk});
      if (t == totals.apply.end() || t->second.seconds <= 0) continue;
      const double rate = t->second.events / t->second.seconds;
      std::printf(
          "apply, %zu-visit day, %s, at-risk %s (%.0f raised): %.0f events/s (%.0f ns/event)  "
          "target >= 1000000: %s (%.2fx)\n",
          totals.apply_visits, rota, at_risk ? "on " : "off", t->second.at_risk_alerts, rate,
          1e9 / rate, verdict(rate >= 1e6), rate / 1e6);
    }
    const auto on = totals.apply.find({local_rounds, true});
    const auto off = totals.apply.find({local_rounds, false});
    if (on != totals.apply.end() && off != totals.apply.end()) {
      const double ratio =
          (on->second.events / on->second.seconds) / (off->second.events / off->second.seconds);
      std::printf("apply, %s, at-risk on/off: %.2f  target >= 0.8: %s\n", rota, ratio,
                  verdict(ratio >= 0.8));
    }
  }
  // Over all windows, and the median window: a window in which alerts_ happens to reallocate
  // costs several times a typical one, and the median shows the typical one.
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  for (const auto& [n, t] : totals.advance) {
    std::printf(
        "advance, %lld visits ahead (%.0f pending): %.0f deadlines/s over %.0f windows "
        "(%.0f ns/deadline); median window %.0f deadlines/s (%.0f ns/deadline)\n",
        static_cast<long long>(n), t.pending / t.windows, t.fired / t.seconds, t.windows,
        1e9 * t.seconds / t.fired, median(t.window_rates), 1e9 / median(t.window_rates));
  }
  const auto small = totals.advance.find(1'000);
  const auto large = totals.advance.find(1'000'000);
  if (small != totals.advance.end() && large != totals.advance.end()) {
    const double overall = (large->second.fired / large->second.seconds) /
                           (small->second.fired / small->second.seconds);
    const double typical = median(large->second.window_rates) / median(small->second.window_rates);
    std::printf(
        "advance, ratio 1M/1k: %.2f over all windows, %.2f of median windows  target >= "
        "0.9: %s\n",
        overall, typical, verdict(std::min(overall, typical) >= 0.9));
  }
  if (totals.memory) print_memory(*totals.memory);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--memory") {
    const std::size_t visits = argc >= 3 ? std::strtoull(argv[2], nullptr, 10) : 1'000'000;
    print_memory(measure_memory(visits));
    return 0;
  }
  if (argc >= 3 && std::string_view(argv[1]) == "--write-snapshot") {
    return write_day_snapshot(argv[2], argc >= 4 ? std::strtoull(argv[3], nullptr, 10) : 1'000'000);
  }
  if (argc >= 3 && std::string_view(argv[1]) == "--restore") return restore_snapshot(argv[2]);
  if (argc >= 2 && std::string_view(argv[1]) == "--table-growth") {
    return measure_table_growth(argc >= 3 ? std::strtoull(argv[2], nullptr, 10) : 4'000'000);
  }
  if (argc >= 2 && std::string_view(argv[1]) == "--snapshot-hold") {
    return measure_snapshot_hold(argc >= 3 ? std::strtoull(argv[2], nullptr, 10) : 1'000'000);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary();
  return 0;
}
