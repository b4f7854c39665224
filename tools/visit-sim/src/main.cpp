// visit-sim: plays a home care agency's day against a running visitd. This file wires the
// parts (agency.hpp generates, plan.hpp decides what the phones do, player.hpp plays it);
// see --help.

#include <algorithm>
#include <atomic>
#include <boost/json/parse.hpp>
#include <boost/system/system_error.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agency.hpp"
#include "options.hpp"
#include "plan.hpp"
#include "player.hpp"
#include "visitd/config/load.hpp"
#include "visitd/core/error.hpp"
#include "visitd/rota/import.hpp"
#include "visitd/websocket/auth.hpp"

namespace {

using namespace visitd;
using namespace std::chrono_literals;

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int) { g_stop.store(true); }

TimePoint wall_now() { return std::chrono::floor<Duration>(std::chrono::system_clock::now()); }

// A short tag unique to this run (base-36 seconds since the epoch): fresh event ids.
std::string clock_tag() {
  auto s = std::uint64_t(
      std::chrono::duration_cast<std::chrono::seconds>(wall_now().time_since_epoch()).count());
  std::string tag;
  do {
    tag.insert(tag.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[s % 36]);
    s /= 36;
  } while (s != 0);
  return "sim" + tag;
}

std::string mint(const config::Settings& settings, websocket::Role role, const std::string& sub,
                 std::vector<std::string> branches) {
  websocket::Principal who;
  who.sub = sub;
  who.role = role;
  who.all_branches = branches.empty();
  who.branches = std::move(branches);
  // Tokens keep real time, whatever the daemon's demo clock says.
  who.expires = wall_now() + 24h;
  return websocket::mint(who, settings.auth.secret, wall_now());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// A branch's day from a CSV rota file, parsed as the daemon will parse it.
sim::BranchDay day_from_file(const std::string& path, const sim::BranchPlace& branch,
                             LocalDays date) {
  const std::string text = read_file(path);
  const rota::ParsedRota parsed = rota::parse_rota_csv(text, branch.zone, date);
  if (!parsed.ok()) {
    std::string why;
    for (const auto& issue : parsed.issues) {
      why += "\n  " + path + ":" + std::to_string(issue.line) + ": " + issue.field + ": " +
             issue.message;
    }
    throw std::runtime_error("the rota file is refused:" + why);
  }
  sim::BranchDay day;
  day.branch = branch.id;
  day.zone = branch.zone;
  day.date = date;
  day.town = path;
  day.visits = parsed.visits;
  std::set<std::string> carers;
  for (const auto& v : day.visits) carers.insert(v.carers.begin(), v.carers.end());
  day.carers.assign(carers.begin(), carers.end());
  return day;
}

/// What went wrong, for a person: a socket error's message without Boost's source location.
std::string reason(const std::exception& e) {
  if (const auto* s = dynamic_cast<const boost::system::system_error*>(&e)) {
    return s->code().message();
  }
  return e.what();
}

std::string clock_text(const TimeZone& zone, TimePoint t) { return zone.format_local(t, "%H:%M"); }

void progress(const sim::Stats& stats, const sim::DemoTime& clock, const TimeZone& zone,
              std::size_t phones) {
  std::string errors;
  for (const auto& [code, n] : stats.errors()) {
    errors += (errors.empty() ? " (" : ", ") + code + " " + std::to_string(n);
  }
  if (!errors.empty()) errors += ")";
  std::fprintf(stderr,
               "visit-sim  demo %s  phones online %llu/%zu  sent %llu  acked %llu (duplicate "
               "%llu)  resent %llu  errors %llu%s\n",
               zone.format_local(clock.now(), "%Y-%m-%d %H:%M").c_str(),
               static_cast<unsigned long long>(stats.online.load()), phones,
               static_cast<unsigned long long>(stats.sent.load()),
               static_cast<unsigned long long>(stats.accepted.load() + stats.duplicate.load()),
               static_cast<unsigned long long>(stats.duplicate.load()),
               static_cast<unsigned long long>(stats.resent.load()),
               static_cast<unsigned long long>(stats.error_total()), errors.c_str());
}

/// The day's visits by state, as the daemon has them.
std::string visit_states(const sim::Endpoint& daemon, const std::string& token,
                         const sim::BranchDay& day) {
  const std::string body = sim::http_get(
      daemon, "/api/visits?branch=" + day.branch + "&date=" + format_local_date(day.date), token);
  std::map<std::string, int> states;
  const auto v = boost::json::parse(body);
  for (const auto& visit : v.at("visits").as_array()) {
    ++states[std::string(visit.at("state").as_string())];
  }
  std::string out;
  for (const auto& [state, n] : states) out += " " + state + "=" + std::to_string(n);
  return out;
}

int run(const sim::Options& o) {
  config::Settings settings;
  try {
    settings = config::load_file(o.config);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "visit-sim: %s\n", e.what());
    return 2;
  }
  if (settings.auth.secret.empty()) {
    std::fprintf(stderr, "visit-sim: %s has no [auth] secret to sign the carers' tokens\n",
                 o.config.c_str());
    return 2;
  }
  // Every branch of the config is generated (each from its own seed and town, by its place
  // in the config), and the ones wanted kept: a branch's day is the same either way.
  std::vector<sim::BranchPlace> all;
  std::vector<sim::BranchPlace> branches;
  const std::vector<std::string> wanted =
      !o.print_rota.empty() ? std::vector<std::string>{o.print_rota} : o.branches;
  const auto is_wanted = [&](const std::string& id) {
    return wanted.empty() || std::find(wanted.begin(), wanted.end(), id) != wanted.end();
  };
  for (const auto& b : settings.branches) {
    all.push_back({b.id, *TimeZone::locate(b.timezone)});
    if (is_wanted(b.id)) branches.push_back(all.back());
  }
  const auto generate = [&](LocalDays date) {
    auto days = sim::generate_agency(all, date, o.agency);
    std::erase_if(days, [&](const sim::BranchDay& d) { return !is_wanted(d.branch); });
    return days;
  };
  for (const auto& id : wanted) {
    if (settings.find_branch(id) == nullptr) {
      std::fprintf(stderr, "visit-sim: branch %s is not in %s\n", id.c_str(), o.config.c_str());
      return 2;
    }
  }
  if (branches.empty()) {
    std::fprintf(stderr, "visit-sim: %s has no [[branches]] to simulate\n", o.config.c_str());
    return 2;
  }
  const TimeZone& zone = branches.front().zone;

  if (!o.print_rota.empty()) {
    const LocalDays date = o.date.empty() ? zone.local_day(wall_now()) : *parse_local_date(o.date);
    std::fputs(sim::rota_csv(generate(date).front()).c_str(), stdout);
    return 0;
  }

  sim::Endpoint daemon;
  try {
    std::tie(daemon.host, daemon.port) =
        sim::split_url(o.url.empty() ? "ws://" + settings.server.listen : o.url);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "visit-sim: [server] listen: %s\n", e.what());
    return 2;
  }
  const std::string admin =
      o.token.empty() ? mint(settings, websocket::Role::admin, "visit-sim", {}) : o.token;

  sim::DemoTime clock;
  std::vector<sim::BranchDay> days;
  try {
    clock = sim::read_demo_time(daemon, admin);
    const LocalDays date = o.date.empty() ? zone.local_day(clock.now()) : *parse_local_date(o.date);
    std::printf("visit-sim: visitd at %s:%s, demo time %s, clock rate %g\n", daemon.host.c_str(),
                daemon.port.c_str(), zone.format_local(clock.now()).c_str(), clock.rate);
    days = o.rota.empty() ? generate(date)
                          : std::vector{day_from_file(o.rota, branches.front(), date)};
    for (const auto& day : days) {
      // A rota file goes in as it is written (with its tags and geofences).
      const std::string answer =
          sim::put_rota(daemon, day.branch, day.date,
                        o.rota.empty() ? sim::rota_csv(day) : read_file(o.rota), admin);
      std::printf("visit-sim: branch %s (%s) %s: %zu carers, %zu visits imported: %s\n",
                  day.branch.c_str(), day.town.c_str(), format_local_date(day.date).c_str(),
                  day.carers.size(), day.visits.size(), answer.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "visit-sim: visitd at %s:%s: %s\n", daemon.host.c_str(),
                 daemon.port.c_str(), reason(e).c_str());
    return 1;
  }

  const std::string tag = o.tag.empty() ? clock_tag() : o.tag;
  const sim::Plan plan = sim::plan_day(days, o.mix, o.agency.seed, tag);
  std::string mix;
  for (std::size_t i = 0; i < sim::kBehaviours; ++i) {
    mix += std::string(i == 0 ? "" : ", ") + std::string(sim::to_string(sim::Behaviour(i))) + " " +
           std::to_string(plan.summary.behaviours[i]);
  }
  std::printf(
      "visit-sim: plan (seed %llu): %zu visits, %zu events; carers at visits: %s; %zu "
      "connections lost before the ack; %zu visits nobody turns up to\n",
      static_cast<unsigned long long>(o.agency.seed), plan.summary.visits, plan.summary.events,
      mix.c_str(), plan.summary.drops, plan.summary.no_show_visits.size());
  if (!plan.summary.no_show_visits.empty()) {
    std::string ids;
    for (const auto& id : plan.summary.no_show_visits) ids += " " + id;
    std::printf("visit-sim: nobody turns up to:%s\n", ids.c_str());
  }
  std::fflush(stdout);

  std::optional<TimePoint> until;
  if (o.hours) {
    until = clock.now() +
            std::chrono::round<Duration>(std::chrono::duration<double, std::ratio<3600>>(*o.hours));
  }
  sim::Stats stats;
  std::vector<std::thread> phones;
  for (const sim::CarerScript& script : plan.carers) {
    const std::string token = mint(settings, websocket::Role::carer, script.carer, {script.branch});
    phones.emplace_back([&, token, script_ptr = &script] {
      sim::play_carer(daemon, *script_ptr, token, clock, until, stats, g_stop);
    });
  }
  const auto every = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(o.progress_s));
  auto next = std::chrono::steady_clock::now() + every;
  while (stats.finished.load() < phones.size()) {
    std::this_thread::sleep_for(50ms);
    if (std::chrono::steady_clock::now() >= next) {
      progress(stats, clock, zone, phones.size());
      next += every;
    }
  }
  for (auto& t : phones) t.join();
  progress(stats, clock, zone, phones.size());

  std::printf(
      "RESULT sent=%llu accepted=%llu duplicate=%llu resent=%llu reconnects=%llu errors=%llu "
      "abandoned=%llu\n",
      static_cast<unsigned long long>(stats.sent.load()),
      static_cast<unsigned long long>(stats.accepted.load()),
      static_cast<unsigned long long>(stats.duplicate.load()),
      static_cast<unsigned long long>(stats.resent.load()),
      static_cast<unsigned long long>(stats.reconnects.load()),
      static_cast<unsigned long long>(stats.error_total()),
      static_cast<unsigned long long>(stats.abandoned.load()));
  for (const auto& [code, n] : stats.errors()) {
    std::printf("errors %s=%llu\n", code.c_str(), static_cast<unsigned long long>(n));
  }
  for (const auto& day : days) {
    try {
      std::printf("visits %s at demo %s:%s\n", day.branch.c_str(),
                  clock_text(day.zone, clock.now()).c_str(),
                  visit_states(daemon, admin, day).c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "visit-sim: cannot read branch %s's visits: %s\n", day.branch.c_str(),
                   reason(e).c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  sim::Options options;
  try {
    options = sim::parse_options(args);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "visit-sim: %s; see visit-sim --help\n", e.what());
    return 2;
  }
  if (options.help) {
    std::fputs(sim::kUsage, stdout);
    return 0;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "visit-sim: %s\n", e.what());
    return 1;
  }
}
