// tools/visit-sim against the real daemon on a demo clock: a compressed morning in which the
// phones' visits complete and the visits nobody turns up to go late, then missed, with their
// alerts. The simulator runs as its users run it, as a separate program.

#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "daemon_fixture.hpp"
#include "visitd/core/zone.hpp"

using namespace visitd;
using namespace visitd::test;

namespace {

struct Run {
  int status = -1;
  std::string output;
};

Run run(const std::string& command) {
  Run r;
  FILE* p = ::popen(command.c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), int(buf.size()), p) != nullptr) r.output += buf.data();
  const int status = ::pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// `key=N` in the simulator's RESULT line.
long result_field(const std::string& output, const std::string& key) {
  const auto line = output.find("RESULT ");
  REQUIRE(line != std::string::npos);
  const auto at = output.find(" " + key + "=", line);
  REQUIRE(at != std::string::npos);
  return std::stol(output.substr(at + key.size() + 2));
}

std::string line_after(const std::string& output, const std::string& prefix) {
  const auto at = output.find(prefix);
  if (at == std::string::npos) return {};
  const auto end = output.find('\n', at);
  return output.substr(at + prefix.size(), end - at - prefix.size());
}

}  // namespace

TEST_CASE("A simulated morning on a demo clock: visits complete, no-shows are missed and alerted") {
  DaemonConfig config;
  config.clock = {{"start", "\"07:00\""}, {"rate", "900"}};  // 6 demo hours in 24 s
  Daemon daemon(config);

  const Run sim =
      run("timeout 180 " VISIT_SIM_BINARY " --config " + (daemon.dir() / "visitd.toml").string() +
          " --url ws://127.0.0.1:" + std::to_string(daemon.port()) +
          " --branches B1 --seed 4 --carers 6 --hours 6 --duplicates 0.2"
          " --mix on_time=70,late=10,no_show=15,overrun=5 --progress 60 2>&1");
  INFO(sim.output);
  REQUIRE(sim.status == 0);
  CHECK(result_field(sim.output, "errors") == 0);
  CHECK(result_field(sim.output, "abandoned") == 0);
  CHECK(result_field(sim.output, "accepted") > 20);
  CHECK(result_field(sim.output, "duplicate") > 0);  // resent after a lost connection

  // Demo time when the simulator stopped: "visits B1 at demo HH:MM: ...".
  const std::string at = line_after(sim.output, "visits B1 at demo ");
  REQUIRE(at.size() >= 5);
  const TimeZone london = *TimeZone::locate("Europe/London");
  const LocalDays day = *parse_local_date(today());
  const TimePoint demo_end =
      *london.to_sys(LocalTime(day) + std::chrono::hours(std::stoi(at.substr(0, 2))) +
                     std::chrono::minutes(std::stoi(at.substr(3, 2))));

  const std::string admin = token(websocket::Role::admin, "checker", {"*"});
  const auto visits =
      daemon.api("GET", "/api/visits?branch=B1&date=" + today(), admin).json().at("visits");
  std::map<std::string, int> states;
  std::map<std::string, boost::json::object> by_id;
  for (const auto& v : visits.as_array()) {
    ++states[std::string(v.at("state").as_string())];
    by_id[std::string(v.at("id").as_string())] = v.as_object();
  }
  CAPTURE(states.size());
  CHECK(states["completed"] >= 5);

  std::istringstream no_shows(line_after(sim.output, "nobody turns up to:"));
  std::size_t checked = 0;
  for (std::string id; no_shows >> id;) {
    const auto& v = by_id.at(id);
    const TimePoint start = *parse_rfc3339(v.at("start").as_string());
    if (start + std::chrono::minutes(62) > demo_end) continue;  // not due to be missed yet
    INFO(id);
    CHECK(v.at("state") == "missed");
    CHECK(v.at("check_ins").as_array().empty());
    std::set<std::string> kinds;
    const auto alerts =
        daemon.api("GET", "/api/alerts?state=all&visit=" + id, admin).json().at("alerts");
    for (const auto& a : alerts.as_array()) kinds.insert(std::string(a.at("kind").as_string()));
    CHECK(kinds.contains("missed"));
    ++checked;
  }
  CHECK(checked >= 1);
}
