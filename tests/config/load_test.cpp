#include "visitd/config/load.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>

#include "visitd/config/settings.hpp"
#include "visitd/core/error.hpp"
#include "visitd/core/time.hpp"

using namespace std::chrono_literals;
using visitd::ConfigError;
using visitd::Duration;
using visitd::config::describe;
using visitd::config::load_file;
using visitd::config::load_string;
using visitd::config::Settings;
using visitd::config::Thresholds;

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSecret = "0123456789abcdef-test-secret";

/// What a refused config reported.
struct Refusal {
  std::string file;
  int line = -1;
  std::string key;
  std::string what;
};

Refusal refusal(std::string_view toml) {
  try {
    load_string(toml, "visitd.toml");
  } catch (const ConfigError& e) {
    return {e.file(), e.line(), e.key(), e.what()};
  }
  FAIL("the config was accepted:\n" << toml);
  return {};
}

/// A directory of its own under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("visitd-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const fs::path& path() const { return path_; }
  fs::path write(const fs::path& relative, std::string_view content) const {
    fs::path p = path_ / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  fs::path path_;
};

// protocol.md's "Config (TOML)" examples, joined, with a real secret in place of "...".
constexpr std::string_view kProtocolExample = R"([server]
listen = "127.0.0.1:8080"
allowed_origins = ["http://127.0.0.1:8080"]
max_message = "64KiB"

[store]
kind = "journal"              # or "redis", with url = "redis://127.0.0.1:6379"
dir = "./data"

[auth]
secret = "0123456789abcdef-test-secret"

[thresholds]
late_after = "15m"
missed_after = "60m"
overrun_after = "15m"
no_checkout_after = "2h"
short_ratio = 0.75
geofence_m = 150

[thresholds.time_critical]
late_after = "5m"
missed_after = "30m"

[[branches]]
id = "B1"
name = "North"
timezone = "Europe/London"

[[receivers]]
name = "pager"
type = "webhook"              # our JSON
url = "http://127.0.0.1:9000/hook"

[[receivers]]
name = "pd"
type = "pagerduty"            # Events API v2
url = "https://events.example/v2/enqueue"
routing_key = "R0UTINGKEY"

[[receivers]]
name = "am"
type = "alertmanager"         # POST {url}/api/v2/alerts
url = "http://127.0.0.1:9093"

[escalation]
ack_timeout = "30m"
critical = [ { after = "0s", notify = ["pager", "am"] }, { after = "10m", notify = ["pd"] } ]
warning  = [ { after = "15m", notify = ["pager"] } ]
# info never pages. `notify` names receivers or on-call schedules.
)";

}  // namespace

TEST_CASE("The protocol's example config loads with exactly the values it states") {
  const Settings s = load_string(kProtocolExample, "example.toml");

  CHECK(s.source == "example.toml");
  CHECK(s.server.listen == "127.0.0.1:8080");
  CHECK(s.server.allowed_origins == std::vector<std::string>{"http://127.0.0.1:8080"});
  CHECK(s.server.max_message == 64U * 1024);
  CHECK(s.store.kind == "journal");
  CHECK(s.store.dir == "./data");
  CHECK(s.auth.secret == kSecret);
  CHECK(s.auth.secret_file.empty());

  const Thresholds t = s.thresholds_for("B1", "", false);
  CHECK(t.late_after == 15min);
  CHECK(t.missed_after == 60min);
  CHECK(t.overrun_after == 15min);
  CHECK(t.no_checkout_after == 2h);
  CHECK(t.short_ratio == 0.75);
  CHECK(t.geofence_m == 150.0);
  const Thresholds tc = s.thresholds_for("B1", "", true);
  CHECK(tc.late_after == 5min);
  CHECK(tc.missed_after == 30min);
  CHECK(tc.overrun_after == 15min);

  REQUIRE(s.branches.size() == 1);
  CHECK(s.branches[0].id == "B1");
  CHECK(s.branches[0].name == "North");
  CHECK(s.branches[0].timezone == "Europe/London");
  CHECK(s.find_branch("B1") == &s.branches[0]);
  CHECK(s.find_branch("B2") == nullptr);

  REQUIRE(s.receivers.size() == 3);
  CHECK(s.receivers[0].name == "pager");
  CHECK(s.receivers[0].type == "webhook");
  CHECK(s.receivers[0].url == "http://127.0.0.1:9000/hook");
  CHECK(s.receivers[1].type == "pagerduty");
  CHECK(s.receivers[1].routing_key == "R0UTINGKEY");
  CHECK(s.receivers[2].type == "alertmanager");
  CHECK(s.receivers[2].url == "http://127.0.0.1:9093");

  CHECK(s.escalation.ack_timeout == 30min);
  REQUIRE(s.escalation.critical.size() == 2);
  CHECK(s.escalation.critical[0].after == 0s);
  CHECK(s.escalation.critical[0].notify == std::vector<std::string>{"pager", "am"});
  CHECK(s.escalation.critical[1].after == 10min);
  CHECK(s.escalation.critical[1].notify == std::vector<std::string>{"pd"});
  REQUIRE(s.escalation.warning.size() == 1);
  CHECK(s.escalation.warning[0].after == 15min);
  CHECK(s.escalation.info.empty());
}

