#include "self_test.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "latency_histogram.hpp"

namespace visitd::load {

namespace {

using H = LatencyHistogram;

// The exact percentile of a sorted sample, by the definition percentile() implements: the
// smallest value with at least p% of the sample at or below it.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double p) {
  const auto rank =
      std::max<std::size_t>(1, std::size_t(std::ceil(p / 100.0 * double(sorted.size()))));
  return sorted[rank - 1];
}

struct Checker {
  int failures = 0;
  void expect(bool ok, const char* what, std::uint64_t a, std::uint64_t b) {
    if (ok) return;
    ++failures;
    std::fprintf(stderr, "self-test: %s (%llu vs %llu)\n", what, static_cast<unsigned long long>(a),
                 static_cast<unsigned long long>(b));
  }
};

// Every percentile within the bucket of the exact one: at least the exact value, and no more
// than the top of its bucket (under 1/128 above it).
void compare(Checker& check, std::vector<std::uint64_t> sample, const char* name) {
  auto h = std::make_unique<H>();
  for (const auto v : sample) h->record(v);
  std::sort(sample.begin(), sample.end());
  check.expect(h->count() == sample.size(), name, h->count(), sample.size());
  check.expect(h->max() == sample.back(), name, h->max(), sample.back());
  for (const double p : {0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
    const auto exact = std::min(exact_percentile(sample, p), H::kMaxValue);
    const auto got = h->percentile(p);
    check.expect(got >= exact, name, got, exact);
    check.expect(got <= H::lowest(H::index_of(exact) + 1) - 1, name, got, exact);
    check.expect(double(got - exact) <= double(exact) / 128.0, name, got, exact);
  }
}

}  // namespace

int histogram_self_test() {
  Checker check;

  // Buckets tile the range with no gaps and the promised precision.
  for (std::size_t i = 0; i + 1 < H::kBuckets; ++i) {
    const auto lo = H::lowest(i);
    const auto next = H::lowest(i + 1);
    check.expect(H::index_of(lo) == i, "lowest(i) is in bucket i", H::index_of(lo), i);
    check.expect(H::index_of(next - 1) == i, "lowest(i+1)-1 is in bucket i", H::index_of(next - 1),
                 i);
    check.expect(next > lo && (lo < 256 || double(next - lo) <= double(lo) / 128.0),
                 "bucket width within 1/128", next - lo, lo);
  }
  check.expect(H::index_of(H::kMaxValue) == H::kBuckets - 1,
               "the largest value has the last bucket", H::index_of(H::kMaxValue), H::kBuckets - 1);
  check.expect(H::index_of(~std::uint64_t{0}) == H::kBuckets - 1, "larger values are clamped",
               H::index_of(~std::uint64_t{0}), H::kBuckets - 1);

  {
    const auto empty = std::make_unique<H>();
    check.expect(empty->percentile(99) == 0, "an empty histogram says 0", empty->percentile(99), 0);
  }
  {
    const auto one = std::make_unique<H>();
    one->record(123'456);
    check.expect(one->percentile(1) == 123'456 && one->percentile(100) == 123'456,
                 "a single value is every percentile", one->percentile(50), 123'456);
  }

  std::vector<std::uint64_t> uniform;
  for (std::uint64_t v = 1; v <= 100'000; ++v) uniform.push_back(v * 1000);  // 1 us .. 100 ms
  compare(check, uniform, "uniform 1 us .. 100 ms");

  std::mt19937_64 rng(20261123);
  std::vector<std::uint64_t> log_uniform;
  std::uniform_real_distribution<double> exponent(0.0, std::log(60e9));  // 1 ns .. 60 s
  for (int i = 0; i < 200'000; ++i) log_uniform.push_back(std::uint64_t(std::exp(exponent(rng))));
  compare(check, log_uniform, "log-uniform 1 ns .. 60 s");

  // Latency-like: a tight body around 80 us and a tail of rare slow answers.
  std::vector<std::uint64_t> tailed;
  std::lognormal_distribution<double> body(std::log(80e3), 0.3);
  std::uniform_int_distribution<std::uint64_t> tail(1'000'000, 50'000'000);
  for (int i = 0; i < 100'000; ++i)
    tailed.push_back(i % 500 == 0 ? tail(rng) : std::uint64_t(body(rng)));
  compare(check, tailed, "lognormal body with a 0.2% tail");

  if (check.failures == 0) std::fputs("self-test: latency histogram OK\n", stderr);
  return check.failures;
}

}  // namespace visitd::load
