#pragma once
// What each carer's phone does through the day: for every visit on their rota a behaviour
// drawn from a seeded mix (on time, early, late, no-show, overrunning, short, checked in from
// the wrong place, offline), turned into the events the phone sends and when it sends them.
// Lateness carries over: a carer who overruns arrives late at the next client. Pure and
// deterministic, like the agency.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agency.hpp"
#include "visitd/core/time.hpp"
#include "visitd/geo/geodesic.hpp"

namespace visitd::sim {

enum class Behaviour : std::uint8_t {
  on_time,
  early,
  late,
  no_show,
  overrun,
  short_visit,
  wrong_place,
  offline,
};
inline constexpr std::size_t kBehaviours = 8;

/// `on_time`, `early`, ... as --mix spells them (`short` for short_visit).
std::string_view to_string(Behaviour b);

/// How often each behaviour happens (weights, any scale) and how often a phone loses its
/// connection between sending an event and reading its ack (then resends it: a duplicate).
struct Mix {
  std::array<double, kBehaviours> weights = {70, 6, 8, 3, 5, 4, 2, 2};
  double duplicates = 0.03;   ///< per step
  double running_late = 0.6;  ///< of late arrivals that say so beforehand

  /// Reads `on_time=80,late=10,no_show=2`: the mix is exactly that (behaviours not named
  /// weigh 0); `duplicates` and `running_late` keep their defaults. Throws
  /// std::invalid_argument naming the bad part.
  static Mix parse(std::string_view text);
};

/// One event a phone sends (protocol.md, carer WebSocket).
struct Event {
  std::string type;  ///< check_in, check_out, location, running_late
  std::string id;
  std::string visit;  ///< empty for location
  TimePoint at{};     ///< device time
  std::optional<geo::LatLon> where;
  double accuracy = 0;
  std::string note;
  std::optional<TimePoint> eta;  ///< running_late
  std::string reason;            ///< running_late

  std::string to_json() const;
};

/// Events sent together at `send_at` (demo time): one event, or an offline phone's queue.
struct Step {
  TimePoint send_at{};
  std::vector<Event> events;
  /// The connection drops after sending, before the acks arrive: the phone reconnects and
  /// sends the same events again (the daemon answers `duplicate` for those it had).
  bool drop_before_ack = false;
};

struct CarerScript {
  std::string carer;
  std::string branch;
  std::vector<Step> steps;  ///< by send_at
};

/// What the plan holds, for the opening summary and for tests.
struct PlanSummary {
  std::size_t visits = 0;
  std::size_t events = 0;
  std::array<std::size_t, kBehaviours> behaviours{};  ///< (carer, visit) pairs
  std::size_t drops = 0;
  /// Visits no assigned carer turns up to: they will be missed.
  std::vector<std::string> no_show_visits;
};

struct Plan {
  std::vector<CarerScript> carers;
  PlanSummary summary;
};

/// The day's phones. Event ids are `<id_prefix>-<carer>-<n>`.
Plan plan_day(const std::vector<BranchDay>& days, const Mix& mix, std::uint64_t seed,
              std::string_view id_prefix);

}  // namespace visitd::sim