TEST_CASE("Omitted sections take the documented defaults") {
  const Settings s = load_string("", "empty.toml");

  CHECK(s.server.listen == "127.0.0.1:8080");
  CHECK(s.server.allowed_origins.empty());
  CHECK(s.server.max_message == 64U * 1024);
  CHECK(s.store.kind == "journal");
  CHECK(s.store.dir == "./data");
  CHECK(s.store.url.empty());
  CHECK(s.store.location_retention == 24h * 30);
  CHECK(s.auth.secret.empty());  // allowed when loading; the daemon refuses to serve without
  CHECK(s.tracking.early_window == 2h);
  CHECK(s.tracking.late_window == 4h);
  CHECK(s.tracking.device_skew == 2min);
  CHECK(s.tracking.shift_lead == 1h);
  CHECK(s.tracking.shift_tail == 1h);
  CHECK(s.tracking.offline_window == 72h);
  CHECK(s.branches.empty());
  CHECK(s.receivers.empty());
  CHECK(s.escalation.ack_timeout == 30min);
  CHECK(s.escalation.critical.empty());
  CHECK(s.escalation.warning.empty());

  CHECK(s.thresholds_for("", "", false) == Thresholds{});
  // design.md: "ours 15m, 5m time-critical", "60m, 30m time-critical".
  Thresholds critical;
  critical.late_after = 5min;
  critical.missed_after = 30min;
  CHECK(s.thresholds_for("", "", true) == critical);
}

TEST_CASE("A branch without a name or time zone is named by its id and keeps UK time") {
  const Settings s = load_string("[[branches]]\nid = \"B7\"\n");
  REQUIRE(s.branches.size() == 1);
  CHECK(s.branches[0].name == "B7");
  CHECK(s.branches[0].timezone == "Europe/London");
}

TEST_CASE("Durations in seconds are accepted so that tests can run in real time") {
  const Settings s = load_string(R"([thresholds]
late_after = "3s"
missed_after = "6s"
overrun_after = "2s"
no_checkout_after = "1m30s"
[thresholds.time_critical]
late_after = "1s"
missed_after = "2s"
[tracking]
device_skew = "500ms"
early_window = "1d"
[escalation]
ack_timeout = "10s"
)");
  const Thresholds t = s.thresholds_for("", "", false);
  CHECK(t.late_after == 3s);
  CHECK(t.missed_after == 6s);
  CHECK(t.overrun_after == 2s);
  CHECK(t.no_checkout_after == 90s);
  CHECK(s.thresholds_for("", "", true).late_after == 1s);
  CHECK(s.tracking.device_skew == 500ms);
  CHECK(s.tracking.early_window == 24h);
  CHECK(s.escalation.ack_timeout == 10s);
}

TEST_CASE("Threshold overrides resolve in the documented order") {
  // Each layer sets late_after to its own value, so the winner is visible. geofence_m shows
  // that a branch's own values beat a global visit-type override.
  const Settings s = load_string(R"([thresholds]
late_after = "10m"
missed_after = "2h"
[thresholds.types.personal]
late_after = "11m"
geofence_m = 50
[thresholds.time_critical]
late_after = "12m"

[[branches]]
id = "B1"
[branches.thresholds]
late_after = "13m"
geofence_m = 200
[branches.thresholds.types.personal]
late_after = "14m"
[branches.thresholds.time_critical]
late_after = "15m"

[[branches]]
id = "B2"

[[branches]]
id = "B3"
[branches.thresholds.types.medication]
late_after = "16m"
)");

  using Row = std::tuple<std::string, std::string, bool, Duration, double>;
  const auto [branch, type, critical, late_after, geofence_m] =
      GENERATE(table<std::string, std::string, bool, Duration, double>({
          Row{"", "", false, 10min, 150},            // global values
          Row{"", "personal", false, 11min, 50},     // then the global type override
          Row{"", "other", false, 10min, 150},       // an unconfigured type: as no type
          Row{"", "", true, 12min, 150},             // then the global time-critical override
          Row{"", "personal", true, 12min, 50},      // time-critical beats the type
          Row{"B1", "", false, 13min, 200},          // then the branch's values
          Row{"B1", "personal", false, 14min, 200},  // branch values beat the global type
          Row{"B1", "other", false, 13min, 200},
          Row{"B1", "", true, 15min, 200},  // the branch's time-critical comes last
          Row{"B1", "personal", true, 15min, 200},
          Row{"B2", "personal", false, 11min, 50},  // a branch with no overrides
          Row{"B2", "", true, 12min, 150},
          Row{"B3", "medication", false, 16min, 150},  // a type only the branch knows
          Row{"B3", "personal", false, 11min, 50}, Row{"B3", "medication", true, 12min, 150},
          Row{"nowhere", "personal", false, 11min, 50},  // an unknown branch: global values
      }));

  CAPTURE(branch, type, critical);
  const Thresholds t = s.thresholds_for(branch, type, critical);
  CHECK(t.late_after == late_after);
  CHECK(t.geofence_m == geofence_m);
  // Not overridden anywhere: inherited from [thresholds], or the time-critical default.
  CHECK(t.missed_after == (critical ? Duration(30min) : Duration(2h)));
  CHECK(t.no_checkout_after == 2h);
}

TEST_CASE("ThresholdOverrides replace only the members they set") {
  visitd::config::ThresholdOverrides o;
  CHECK(o.empty());
  CHECK(o.apply_to(Thresholds{}) == Thresholds{});
  o.short_ratio = 0.5;
  CHECK_FALSE(o.empty());
  Thresholds expected;
  expected.short_ratio = 0.5;
  CHECK(o.apply_to(Thresholds{}) == expected);
}

