#include "visitd/core/time.hpp"

#include <array>
#include <charconv>
#include <cstdio>
#include <limits>

namespace visitd {
namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

std::optional<TimePoint> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  if (s.size() < 20) return std::nullopt;
  if (!digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d)) {
    return std::nullopt;
  }
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  if (!digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
      !digits(s, 17, 2, se)) {
    return std::nullopt;
  }
  // A leap second (60) is accepted and folded onto the next second, as most systems do.
  if (h > 23 || mi > 59 || se > 60) return std::nullopt;
  const year_month_day ymd{year(y), month(unsigned(mo)), day(unsigned(d))};
  if (!ymd.ok()) return std::nullopt;

  std::size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;  // the offset is mandatory
  int offset_min = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    const int sign = s[pos] == '-' ? -1 : 1;
    int oh = 0, om = 0;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_min = sign * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;

  const auto t = sys_days(ymd) + hours(h) + minutes(mi) + seconds(se) + milliseconds(millis) -
                 minutes(offset_min);
  return time_point_cast<Duration>(t);
}

std::string format_rfc3339(TimePoint t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<Duration> tod{t - day};
  std::array<char, 40> buf{};
  int n = std::snprintf(buf.data(), buf.size(), "%04d-%02u-%02uT%02d:%02d:%02d", int(ymd.year()),
                        unsigned(ymd.month()), unsigned(ymd.day()), int(tod.hours().count()),
                        int(tod.minutes().count()), int(tod.seconds().count()));
  if (tod.subseconds().count() != 0) {
    n += std::snprintf(buf.data() + n, buf.size() - std::size_t(n), ".%03d",
                       int(tod.subseconds().count()));
  }
  std::string out(buf.data(), std::size_t(n));
  out += 'Z';
  return out;
}

std::optional<Duration> parse_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::int64_t total = 0;
  std::size_t pos = 0;
  while (pos < s.size()) {
    // from_chars accepts a leading '-', which would let "-0s" or "1h-0m" through.
    if (s[pos] < '0' || s[pos] > '9') return std::nullopt;
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + s.size(), n);
    if (ec != std::errc() || n < 0) return std::nullopt;
    pos = std::size_t(p - s.data());
    std::int64_t unit = 0;
    if (s.substr(pos, 2) == "ms") {
      unit = 1;
      pos += 2;
    } else if (pos < s.size()) {
      switch (s[pos]) {
        case 's':
          unit = 1000;
          break;
        case 'm':
          unit = 60'000;
          break;
        case 'h':
          unit = 3'600'000;
          break;
        case 'd':
          unit = 86'400'000;
          break;
        default:
          return std::nullopt;
      }
      ++pos;
    } else {
      return std::nullopt;  // a number without a unit is ambiguous: refuse it
    }
    if (n > (std::numeric_limits<std::int64_t>::max() - total) / unit) return std::nullopt;
    total += n * unit;
  }
  return Duration(total);
}

std::string format_duration(Duration d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  const std::pair<std::int64_t, const char*> units[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (auto [size, name] : units) {
    if (ms >= size) {
      out += std::to_string(ms / size) + name;
      ms %= size;
    }
  }
  return out;
}

}  // namespace visitd
