#pragma once

namespace visitd::load {

/// Checks LatencyHistogram against exact percentiles of known and random samples; prints
/// each failure on stderr. Returns the number of failures (0: all good).
int histogram_self_test();

}  // namespace visitd::load