TEST_CASE("An unknown key is refused with its full dotted name and line") {
  SECTION("at the top level") {
    const auto r = refusal("[server]\nlisten = \"127.0.0.1:1\"\n\n[sever]\nlisten = \"x\"\n");
    CHECK(r.key == "sever");
    CHECK(r.line == 4);
    CHECK(r.file == "visitd.toml");
    CHECK_THAT(r.what,
               Catch::Contains("unknown key") && Catch::Contains("did you mean \"server\""));
  }
  SECTION("in a section") {
    const auto r = refusal("[thresholds]\nlate_after = \"5m\"\nlate_afer = \"10m\"\n");
    CHECK(r.key == "thresholds.late_afer");
    CHECK(r.line == 3);
    CHECK_THAT(r.what, Catch::StartsWith("visitd.toml:3: thresholds.late_afer: unknown key"));
  }
  SECTION("in a branch") {
    const auto r =
        refusal("[[branches]]\nid = \"B1\"\n\n[[branches]]\nid = \"B2\"\ntimezon = \"UTC\"\n");
    CHECK(r.key == "branches[1].timezon");
    CHECK(r.line == 6);
  }
  SECTION("in a branch's time-critical thresholds") {
    const auto r =
        refusal("[[branches]]\nid = \"B1\"\n[branches.thresholds.time_critical]\nlate = \"5m\"\n");
    CHECK(r.key == "branches[0].thresholds.time_critical.late");
    CHECK(r.line == 4);
  }
  SECTION("in a visit type's thresholds") {
    const auto r = refusal("[thresholds.types.\"night sit\"]\nmissed = \"5m\"\n");
    CHECK(r.key == "thresholds.types.\"night sit\".missed");
    CHECK(r.line == 2);
  }
  SECTION("in an escalation step") {
    const auto r = refusal(R"([[receivers]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:9000/hook"
[escalation]
critical = [ { after = "0s", notify = ["pager"], repeat = true } ]
)");
    CHECK(r.key == "escalation.critical[0].repeat");
    CHECK(r.line == 6);
  }
  SECTION("in [store]") {
    const auto r = refusal("[store]\nkind = \"journal\"\npath = \"/var/lib/visitd\"\n");
    CHECK(r.key == "store.path");
    CHECK(r.line == 3);
  }
}

TEST_CASE("A value of the wrong type is refused naming the type expected") {
  const auto [toml, line, key, expected] =
      GENERATE(table<std::string, int, std::string, std::string>({
          {"[server]\nlisten = 8080\n", 2, "server.listen", "expected a string, got an integer"},
          {"[server]\nallowed_origins = \"http://a\"\n", 2, "server.allowed_origins",
           "expected an array of strings, got a string"},
          {"[server]\nallowed_origins = [\"http://a\",\n  3]\n", 3, "server.allowed_origins[1]",
           "expected a string, got an integer"},
          {"server = 1\n", 1, "server", "expected a table, got an integer"},
          {"[thresholds]\nshort_ratio = \"0.5\"\n", 2, "thresholds.short_ratio",
           "expected a number, got a string"},
          {"[thresholds]\ngeofence_m = true\n", 2, "thresholds.geofence_m",
           "expected a number, got a boolean"},
          {"\n[branches]\nid = \"B1\"\n", 2, "branches", "expected an array of tables"},
          {"[[branches]]\nid = 1\n", 2, "branches[0].id", "expected a string, got an integer"},
          {"[escalation]\nwarning = [\"pager\"]\n", 2, "escalation.warning[0]",
           "expected a table, got a string"},
          {"[thresholds.types]\nnight = \"5m\"\n", 2, "thresholds.types.night",
           "expected a table of thresholds"},
      }));
  CAPTURE(toml);
  const auto r = refusal(toml);
  CHECK(r.key == key);
  CHECK(r.line == line);
  CHECK_THAT(r.what, Catch::Contains(expected));
}

TEST_CASE("A duration must be a string with a unit") {
  const auto [value, complaint] = GENERATE(table<std::string, std::string>({
      {"15", "expected a duration string such as \"90s\""},
      {"\"15\"", "\"15\" is not a duration"},
      {"\"15 minutes\"", "\"15 minutes\" is not a duration"},
      {"\"\"", "\"\" is not a duration"},
      {"\"-5m\"", "is not a duration"},
      {"1.5", "expected a duration string"},
  }));
  CAPTURE(value);
  const auto r = refusal("[tracking]\n\nshift_lead = " + value + "\n");
  CHECK(r.key == "tracking.shift_lead");
  CHECK(r.line == 3);
  CHECK_THAT(r.what, Catch::Contains(complaint));
}

TEST_CASE("An unknown time zone is refused") {
  const auto r = refusal("[[branches]]\nid = \"B1\"\ntimezone = \"Europe/Lundon\"\n");
  CHECK(r.key == "branches[0].timezone");
  CHECK(r.line == 3);
  CHECK_THAT(r.what, Catch::Contains("Europe/Lundon"));
  CHECK(load_string("[[branches]]\nid = \"B1\"\ntimezone = \"America/New_York\"\n")
            .branches[0]
            .timezone == "America/New_York");
}

TEST_CASE("late_after must come before missed_after wherever the thresholds combine") {
  SECTION("in [thresholds]") {
    const auto r = refusal("[thresholds]\nlate_after = \"60m\"\nmissed_after = \"60m\"\n");
    CHECK(r.key == "thresholds.late_after");
    CHECK(r.line == 2);
    CHECK_THAT(r.what, Catch::Contains("late_after (1h) must be less than missed_after (1h)"));
  }
  SECTION("against a default: the value written is blamed") {
    const auto r = refusal("[thresholds]\n\nmissed_after = \"10m\"\n");
    CHECK(r.key == "thresholds.missed_after");
    CHECK(r.line == 3);
    CHECK_THAT(r.what, Catch::Contains("late_after (15m, the default)"));
  }
  SECTION("in the time-critical defaults") {
    const auto r = refusal("[thresholds.time_critical]\nlate_after = \"45m\"\n");
    CHECK(r.key == "thresholds.time_critical.late_after");
    CHECK_THAT(r.what, Catch::Contains("time-critical visits"));
  }
  SECTION("only for one visit type in one branch") {
    const auto r = refusal(R"([thresholds]
missed_after = "40m"
[[branches]]
id = "B1"
[branches.thresholds.types.respite]
late_after = "45m"
)");
    CHECK(r.key == "branches[0].thresholds.types.respite.late_after");
    CHECK(r.line == 6);
    CHECK_THAT(r.what, Catch::Contains("missed_after (40m, set in [thresholds])") &&
                           Catch::Contains("visits of type \"respite\" in branch \"B1\""));
  }
}

