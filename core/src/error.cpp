#include "visitd/core/error.hpp"

#include <array>

namespace visitd {
namespace {

constexpr std::array<std::string_view, 18> kNames = {
    "bad_json",
    "bad_message",
    "unknown_type",
    "unauthenticated",
    "forbidden",
    "not_assigned",
    "unknown_visit",
    "outside_visit_window",
    "already_checked_in",
    "not_checked_in",
    "visit_cancelled",
    "off_shift",
    "too_old",
    "rate_limited",
    "internal",
    "unknown_alert",
    "conflict",
    "bad_rota",
};
static_assert(kNames.size() == static_cast<std::size_t>(ErrorCode::bad_rota) + 1);

std::string describe(const std::string& file, int line, const std::string& key,
                     const std::string& why) {
  // Built by appends: GCC 12 at -O3 warns falsely (-Wrestrict) on `":" + to_string(...)`.
  std::string out = file;
  if (line > 0) {
    out += ':';
    out += std::to_string(line);
  }
  out += ": ";
  if (!key.empty()) {
    out += key;
    out += ": ";
  }
  out += why;
  return out;
}

}  // namespace

std::string_view to_string(ErrorCode code) { return kNames.at(static_cast<std::size_t>(code)); }

std::optional<ErrorCode> error_code_from_string(std::string_view text) {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == text) return static_cast<ErrorCode>(i);
  }
  return std::nullopt;
}

ConfigError::ConfigError(std::string file, int line, std::string key, const std::string& why)
    : std::runtime_error(describe(file, line, key, why)),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)) {}

}  // namespace visitd
