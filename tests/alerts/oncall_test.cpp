// On-call schedules: the right person is paged at the right wall-clock time, in the
// schedule's own zone, across DST changes, with holiday cover taking precedence.

#include "visitd/alerts/oncall.hpp"

#include <catch2/catch.hpp>

#include "visitd/config/load.hpp"

using namespace visitd;
using Names = std::vector<std::string>;

namespace {

TimePoint at(const char* t) { return *parse_rfc3339(t); }

constexpr const char* kConfig = R"(
[[receivers]]
name = "office"
type = "webhook"
url = "http://127.0.0.1:9000/office"

[[receivers]]
name = "coordinator"
type = "webhook"
url = "http://127.0.0.1:9000/coordinator"

[[receivers]]
name = "night"
type = "webhook"
url = "http://127.0.0.1:9000/night"

[[receivers]]
name = "cover"
type = "webhook"
url = "http://127.0.0.1:9000/cover"

[[oncall]]
name = "north"
timezone = "Europe/London"
default = ["coordinator"]
windows = [
  { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "18:00", notify = ["office"] },
  { days = ["fri"], from = "18:00", to = "08:00", notify = ["night"] },
]
overrides = [ { from = "2026-12-24 18:00", to = "2026-12-27 08:00", notify = ["cover"] } ]

[escalation]
critical = [ { after = "0s", notify = ["north", "office"] } ]
)";

struct Fixture {
  config::Settings settings = config::load_string(kConfig, "oncall.toml");
  alerts::OnCallDirectory directory{settings};
  const alerts::OnCallSchedule& north = *directory.find("north");
};