TEST_CASE("overrun_after may not exceed no_checkout_after") {
  CHECK(load_string("[thresholds]\noverrun_after = \"2h\"\n")
            .thresholds_for("", "", false)
            .overrun_after == 2h);
  const auto r = refusal(R"([thresholds]
no_checkout_after = "30m"
[thresholds.types.night]
overrun_after = "45m"
)");
  CHECK(r.key == "thresholds.types.night.overrun_after");
  CHECK(r.line == 4);
  CHECK_THAT(r.what, Catch::Contains("must not exceed"));
}

TEST_CASE("Threshold values must be in range") {
  CHECK(load_string("[thresholds]\nshort_ratio = 1\n").thresholds_for("", "", false).short_ratio ==
        1.0);
  CHECK(refusal("[thresholds]\nshort_ratio = 0\n").key == "thresholds.short_ratio");
  CHECK(refusal("[thresholds]\nshort_ratio = 1.5\n").key == "thresholds.short_ratio");
  CHECK(refusal("[thresholds]\ngeofence_m = -1\n").key == "thresholds.geofence_m");
  CHECK(refusal("[thresholds]\ngeofence_m = nan\n").key == "thresholds.geofence_m");
}

TEST_CASE("Branch ids must be given, non-empty and unique") {
  SECTION("missing") {
    const auto r = refusal("[[branches]]\nid = \"B1\"\n[[branches]]\nname = \"South\"\n");
    CHECK(r.key == "branches[1].id");
    CHECK(r.line == 3);
    CHECK_THAT(r.what, Catch::Contains("missing"));
  }
  SECTION("empty") { CHECK(refusal("[[branches]]\nid = \"\"\n").key == "branches[0].id"); }
  SECTION("duplicated") {
    const auto r = refusal("[[branches]]\nid = \"B1\"\n[[branches]]\nid = \"B1\"\n");
    CHECK(r.key == "branches[1].id");
    CHECK(r.line == 4);
    CHECK_THAT(r.what, Catch::Contains("duplicate branch id \"B1\" (first defined on line 2)"));
  }
  SECTION("the all-branches wildcard") {
    CHECK(refusal("[[branches]]\nid = \"*\"\n").key == "branches[0].id");
  }
}

TEST_CASE("Receivers are checked when loading") {
  SECTION("pagerduty needs a routing key") {
    const auto r =
        refusal("[[receivers]]\nname = \"pd\"\ntype = \"pagerduty\"\nurl = \"https://x\"\n");
    CHECK(r.key == "receivers[0].routing_key");
    CHECK(r.line == 1);
  }
  SECTION("an unknown type") {
    const auto r = refusal("[[receivers]]\nname = \"s\"\ntype = \"slack\"\nurl = \"https://x\"\n");
    CHECK(r.key == "receivers[0].type");
    CHECK(r.line == 3);
  }
  SECTION("a url is required") {
    CHECK(refusal("[[receivers]]\nname = \"w\"\ntype = \"webhook\"\n").key == "receivers[0].url");
  }
  SECTION("names are unique") {
    const auto r = refusal(R"([[receivers]]
name = "w"
type = "webhook"
url = "http://a"
[[receivers]]
name = "w"
type = "alertmanager"
url = "http://b"
)");
    CHECK(r.key == "receivers[1].name");
    CHECK(r.line == 6);
  }
}

TEST_CASE("An escalation step may only notify configured receivers") {
  const auto r = refusal(R"([[receivers]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:9000/hook"

[escalation]
critical = [ { after = "0s", notify = ["pager"] } ]
warning = [ { after = "15m", notify = ["pager", "oncall"] } ]
)");
  CHECK(r.key == "escalation.warning[0].notify[1]");
  CHECK(r.line == 8);
  CHECK_THAT(r.what, Catch::Contains("no receiver or on-call schedule named \"oncall\""));
}

TEST_CASE("Escalation ladders are checked for shape and order") {
  const std::string receivers =
      "[[receivers]]\nname = \"p\"\ntype = \"webhook\"\nurl = \"http://a\"\n[escalation]\n";
  CHECK(refusal(receivers + "critical = [ { after = \"0s\" } ]\n").key ==
        "escalation.critical[0].notify");
  CHECK(refusal(receivers + "critical = [ { notify = [] } ]\n").key ==
        "escalation.critical[0].notify");
  CHECK(refusal(receivers +
                "critical = [ { after = \"10m\", notify = [\"p\"] }, { after = \"5m\", notify = "
                "[\"p\"] } ]\n")
            .key == "escalation.critical[1].after");
  CHECK(refusal(receivers + "ack_timeout = \"0s\"\n").key == "escalation.ack_timeout");
  // An omitted `after` means at once.
  const Settings s = load_string(receivers + "critical = [ { notify = [\"p\"] } ]\n");
  REQUIRE(s.escalation.critical.size() == 1);
  CHECK(s.escalation.critical[0].after == 0s);
}

TEST_CASE("Delivery settings: fallbacks, retries, grouping and the time-critical ladder") {
  const std::string two = R"([[receivers]]
name = "p"
type = "webhook"
url = "http://a"
fallback = "q"
[[receivers]]
name = "q"
type = "webhook"
url = "http://b"
)";
  const Settings s = load_string(two + R"([escalation]
max_reopens = 1
group_wait = "0s"
retry_initial = "2s"
retry_max = "10m"
fallback_after = 2
time_critical = [ { after = "0s", notify = ["q"] } ]
)");
  CHECK(s.receivers[0].fallback == "q");
  CHECK(s.escalation.max_reopens == 1);
  CHECK(s.escalation.group_wait == 0s);
  CHECK(s.escalation.retry_initial == 2s);
  CHECK(s.escalation.retry_max == 10min);
  CHECK(s.escalation.fallback_after == 2);
  REQUIRE(s.escalation.time_critical.size() == 1);
  CHECK(load_string(describe(s)).escalation == s.escalation);
  CHECK(load_string(describe(s)).receivers[0].fallback == "q");

  CHECK(refusal(R"([[receivers]]
name = "p"
type = "webhook"
url = "http://a"
fallback = "nobody"
)")
            .key == "receivers[0].fallback");
  CHECK(refusal("[[receivers]]\nname = \"p\"\ntype = \"webhook\"\nurl = \"http://a\"\n"
                "fallback = \"p\"\n")
            .key == "receivers[0].fallback");
  const auto r = refusal("[escalation]\nretry_initial = \"5m\"\nretry_max = \"1m\"\n");
  CHECK(r.key == "escalation.retry_max");
  CHECK(r.line == 3);
  CHECK(refusal("[escalation]\ngroup_wait = \"-1s\"\n").key == "escalation.group_wait");
  CHECK(refusal("[escalation]\nfallback_after = 0\n").key == "escalation.fallback_after");
}

