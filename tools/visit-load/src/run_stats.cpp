#include "run_stats.hpp"

#include <cstdio>

namespace visitd::load {

namespace {
constexpr unsigned kPrintedAtMost = 20;
}

void RunStats::count_error(std::string_view code, std::string_view carer,
                           std::string_view message) {
  errors.fetch_add(1, std::memory_order_relaxed);
  const std::scoped_lock lock(mutex_);
  ++by_code_[std::string(code)];
  if (errors_printed_ < kPrintedAtMost) {
    ++errors_printed_;
    std::fprintf(stderr, "error for %.*s: %.*s: %.*s%s\n", int(carer.size()), carer.data(),
                 int(code.size()), code.data(), int(message.size()), message.data(),
                 errors_printed_ == kPrintedAtMost ? " (further errors only counted)" : "");
  }
}

void RunStats::report_failure(std::string_view carer, std::string_view what) {
  const std::scoped_lock lock(mutex_);
  if (failures_printed_ < kPrintedAtMost) {
    ++failures_printed_;
    std::fprintf(stderr, "connection %.*s: %.*s%s\n", int(carer.size()), carer.data(),
                 int(what.size()), what.data(),
                 failures_printed_ == kPrintedAtMost ? " (further failures only counted)" : "");
  }
}

std::map<std::string, std::uint64_t> RunStats::errors_by_code() const {
  const std::scoped_lock lock(mutex_);
  return by_code_;
}

}  // namespace visitd::load
