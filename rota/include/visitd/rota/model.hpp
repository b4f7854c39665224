#pragma once
// The rota as the office plans it: clients, carers and visits. These are the plain values
// an import produces and the engine consumes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"
#include "visitd/geo/geodesic.hpp"

namespace visitd::rota {

enum class VisitState : std::uint8_t {
  scheduled,
  late,
  missed,
  in_progress,
  overrunning,
  completed,
  no_checkout,
  cancelled,
};
std::string_view to_string(VisitState state);

/// Flags on a visit (not states). A bit set; names as the protocol spells them.
enum VisitFlag : std::uint16_t {
  kOutsideGeofence = 1 << 0,     ///< "outside_geofence"
  kShort = 1 << 1,               ///< "short"
  kLateArrival = 1 << 2,         ///< "late_arrival": checked in after start + late_after
  kDeviceTimeSkew = 1 << 3,      ///< "device_time_skew": device time not trusted
  kManual = 1 << 4,              ///< "manual": office-entered times
  kDoubleUpIncomplete = 1 << 5,  ///< "double_up_incomplete"
  kTagMismatch = 1 << 6,         ///< "tag_mismatch": NFC/QR tag is not the client's
};
using Flags = std::uint16_t;
/// The names of the set flags, in bit order.
std::vector<std::string_view> flag_names(Flags flags);

/// How a carer proved presence.
enum class Method : std::uint8_t { gps, nfc, qr, manual };
std::string_view to_string(Method method);
std::optional<Method> method_from_string(std::string_view text);

struct ClientPlan {
  std::string id;
  std::string name;
  geo::LatLon location;
  std::optional<double> geofence_m;  ///< unset: the thresholds' geofence_m
  std::string tag;                   ///< NFC/QR tag registered at the home; empty if none

  bool operator==(const ClientPlan&) const = default;
};

/// One visit as the office planned it.
struct VisitPlan {
  std::string id;
  ClientPlan client;
  std::vector<std::string> carers;  ///< one, or two or more for a double-up
  TimePoint start;
  TimePoint end;
  std::string type = "personal_care";
  bool time_critical = false;
  std::string notes;
  int line = 0;  ///< where it came from in the imported file (0: not from a file)

  /// Same plan, ignoring where it came from.
  bool same_plan(const VisitPlan& other) const;
};

}  // namespace visitd::rota