TEST_CASE("The info ladder must stay empty because info never pages") {
  const auto r = refusal(R"([[receivers]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:9000/hook"
[escalation]
info = [ { after = "0s", notify = ["pager"] } ]
)");
  CHECK(r.key == "escalation.info");
  CHECK(r.line == 6);
  CHECK_THAT(r.what, Catch::Contains("info never pages"));
  CHECK(load_string("[escalation]\ninfo = []\n").escalation.info.empty());
}

TEST_CASE("The store is checked when loading") {
  const Settings s = load_string("[store]\nkind = \"redis\"\nurl = \"redis://10.0.0.5:6379\"\n");
  CHECK(s.store.kind == "redis");
  CHECK(s.store.url == "redis://10.0.0.5:6379");

  const auto missing = refusal("[store]\nkind = \"redis\"\n");
  CHECK(missing.key == "store.url");
  CHECK(missing.line == 1);
  CHECK(refusal("[store]\nkind = \"redis\"\nurl = \"http://x\"\n").key == "store.url");
  CHECK(refusal("[store]\nkind = \"sqlite\"\n").key == "store.kind");
  CHECK(refusal("[store]\nlocation_retention = \"0s\"\n").key == "store.location_retention");

  // Redis' own keys: the keyspace in the key names, and the explicit opt-out of fsync.
  CHECK(s.store.keyspace == "agency");
  CHECK_FALSE(s.store.allow_unsafe_fsync);
  const Settings t = load_string(
      "[store]\nkind = \"redis\"\nurl = \"redis://app:s3cret@10.0.0.5/2\"\nkeyspace = "
      "\"north-1\"\nallow_unsafe_fsync = true\n");
  CHECK(t.store.keyspace == "north-1");
  CHECK(t.store.allow_unsafe_fsync);
  const auto braces = refusal("[store]\nkeyspace = \"a}b\"\n");
  CHECK(braces.key == "store.keyspace");
  CHECK(braces.line == 2);
  CHECK(refusal("[store]\nkeyspace = \"\"\n").key == "store.keyspace");
  const auto not_bool = refusal("[store]\nallow_unsafe_fsync = \"yes\"\n");
  CHECK(not_bool.key == "store.allow_unsafe_fsync");
  CHECK_THAT(not_bool.what, Catch::Contains("a boolean"));
  // check-config shows the URL without its password, and reads back the same settings.
  const std::string text = describe(t);
  CHECK_THAT(text, !Catch::Contains("s3cret"));
  CHECK_THAT(text, Catch::Contains("redis://(redacted)@10.0.0.5/2"));
  CHECK(load_string(describe(s)).store == s.store);
}

TEST_CASE("The listen address and origins are checked when loading") {
  CHECK(load_string("[server]\nlisten = \"0.0.0.0:0\"\n").server.listen == "0.0.0.0:0");
  CHECK(load_string("[server]\nlisten = \"[::1]:8080\"\n").server.listen == "[::1]:8080");
  CHECK(refusal("[server]\nlisten = \"8080\"\n").key == "server.listen");
  CHECK(refusal("[server]\nlisten = \"localhost:http\"\n").key == "server.listen");
  CHECK(refusal("[server]\nlisten = \"::1:8080\"\n").key == "server.listen");
  CHECK(refusal("[server]\nlisten = \"a:70000\"\n").key == "server.listen");
  // A trailing slash would never equal a browser's Origin header.
  CHECK(refusal("[server]\nallowed_origins = [\"https://office.example/\"]\n").key ==
        "server.allowed_origins[0]");
  CHECK(refusal("[server]\nallowed_origins = [\"office.example\"]\n").key ==
        "server.allowed_origins[0]");
}

TEST_CASE("max_message accepts sizes with units and plain byte counts") {
  const auto [value, bytes] = GENERATE(table<std::string, std::size_t>({
      {"\"64KiB\"", 64 * 1024},
      {"\"1MiB\"", 1024 * 1024},
      {"\"512B\"", 512},
      {"\"16MiB\"", 16 * 1024 * 1024},
      {"4096", 4096},
      {"1", 1},
  }));
  CAPTURE(value);
  CHECK(load_string("[server]\nmax_message = " + value + "\n").server.max_message == bytes);
}

TEST_CASE("max_message refuses zero, too large and malformed sizes") {
  const auto [value, complaint] = GENERATE(table<std::string, std::string>({
      {"0", "greater than 0"},
      {"\"0B\"", "greater than 0"},
      {"-1", "greater than 0"},
      {"\"17MiB\"", "at most 16MiB"},
      {"\"1GiB\"", "at most 16MiB"},
      {"16777217", "at most 16MiB"},
      {"\"64KB\"", "is not a size"},
      {"\"64 KiB\"", "is not a size"},
      {"\"KiB\"", "is not a size"},
      {"1.5", "expected a size"},
  }));
  CAPTURE(value);
  const auto r = refusal("[server]\nmax_message = " + value + "\n");
  CHECK(r.key == "server.max_message");
  CHECK(r.line == 2);
  CHECK_THAT(r.what, Catch::Contains(complaint));
}