ConfigError refusal(const std::string& text) {
  try {
    config::load_string(text, "bad.toml");
  } catch (const ConfigError& e) {
    return e;
  }
  FAIL("expected a ConfigError for:\n" << text);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("Office hours go to the office, the rest of the week to the coordinator") {
  Fixture f;
  CHECK(f.north.on_call(at("2026-11-23T09:00:00Z")) == Names{"office"});       // Mon 09:00 GMT
  CHECK(f.north.on_call(at("2026-11-23T07:59:00Z")) == Names{"coordinator"});  // before 08:00
  CHECK(f.north.on_call(at("2026-11-23T18:00:00Z")) == Names{"coordinator"});  // ends at 18:00
  CHECK(f.north.on_call(at("2026-11-28T10:00:00Z")) == Names{"coordinator"});  // Saturday
  CHECK(f.north.on_call(at("2026-11-29T10:00:00Z")) == Names{"coordinator"});  // Sunday
}

TEST_CASE("Windows follow the wall clock on both sides of a DST change") {
  Fixture f;
  // 07:30 UTC is 07:30 in London in winter (not yet office hours) but 08:30 in summer.
  CHECK(f.north.on_call(at("2026-03-27T07:30:00Z")) == Names{"coordinator"});  // Fri, GMT
  CHECK(f.north.on_call(at("2026-03-30T07:30:00Z")) == Names{"office"});       // Mon, BST
  // The week the clocks go back: Friday 17:30 UTC is 18:30 BST, already the night window.
  CHECK(f.north.on_call(at("2026-10-23T17:30:00Z")) == Names{"night"});
  // ... and after the change, on the next Friday, 17:30 UTC is 17:30 GMT: office hours.
  CHECK(f.north.on_call(at("2026-10-30T17:30:00Z")) == Names{"office"});
}

TEST_CASE("An overnight window belongs to the day it starts on") {
  Fixture f;
  CHECK(f.north.on_call(at("2026-11-27T18:00:00Z")) == Names{"night"});        // Fri 18:00
  CHECK(f.north.on_call(at("2026-11-28T07:59:00Z")) == Names{"night"});        // Sat 07:59
  CHECK(f.north.on_call(at("2026-11-28T08:00:00Z")) == Names{"coordinator"});  // Sat 08:00
  // Thursday night is not Friday's window.
  CHECK(f.north.on_call(at("2026-11-26T23:00:00Z")) == Names{"coordinator"});
}

TEST_CASE("Holiday cover replaces the weekly windows while it lasts") {
  Fixture f;
  CHECK(f.north.on_call(at("2026-12-24T17:59:00Z")) == Names{"office"});  // Thu, office hours
  CHECK(f.north.on_call(at("2026-12-24T18:00:00Z")) == Names{"cover"});
  CHECK(f.north.on_call(at("2026-12-25T10:00:00Z")) == Names{"cover"});  // a Friday
  CHECK(f.north.on_call(at("2026-12-27T07:59:00Z")) == Names{"cover"});
  CHECK(f.north.on_call(at("2026-12-27T08:00:00Z")) == Names{"coordinator"});  // a Sunday
}

TEST_CASE("A step's notify list expands schedules at the moment it fires, without repeats") {
  Fixture f;
  const Names step = f.settings.escalation.critical.at(0).notify;
  CHECK(step == Names{"north", "office"});
  CHECK(f.directory.expand(step, at("2026-11-23T09:00:00Z")) == Names{"office"});
  CHECK(f.directory.expand(step, at("2026-11-28T09:00:00Z")) == Names{"coordinator", "office"});
}

TEST_CASE("On-call schedules are checked when the config loads") {
  const std::string receivers = R"(
[[receivers]]
name = "office"
type = "webhook"
url = "http://127.0.0.1:9000/office"
)";
  const auto [body, key, complaint] = GENERATE(table<std::string, std::string, std::string>({
      {"name = \"n\"\n", "oncall[0].default", "missing"},
      {"name = \"n\"\ndefault = [\"pager\"]\n", "oncall[0].default[0]", "no receiver named"},
      {"name = \"office\"\ndefault = [\"office\"]\n", "oncall[0].name", "already a receiver"},
      {"name = \"n\"\ndefault = [\"office\"]\ntimezone = \"Mars/Base\"\n", "oncall[0].timezone",
       "IANA"},
      {"name = \"n\"\ndefault = [\"office\"]\nwindows = [ { days = [\"monday\"], from = \"08:00\", "
       "to = \"18:00\", notify = [\"office\"] } ]\n",
       "oncall[0].windows[0].days[0]", "not a weekday"},
      {"name = \"n\"\ndefault = [\"office\"]\nwindows = [ { days = [\"mon\"], from = \"8:00\", "
       "to = \"18:00\", notify = [\"office\"] } ]\n",
       "oncall[0].windows[0].from", "not a time of day"},
      {"name = \"n\"\ndefault = [\"office\"]\nwindows = [ { days = [\"mon\"], from = \"08:00\", "
       "to = \"18:00\" } ]\n",
       "oncall[0].windows[0].notify", "missing"},
      {"name = \"n\"\ndefault = [\"office\"]\noverrides = [ { from = \"2026-12-27 08:00\", "
       "to = \"2026-12-24 18:00\", notify = [\"office\"] } ]\n",
       "oncall[0].overrides[0].to", "after `from`"},
      // 01:30 happens twice in London when the clocks go back.
      {"name = \"n\"\ndefault = [\"office\"]\noverrides = [ { from = \"2026-10-25 01:30\", "
       "to = \"2026-10-26 08:00\", notify = [\"office\"] } ]\n",
       "oncall[0].overrides[0].from", "twice"},
      {"name = \"n\"\ndefault = [\"office\"]\nshift = 1\n", "oncall[0].shift", "unknown key"},
  }));
  CAPTURE(body);
  const auto e = refusal(receivers + "\n[[oncall]]\n" + body);
  CHECK(e.key() == key);
  CHECK_THAT(e.what(), Catch::Contains(complaint));
}

TEST_CASE("An escalation step may name an on-call schedule but not an unknown name") {
  const auto e = refusal(R"(
[[receivers]]
name = "office"
type = "webhook"
url = "http://127.0.0.1:9000/office"

[escalation]
critical = [ { after = "0s", notify = ["north"] } ]
)");
  CHECK(e.key() == "escalation.critical[0].notify[0]");
  CHECK_THAT(e.what(), Catch::Contains("[[oncall]]"));
}

TEST_CASE("describe writes the schedules so that they load back the same") {
  Fixture f;
  const std::string text = config::describe(f.settings);
  CHECK_THAT(text, Catch::Contains("[[oncall]]"));
  CHECK_THAT(text, Catch::Contains(R"(from = "2026-12-24 18:00")"));
  config::Settings again = config::load_string(text, "again.toml");
  CHECK(again.oncall == f.settings.oncall);
}
