#include "visitd/config/load.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "threshold_layers.hpp"
#include "visitd/core/error.hpp"
#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"

namespace visitd::config {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
// Beast buffers a whole message before we parse it: a cap keeps one client from pinning
// the daemon's memory.
constexpr std::size_t kMaxMessageCap = 16 * kMiB;
constexpr std::size_t kMaxBodyCap = 256 * kMiB;
// HS256 with a short key is guessable offline from any token a carer's phone holds.
constexpr std::size_t kMinSecretBytes = 16;
// design.md: "ours 15m, 5m time-critical" and "60m, 30m time-critical". Medication visits
// need the tighter defaults even when the config only sets the general thresholds.
constexpr Duration kTimeCriticalLateAfter = 5min;
constexpr Duration kTimeCriticalMissedAfter = 30min;

// A demo day in a minute is already more than a board or a simulator can show.
constexpr double kMaxClockRate = 3600;

constexpr std::string_view kDurationFormat =
    R"(a duration string such as "90s", "15m", "2h" or "1h30m" (units ms, s, m, h, d))";
constexpr std::string_view kSizeFormat =
    R"(a size such as "64KiB", "1MiB" or "512B", or a number of bytes)";

constexpr std::array<std::string_view, 6> kThresholdKeys = {"late_after",    "missed_after",
                                                            "overrun_after", "no_checkout_after",
                                                            "short_ratio",   "geofence_m"};

// ---------------------------------------------------------------------------------------
// Small helpers

struct FileText {
  std::string text;
  std::error_code error;
};

FileText read_whole_file(const fs::path& path) {
  FileText out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    out.error = std::error_code(errno, std::generic_category());
    return out;
  }
  std::array<char, 8192> buf{};
  while (true) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), f);
    out.text.append(buf.data(), n);
    if (n < buf.size()) break;
  }
  // fopen succeeds on a directory; the read is what fails (EISDIR).
  if (std::ferror(f) != 0) out.error = std::error_code(errno, std::generic_category());
  std::fclose(f);
  return out;
}

bool is_bare_key(std::string_view key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

/// A TOML basic string, escaped.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          std::array<char, 8> esc{};
          std::snprintf(esc.data(), esc.size(), "\\u%04X", static_cast<unsigned>(c));
          out += esc.data();
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

/// A key as it is written in a dotted path or a table header.
std::string key_part(std::string_view key) {
  return is_bare_key(key) ? std::string(key) : quote(key);
}

std::string join(std::string_view path, std::string_view key) {
  if (path.empty()) return key_part(key);
  return std::string(path) + "." + key_part(key);
}

std::string at_index(std::string_view path, std::size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

std::string type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string format_double(double v) {
  std::array<char, 64> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  std::string out(buf.data(), ec == std::errc() ? end : buf.data());
  // Written as a float so that the value keeps its TOML type when read back.
  if (out.find_first_of(".eE") == std::string::npos) out += ".0";
  return out;
}

/// `2026-12-24 18:00`: a local wall time as the config writes it.
std::string local_text(LocalTime t) {
  const auto day = std::chrono::floor<std::chrono::days>(t);
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(t - day).count();
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02d:%02d", int(minutes / 60), int(minutes % 60));
  return format_local_date(LocalDays(day)) + " " + buf;
}

/// `07:00` or `07:00:30`: a time of day, as [clock] start writes "today at".
std::optional<Duration> parse_time_of_day(std::string_view s) {
  if (s.size() != 5 && s.size() != 8) return std::nullopt;
  const auto two = [&](std::size_t at) -> int {
    const char a = s[at];
    const char b = s[at + 1];
    if (a < '0' || a > '9' || b < '0' || b > '9') return -1;
    return (a - '0') * 10 + (b - '0');
  };
  const int h = two(0);
  const int m = two(3);
  const int sec = s.size() == 8 ? two(6) : 0;
  if (s[2] != ':' || (s.size() == 8 && s[5] != ':')) return std::nullopt;
  if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 59) return std::nullopt;
  return std::chrono::hours(h) + std::chrono::minutes(m) + std::chrono::seconds(sec);
}

std::string format_time_of_day(Duration d) {
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  char buf[16];
  if (secs % 60 == 0) {
    std::snprintf(buf, sizeof buf, "%02d:%02d", int(secs / 3600), int(secs / 60 % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", int(secs / 3600), int(secs / 60 % 60),
                  int(secs % 60));
  }
  return buf;
}

std::string format_size(std::size_t bytes) {
  if (bytes != 0 && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "MiB";
  if (bytes != 0 && bytes % kKiB == 0) return std::to_string(bytes / kKiB) + "KiB";
  return std::to_string(bytes) + "B";
}

std::optional<std::size_t> parse_size(std::string_view s) {
  std::uint64_t n = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  const std::string_view unit = s.substr(static_cast<std::size_t>(p - s.data()));
  std::uint64_t scale = 0;
  if (unit == "B") {
    scale = 1;
  } else if (unit == "KiB") {
    scale = kKiB;
  } else if (unit == "MiB") {
    scale = kMiB;
  } else if (unit == "GiB") {
    scale = kMiB * kKiB;  // accepted so that "1GiB" is reported as too large, not as a typo
  } else {
    return std::nullopt;
  }
  if (n > std::numeric_limits<std::size_t>::max() / scale) return std::nullopt;
  return static_cast<std::size_t>(n * scale);
}

/// `host:port`, the host possibly a bracketed IPv6 address; port 0 lets the OS pick.
std::optional<std::string> listen_problem(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return R"(expected "host:port", e.g. "127.0.0.1:8080")";
  }
  const std::string_view host = s.substr(0, colon);
  const std::string_view port = s.substr(colon + 1);
  if (host.find(':') != std::string_view::npos && !(host.front() == '[' && host.back() == ']')) {
    return "write an IPv6 address in brackets, e.g. \"[::1]:8080\"";
  }
  unsigned value = 0;
  const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || value > 65535) {
    return "the port must be a number from 0 to 65535";
  }
  return std::nullopt;
}

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](std::string_view p) { return s.size() > p.size() && s.starts_with(p); });
}

// ---------------------------------------------------------------------------------------
// Reading