TEST_CASE("The daemon's server and store tuning keys load, with defaults when omitted") {
  const Settings d = load_string("");
  CHECK(d.server.max_body == 8U << 20);
  CHECK(d.server.threads == 2);
  CHECK(d.server.max_connections == 20'000);
  CHECK(d.server.rate_limit == 20);
  CHECK(d.server.rate_burst == 100);
  CHECK(d.server.idle_timeout == 5min);
  CHECK(d.server.request_timeout == 10s);
  CHECK(d.server.board_queue == 4096);
  CHECK(d.server.dashboard == "dashboard");
  CHECK(d.store.group_delay == std::chrono::milliseconds(1));
  CHECK(d.store.snapshot_every == 100'000);
  CHECK(d.store.snapshot_interval == 10min);
  CHECK(d.store.snapshot_fork_above == 16U << 20);

  const Settings s = load_string(R"([server]
max_body = "1MiB"
threads = 4
max_connections = 50
rate_limit = 0.5
rate_burst = 3
idle_timeout = "30s"
request_timeout = "2s"
board_queue = 64
dashboard = "/srv/board"
[store]
group_delay = "2ms"
snapshot_every = 10
snapshot_interval = "1m"
snapshot_fork_above = "64MiB"
)");
  CHECK(s.server.max_body == 1U << 20);
  CHECK(s.server.threads == 4);
  CHECK(s.server.max_connections == 50);
  CHECK(s.server.rate_limit == 0.5);
  CHECK(s.server.rate_burst == 3);
  CHECK(s.server.idle_timeout == 30s);
  CHECK(s.server.request_timeout == 2s);
  CHECK(s.server.board_queue == 64);
  CHECK(s.server.dashboard == "/srv/board");
  CHECK(s.store.group_delay == std::chrono::milliseconds(2));
  CHECK(s.store.snapshot_every == 10);
  CHECK(s.store.snapshot_interval == 1min);
  CHECK(s.store.snapshot_fork_above == 64U << 20);
  CHECK(load_string("[store]\nsnapshot_fork_above = 0\n").store.snapshot_fork_above == 0);
}

TEST_CASE(
    "snapshot_fork_above is described only when set: journals must stay readable by older "
    "visitd") {
  CHECK(describe(load_string("")).find("snapshot_fork_above") == std::string::npos);
  CHECK(describe_tracking(load_string("")).find("snapshot_fork_above") == std::string::npos);
  const Settings set = load_string("[store]\nsnapshot_fork_above = \"64MiB\"\n");
  const std::string text = describe(set);
  CHECK_THAT(text, Catch::Contains(R"(snapshot_fork_above = "64MiB")"));
  CHECK(load_string(text).store.snapshot_fork_above == 64U << 20);
  CHECK(describe_tracking(set).find("snapshot_fork_above") == std::string::npos);
}

TEST_CASE("The daemon's tuning keys refuse values that cannot work") {
  const auto [text, key, complaint] = GENERATE(table<std::string, std::string, std::string>({
      {"[server]\nthreads = 0\n", "server.threads", "from 1 to 64"},
      {"[server]\nthreads = \"2\"\n", "server.threads", "expected an integer"},
      {"[server]\nrate_limit = 0\n", "server.rate_limit", "greater than 0"},
      {"[server]\nmax_body = \"1GiB\"\n", "server.max_body", "at most 256MiB"},
      {"[server]\nboard_queue = 0\n", "server.board_queue", "from 1"},
      {"[server]\ndashboard = \"\"\n", "server.dashboard", "must not be empty"},
      {"[store]\ngroup_delay = \"5s\"\n", "store.group_delay", "at most 1s"},
      {"[store]\nsnapshot_every = 0\n", "store.snapshot_every", "from 1"},
      {"[store]\nsnapshot_interval = \"0s\"\n", "store.snapshot_interval", "greater than 0s"},
      {"[store]\nsnapshot_fork_above = -1\n", "store.snapshot_fork_above", "must not be negative"},
      {"[store]\nsnapshot_fork_above = \"big\"\n", "store.snapshot_fork_above", "is not a size"},
  }));
  CAPTURE(text);
  const auto r = refusal(text);
  CHECK(r.key == key);
  CHECK(r.line == 2);
  CHECK_THAT(r.what, Catch::Contains(complaint));
}

TEST_CASE("The secret comes from secret or secret_file, never both, and is long enough") {
  SECTION("too short") {
    const auto r = refusal("[auth]\nsecret = \"short\"\n");
    CHECK(r.key == "auth.secret");
    CHECK_THAT(r.what, Catch::Contains("at least 16 bytes"));
  }
  SECTION("both given") {
    const auto r = refusal("[auth]\nsecret = \"0123456789abcdef\"\nsecret_file = \"s\"\n");
    CHECK(r.key == "auth.secret_file");
    CHECK(r.line == 3);
  }
}

TEST_CASE("A relative secret_file is read relative to the config file's directory") {
  TempDir dir;
  dir.write("etc/secrets/jwt", std::string(kSecret) + "\r\n");
  const fs::path config = dir.write("etc/visitd.toml", "[auth]\nsecret_file = \"secrets/jwt\"\n");

  // From elsewhere, so that a lookup relative to the working directory would fail.
  const Settings s = [&] {
    struct RestoreCwd {
      fs::path cwd = fs::current_path();
      ~RestoreCwd() { fs::current_path(cwd); }
    } restore;
    fs::current_path(dir.path());
    return load_file(config.string());
  }();

  CHECK(s.auth.secret == kSecret);  // the trailing newline is not part of it
  CHECK(fs::path(s.auth.secret_file) == dir.path() / "etc/secrets/jwt");
  CHECK(s.source == config.string());

  SECTION("an absolute path is used as it is") {
    const fs::path abs = dir.write("abs/jwt", "abcdefghijklmnopqrstuvwxyz\n");
    const Settings t = load_string("[auth]\nsecret_file = \"" + abs.string() + "\"\n",
                                   (dir.path() / "etc/other.toml").string());
    CHECK(t.auth.secret == "abcdefghijklmnopqrstuvwxyz");
  }
  SECTION("a missing file is an error at the key") {
    try {
      load_string("[auth]\nsecret_file = \"secrets/nope\"\n",
                  (dir.path() / "etc/visitd.toml").string());
      FAIL("accepted a missing secret file");
    } catch (const ConfigError& e) {
      CHECK(e.key() == "auth.secret_file");
      CHECK(e.line() == 2);
      CHECK_THAT(e.what(), Catch::Contains("No such file or directory"));
    }
  }
  SECTION("a short secret in the file is an error") {
    dir.write("etc/secrets/short", "tiny\n");
    CHECK_THROWS_WITH(load_string("[auth]\nsecret_file = \"secrets/short\"\n",
                                  (dir.path() / "etc/visitd.toml").string()),
                      Catch::Contains("at least 16 bytes"));
  }
}

TEST_CASE("A file that cannot be read is reported with the reason") {
  TempDir dir;
  try {
    load_file((dir.path() / "missing.toml").string());
    FAIL("loaded a missing file");
  } catch (const ConfigError& e) {
    CHECK(e.file() == (dir.path() / "missing.toml").string());
    CHECK(e.line() == 0);
    CHECK(e.key().empty());
    CHECK_THAT(e.what(), Catch::EndsWith("cannot read: No such file or directory"));
  }
  CHECK_THROWS_WITH(load_file(dir.path().string()), Catch::Contains("cannot read: Is a directory"));
}

TEST_CASE("A TOML syntax error is reported with its line") {
  const auto r = refusal("[server]\nlisten = \"127.0.0.1:8080\"\nallowed_origins = [\n\"a\",,]\n");
  CHECK(r.file == "visitd.toml");
  CHECK(r.line == 4);
}

TEST_CASE("describe prints every key, hides the secrets, and re-loads to the same settings") {
  TempDir dir;
  const Settings original = load_string(std::string(kProtocolExample) + R"(
[tracking]
device_skew = "90s"

[thresholds.types."night sit"]
geofence_m = 75.5
[thresholds.types.medication]
short_ratio = 0.9

[[branches]]
id = "B2"
name = "South \"Coast\""
timezone = "America/New_York"
[branches.thresholds]
late_after = "20m"
[branches.thresholds.time_critical]
late_after = "10m"
[branches.thresholds.types.respite]
overrun_after = "30m"
)",
                                        "described.toml");
  const std::string text = describe(original);
  CAPTURE(text);

  CHECK_THAT(text, Catch::Contains("max_message = \"64KiB\""));
  CHECK_THAT(text, Catch::Contains("no_checkout_after = \"2h\""));
  CHECK_THAT(text, Catch::Contains("offline_window = \"3d\""));  // a default, shown
  CHECK_THAT(text, Catch::Contains("device_skew = \"1m30s\""));
  CHECK_THAT(text, Catch::Contains("geofence_m = 150.0"));
  CHECK_THAT(text, Catch::Contains("secret = \"<redacted>\""));
  CHECK_THAT(text, !Catch::Contains(std::string(kSecret)));
  CHECK_THAT(text, !Catch::Contains("R0UTINGKEY"));
  CHECK_THAT(text, Catch::Contains("info = []"));

  // The secret line removed, and the redacted routing key given back, the text is the same
  // configuration.
  std::string reloadable;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("secret = ")) continue;
    if (line.starts_with("routing_key = ")) line = "routing_key = \"R0UTINGKEY\"";
    reloadable += line + "\n";
  }
  Settings reloaded = load_string(reloadable, "described.toml");
  reloaded.auth.secret = original.auth.secret;
  CHECK(reloaded == original);
  CHECK(describe(reloaded) == text);

  SECTION("a secret read from a file is described by its path") {
    const fs::path secret = dir.write("jwt", std::string(kSecret) + "\n");
    const Settings from_file =
        load_string("[auth]\nsecret_file = \"" + secret.string() + "\"\n", "f.toml");
    const std::string described = describe(from_file);
    CHECK_THAT(described, !Catch::Contains(std::string(kSecret)));
    CHECK(load_string(described, "f.toml") == from_file);
  }
}

