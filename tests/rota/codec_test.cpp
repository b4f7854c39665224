// The journal payload codec and engine snapshots: what is written reads back the same, and
// damaged bytes give an error, never a crash or a wrong command.

#include "visitd/rota/codec.hpp"

#include <catch2/catch.hpp>
#include <random>

#include "visitd/rota/engine.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using namespace visitd::rota;

namespace {

TimePoint at(const char* t) { return *parse_rfc3339(t); }

std::vector<Command> one_of_each() {
  VisitPlan p;
  p.id = "V1";
  p.client = ClientPlan{"CL1", "Mrs Ä, \"the elder\"", {51.5, -0.14}, 80.0, "TAG-1"};
  p.carers = {"C1", "C2"};
  p.start = at("2026-11-23T09:00:00Z");
  p.end = at("2026-11-23T09:45:00Z");
  p.type = "medication";
  p.time_critical = true;
  p.notes = "Key safe 1234\nDog is friendly";
  p.line = 7;
  const LocalDays date(std::chrono::days(20'415));
  return {
      CheckIn{"e1", "C1", "V1", at("2026-11-23T09:01:02.345Z"), Fix{{51.5001, -0.1402}, 12.5},
              Method::nfc, "TAG-1"},
      CheckIn{"e2", "C2", "V1", at("2026-11-23T09:01:00Z"), std::nullopt, Method::qr, ""},
      CheckOut{"e3", "C1", "V1", at("2026-11-23T09:40:00Z"), Fix{{51.5, -0.14}, 3}, Method::gps, "",
               "Had lunch, meds taken"},
      LocationPing{"p1", "C1", at("2026-11-23T08:50:00Z"), Fix{{-33.9, 151.2}, 1000}},
      RunningLate{"r1", "C1", "V1", at("2026-11-23T09:20:00Z"), "traffic"},
      ImportRota{"B1", date, {p, p}, "office@agency"},
      Reassign{"V1", {"C3"}, "anna"},
      Cancel{"V1", "client in hospital", "anna"},
      AckAlert{"A17", "bob", "calling"},
      ResolveAlert{"A17", "bob", ""},
  };
}

config::Settings settings() {
  config::Settings s;
  s.branches.push_back(config::Branch{"B1", "North", "Europe/London", {}});
  return s;
}

}  // namespace

TEST_CASE("Every command encodes and decodes to itself") {
  for (const auto& command : one_of_each()) {
    std::string bytes;
    encode(command, bytes);
    const auto back = decode(bytes, kCommandCodecVersion);
    REQUIRE(back.has_value());
    std::string again;
    encode(*back, again);
    CHECK(again == bytes);
    CHECK(back->index() == command.index());
  }
  // Spot-check the fields survive, not just the bytes.
  std::string bytes;
  encode(one_of_each()[0], bytes);
  const auto in = std::get<CheckIn>(*decode(bytes, 1));
  CHECK(in.at == at("2026-11-23T09:01:02.345Z"));
  CHECK(in.fix->accuracy_m == 12.5);
  CHECK(in.method == Method::nfc);
  CHECK(in.tag == "TAG-1");
}

TEST_CASE("Damaged command payloads are refused, never misread") {
  const auto commands = one_of_each();
  const std::uint64_t seed = [] {
    const char* env = std::getenv("VISITD_SEED");
    return env ? std::strtoull(env, nullptr, 10) : 20261122ULL;
  }();
  INFO("seed " << seed << " (set VISITD_SEED to replay)");
  std::mt19937_64 rng(seed);
  for (const auto& command : commands) {
    std::string bytes;
    encode(command, bytes);
    // Every truncation is an error.
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      CHECK_FALSE(decode(std::string_view(bytes).substr(0, n), 1).has_value());
    }
    // Trailing bytes are an error.
    CHECK_FALSE(decode(bytes + '\0', 1).has_value());
    // Random corruption never crashes; what decodes is a valid command.
    for (int i = 0; i < 500; ++i) {
      std::string bad = bytes;
      bad[rng() % bad.size()] ^= char(1 + rng() % 255);
      (void)decode(bad, 1);
    }
  }
  CHECK_FALSE(decode("", 1).has_value());
  CHECK_FALSE(decode(std::string(1, char(99)), 1).has_value());
  const auto newer = decode("x", 2);
  REQUIRE_FALSE(newer.has_value());
  CHECK(newer.error().message.find("newer") != std::string::npos);
}

TEST_CASE("A restored snapshot is the same engine, and carries on the same") {
  const auto s = settings();
  Engine original(s, at("2026-11-23T00:00:00Z"));
  Effects fx;
  VisitPlan a;
  a.id = "V1";
  a.client = ClientPlan{"CL1", "Mrs A", {51.5, -0.14}, std::nullopt, ""};
  a.carers = {"C1"};
  a.start = at("2026-11-23T09:00:00Z");
  a.end = at("2026-11-23T10:00:00Z");
  VisitPlan b = a;
  b.id = "V2";
  b.carers = {"C2", "C3"};
  VisitPlan c = a;
  c.id = "V3";
  c.start = at("2026-11-23T11:00:00Z");
  c.end = at("2026-11-23T11:30:00Z");
  const LocalDays date(std::chrono::sys_days(2026y / 11 / 23).time_since_epoch());
  const std::vector<std::pair<Command, TimePoint>> first_half = {
      {ImportRota{"B1", date, {a, b, c}, "office"}, at("2026-11-23T06:00:00Z")},
      {CheckIn{"e1", "C2", "V2", at("2026-11-23T09:00:00Z"), Fix{{51.52, -0.1}, 5}, Method::gps,
               ""},
       at("2026-11-23T09:00:00Z")},
      {LocationPing{"p1", "C1", at("2026-11-23T09:05:00Z"), Fix{{51.49, -0.13}, 20}},
       at("2026-11-23T09:05:00Z")},
  };
  const std::vector<std::pair<Command, TimePoint>> second_half = {
      {AckAlert{"A1", "anna", ""}, at("2026-11-23T09:31:00Z")},
      {CheckIn{"e2", "C1", "V1", at("2026-11-23T09:20:00Z"), std::nullopt, Method::gps, ""},
       at("2026-11-23T09:32:00Z")},
      {CheckIn{"e3", "C1", "V3", at("2026-11-23T11:00:00Z"), std::nullopt, Method::gps, ""},
       at("2026-11-23T11:00:00Z")},
  };
  for (const auto& [cmd, now] : first_half) original.apply(cmd, now, fx);
  original.advance(at("2026-11-23T09:30:00Z"), fx);  // V1 late, V2 double-up incomplete

  const std::string bytes = original.snapshot();
  auto restored = Engine::restore(s, bytes);
  REQUIRE(restored.has_value());
  Engine& copy = **restored;
  CHECK(copy.canonical_dump() == original.canonical_dump());
  CHECK(copy.snapshot() == bytes);

  Effects fx_a, fx_b;
  for (const auto& [cmd, now] : second_half) {
    const Reply ra = original.apply(cmd, now, fx_a);
    const Reply rb = copy.apply(cmd, now, fx_b);
    CHECK(ra.status == rb.status);
  }
  original.advance(at("2026-11-24T06:00:00Z"), fx_a);
  copy.advance(at("2026-11-24T06:00:00Z"), fx_b);
  CHECK(fx_a == fx_b);
  CHECK(copy.canonical_dump() == original.canonical_dump());

  SECTION("a damaged or truncated snapshot is refused") {
    for (std::size_t n = 0; n < bytes.size(); n += 7) {
      CHECK_FALSE(Engine::restore(s, std::string_view(bytes).substr(0, n)).has_value());
    }
  }
  SECTION("a snapshot whose branch the config dropped is refused with the branch named") {
    config::Settings other;
    other.branches.push_back(config::Branch{"B9", "Elsewhere", "Europe/London", {}});
    const auto r = Engine::restore(other, bytes);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message.find("B1") != std::string::npos);
  }
}

