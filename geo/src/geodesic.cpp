#include "visitd/geo/geodesic.hpp"

#include <GeographicLib/Geodesic.hpp>
#include <algorithm>
#include <cmath>
#include <optional>

namespace visitd::geo {
namespace {

// A speed that is zero, negative or not a number is a configuration mistake that slipped past
// validation. Rather than divide by it (an infinite or negative estimate) or assume a plausible
// speed that hides the mistake, estimate at 1 km/h, slower than walking: every journey then
// looks implausibly long, which someone notices. No assert, so the behaviour (and its test) is
// the same in every build.
constexpr double kSlowestSpeedKmh = 1.0;

// Roads are never shorter than the geodesic; a factor below 1 (or not a number) is read as 1.
constexpr double kShortestRoadFactor = 1.0;

// Floating-point noise of a few nanoseconds must not round an exact 1680 s up to 1681 s.
constexpr double kRoundingSlackS = 1e-6;

// Caps an estimate at 100 days so that absurd (but finite) models cannot overflow Duration.
constexpr double kLongestTravelS = 100.0 * 24 * 3600;

}  // namespace

bool valid(LatLon p) {
  return std::isfinite(p.lat) && std::isfinite(p.lon) && p.lat >= -90 && p.lat <= 90 &&
         p.lon >= -180 && p.lon <= 180;
}

double distance_m(LatLon a, LatLon b) {
  // WGS84() is a function-local static: initialised once, thread-safely, and immutable after.
  double s12 = 0;
  GeographicLib::Geodesic::WGS84().Inverse(a.lat, a.lon, b.lat, b.lon, s12);
  return s12;
}

FenceCheck check_geofence(LatLon centre, double radius_m, LatLon fix, double accuracy_m) {
  const double distance = near_distance_m(centre, fix);
  // Phones report -1 (or nothing) when they have no estimate; that claims no uncertainty.
  const double accuracy = std::isfinite(accuracy_m) && accuracy_m > 0 ? accuracy_m : 0.0;
  if (distance - accuracy > radius_m) return {Fence::outside, distance};
  if (distance + accuracy <= radius_m) return {Fence::inside, distance};
  // Also reached when the distance is not a number (an invalid fix or centre): nothing certain
  // can be said, and "outside" would flag a carer on the strength of bad data.
  return {Fence::uncertain, distance};
}

namespace {

Duration travel_for(double distance, const TravelModel& model) {
  // An unknown position gives no estimate beyond the fixed minimum: no invented delay.
  if (!std::isfinite(distance)) return model.minimum;
  const double speed_kmh =
      std::isfinite(model.speed_kmh) && model.speed_kmh > 0 ? model.speed_kmh : kSlowestSpeedKmh;
  const double road_factor = std::isfinite(model.road_factor)
                                 ? std::max(model.road_factor, kShortestRoadFactor)
                                 : kShortestRoadFactor;
  const double seconds = distance * road_factor / (speed_kmh / 3.6);
  const double whole_seconds =
      std::min(std::ceil(std::max(seconds - kRoundingSlackS, 0.0)), kLongestTravelS);
  return std::chrono::seconds(static_cast<std::int64_t>(whole_seconds)) + model.minimum;
}

// WGS84.
constexpr double kA = 6378137.0;
constexpr double kF = 1 / 298.257223563;
constexpr double kE2 = kF * (2 - kF);
constexpr double kRadiansPerDegree = 3.14159265358979323846 / 180;
// Where the flat-earth distance is as good as the geodesic for a travel estimate: at most
// about a degree apart (~100 km), away from the poles and the antimeridian.
constexpr double kLocalDegrees = 1.0;
constexpr double kLocalLatitude = 80.0;
// Where it is within a millimetre of the geodesic (tests/geo/geodesic_test.cpp): ~2 km.
constexpr double kNearDegrees = 0.02;

/// The flat-earth distance from a to b with the meridional and prime vertical radii of
/// curvature at their mean latitude, when they are at most `degrees` apart in latitude and
/// in longitude and within kLocalLatitude of the equator; else nothing (also for NaN).
std::optional<double> local_distance_m(LatLon a, LatLon b, double degrees) {
  const double dlat = b.lat - a.lat;
  const double dlon = b.lon - a.lon;
  const double mean = (a.lat + b.lat) / 2;
  if (!(std::fabs(dlat) <= degrees && std::fabs(dlon) <= degrees &&
        std::fabs(mean) <= kLocalLatitude)) {
    return std::nullopt;
  }
  const double s = std::sin(mean * kRadiansPerDegree);
  const double w2 = 1 - kE2 * s * s;
  const double n = kA / std::sqrt(w2);
  const double m = n * (1 - kE2) / w2;
  const double north = m * dlat * kRadiansPerDegree;
  const double east = n * std::cos(mean * kRadiansPerDegree) * dlon * kRadiansPerDegree;
  return std::sqrt(north * north + east * east);
}

}  // namespace

Duration travel_time(LatLon a, LatLon b, const TravelModel& model) {
  return travel_for(distance_m(a, b), model);
}

Duration travel_time_local(LatLon a, LatLon b, const TravelModel& model) {
  const auto local = local_distance_m(a, b, kLocalDegrees);
  // Far, near a pole, or not a position: the geodesic.
  return travel_for(local ? *local : distance_m(a, b), model);
}

double near_distance_m(LatLon a, LatLon b) {
  const auto local = local_distance_m(a, b, kNearDegrees);
  return local ? *local : distance_m(a, b);
}

}  // namespace visitd::geo