/// Reads one parsed document into Settings. Every error names the file, the line of the
/// node at fault (the enclosing table's for a missing key) and the dotted key.
class Reader {
 public:
  Reader(std::string file, fs::path base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  Settings read(const toml::table& root) {
    Settings s;
    s.source = file_;
    check_keys(root, "",
               {"server", "store", "auth", "thresholds", "tracking", "branches", "receivers",
                "oncall", "escalation", "clock"});
    if (const auto* t = table(root, "", "server")) read_server(*t, s.server);
    if (const auto* t = table(root, "", "store")) read_store(*t, s.store);
    if (const auto* t = table(root, "", "auth")) read_auth(*t, s.auth);
    if (const auto* t = table(root, "", "thresholds")) read_layer(*t, "thresholds", s.thresholds);
    fill_global_defaults(s.thresholds);
    if (const auto* t = table(root, "", "tracking")) read_tracking(*t, s.tracking);
    if (const auto* a = tables(root, "", "branches")) read_branches(*a, s.branches);
    if (const auto* a = tables(root, "", "receivers")) read_receivers(*a, s.receivers);
    if (const auto* a = tables(root, "", "oncall")) read_oncall(*a, s);
    if (const auto* t = table(root, "", "escalation")) read_escalation(*t, s);
    if (const auto* t = table(root, "", "clock")) read_clock(*t, s);
    validate_thresholds(s);
    return s;
  }

 private:
  [[noreturn]] void fail(int line, const std::string& key, const std::string& why) const {
    throw ConfigError(file_, line, key, why);
  }
  [[noreturn]] void fail(const toml::node& at, const std::string& key,
                         const std::string& why) const {
    fail(line_of(at), key, why);
  }
  [[noreturn]] void wrong_type(const toml::node& at, const std::string& key,
                               std::string_view expected) const {
    fail(at, key, "expected " + std::string(expected) + ", got " + type_name(at.type()));
  }

  /// A key that is not in `known` is an error: a misspelt key would otherwise leave its
  /// setting at the default without anyone noticing.
  void check_keys(const toml::table& t, std::string_view path,
                  std::initializer_list<std::string_view> known) const {
    for (const auto& [key, node] : t) {
      const std::string_view k = key.str();
      if (std::find(known.begin(), known.end(), k) != known.end()) continue;
      std::string why = "unknown key";
      std::size_t best = 3;  // suggest only close matches: a typo, not a different word
      for (const std::string_view candidate : known) {
        const std::size_t d = edit_distance(k, candidate);
        if (d < best) {
          best = d;
          why = "unknown key (did you mean \"" + std::string(candidate) + "\"?)";
        }
      }
      const int line =
          key.source().begin.line > 0 ? static_cast<int>(key.source().begin.line) : line_of(node);
      fail(line, join(path, k), why);
    }
  }

  [[nodiscard]] const toml::table* table(const toml::table& parent, std::string_view path,
                                         std::string_view key) const {
    const toml::node* n = parent.get(key);
    if (n == nullptr) return nullptr;
    if (const auto* t = n->as_table()) return t;
    wrong_type(*n, join(path, key), "a table");
  }

  /// An array whose elements are all tables ([[x]] or [ {..}, {..} ]).
  [[nodiscard]] const toml::array* tables(const toml::table& parent, std::string_view path,
                                          std::string_view key) const {
    const toml::node* n = parent.get(key);
    if (n == nullptr) return nullptr;
    const auto* a = n->as_array();
    if (a == nullptr) {
      wrong_type(*n, join(path, key), "an array of tables ([[" + join(path, key) + "]])");
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      if (!e.is_table()) wrong_type(e, at_index(join(path, key), i), "a table");
    }
    return a;
  }

  [[nodiscard]] std::optional<std::string> string(const toml::table& t, std::string_view path,
                                                  std::string_view key) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* s = n->as_string()) return s->get();
    wrong_type(*n, join(path, key), "a string");
  }

  [[nodiscard]] std::optional<bool> boolean(const toml::table& t, std::string_view path,
                                            std::string_view key) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    if (const auto* b = n->as_boolean()) return b->get();
    wrong_type(*n, join(path, key), "a boolean (true or false)");
  }

  [[nodiscard]] std::string required_string(const toml::table& t, std::string_view path,
                                            std::string_view key) const {
    auto s = string(t, path, key);
    if (!s) fail(line_of(t), join(path, key), "missing (required)");
    if (s->empty()) fail(*t.get(key), join(path, key), "must not be empty");
    return *s;
  }

  [[nodiscard]] std::optional<std::vector<std::string>> strings(const toml::table& t,
                                                                std::string_view path,
                                                                std::string_view key) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const auto* a = n->as_array();
    if (a == nullptr) wrong_type(*n, join(path, key), "an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::node& e = *a->get(i);
      const auto* s = e.as_string();
      if (s == nullptr) wrong_type(e, at_index(join(path, key), i), "a string");
      out.push_back(s->get());
    }
    return out;
  }

  [[nodiscard]] std::optional<Duration> duration(const toml::table& t, std::string_view path,
                                                 std::string_view key) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const auto* s = n->as_string();
    if (s == nullptr) wrong_type(*n, join(path, key), kDurationFormat);
    auto d = parse_duration(s->get());
    if (!d) {
      fail(*n, join(path, key),
           quote(s->get()) + " is not a duration: expected " + std::string(kDurationFormat));
    }
    return d;
  }

  /// A duration that must be greater than zero (a zero would fire at once, or keep nothing).
  [[nodiscard]] std::optional<Duration> positive_duration(const toml::table& t,
                                                          std::string_view path,
                                                          std::string_view key) const {
    auto d = duration(t, path, key);
    if (d && d->count() <= 0) fail(*t.get(key), join(path, key), "must be greater than 0s");
    return d;
  }

  [[nodiscard]] std::optional<double> number(const toml::table& t, std::string_view path,
                                             std::string_view key) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    double v = 0;
    if (const auto* f = n->as_floating_point()) {
      v = f->get();
    } else if (const auto* i = n->as_integer()) {
      v = static_cast<double>(i->get());
    } else {
      wrong_type(*n, join(path, key), "a number");
    }
    if (!std::isfinite(v)) fail(*n, join(path, key), "must be a finite number");
    return v;
  }

  /// A size in bytes: an integer, or a string like "64KiB"; from 1 (0 if `zero_ok`) to `cap`.
  [[nodiscard]] std::optional<std::size_t> size(const toml::table& t, std::string_view path,
                                                std::string_view key, std::size_t cap,
                                                bool zero_ok = false) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const std::string full = join(path, key);
    std::optional<std::size_t> bytes;
    if (const auto* i = n->as_integer()) {
      if (i->get() < 0 || (i->get() == 0 && !zero_ok)) {
        fail(*n, full, zero_ok ? "must not be negative" : "must be greater than 0");
      }
      bytes = static_cast<std::size_t>(i->get());
    } else if (const auto* s = n->as_string()) {
      bytes = parse_size(s->get());
      if (!bytes) {
        fail(*n, full, quote(s->get()) + " is not a size: expected " + std::string(kSizeFormat));
      }
    } else {
      wrong_type(*n, full, kSizeFormat);
    }
    if (*bytes == 0 && !zero_ok) fail(*n, full, "must be greater than 0");
    if (*bytes > cap) fail(*n, full, "must be at most " + format_size(cap));
    return bytes;
  }

  /// A whole number from `min` to `max`.
  [[nodiscard]] std::optional<std::uint64_t> count(const toml::table& t, std::string_view path,
                                                   std::string_view key, std::int64_t min,
                                                   std::int64_t max) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return std::nullopt;
    const auto* i = n->as_integer();
    if (i == nullptr) wrong_type(*n, join(path, key), "an integer");
    if (i->get() < min || i->get() > max) {
      fail(*n, join(path, key),
           "must be from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return static_cast<std::uint64_t>(i->get());
  }

  void read_server(const toml::table& t, Server& out) const {
    const std::string_view p = "server";
    check_keys(t, p,
               {"listen", "allowed_origins", "max_message", "max_body", "threads",
                "max_connections", "rate_limit", "rate_burst", "idle_timeout", "request_timeout",
                "board_queue", "dashboard"});
    if (auto v = string(t, p, "listen")) {
      if (auto problem = listen_problem(*v)) fail(*t.get("listen"), join(p, "listen"), *problem);
      out.listen = *v;
    }
    if (auto v = strings(t, p, "allowed_origins")) {
      const auto& a = *t.get("allowed_origins")->as_array();
      for (std::size_t i = 0; i < v->size(); ++i) {
        const std::string& o = (*v)[i];
        // A browser sends `scheme://host[:port]`; anything else (a path, a trailing slash)
        // would never match and every board would be refused.
        const bool web = starts_with_any(o, {"http://", "https://"});
        if (!web || o.find('/', o.find("://") + 3) != std::string::npos) {
          fail(*a.get(i), at_index(join(p, "allowed_origins"), i),
               quote(o) + " is not an origin: write scheme://host[:port], e.g. " +
                   "\"https://office.example\", with no path or trailing slash");
        }
      }
      out.allowed_origins = std::move(*v);
    }
    if (auto v = size(t, p, "max_message", kMaxMessageCap)) out.max_message = *v;
    if (auto v = size(t, p, "max_body", kMaxBodyCap)) out.max_body = *v;
    if (auto v = count(t, p, "threads", 1, 64)) out.threads = unsigned(*v);
    if (auto v = count(t, p, "max_connections", 1, 1'000'000)) out.max_connections = *v;
    if (auto v = number(t, p, "rate_limit")) {
      if (*v <= 0) fail(*t.get("rate_limit"), join(p, "rate_limit"), "must be greater than 0");
      out.rate_limit = *v;
    }
    if (auto v = count(t, p, "rate_burst", 1, 1'000'000)) out.rate_burst = unsigned(*v);
    if (auto v = positive_duration(t, p, "idle_timeout")) out.idle_timeout = *v;
    if (auto v = positive_duration(t, p, "request_timeout")) out.request_timeout = *v;
    if (auto v = count(t, p, "board_queue", 1, 1'000'000)) out.board_queue = *v;
    if (auto v = string(t, p, "dashboard")) {
      if (v->empty()) fail(*t.get("dashboard"), join(p, "dashboard"), "must not be empty");
      out.dashboard = *v;
    }
  }

  void read_store(const toml::table& t, Store& out) const {
    const std::string_view p = "store";
    check_keys(t, p,
               {"kind", "dir", "url", "keyspace", "allow_unsafe_fsync", "daemon_id", "lease_ttl",
                "location_retention", "group_delay", "snapshot_every", "snapshot_interval",
                "snapshot_fork_above"});
    if (auto v = string(t, p, "kind")) {
      if (*v != "journal" && *v != "redis") {
        fail(*t.get("kind"), join(p, "kind"), R"(expected "journal" or "redis", got )" + quote(*v));
      }
      out.kind = *v;
    }
    if (auto v = string(t, p, "dir")) {
      if (v->empty()) fail(*t.get("dir"), join(p, "dir"), "must not be empty");
      out.dir = *v;
    }
    if (auto v = string(t, p, "url")) {
      if (!starts_with_any(*v, {"redis://"})) {
        fail(*t.get("url"), join(p, "url"),
             "expected a redis:// URL, e.g. \"redis://127.0.0.1:6379\"");
      }
      out.url = *v;
    }
    if (auto v = string(t, p, "keyspace")) {
      const bool ok =
          !v->empty() && v->size() <= 64 && std::all_of(v->begin(), v->end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
          });
      if (!ok) {
        fail(*t.get("keyspace"), join(p, "keyspace"),
             "expected 1-64 letters, digits, '_' or '-', got " + quote(*v));
      }
      out.keyspace = *v;
    }
    if (auto v = boolean(t, p, "allow_unsafe_fsync")) out.allow_unsafe_fsync = *v;
    if (auto v = string(t, p, "daemon_id")) {
      if (v->empty() || v->size() > 128) {
        fail(*t.get("daemon_id"), join(p, "daemon_id"), "must be 1-128 characters");
      }
      out.daemon_id = *v;
    }
    if (auto v = duration(t, p, "lease_ttl")) {
      if (*v < std::chrono::seconds(1)) {
        fail(*t.get("lease_ttl"), join(p, "lease_ttl"),
             "must be at least 1s: it is renewed every third of it");
      }
      out.lease_ttl = *v;
    }
    if (out.kind == "redis" && out.url.empty()) {
      fail(line_of(t), join(p, "url"), "required when kind = \"redis\"");
    }
    if (auto v = positive_duration(t, p, "location_retention")) out.location_retention = *v;
    if (auto v = duration(t, p, "group_delay")) {
      if (*v > std::chrono::seconds(1)) {
        fail(*t.get("group_delay"), join(p, "group_delay"),
             "must be at most 1s: every acknowledgement waits up to this long");
      }
      out.group_delay = std::chrono::duration_cast<std::chrono::microseconds>(*v);
    }
    if (auto v = count(t, p, "snapshot_every", 1, std::numeric_limits<std::int64_t>::max())) {
      out.snapshot_every = *v;
    }
    if (auto v = positive_duration(t, p, "snapshot_interval")) out.snapshot_interval = *v;
    if (auto v = size(t, p, "snapshot_fork_above", std::size_t{1} << 40, true)) {
      out.snapshot_fork_above = *v;
    }
  }

  void read_auth(const toml::table& t, Auth& out) const {
    const std::string_view p = "auth";
    check_keys(t, p, {"secret", "secret_file"});
    const auto secret = string(t, p, "secret");
    const auto file = string(t, p, "secret_file");
    if (secret && file) {
      fail(*t.get("secret_file"), join(p, "secret_file"),
           "give either secret or secret_file, not both");
    }
    if (secret) {
      check_secret(*secret, *t.get("secret"), join(p, "secret"));
      out.secret = *secret;
    }
    if (file) {
      const toml::node& at = *t.get("secret_file");
      const std::string key = join(p, "secret_file");
      if (file->empty()) fail(at, key, "must not be empty");
      fs::path path = *file;
      // Relative to the config file, so that the pair can move together (e.g. /etc/visitd).
      if (path.is_relative()) path = base_dir_ / path;
      std::error_code ec;
      if (auto abs = fs::absolute(path, ec); !ec) path = abs;
      path = path.lexically_normal();
      FileText content = read_whole_file(path);
      if (content.error) {
        fail(at, key, "cannot read " + path.string() + ": " + content.error.message());
      }
      // Editors and `echo` add a newline; it is never part of the secret.
      while (!content.text.empty() &&
             (content.text.back() == '\n' || content.text.back() == '\r')) {
        content.text.pop_back();
      }
      check_secret(content.text, at, key);
      out.secret = std::move(content.text);
      out.secret_file = path.string();
    }
  }

  void check_secret(const std::string& secret, const toml::node& at, const std::string& key) const {
    if (secret.size() < kMinSecretBytes) {
      fail(at, key,
           "the secret must be at least " + std::to_string(kMinSecretBytes) + " bytes, got " +
               std::to_string(secret.size()) + " (try: openssl rand -base64 32)");
    }
  }

  void read_overrides(const toml::table& t, const std::string& path, ThresholdOverrides& out) {
    section_lines_[path] = line_of(t);
    for (const std::string_view k : kThresholdKeys) {
      if (const toml::node* n = t.get(k)) value_lines_[join(path, k)] = line_of(*n);
    }
    if (auto v = duration(t, path, "late_after")) out.late_after = v;
    if (auto v = duration(t, path, "missed_after")) out.missed_after = v;
    if (auto v = duration(t, path, "overrun_after")) out.overrun_after = v;
    if (auto v = duration(t, path, "no_checkout_after")) out.no_checkout_after = v;
    if (auto v = number(t, path, "short_ratio")) {
      if (*v <= 0 || *v > 1) {
        fail(*t.get("short_ratio"), join(path, "short_ratio"),
             "must be greater than 0 and at most 1 (a share of the planned duration)");
      }
      out.short_ratio = v;
    }
    if (auto v = number(t, path, "geofence_m")) {
      if (*v <= 0) fail(*t.get("geofence_m"), join(path, "geofence_m"), "must be greater than 0");
      out.geofence_m = v;
    }
  }

  void check_threshold_keys(const toml::table& t, std::string_view path,
                            bool with_subtables) const {
    if (with_subtables) {
      check_keys(t, path,
                 {kThresholdKeys[0], kThresholdKeys[1], kThresholdKeys[2], kThresholdKeys[3],
                  kThresholdKeys[4], kThresholdKeys[5], "time_critical", "types"});
    } else {
      check_keys(t, path,
                 {kThresholdKeys[0], kThresholdKeys[1], kThresholdKeys[2], kThresholdKeys[3],
                  kThresholdKeys[4], kThresholdKeys[5]});
    }
  }

  void read_layer(const toml::table& t, const std::string& path, ThresholdLayer& out) {
    check_threshold_keys(t, path, true);
    read_overrides(t, path, out.values);
    if (const auto* tc = table(t, path, "time_critical")) {
      const std::string p = join(path, "time_critical");
      check_threshold_keys(*tc, p, false);
      read_overrides(*tc, p, out.time_critical);
    }
    if (const auto* types = table(t, path, "types")) {
      const std::string tp = join(path, "types");
      for (const auto& [key, node] : *types) {
        const std::string p = join(tp, key.str());
        const auto* tt = node.as_table();
        if (tt == nullptr) {
          wrong_type(node, p, "a table of thresholds for visit type " + quote(key.str()));
        }
        if (key.str().empty()) fail(node, p, "a visit type must have a name");
        check_threshold_keys(*tt, p, false);
        read_overrides(*tt, p, out.types[std::string(key.str())]);
      }
    }
  }

  /// After loading, [thresholds] holds every value and [thresholds.time_critical] at least
  /// the time-critical defaults, so that describe() shows them and what is validated is
  /// what applies.
  void fill_global_defaults(ThresholdLayer& layer) {
    const auto fill = [&](auto& member, auto value, const std::string& key) {
      if (!member) {
        member = value;
        defaulted_.push_back(key);
      }
    };
    const Thresholds d;
    ThresholdOverrides& v = layer.values;
    fill(v.late_after, d.late_after, "thresholds.late_after");
    fill(v.missed_after, d.missed_after, "thresholds.missed_after");
    fill(v.overrun_after, d.overrun_after, "thresholds.overrun_after");
    fill(v.no_checkout_after, d.no_checkout_after, "thresholds.no_checkout_after");
    fill(v.short_ratio, d.short_ratio, "thresholds.short_ratio");
    fill(v.geofence_m, d.geofence_m, "thresholds.geofence_m");
    fill(layer.time_critical.late_after, kTimeCriticalLateAfter,
         "thresholds.time_critical.late_after");
    fill(layer.time_critical.missed_after, kTimeCriticalMissedAfter,
         "thresholds.time_critical.missed_after");
  }

  void read_tracking(const toml::table& t, Tracking& out) const {
    const std::string_view p = "tracking";
    check_keys(t, p,
               {"early_window", "late_window", "device_skew", "shift_lead", "shift_tail",
                "offline_window", "at_risk", "location_pings", "min_ping_interval", "road_factor",
                "speed_kmh", "travel_minimum"});
    if (auto v = duration(t, p, "early_window")) out.early_window = *v;
    if (auto v = duration(t, p, "late_window")) out.late_window = *v;
    if (auto v = duration(t, p, "device_skew")) out.device_skew = *v;
    if (auto v = duration(t, p, "shift_lead")) out.shift_lead = *v;
    if (auto v = duration(t, p, "shift_tail")) out.shift_tail = *v;
    if (auto v = positive_duration(t, p, "offline_window")) out.offline_window = *v;
    if (auto v = boolean(t, p, "at_risk")) out.at_risk = *v;
    if (auto v = boolean(t, p, "location_pings")) out.location_pings = *v;
    if (auto v = duration(t, p, "min_ping_interval")) out.min_ping_interval = *v;
    if (auto v = duration(t, p, "travel_minimum")) out.travel_minimum = *v;
    if (auto v = number(t, p, "road_factor")) {
      // Roads are never shorter than the geodesic; past 5 the figure is surely a typo.
      if (*v < 1 || *v > 5) fail(*t.get("road_factor"), join(p, "road_factor"), "must be 1 to 5");
      out.road_factor = *v;
    }
    if (auto v = number(t, p, "speed_kmh")) {
      if (*v < 1 || *v > 130) fail(*t.get("speed_kmh"), join(p, "speed_kmh"), "must be 1 to 130");
      out.speed_kmh = *v;
    }
  }

  void read_clock(const toml::table& t, Settings& s) const {
    const std::string_view p = "clock";
    check_keys(t, p, {"start", "rate"});
    DemoClock c;
    if (auto v = string(t, p, "start")) {
      const toml::node& at = *t.get("start");
      const std::string key = join(p, "start");
      if (auto instant = parse_rfc3339(*v)) {
        c.start = *instant;
      } else if (auto time_of_day = parse_time_of_day(*v)) {
        c.start_time = *time_of_day;
      } else if (auto local = parse_local_time(*v)) {
        if (s.branches.empty()) {
          fail(at, key,
               "a local time needs a [[branches]] entry for its time zone: add one, "
               "or write the offset, e.g. \"2026-11-23T07:00:00Z\"");
        }
        const Branch& first = s.branches.front();
        auto instant_there = TimeZone::locate(first.timezone)->to_sys(*local);
        if (!instant_there) fail(at, key, instant_there.error().message);
        c.start = *instant_there;
      } else {
        fail(at, key,
             quote(*v) + " is not a start time: expected RFC 3339 (\"2026-11-23T07:00:00Z\"), " +
                 "a local time in the first branch's zone (\"2026-11-23 07:00\") or a time " +
                 "of day for today (\"07:00\")");
      }
    }
    if (auto v = number(t, p, "rate")) {
      if (*v <= 0 || *v > kMaxClockRate) {
        fail(*t.get("rate"), join(p, "rate"),
             "must be greater than 0 and at most " + std::to_string(int(kMaxClockRate)) +
                 " (demo seconds per real second)");
      }
      c.rate = *v;
    }
    s.clock = c;
  }

  void read_branches(const toml::array& a, std::vector<Branch>& out) {
    std::map<std::string, int, std::less<>> seen;  // id -> line, for duplicate reports
    for (std::size_t i = 0; i < a.size(); ++i) {
      const toml::table& t = *a.get(i)->as_table();
      const std::string p = at_index("branches", i);
      check_keys(t, p, {"id", "name", "timezone", "thresholds"});
      Branch b;
      b.id = required_string(t, p, "id");
      // "*" means "every branch" in a token's branches claim (protocol.md).
      if (b.id == "*") {
        fail(*t.get("id"), join(p, "id"), "\"*\" is reserved: it means all branches");
      }
      const int id_line = line_of(*t.get("id"));
      if (auto [it, fresh] = seen.emplace(b.id, id_line); !fresh) {
        fail(id_line, join(p, "id"),
             "duplicate branch id " + quote(b.id) + " (first defined on line " +
                 std::to_string(it->second) + ")");
      }
      b.name = string(t, p, "name").value_or(b.id);
      if (auto tz = string(t, p, "timezone")) {
        if (auto zone = TimeZone::locate(*tz); !zone) {
          fail(*t.get("timezone"), join(p, "timezone"),
               zone.error().message + ": expected an IANA name such as \"Europe/London\"");
        }
        b.timezone = *tz;
      }
      if (const auto* th = table(t, p, "thresholds")) {
        read_layer(*th, join(p, "thresholds"), b.thresholds);
      }
      out.push_back(std::move(b));
    }
  }

  void read_receivers(const toml::array& a, std::vector<Receiver>& out) const {
    std::map<std::string, int, std::less<>> seen;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const toml::table& t = *a.get(i)->as_table();
      const std::string p = at_index("receivers", i);
      check_keys(t, p, {"name", "type", "url", "routing_key", "fallback"});
      Receiver r;
      r.name = required_string(t, p, "name");
      const int name_line = line_of(*t.get("name"));
      if (auto [it, fresh] = seen.emplace(r.name, name_line); !fresh) {
        fail(name_line, join(p, "name"),
             "duplicate receiver name " + quote(r.name) + " (first defined on line " +
                 std::to_string(it->second) + ")");
      }
      r.type = required_string(t, p, "type");
      if (r.type != "webhook" && r.type != "pagerduty" && r.type != "alertmanager") {
        fail(*t.get("type"), join(p, "type"),
             R"(expected "webhook", "pagerduty" or "alertmanager", got )" + quote(r.type));
      }
      r.url = required_string(t, p, "url");
      if (!starts_with_any(r.url, {"http://", "https://"})) {
        fail(*t.get("url"), join(p, "url"), "expected an http:// or https:// URL");
      }
      r.routing_key = string(t, p, "routing_key").value_or("");
      if (r.type == "pagerduty" && r.routing_key.empty()) {
        const toml::node* rk = t.get("routing_key");
        fail(rk != nullptr ? line_of(*rk) : line_of(t), join(p, "routing_key"),
             "required for type = \"pagerduty\" (the integration key of a PagerDuty service)");
      }
      r.fallback = string(t, p, "fallback").value_or("");
      out.push_back(std::move(r));
    }
    // Fallbacks name receivers defined anywhere in the file, but never themselves.
    for (std::size_t i = 0; i < out.size(); ++i) {
      const Receiver& r = out[i];
      if (r.fallback.empty()) continue;
      const toml::node& n = *a.get(i)->as_table()->get("fallback");
      const std::string key = join(at_index("receivers", i), "fallback");
      if (r.fallback == r.name) fail(n, key, "a receiver cannot be its own fallback");
      if (std::none_of(out.begin(), out.end(),
                       [&](const Receiver& o) { return o.name == r.fallback; })) {
        fail(n, key,
             "no receiver named " + quote(r.fallback) + " (define it in a [[receivers]] table)");
      }
    }
  }

  /// Receiver names in `key` of `t` (at `path`): at least one, each a [[receivers]] name.
  [[nodiscard]] std::vector<std::string> receiver_names(const toml::table& t,
                                                        const std::string& path,
                                                        std::string_view key,
                                                        const std::vector<Receiver>& receivers,
                                                        bool required) const {
    auto names = strings(t, path, key);
    if (!names) {
      if (required) fail(line_of(t), join(path, key), "missing (required)");
      return {};
    }
    if (names->empty()) fail(*t.get(key), join(path, key), "must name at least one receiver");
    const auto& nodes = *t.get(key)->as_array();
    for (std::size_t j = 0; j < names->size(); ++j) {
      const std::string& who = (*names)[j];
      const bool known = std::any_of(receivers.begin(), receivers.end(),
                                     [&](const Receiver& r) { return r.name == who; });
      if (!known) {
        fail(*nodes.get(j), at_index(join(path, key), j),
             "no receiver named " + quote(who) + " (define it in a [[receivers]] table)");
      }
    }
    return std::move(*names);
  }

  /// "HH:MM" as a time of day; "24:00" only when `end_of_day` is allowed.
  [[nodiscard]] Duration time_of_day(const toml::table& t, const std::string& path,
                                     std::string_view key) const {
    const auto v = string(t, path, key);
    if (!v) fail(line_of(t), join(path, key), "missing (required)");
    const std::string& x = *v;
    const bool shape = x.size() == 5 && x[2] == ':' && std::isdigit((unsigned char)x[0]) &&
                       std::isdigit((unsigned char)x[1]) && std::isdigit((unsigned char)x[3]) &&
                       std::isdigit((unsigned char)x[4]);
    const int h = shape ? (x[0] - '0') * 10 + (x[1] - '0') : -1;
    const int m = shape ? (x[3] - '0') * 10 + (x[4] - '0') : -1;
    if (!shape || h > 24 || m > 59 || (h == 24 && m != 0)) {
      fail(*t.get(key), join(path, key),
           quote(x) + " is not a time of day: expected \"HH:MM\" from \"00:00\" to \"24:00\"");
    }
    return std::chrono::hours(h) + std::chrono::minutes(m);
  }

  void read_oncall(const toml::array& a, Settings& s) const {
    std::map<std::string, int, std::less<>> seen;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const toml::table& t = *a.get(i)->as_table();
      const std::string p = at_index("oncall", i);
      check_keys(t, p, {"name", "timezone", "default", "windows", "overrides"});
      OnCall o;
      o.name = required_string(t, p, "name");
      const int name_line = line_of(*t.get("name"));
      if (auto [it, fresh] = seen.emplace(o.name, name_line); !fresh) {
        fail(name_line, join(p, "name"),
             "duplicate on-call schedule " + quote(o.name) + " (first defined on line " +
                 std::to_string(it->second) + ")");
      }
      // A step's `notify` names either; one name must not mean two things.
      if (std::any_of(s.receivers.begin(), s.receivers.end(),
                      [&](const Receiver& r) { return r.name == o.name; })) {
        fail(name_line, join(p, "name"),
             quote(o.name) +
                 " is already a receiver's name: escalation steps could not tell "
                 "which is meant");
      }
      TimeZone zone = TimeZone::utc();
      if (auto tz = string(t, p, "timezone")) {
        auto located = TimeZone::locate(*tz);
        if (!located) {
          fail(*t.get("timezone"), join(p, "timezone"),
               located.error().message + ": expected an IANA name such as \"Europe/London\"");
        }
        o.timezone = *tz;
      }
      zone = *TimeZone::locate(o.timezone);
      o.fallback = receiver_names(t, p, "default", s.receivers, true);

      if (const toml::array* windows = tables(t, p, "windows")) {
        for (std::size_t k = 0; k < windows->size(); ++k) {
          const toml::table& w = *windows->get(k)->as_table();
          const std::string wp = at_index(join(p, "windows"), k);
          check_keys(w, wp, {"days", "from", "to", "notify"});
          OnCallWindow window;
          const auto days = strings(w, wp, "days");
          if (!days || days->empty()) {
            fail(days ? line_of(*w.get("days")) : line_of(w), join(wp, "days"),
                 "required: the weekdays the window starts on, e.g. [\"mon\", \"tue\"]");
          }
          static constexpr std::array<std::string_view, 7> kDays = {"sun", "mon", "tue", "wed",
                                                                    "thu", "fri", "sat"};
          for (std::size_t d = 0; d < days->size(); ++d) {
            const auto at = std::find(kDays.begin(), kDays.end(), (*days)[d]);
            if (at == kDays.end()) {
              fail(*w.get("days")->as_array()->get(d), at_index(join(wp, "days"), d),
                   quote((*days)[d]) + " is not a weekday: use mon, tue, wed, thu, fri, sat, sun");
            }
            window.days |= std::uint8_t(1u << (at - kDays.begin()));
          }
          window.from = time_of_day(w, wp, "from");
          window.to = time_of_day(w, wp, "to");
          if (window.from == std::chrono::hours(24)) {
            fail(*w.get("from"), join(wp, "from"), "a window cannot start at 24:00");
          }
          window.notify = receiver_names(w, wp, "notify", s.receivers, true);
          o.windows.push_back(std::move(window));
        }
      }
      if (const toml::array* overrides = tables(t, p, "overrides")) {
        for (std::size_t k = 0; k < overrides->size(); ++k) {
          const toml::table& w = *overrides->get(k)->as_table();
          const std::string wp = at_index(join(p, "overrides"), k);
          check_keys(w, wp, {"from", "to", "notify"});
          OnCallOverride cover;
          for (const std::string_view key : {"from", "to"}) {
            const auto v = string(w, wp, key);
            if (!v) fail(line_of(w), join(wp, key), "missing (required)");
            const auto local = parse_local_time(*v);
            if (!local) {
              fail(*w.get(key), join(wp, key),
                   quote(*v) + " is not a local time: expected \"2026-12-24 18:00\"");
            }
            // Local times that happen twice or never at a DST change are refused, as in rotas.
            if (auto instant = zone.to_sys(*local); !instant) {
              fail(*w.get(key), join(wp, key), instant.error().message);
            }
            (key == "from" ? cover.from : cover.to) = *local;
          }
          if (cover.to <= cover.from) {
            fail(*w.get("to"), join(wp, "to"), "must be after `from`");
          }
          cover.notify = receiver_names(w, wp, "notify", s.receivers, true);
          o.overrides.push_back(std::move(cover));
        }
      }
      s.oncall.push_back(std::move(o));
    }
  }

  void read_escalation(const toml::table& t, Settings& s) const {
    const std::string_view p = "escalation";
    check_keys(t, p,
               {"ack_timeout", "max_reopens", "group_wait", "retry_initial", "retry_max",
                "fallback_after", "critical", "warning", "info", "time_critical"});
    Escalation& out = s.escalation;
    if (auto v = positive_duration(t, p, "ack_timeout")) out.ack_timeout = *v;
    if (auto v = count(t, p, "max_reopens", 0, 100)) out.max_reopens = unsigned(*v);
    if (auto v = duration(t, p, "group_wait")) {
      if (v->count() < 0) fail(*t.get("group_wait"), join(p, "group_wait"), "must be 0s or more");
      out.group_wait = *v;
    }
    if (auto v = positive_duration(t, p, "retry_initial")) out.retry_initial = *v;
    if (auto v = positive_duration(t, p, "retry_max")) out.retry_max = *v;
    if (out.retry_max < out.retry_initial) {
      fail(*t.get(t.contains("retry_max") ? "retry_max" : "retry_initial"), join(p, "retry_max"),
           "must be at least retry_initial (" + format_duration(out.retry_initial) + ")");
    }
    if (auto v = count(t, p, "fallback_after", 1, 1000)) out.fallback_after = unsigned(*v);
    out.critical = read_ladder(t, "critical", s);
    out.warning = read_ladder(t, "warning", s);
    out.time_critical = read_ladder(t, "time_critical", s);
    if (const toml::node* n = t.get("info")) {
      // design.md: info alerts go to the board only; paging someone at night for one would
      // teach them to ignore the pager.
      if (const auto* a = n->as_array(); a != nullptr && !a->empty()) {
        fail(*n, join(p, "info"), "info never pages: leave the info ladder empty or remove it");
      }
      out.info = read_ladder(t, "info", s);
    }
  }

  [[nodiscard]] std::vector<EscalationStep> read_ladder(const toml::table& t, std::string_view name,
                                                        const Settings& s) const {
    const std::string path = join("escalation", name);
    std::vector<EscalationStep> out;
    const toml::array* a = tables(t, "escalation", name);
    if (a == nullptr) return out;
    for (std::size_t i = 0; i < a->size(); ++i) {
      const toml::table& step = *a->get(i)->as_table();
      const std::string p = at_index(path, i);
      check_keys(step, p, {"after", "notify"});
      EscalationStep e;
      e.after = duration(step, p, "after").value_or(Duration{0});
      if (!out.empty() && e.after < out.back().after) {
        fail(*step.get("after"), join(p, "after"),
             "steps must be in order of `after`: " + format_duration(e.after) + " comes after " +
                 format_duration(out.back().after));
      }
      auto notify = strings(step, p, "notify");
      if (!notify) fail(line_of(step), join(p, "notify"), "missing (required)");
      if (notify->empty()) {
        fail(*step.get("notify"), join(p, "notify"), "must name at least one receiver");
      }
      const auto& names = *step.get("notify")->as_array();
      for (std::size_t j = 0; j < notify->size(); ++j) {
        const std::string& who = (*notify)[j];
        const bool known = std::any_of(s.receivers.begin(), s.receivers.end(),
                                       [&](const Receiver& r) { return r.name == who; }) ||
                           std::any_of(s.oncall.begin(), s.oncall.end(),
                                       [&](const OnCall& o) { return o.name == who; });
        if (!known) {
          fail(*names.get(j), at_index(join(p, "notify"), j),
               "no receiver or on-call schedule named " + quote(who) +
                   " (define it in [[receivers]] or [[oncall]])");
        }
      }
      e.notify = std::move(*notify);
      out.push_back(std::move(e));
    }
    return out;
  }

  // --- threshold consistency ---------------------------------------------------------

  /// Checks late_after < missed_after and overrun_after <= no_checkout_after for every
  /// combination of branch, visit type and time-criticality the config distinguishes, and
  /// blames the most specific section that set one of the conflicting values.
  void validate_thresholds(const Settings& s) const {
    std::map<const ThresholdOverrides*, std::string> paths;
    const auto name_layer = [&](const ThresholdLayer& layer, const std::string& path) {
      paths[&layer.values] = path;
      paths[&layer.time_critical] = join(path, "time_critical");
      for (const auto& [type, o] : layer.types) paths[&o] = join(join(path, "types"), type);
    };
    name_layer(s.thresholds, "thresholds");
    for (std::size_t i = 0; i < s.branches.size(); ++i) {
      name_layer(s.branches[i].thresholds, join(at_index("branches", i), "thresholds"));
    }

    const auto check_all = [&](std::string_view branch, const std::vector<std::string>& types) {
      for (const bool critical : {false, true}) {
        check_combination(s, paths, branch, "", critical);
        for (const auto& type : types) check_combination(s, paths, branch, type, critical);
      }
    };
    std::vector<std::string> global_types;
    for (const auto& [type, o] : s.thresholds.types) global_types.push_back(type);
    check_all("", global_types);
    for (const Branch& b : s.branches) {
      std::vector<std::string> types = global_types;
      for (const auto& [type, o] : b.thresholds.types) {
        if (!s.thresholds.types.contains(type)) types.push_back(type);
      }
      check_all(b.id, types);
    }
  }

  struct Origin {
    int order = -1;  // position of the layer in the resolution order; -1: built-in default
    std::string key;
  };

  void check_combination(const Settings& s,
                         const std::map<const ThresholdOverrides*, std::string>& paths,
                         std::string_view branch, std::string_view type, bool critical) const {
    Thresholds t;
    Origin late, missed, overrun, no_checkout;
    int order = 0;
    detail::for_each_threshold_layer(s, branch, type, critical, [&](const ThresholdOverrides& o) {
      const std::string& path = paths.at(&o);
      if (o.late_after) late = {order, join(path, "late_after")};
      if (o.missed_after) missed = {order, join(path, "missed_after")};
      if (o.overrun_after) overrun = {order, join(path, "overrun_after")};
      if (o.no_checkout_after) no_checkout = {order, join(path, "no_checkout_after")};
      t = o.apply_to(t);
      ++order;
    });
    // Which visits the conflict affects; nothing to say when it is all of them.
    std::string what;
    if (critical || !type.empty() || !branch.empty()) {
      what = critical ? " for time-critical visits" : " for visits";
      if (!type.empty()) what += " of type " + quote(type);
      if (!branch.empty()) what += " in branch " + quote(branch);
    }
    if (t.late_after >= t.missed_after) {
      conflict(late, t.late_after, missed, t.missed_after, "must be less than", what);
    }
    if (t.overrun_after > t.no_checkout_after) {
      conflict(overrun, t.overrun_after, no_checkout, t.no_checkout_after, "must not exceed", what);
    }
  }

  [[noreturn]] void conflict(const Origin& a, Duration av, const Origin& b, Duration bv,
                             std::string_view relation, const std::string& what) const {
    // Blame the value written in the more specific section; within one section, the one
    // the operator wrote rather than one filled in by default.
    const auto is_default = [&](const Origin& o) {
      return std::find(defaulted_.begin(), defaulted_.end(), o.key) != defaulted_.end();
    };
    const bool blame_b =
        b.order > a.order || (b.order == a.order && is_default(a) && !is_default(b));
    const Origin& blamed = blame_b ? b : a;
    const auto describe_value = [&](const Origin& o, Duration v) {
      const std::string_view field = std::string_view(o.key).substr(o.key.rfind('.') + 1);
      std::string out = std::string(field) + " (" + format_duration(v);
      if (is_default(o)) {
        out += ", the default";
      } else if (o.key.substr(0, o.key.rfind('.')) != blamed.key.substr(0, blamed.key.rfind('.'))) {
        out += ", set in [" + o.key.substr(0, o.key.rfind('.')) + "]";
      }
      return out + ")";
    };
    int line = 0;
    if (auto it = value_lines_.find(blamed.key); it != value_lines_.end()) {
      line = it->second;
    } else if (auto sit = section_lines_.find(blamed.key.substr(0, blamed.key.rfind('.')));
               sit != section_lines_.end()) {
      line = sit->second;
    }
    fail(line, blamed.key,
         describe_value(a, av) + " " + std::string(relation) + " " + describe_value(b, bv) + what);
  }

  std::string file_;
  fs::path base_dir_;
  // Where threshold sections and values were written, to point consistency errors at them.
  std::map<std::string, int, std::less<>> section_lines_;
  std::map<std::string, int, std::less<>> value_lines_;
  std::vector<std::string> defaulted_;  // keys filled in from built-in defaults
};

