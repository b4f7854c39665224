#pragma once
// How a position fix is written in journal payloads and snapshots alike.

#include <optional>

#include "visitd/core/binary.hpp"
#include "visitd/rota/engine.hpp"

namespace visitd::rota::detail {

inline void put_fix(Writer& w, const Fix& f) {
  w.f64(f.position.lat);
  w.f64(f.position.lon);
  w.f64(f.accuracy_m);
}
inline Fix get_fix(Reader& r) {
  Fix f;
  f.position.lat = r.f64();
  f.position.lon = r.f64();
  f.accuracy_m = r.f64();
  return f;
}
inline void put_opt_fix(Writer& w, const std::optional<Fix>& f) {
  w.boolean(f.has_value());
  if (f) put_fix(w, *f);
}
inline std::optional<Fix> get_opt_fix(Reader& r) {
  if (!r.boolean()) return std::nullopt;
  return get_fix(r);
}

}  // namespace visitd::rota::detail
