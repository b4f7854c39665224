// SIGHUP: a config edit takes effect without a restart, is recorded in the journal, and a
// restart decides the past under the settings that were in force.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <thread>

#include "daemon_fixture.hpp"

using namespace visitd::test;
using visitd::websocket::Role;
namespace json = boost::json;

namespace {

/// Waits up to `timeout` for `text` to appear in the daemon's log.
bool log_shows(const Daemon& d, std::string_view text, std::chrono::milliseconds timeout = 5s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (d.log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::string state_of(const Daemon& d, std::string_view visit) {
  const auto r =
      d.api("GET", "/api/visits/" + std::string(visit), token(Role::admin, "root", {"*"}));
  REQUIRE(r.status == 200);
  return str(r.json(), "state");
}

}  // namespace

TEST_CASE("SIGHUP puts tighter thresholds in force at once, and a restart keeps what they decided",
          "[reload]") {
  if (!is_today(-3min)) {
    WARN("not run: too close to midnight for a visit that started 3 minutes ago");
    return;
  }
  Daemon d(DaemonConfig{{}, {{"late_after", "\"30m\""}}, {}, {}, {}});
  d.import_rota("B1", rota_csv({visit("V1", "C1", today_at(-3min))}));
  WsClient board = WsClient::with_token(d.port(), "/ws/board", token(Role::admin, "root", {"*"}));
  REQUIRE(str(board.next(), "type") == "snapshot");
  CHECK(state_of(d, "V1") == "scheduled");

  d.reload(DaemonConfig{{}, {{"late_after", "\"1m\""}}, {}, {}, {}});
  REQUIRE(log_shows(d, "reloaded"));
  CHECK_THAT(d.log(), Catch::Contains("new thresholds"));
  bool saw_late_visit = false;
  bool saw_late_alert = false;
  for (const auto& m : board.drain(1s)) {
    if (str(m, "type") == "visit") saw_late_visit |= str(m.at("visit"), "state") == "late";
    if (str(m, "type") == "alert") saw_late_alert |= str(m.at("alert"), "kind") == "late";
  }
  CHECK(saw_late_visit);
  CHECK(saw_late_alert);
  CHECK(state_of(d, "V1") == "late");

  // The file goes back to 30m while the daemon is stopped: the restart replays the day
  // under the settings recorded for it (V1 stays late: that was decided), then applies the
  // edited file from now on and says so.
  REQUIRE(d.stop() == 0);
  d.reload(DaemonConfig{{}, {{"late_after", "\"30m\""}}, {}, {}, {}});
  d.start();
  CHECK(state_of(d, "V1") == "late");
  CHECK_THAT(d.log(), Catch::Contains("config_changed"));
}

TEST_CASE("A config with errors on SIGHUP changes nothing and says why", "[reload]") {
  if (!is_today(-3min)) {
    WARN("not run: too close to midnight for a visit that started 3 minutes ago");
    return;
  }
  Daemon d(DaemonConfig{{}, {{"late_after", "\"30m\""}}, {}, {}, {}});
  d.import_rota("B1", rota_csv({visit("V1", "C1", today_at(-3min))}));
  d.reload(DaemonConfig{{}, {{"late_after", "\"soon\""}}, {}, {}, {}});
  REQUIRE(log_shows(d, "reload_refused"));
  CHECK_THAT(d.log(), Catch::Contains("thresholds.late_after"));
  CHECK(d.http("GET", "/readyz").status == 200);
  CHECK(state_of(d, "V1") == "scheduled");
}