TEST_CASE("Event keys are the same in every version: snapshots store them, not the event ids") {
  // A snapshot keeps each decided event under EventKey::of(carer, event id). A resend after
  // an upgrade is known for a duplicate only if the new build computes the same key, so these
  // values may never change (they are what the journal and snapshots of earlier versions
  // hold).
  struct Golden {
    const char* carer;
    const char* event_id;
    std::uint64_t hi;
    std::uint64_t lo;
  };
  const Golden golden[] = {
      {"C1", "e1", 0xb29bfaad7bda20f6ULL, 0x090de31c50ffec73ULL},
      {"C0001", "3f2b8c1e-9d4a-4f6b-8e2a-1c5d7e9f0a3b", 0xa1bc2367f12cc5e0ULL,
       0x4bdc75968e9e671dULL},
      {"", "", 0x0c342374724801c1ULL, 0x5ed82ab70bcdb533ULL},
      {"carer-with-a-long-id-0123456789", "x", 0x4ab4ba67c0f7b1cfULL, 0x72e40680e155a89dULL},
      {"C-B07-000123", "0123456789abcdef", 0x8c859d143f6f3817ULL, 0xeb31c979d7415522ULL},
  };
  for (const Golden& g : golden) {
    CAPTURE(g.carer, g.event_id);
    const EventKey key = EventKey::of(g.carer, g.event_id);
    CHECK(key.hi == g.hi);
    CHECK(key.lo == g.lo);
  }
}
