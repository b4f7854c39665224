#pragma once
// A generated home care agency and its day: clients at real-looking addresses around a
// town per branch, carers with staggered shifts, and a rota in which each carer's next
// visit starts no sooner than the travel from the last one allows (geo's travel estimate),
// with double-ups and time-critical medication visits. A pure function of its inputs and
// the seed: the same seed gives the same day, byte for byte.

#include <cstdint>
#include <string>
#include <vector>

#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"
#include "visitd/geo/geodesic.hpp"
#include "visitd/rota/model.hpp"

namespace visitd::sim {

/// A small deterministic generator (SplitMix64): its sequence is fixed by the seed on every
/// platform, unlike the standard distributions'.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  /// In [0, 1).
  double uniform();
  /// In [lo, hi).
  double between(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// In [lo, hi], whole.
  int whole(int lo, int hi);
  bool chance(double p) { return uniform() < p; }

 private:
  std::uint64_t state_;
};

/// A seed for one part of the day (a branch, a carer), so that adding carers to one branch
/// leaves the others' days unchanged.
std::uint64_t derive_seed(std::uint64_t seed, std::string_view part);

/// `distance` metres from `from` towards `bearing` degrees (0 north, 90 east).
geo::LatLon move(geo::LatLon from, double distance_m, double bearing_deg);

struct AgencyOptions {
  std::uint64_t seed = 1;
  unsigned carers = 10;           ///< per branch
  unsigned clients = 36;          ///< per branch
  double double_up_share = 0.12;  ///< of personal care visits
  double medication_share = 0.2;  ///< of visits: short, time-critical medication rounds
  Duration first_shift = std::chrono::hours(7) + std::chrono::minutes(30);  ///< local time
  Duration last_visit = std::chrono::hours(21) + std::chrono::minutes(30);  ///< starts by
};

/// A branch of the config: its id and zone.
struct BranchPlace {
  std::string id;
  TimeZone zone;
};

/// One branch's day.
struct BranchDay {
  std::string branch;
  TimeZone zone = TimeZone::utc();
  LocalDays date{};
  std::string town;
  std::vector<std::string> carers;
  std::vector<rota::VisitPlan> visits;  ///< by start, then id
};

/// How carers travel between clients (geo's estimate: roads, town speed, parking).
geo::TravelModel travel_model();

/// The day of each branch, in the order given.
std::vector<BranchDay> generate_agency(const std::vector<BranchPlace>& branches, LocalDays date,
                                       const AgencyOptions& options);

/// The day as the CSV `PUT /api/rota` takes (protocol.md columns, local times).
std::string rota_csv(const BranchDay& day);

}  // namespace visitd::sim
