#pragma once
// A log-linear latency histogram in the manner of HdrHistogram: each power of two is split
// into 128 equal sub-buckets, so any recorded value is known to within 1/128 (0.78%) from
// 1 ns up to 2^36 ns (68.7 s); larger values are clamped. Fixed size (3,840 counters), no
// allocation when recording.
//
// Thread-safe: record() and the readers may run concurrently on any threads (relaxed atomic
// counters; a reader sees some recent state, which is all a progress line needs).

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace visitd::load {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;  // 2^7 sub-buckets per power of two
  static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << 36) - 1;
  static constexpr std::size_t kBuckets = std::size_t{36 - kSubBits + 1} << kSubBits;

  // Bucket i holds [lowest(i), lowest(i + 1)). Values below 256 have a bucket each; above,
  // the shift s drops the bits below the 8 most significant ones.
  static std::size_t index_of(std::uint64_t v) {
    v = std::min(v, kMaxValue);
    const int msb = std::bit_width(v) - 1;
    const int s = std::max(0, msb - kSubBits);
    return (std::size_t(s) << kSubBits) + std::size_t(v >> s);
  }
  static std::uint64_t lowest(std::size_t index) {
    const std::size_t s = index < (2u << kSubBits) ? 0 : (index >> kSubBits) - 1;
    return std::uint64_t(index - (s << kSubBits)) << s;
  }

  void record(std::uint64_t value) {
    counts_[index_of(value)].fetch_add(1, std::memory_order_relaxed);
    total_.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t seen = max_.load(std::memory_order_relaxed);
    while (value > seen && !max_.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
    }
  }

  std::uint64_t count() const { return total_.load(std::memory_order_relaxed); }
  std::uint64_t max() const { return max_.load(std::memory_order_relaxed); }

  // The smallest value v such that at least `percent`% of the recorded values are <= v, to
  // the histogram's precision: the highest value of the bucket holding that rank (never more
  // than the largest value recorded). 0 when nothing was recorded.
  std::uint64_t percentile(double percent) const {
    const std::uint64_t total = count();
    if (total == 0) return 0;
    const auto rank = std::max<std::uint64_t>(
        1, std::uint64_t(std::ceil(std::clamp(percent, 0.0, 100.0) / 100.0 * double(total))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i].load(std::memory_order_relaxed);
      if (seen >= rank) return std::min(lowest(i + 1) - 1, max());
    }
    return max();
  }

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> total_{0};
  std::atomic<std::uint64_t> max_{0};
};

}  // namespace visitd::load
