#pragma once
// The order in which threshold overrides apply to one visit. Shared by
// Settings::thresholds_for and by the loader's validation, so that what is validated is
// exactly what the engine will use.

#include <string_view>

#include "visitd/config/settings.hpp"

namespace visitd::config::detail {

/// Calls `apply(layer)` for each override layer that applies to a visit of `visit_type` in
/// `branch`, in the documented order (settings.hpp): [thresholds], its type override, the
/// branch's values, the branch's type override, then for a time-critical visit the global
/// and the branch's time-critical overrides. A branch id that is not configured contributes
/// nothing, so the visit gets the global thresholds. Layers are never null.
template <class Apply>
void for_each_threshold_layer(const Settings& settings, std::string_view branch,
                              std::string_view visit_type, bool time_critical, Apply&& apply) {
  const Branch* b = settings.find_branch(branch);
  const auto type_layer = [&](const ThresholdLayer& layer) {
    if (visit_type.empty()) return;
    if (auto it = layer.types.find(visit_type); it != layer.types.end()) apply(it->second);
  };
  apply(settings.thresholds.values);
  type_layer(settings.thresholds);
  if (b != nullptr) {
    apply(b->thresholds.values);
    type_layer(b->thresholds);
  }
  if (time_critical) {
    apply(settings.thresholds.time_critical);
    if (b != nullptr) apply(b->thresholds.time_critical);
  }
}

}  // namespace visitd::config::detail
