// The decided-event table against std::unordered_map as a reference, with a small capacity
// so that probing wraps around the end and erasure shifts entries across it.

#include "visitd/rota/event_table.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {
struct Key {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  bool operator==(const Key&) const = default;
};
}  // namespace

TEST_CASE("The event table agrees with a reference map through random inserts and erases") {
  const std::uint64_t seed = [] {
    const char* env = std::getenv("VISITD_SEED");
    return env ? std::strtoull(env, nullptr, 10) : 7ULL;
  }();
  INFO("seed " << seed << " (set VISITD_SEED to replay)");
  std::mt19937_64 rng(seed);
  visitd::rota::EventTable<Key, std::uint32_t> table;
  std::unordered_map<std::uint64_t, std::uint32_t> reference;
  // Few distinct low bits make long probe chains and wrap-arounds likely.
  auto key_of = [](std::uint64_t n) { return Key{n * 0x9e3779b97f4a7c15ULL, n & 0x3ff}; };
  for (int step = 0; step < 200'000; ++step) {
    const std::uint64_t n = rng() % 3000;
    const Key k = key_of(n);
    switch (rng() % 3) {
      case 0: {
        const auto v = std::uint32_t(rng());
        const bool fresh = reference.emplace(n, v).second;
        REQUIRE(table.insert(k, v) == fresh);
        break;
      }
      case 1:
        REQUIRE(table.erase(k) == (reference.erase(n) == 1));
        break;
      default: {
        const auto* found = table.find(k);
        const auto it = reference.find(n);
        REQUIRE((found != nullptr) == (it != reference.end()));
        if (found) REQUIRE(*found == it->second);
      }
    }
    REQUIRE(table.size() == reference.size());
  }
  std::size_t seen = 0;
  table.for_each([&](const Key&, std::uint32_t) { ++seen; });
  CHECK(seen == reference.size());
}

TEST_CASE("The all-zero key is stored like any other") {
  visitd::rota::EventTable<Key, int> table;
  CHECK(table.find(Key{}) == nullptr);
  CHECK(table.insert(Key{}, 5));
  REQUIRE(table.find(Key{}) != nullptr);
  CHECK(*table.find(Key{}) == 5);
  CHECK_FALSE(table.insert(Key{}, 6));
  CHECK(table.erase(Key{}));
  CHECK(table.find(Key{}) == nullptr);
}

TEST_CASE(
    "capacity_for(n) is what reserve(n) gives an empty table, so snapshots can be ordered "
    "by the slots a restore fills") {
  using Table = visitd::rota::EventTable<Key, int>;
  for (const std::size_t n : {std::size_t{1}, std::size_t{896}, std::size_t{897},
                              std::size_t{5'000}, std::size_t{100'000}}) {
    CAPTURE(n);
    Table table;
    table.reserve(n);
    const std::size_t capacity = Table::capacity_for(n);
    // A slot is a key and a value, as a pair lays them out.
    CHECK(table.memory_bytes() == capacity * sizeof(std::pair<Key, int>));
    // Filling n keys in home-slot order never grows the reserved table.
    std::mt19937_64 rng(n);
    std::vector<Key> keys(n);
    for (auto& k : keys) k = Key{rng(), rng()};
    keys[0] = Key{};  // the all-zero key, stored as {0, 1}: its slot is that key's
    std::sort(keys.begin(), keys.end(), [&](const Key& a, const Key& b) {
      return Table::home_slot(a, capacity) < Table::home_slot(b, capacity);
    });
    const std::size_t reserved = table.memory_bytes();
    for (const Key& k : keys) CHECK(table.insert(k, 1));
    CHECK(table.memory_bytes() == reserved);
    CHECK(table.size() == n);
    CHECK(Table::home_slot(Key{}, capacity) == Table::home_slot(Key{0, 1}, capacity));
  }
}

TEST_CASE(
    "While the table grows, entries are found, erased and counted in both arrays, and a copy "
    "made meanwhile is the same table") {
  const std::uint64_t seed = [] {
    const char* env = std::getenv("VISITD_SEED");
    return env ? std::strtoull(env, nullptr, 10) : 11ULL;
  }();
  INFO("seed " << seed << " (set VISITD_SEED to replay)");
  std::mt19937_64 rng(seed);
  using Table = visitd::rota::EventTable<Key, std::uint32_t>;
  Table table;
  std::unordered_map<std::uint64_t, std::uint32_t> reference;
  auto key_of = [](std::uint64_t n) { return Key{n * 0x9e3779b97f4a7c15ULL, n * 31 + 7}; };
  std::uint64_t next = 0;
  std::size_t copies = 0;
  // Mostly inserts of new keys, so that the table doubles again and again (1024 to 256K
  // slots) with erases and lookups of old and new keys in between.
  for (int step = 0; step < 300'000; ++step) {
    const auto op = rng() % 10;
    if (op < 6) {
      const std::uint64_t n = next++;
      const auto v = std::uint32_t(rng());
      reference.emplace(n, v);
      REQUIRE(table.insert(key_of(n), v));
    } else if (op < 8 && next > 0) {
      const std::uint64_t n = rng() % next;
      REQUIRE(table.erase(key_of(n)) == (reference.erase(n) == 1));
    } else if (next > 0) {
      const std::uint64_t n = rng() % next;
      const auto* found = table.find(key_of(n));
      const auto it = reference.find(n);
      REQUIRE((found != nullptr) == (it != reference.end()));
      if (found) REQUIRE(*found == it->second);
      if (it != reference.end()) REQUIRE_FALSE(table.insert(key_of(n), 0));  // a duplicate
    }
    REQUIRE(table.size() == reference.size());
    if (step % 20'011 == 0) {
      // A copy (Engine::clone copies this table) taken whenever: it holds the same entries.
      const Table copy = table;
      std::size_t seen = 0;
      copy.for_each([&](const Key& k, std::uint32_t v) {
        ++seen;
        const std::uint64_t n = (k.lo - 7) / 31;
        REQUIRE(reference.count(n) == 1);
        REQUIRE(reference.at(n) == v);
      });
      REQUIRE(seen == reference.size());
      ++copies;
    }
  }
  CHECK(copies == 15);
  CHECK(table.memory_bytes() >= reference.size() * 8 / 7 * sizeof(std::pair<Key, std::uint32_t>));
  std::size_t seen = 0;
  table.for_each([&](const Key&, std::uint32_t) { ++seen; });
  CHECK(seen == reference.size());
}