// ---------------------------------------------------------------------------------------
// Describing

class Writer {
 public:
  void comment(std::string_view text) {
    // A source path with a newline in it must not break out of the comment.
    std::string line(text);
    std::replace(line.begin(), line.end(), '\n', ' ');
    out_ += line.empty() ? "#\n" : "# " + line + "\n";
  }
  void header(std::string_view name) { out_ += "\n[" + std::string(name) + "]\n"; }
  void array_header(std::string_view name) { out_ += "\n[[" + std::string(name) + "]]\n"; }
  void value(std::string_view key, std::string_view rendered) {
    out_ += key_part(key) + " = " + std::string(rendered) + "\n";
  }
  void duration(std::string_view key, Duration d) { value(key, quote(format_duration(d))); }
  void string(std::string_view key, std::string_view s) { value(key, quote(s)); }
  void strings(std::string_view key, const std::vector<std::string>& v) { value(key, list(v)); }
  static std::string list(const std::vector<std::string>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) out += (i == 0 ? "" : ", ") + quote(v[i]);
    return out + "]";
  }

  /// The set members of `o`, and a comment naming the ones inherited from elsewhere.
  void overrides(const ThresholdOverrides& o) {
    std::vector<std::string_view> inherited;
    const auto put_duration = [&](std::string_view key, const std::optional<Duration>& v) {
      v ? duration(key, *v) : inherited.push_back(key);
    };
    const auto put_number = [&](std::string_view key, const std::optional<double>& v) {
      v ? value(key, format_double(*v)) : inherited.push_back(key);
    };
    put_duration("late_after", o.late_after);
    put_duration("missed_after", o.missed_after);
    put_duration("overrun_after", o.overrun_after);
    put_duration("no_checkout_after", o.no_checkout_after);
    put_number("short_ratio", o.short_ratio);
    put_number("geofence_m", o.geofence_m);
    if (!inherited.empty() && inherited.size() < kThresholdKeys.size()) {
      std::string names;
      for (auto k : inherited) names += (names.empty() ? "" : ", ") + std::string(k);
      comment("inherited: " + names);
    }
  }

  void layer(const ThresholdLayer& l, const std::string& path, bool always_values) {
    if (always_values || !l.values.empty()) {
      header(path);
      overrides(l.values);
    }
    if (!l.time_critical.empty()) {
      header(join(path, "time_critical"));
      overrides(l.time_critical);
    }
    for (const auto& [type, o] : l.types) {
      header(join(join(path, "types"), type));
      overrides(o);
    }
  }

  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string effective(const Thresholds& t) {
  return "late_after=" + format_duration(t.late_after) +
         " missed_after=" + format_duration(t.missed_after) +
         " overrun_after=" + format_duration(t.overrun_after) +
         " no_checkout_after=" + format_duration(t.no_checkout_after) +
         " short_ratio=" + format_double(t.short_ratio) +
         " geofence_m=" + format_double(t.geofence_m);
}

}  // namespace

