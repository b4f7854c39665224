#pragma once
// Distances on the WGS84 ellipsoid (GeographicLib), the geofence decision and a travel-time
// estimate. Pure functions; thread-safe.

#include <cstdint>

#include "visitd/core/time.hpp"

namespace visitd::geo {

struct LatLon {
  double lat = 0;  ///< degrees, -90..90
  double lon = 0;  ///< degrees, -180..180

  bool operator==(const LatLon&) const = default;
};

/// True when lat/lon are finite and in range.
bool valid(LatLon p);

/// Geodesic distance in metres on WGS84 (GeographicLib::Geodesic::WGS84()).
double distance_m(LatLon a, LatLon b);

enum class Fence : std::uint8_t {
  inside,     ///< distance + accuracy <= radius: certainly inside
  uncertain,  ///< the accuracy circle straddles the fence
  outside,    ///< distance - accuracy > radius: certainly outside
};

struct FenceCheck {
  Fence fence;
  double distance_m;  ///< from the client's location to the fix's centre
};

/// The distance the geofence uses: distance_m() in a fraction of the time where a phone's fix
/// is near the client (at most 0.02 degrees apart in latitude and in longitude, about 2 km,
/// and within 80 degrees of the equator): there the local flat-earth distance (WGS84's radii
/// of curvature at the mean latitude) is within a millimetre of the geodesic. Elsewhere it is
/// distance_m() itself.
double near_distance_m(LatLon a, LatLon b);

/// Decides whether a fix with a reported accuracy (metres, 68% radius as phones report it;
/// negative or non-finite is treated as 0) lies within `radius_m` of `centre`, by
/// near_distance_m().
FenceCheck check_geofence(LatLon centre, double radius_m, LatLon fix, double accuracy_m);

/// How travel between two points is estimated: geodesic distance x road_factor at speed.
struct TravelModel {
  double road_factor = 1.4;  ///< roads are longer than the geodesic
  double speed_kmh = 30;     ///< average door-to-door speed
  Duration minimum{0};       ///< parking, walking to the door
};

/// Estimated travel time from a to b under the model.
Duration travel_time(LatLon a, LatLon b, const TravelModel& model);

/// The same estimate from the local flat-earth distance (WGS84's radii of curvature at the
/// mean latitude), in a few nanoseconds instead of solving the geodesic: within a second
/// (and 0.1%) of travel_time() for journeys up to 100 km away from the poles, where care
/// workers drive. Further, or near a pole, it is travel_time() itself.
Duration travel_time_local(LatLon a, LatLon b, const TravelModel& model);

}  // namespace visitd::geo
