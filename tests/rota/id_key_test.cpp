#include "visitd/rota/id_key.hpp"

#include <boost/unordered/unordered_flat_map.hpp>
#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

using visitd::rota::IdKey;
using visitd::rota::IdKeyEqual;
using visitd::rota::IdKeyHash;

namespace {

// Ids around the inline limit: empty, short, exactly kInline, one over, a long one.
std::vector<std::string> ids() {
  return {"", "V1", std::string(IdKey::kInline, 'a'), std::string(IdKey::kInline + 1, 'b'),
          "0190c3d2-7a1b-7c3e-9f00-1234567890ab-with-a-suffix-past-the-limit"};
}

}  // namespace

TEST_CASE("An id key holds the id it was made from, inline or not", "[id_key]") {
  for (const std::string& id : ids()) {
    CAPTURE(id);
    const IdKey key(id);
    CHECK(key.view() == id);
    CHECK(key == id);
    CHECK_FALSE(key == id + "x");
    IdKey copy(key);
    CHECK(copy.view() == id);
    CHECK(copy == key);
    IdKey moved(std::move(copy));
    CHECK(moved.view() == id);
    CHECK(copy.view().empty());  // NOLINT(bugprone-use-after-move): a moved-from key is empty
    CHECK(key.view() == id);     // the original is untouched by the copy's move
  }
}

TEST_CASE("Assigning id keys swaps inline and heap ids both ways", "[id_key]") {
  const auto all = ids();
  for (const std::string& a : all) {
    for (const std::string& b : all) {
      CAPTURE(a, b);
      IdKey x(a);
      IdKey y(b);
      x = y;
      CHECK(x.view() == b);
      CHECK(y.view() == b);
      x = IdKey(a);
      CHECK(x.view() == a);
    }
  }
}

TEST_CASE("A map keyed by id keys is searched by string_view", "[id_key]") {
  boost::unordered_flat_map<IdKey, int, IdKeyHash, IdKeyEqual> map;
  const auto all = ids();
  for (std::size_t i = 0; i < all.size(); ++i) map.emplace(IdKey(all[i]), int(i));
  for (int i = 0; i < 2000; ++i) map.emplace(IdKey("visit-" + std::to_string(i)), 100 + i);
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto it = map.find(std::string_view(all[i]));
    REQUIRE(it != map.end());
    CHECK(it->second == int(i));
  }
  CHECK(map.find(std::string_view("visit-1999"))->second == 2099);
  CHECK(map.find(std::string_view("visit-2000")) == map.end());
  CHECK(map.find(std::string_view(std::string(IdKey::kInline + 1, 'a'))) == map.end());
}