Settings load_string(std::string_view toml, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(toml, std::string_view(source));
  } catch (const toml::parse_error& e) {
    throw ConfigError(source, static_cast<int>(e.source().begin.line), "",
                      std::string(e.description()));
  }
  Reader reader(source, fs::path(source).parent_path());
  return reader.read(root);
}

Settings load_file(const std::string& path) {
  FileText content = read_whole_file(path);
  if (content.error) throw ConfigError(path, 0, "", "cannot read: " + content.error.message());
  return load_string(content.text, path);
}

std::string describe(const Settings& s) {
  Writer w;
  w.comment("visitd effective configuration" +
            (s.source.empty() ? std::string() : " (from " + s.source + ")"));
  w.comment("Every key is shown with the value in force, defaults included.");

  w.header("server");
  w.string("listen", s.server.listen);
  w.strings("allowed_origins", s.server.allowed_origins);
  w.string("max_message", format_size(s.server.max_message));
  w.string("max_body", format_size(s.server.max_body));
  w.value("threads", std::to_string(s.server.threads));
  w.value("max_connections", std::to_string(s.server.max_connections));
  w.value("rate_limit", format_double(s.server.rate_limit));
  w.value("rate_burst", std::to_string(s.server.rate_burst));
  w.duration("idle_timeout", s.server.idle_timeout);
  w.duration("request_timeout", s.server.request_timeout);
  w.value("board_queue", std::to_string(s.server.board_queue));
  w.string("dashboard", s.server.dashboard);

  w.header("store");
  w.string("kind", s.store.kind);
  w.string("dir", s.store.dir);
  if (s.store.url.empty()) {
    w.comment("url: not set (only used with kind = \"redis\")");
  } else {
    // A password in the URL is a secret: shown redacted, like the auth secret.
    std::string url = s.store.url;
    if (const auto at = url.rfind('@'); at != std::string::npos) {
      url.replace(std::string_view("redis://").size(), at - std::string_view("redis://").size(),
                  "(redacted)");
    }
    w.string("url", url);
  }
  w.string("keyspace", s.store.keyspace);
  w.value("allow_unsafe_fsync", s.store.allow_unsafe_fsync ? "true" : "false");
  if (s.store.daemon_id.empty()) {
    w.comment("daemon_id: not set (the host name)");
  } else {
    w.string("daemon_id", s.store.daemon_id);
  }
  w.duration("lease_ttl", s.store.lease_ttl);
  w.duration("location_retention", s.store.location_retention);
  w.duration("group_delay", std::chrono::duration_cast<Duration>(s.store.group_delay));
  w.value("snapshot_every", std::to_string(s.store.snapshot_every));
  w.duration("snapshot_interval", s.store.snapshot_interval);
  // Written only when set: this text is also recorded in the journal (describe_tracking),
  // which a visitd from before the key must still read.
  if (s.store.snapshot_fork_above != Store{}.snapshot_fork_above) {
    w.string("snapshot_fork_above", format_size(s.store.snapshot_fork_above));
  }

  w.header("auth");
  if (!s.auth.secret_file.empty()) {
    w.string("secret_file", s.auth.secret_file);
    w.comment("secret: read from secret_file, not shown");
  } else if (!s.auth.secret.empty()) {
    // Never in clear: this output ends up in terminals, tickets and chat.
    w.string("secret", "<redacted>");
  } else {
    w.comment("secret: not set; the daemon needs secret or secret_file to accept tokens");
  }

  w.layer(s.thresholds, "thresholds", true);

  w.header("tracking");
  w.duration("early_window", s.tracking.early_window);
  w.duration("late_window", s.tracking.late_window);
  w.duration("device_skew", s.tracking.device_skew);
  w.duration("shift_lead", s.tracking.shift_lead);
  w.duration("shift_tail", s.tracking.shift_tail);
  w.duration("offline_window", s.tracking.offline_window);
  w.value("at_risk", s.tracking.at_risk ? "true" : "false");
  w.value("location_pings", s.tracking.location_pings ? "true" : "false");
  w.duration("min_ping_interval", s.tracking.min_ping_interval);
  w.value("road_factor", format_double(s.tracking.road_factor));
  w.value("speed_kmh", format_double(s.tracking.speed_kmh));
  w.duration("travel_minimum", s.tracking.travel_minimum);

  for (const Branch& b : s.branches) {
    w.array_header("branches");
    w.string("id", b.id);
    w.string("name", b.name);
    w.string("timezone", b.timezone);
    w.layer(b.thresholds, "branches.thresholds", false);
  }

  for (const Receiver& r : s.receivers) {
    w.array_header("receivers");
    w.string("name", r.name);
    w.string("type", r.type);
    w.string("url", r.url);
    // The routing key lets anyone page the on-call coordinator: a credential like the secret.
    if (!r.routing_key.empty()) w.string("routing_key", "<redacted>");
    if (!r.fallback.empty()) w.string("fallback", r.fallback);
  }

  for (const OnCall& o : s.oncall) {
    w.array_header("oncall");
    w.string("name", o.name);
    w.string("timezone", o.timezone);
    w.strings("default", o.fallback);
    static constexpr std::array<std::string_view, 7> kDays = {"sun", "mon", "tue", "wed",
                                                              "thu", "fri", "sat"};
    const auto clock = [](Duration d) {
      const auto m = std::chrono::duration_cast<std::chrono::minutes>(d).count();
      char buf[8];
      std::snprintf(buf, sizeof buf, "%02d:%02d", int(m / 60), int(m % 60));
      return std::string(buf);
    };
    std::string windows = "[";
    for (std::size_t i = 0; i < o.windows.size(); ++i) {
      const OnCallWindow& win = o.windows[i];
      std::vector<std::string> days;
      for (std::size_t d = 0; d < 7; ++d) {
        if ((win.days >> d) & 1u) days.emplace_back(kDays[d]);
      }
      windows += (i == 0 ? " " : ", ");
      windows += "{ days = " + Writer::list(days) + ", from = " + quote(clock(win.from)) +
                 ", to = " + quote(clock(win.to)) + ", notify = " + Writer::list(win.notify) + " }";
    }
    w.value("windows", windows + (o.windows.empty() ? "]" : " ]"));
    std::string overrides = "[";
    for (std::size_t i = 0; i < o.overrides.size(); ++i) {
      const OnCallOverride& cover = o.overrides[i];
      overrides += (i == 0 ? " " : ", ");
      overrides += "{ from = " + quote(local_text(cover.from)) +
                   ", to = " + quote(local_text(cover.to)) +
                   ", notify = " + Writer::list(cover.notify) + " }";
    }
    w.value("overrides", overrides + (o.overrides.empty() ? "]" : " ]"));
  }

  w.header("escalation");
  w.duration("ack_timeout", s.escalation.ack_timeout);
  w.value("max_reopens", std::to_string(s.escalation.max_reopens));
  w.duration("group_wait", s.escalation.group_wait);
  w.duration("retry_initial", s.escalation.retry_initial);
  w.duration("retry_max", s.escalation.retry_max);
  w.value("fallback_after", std::to_string(s.escalation.fallback_after));
  const auto ladder = [&](std::string_view key, const std::vector<EscalationStep>& steps) {
    std::string v = "[";
    for (std::size_t i = 0; i < steps.size(); ++i) {
      v += (i == 0 ? " " : ", ");
      v += "{ after = " + quote(format_duration(steps[i].after)) +
           ", notify = " + Writer::list(steps[i].notify) + " }";
    }
    w.value(key, v + (steps.empty() ? "]" : " ]"));
  };
  ladder("critical", s.escalation.critical);
  ladder("warning", s.escalation.warning);
  ladder("info", s.escalation.info);
  ladder("time_critical", s.escalation.time_critical);

  if (s.clock) {
    w.header("clock");
    w.comment("a demo clock: the tracking runs on it; tokens keep real time");
    if (s.clock->start) {
      w.string("start", format_rfc3339(*s.clock->start));
    } else if (s.clock->start_time) {
      w.string("start", format_time_of_day(*s.clock->start_time));
    } else {
      w.comment("start: not set, the real time at start-up");
    }
    w.value("rate", format_double(s.clock->rate));
  }

  // What the engine will use, so that an operator need not resolve the layers by hand.
  std::string summary = "\n";
  const auto line = [&](std::string_view branch, std::string_view type, bool critical) {
    std::string label = branch.empty() ? "global" : "branch " + std::string(branch);
    label += type.empty() ? ", any type" : ", type " + std::string(type);
    if (critical) label += ", time-critical";
    summary += "#   " + label + ": " + effective(s.thresholds_for(branch, type, critical)) + "\n";
  };
  const auto lines_for = [&](std::string_view branch, const ThresholdLayer* own) {
    std::vector<std::string> types;
    for (const auto& [type, o] : s.thresholds.types) types.push_back(type);
    if (own != nullptr) {
      for (const auto& [type, o] : own->types) {
        if (!s.thresholds.types.contains(type)) types.push_back(type);
      }
    }
    for (const bool critical : {false, true}) {
      line(branch, "", critical);
      for (const auto& type : types) line(branch, type, critical);
    }
  };
  summary += "# Effective thresholds:\n";
  lines_for("", nullptr);
  for (const Branch& b : s.branches) lines_for(b.id, &b.thresholds);

  return w.take() + summary;
}

}  // namespace visitd::config

namespace visitd::config {

std::string describe_tracking(const Settings& settings) {
  Settings tracking;
  tracking.thresholds = settings.thresholds;
  tracking.tracking = settings.tracking;
  tracking.branches = settings.branches;
  // The engine freezes a ladder on each alert and fires its steps: a replay must use the
  // ladders that were in force. The names they page need their receivers and schedules
  // (describe() redacts routing keys, so no credential reaches the journal).
  tracking.escalation = settings.escalation;
  tracking.receivers = settings.receivers;
  tracking.oncall = settings.oncall;
  return describe(tracking);
}

}  // namespace visitd::config
