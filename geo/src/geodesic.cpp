#include "visitd/geo/geodesic.hpp"

#include <GeographicLib/Geodesic.hpp>
#include <algorithm>
#include <cmath>

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
  const double distance = distance_m(centre, fix);
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

// The largest radius of curvature of the WGS84 ellipsoid (the meridian's, at the poles):
// no arc of a meridian or a parallel is longer than this radius times its angle.
constexpr double kMaxCurvatureRadiusM = 6399593.6259;
constexpr double kRadiansPerDegree = 3.14159265358979323846 / 180;

}  // namespace

Duration travel_time(LatLon a, LatLon b, const TravelModel& model) {
  return travel_for(distance_m(a, b), model);
}

Duration travel_time_at_most(LatLon a, LatLon b, const TravelModel& model) {
  // The length of a path along the meridian, then along the parallel nearer the equator: no
  // shorter than the geodesic, and a few multiplications instead of an iterative solution.
  double dlon = std::fabs(a.lon - b.lon);
  dlon = std::min(dlon, 360 - dlon);
  const double widest = std::min(std::fabs(a.lat), std::fabs(b.lat));
  const double path = kMaxCurvatureRadiusM * kRadiansPerDegree *
                      (std::fabs(a.lat - b.lat) + std::cos(widest * kRadiansPerDegree) * dlon);
  // A little slack for rounding; a bound that is exact to the metre is not needed.
  return travel_for(path * 1.0001 + 1, model);
}

}  // namespace visitd::geo