TEST_CASE("The sample config in the repository loads") {
  const fs::path sample =
      fs::path(__FILE__).parent_path() / ".." / ".." / "config" / "visitd.example.toml";
  const Settings s = load_file(sample.string());
  CHECK(s.auth.secret.size() >= 16);
  CHECK_FALSE(s.branches.empty());
  CHECK(s.thresholds_for(s.branches.front().id, "", false) == Thresholds{});
  // Its values are the defaults: the sample documents them, it does not change them.
  Settings defaults = load_string("");
  CHECK(s.tracking == defaults.tracking);
  CHECK(s.thresholds.values == defaults.thresholds.values);
  CHECK(s.thresholds.time_critical == defaults.thresholds.time_critical);
}

TEST_CASE("describe_tracking keeps what the engine decides by, and nothing secret") {
  Settings s = load_string(std::string(kProtocolExample) + R"(
[tracking]
device_skew = "90s"
)");
  const std::string text = describe_tracking(s);
  CHECK(text.find(s.auth.secret) == std::string::npos);
  for (const auto& r : s.receivers) {
    if (!r.routing_key.empty()) CHECK(text.find(r.routing_key) == std::string::npos);
  }
  const Settings back = load_string(text, "journal");
  CHECK(back.thresholds == s.thresholds);
  CHECK(back.tracking == s.tracking);
  CHECK(back.branches == s.branches);
  CHECK(back.escalation == s.escalation);  // the ladders the engine freezes on alerts
  CHECK(back.oncall == s.oncall);
  REQUIRE(back.receivers.size() == s.receivers.size());
  CHECK(describe_tracking(back) == text);
}

