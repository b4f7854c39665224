#include "visitd/rota/model.hpp"

#include <array>
#include <cstddef>

namespace visitd::rota {
namespace {

// Spellings from ../shared/protocol.md, indexed by the enumerator's value.
constexpr std::array<std::string_view, 8> kStateNames = {
    "scheduled",   "late",      "missed",      "in_progress",
    "overrunning", "completed", "no_checkout", "cancelled",
};
static_assert(kStateNames.size() == static_cast<std::size_t>(VisitState::cancelled) + 1);

// Indexed by bit position.
constexpr std::array<std::string_view, 7> kFlagNames = {
    "outside_geofence",     "short",        "late_arrival", "device_time_skew", "manual",
    "double_up_incomplete", "tag_mismatch",
};
static_assert(Flags{1} << (kFlagNames.size() - 1) == kTagMismatch);

constexpr std::array<std::string_view, 4> kMethodNames = {"gps", "nfc", "qr", "manual"};
static_assert(kMethodNames.size() == static_cast<std::size_t>(Method::manual) + 1);

}  // namespace

std::string_view to_string(VisitState state) {
  return kStateNames.at(static_cast<std::size_t>(state));
}

std::vector<std::string_view> flag_names(Flags flags) {
  std::vector<std::string_view> names;
  for (std::size_t bit = 0; bit < kFlagNames.size(); ++bit) {
    if ((flags & (Flags{1} << bit)) != 0) names.push_back(kFlagNames[bit]);
  }
  return names;
}

std::string_view to_string(Method method) {
  return kMethodNames.at(static_cast<std::size_t>(method));
}

std::optional<Method> method_from_string(std::string_view text) {
  for (std::size_t i = 0; i < kMethodNames.size(); ++i) {
    if (kMethodNames[i] == text) return static_cast<Method>(i);
  }
  return std::nullopt;
}

bool VisitPlan::same_plan(const VisitPlan& other) const {
  // Member-wise rather than ClientPlan's operator==: geo::LatLon declares no operator==, so
  // ClientPlan's defaulted one is deleted.
  const auto same_client = client.id == other.client.id && client.name == other.client.name &&
                           client.location.lat == other.client.location.lat &&
                           client.location.lon == other.client.location.lon &&
                           client.geofence_m == other.client.geofence_m &&
                           client.tag == other.client.tag;
  return id == other.id && same_client && carers == other.carers && start == other.start &&
         end == other.end && type == other.type && time_critical == other.time_critical &&
         notes == other.notes;
}

}  // namespace visitd::rota