TEST_CASE("A [clock] section configures a demo clock, without it there is none") {
  CHECK_FALSE(load_string("").clock.has_value());

  SECTION("an RFC 3339 start and a rate") {
    const Settings s = load_string("[clock]\nstart = \"2026-11-23T07:00:00Z\"\nrate = 60\n");
    REQUIRE(s.clock.has_value());
    CHECK(s.clock->start == visitd::parse_rfc3339("2026-11-23T07:00:00Z"));
    CHECK(s.clock->rate == 60);
    CHECK(*s.demo_start(*visitd::parse_rfc3339("2030-01-01T12:00:00Z")) == *s.clock->start);
  }
  SECTION("a local start is in the first branch's zone, DST included") {
    const Settings s = load_string(R"(
[[branches]]
id = "B1"
timezone = "Europe/London"

[clock]
start = "2026-07-01 07:00"
)");
    CHECK(s.clock->start == visitd::parse_rfc3339("2026-07-01T06:00:00Z"));
    CHECK(s.clock->rate == 1);
  }
  SECTION("a time of day starts today, as the first branch's zone counts days") {
    const Settings s = load_string(R"(
[[branches]]
id = "NY"
timezone = "America/New_York"

[clock]
start = "07:00"
rate = 2.5
)");
    CHECK(s.clock->start_time == std::chrono::hours(7));
    CHECK(s.clock->rate == 2.5);
    // 02:00 UTC on 24 November is still the 23rd in New York (UTC-5).
    const auto start = s.demo_start(*visitd::parse_rfc3339("2026-11-24T02:00:00Z"));
    REQUIRE(start);
    CHECK(*start == *visitd::parse_rfc3339("2026-11-23T12:00:00Z"));
  }
  SECTION("no start: it starts at the real time") {
    const Settings s = load_string("[clock]\nrate = 60\n");
    const auto real = *visitd::parse_rfc3339("2026-11-23T15:04:05Z");
    CHECK(*s.demo_start(real) == real);
  }
}

TEST_CASE("A [clock] section with a bad start or rate is refused naming the key") {
  using Row = std::tuple<std::string, std::string, std::string>;
  auto [toml, key, why] = GENERATE(
      Row{"[clock]\nstart = \"tomorrow\"\n", "clock.start", "is not a start time"},
      Row{"[clock]\nstart = \"25:00\"\n", "clock.start", "is not a start time"},
      Row{"[clock]\nstart = \"2026-11-23 07:00\"\n", "clock.start", "[[branches]]"},
      Row{"[[branches]]\nid = \"B1\"\n[clock]\nstart = \"2026-03-29 01:30\"\n", "clock.start", ""},
      Row{"[clock]\nrate = 0\n", "clock.rate", "greater than 0"},
      Row{"[clock]\nrate = -60\n", "clock.rate", "greater than 0"},
      Row{"[clock]\nrate = 100000\n", "clock.rate", "at most 3600"},
      Row{"[clock]\nrate = \"60\"\n", "clock.rate", "a number"},
      Row{"[clock]\nspeed = 60\n", "clock.speed", "unknown key"});
  CAPTURE(toml);
  const Refusal r = refusal(toml);
  CHECK(r.key == key);
  CHECK(r.line > 0);
  CHECK_THAT(r.what, Catch::Contains(why));
}

TEST_CASE("describe writes the demo clock so that it re-loads to the same settings") {
  for (const std::string start : {"start = \"2026-11-23T07:00:00Z\"\n", "start = \"07:30\"\n",
                                  "start = \"06:15:30\"\n", ""}) {
    const Settings s = load_string("[[branches]]\nid = \"B1\"\n[clock]\n" + start + "rate = 60\n");
    const std::string text = describe(s);
    CAPTURE(text);
    CHECK_THAT(text, Catch::Contains("[clock]"));
    CHECK_THAT(text, Catch::Contains("rate = 60.0"));
    CHECK(load_string(text) == s);
  }
  CHECK_THAT(describe(load_string("")), !Catch::Contains("[clock]"));
}

TEST_CASE("The at-risk keys of [tracking] load, with documented defaults when omitted") {
  const Settings d = load_string("");
  CHECK(d.tracking.at_risk);
  CHECK(d.tracking.location_pings);
  CHECK(d.tracking.min_ping_interval == 1min);
  CHECK(d.tracking.road_factor == 1.4);
  CHECK(d.tracking.speed_kmh == 30);
  CHECK(d.tracking.travel_minimum == Duration{0});

  const Settings s = load_string(R"([tracking]
at_risk = false
location_pings = false
min_ping_interval = "5m"
road_factor = 1.3
speed_kmh = 24
travel_minimum = "3m"
)");
  CHECK_FALSE(s.tracking.at_risk);
  CHECK_FALSE(s.tracking.location_pings);
  CHECK(s.tracking.min_ping_interval == 5min);
  CHECK(s.tracking.road_factor == 1.3);
  CHECK(s.tracking.speed_kmh == 24);
  CHECK(s.tracking.travel_minimum == 3min);
  // describe() writes them back, and they re-load the same.
  CHECK(load_string(describe(s)).tracking == s.tracking);
}

TEST_CASE("The at-risk keys refuse values that cannot work, naming the key") {
  const auto [text, key, complaint] = GENERATE(table<std::string, std::string, std::string>({
      {"[tracking]\nat_risk = \"yes\"\n", "tracking.at_risk", "true or false"},
      {"[tracking]\nlocation_pings = 1\n", "tracking.location_pings", "true or false"},
      {"[tracking]\nroad_factor = 0.9\n", "tracking.road_factor", "1 to 5"},
      {"[tracking]\nspeed_kmh = 0\n", "tracking.speed_kmh", "1 to 130"},
      {"[tracking]\nspeed_kmh = \"30\"\n", "tracking.speed_kmh", "a number"},
      {"[tracking]\nmin_ping_interval = 60\n", "tracking.min_ping_interval", "duration"},
      {"[tracking]\nspeed_kph = 30\n", "tracking.speed_kph", "unknown"},
  }));
  CAPTURE(text);
  const auto r = refusal(text);
  CHECK(r.key == key);
  CHECK(r.line == 2);
  CHECK_THAT(r.what, Catch::Contains(complaint));
}
