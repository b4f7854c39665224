#pragma once
// One line per event of interest, on stderr: as text for people
//   2026-11-23T09:00:00.123Z info  listening addr=127.0.0.1:8080 threads=2
// or as JSON for log shippers (`--log-format json`)
//   {"ts":"2026-11-23T09:00:00.123Z","level":"info","event":"listening","addr":"127.0.0.1:8080","threads":"2"}
//
// Thread-safe: a line is written with one write(2), so lines from several threads never mix.

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace visitd::log {

enum class Level : unsigned char { debug, info, warn, error };
enum class Format : unsigned char { text, json };

/// Process-wide settings; set once at start-up, before other threads log.
void set_format(Format format);
void set_level(Level min_level);
/// "text" or "json"; false for anything else.
bool parse_format(std::string_view text, Format& out);

using Field = std::pair<std::string_view, std::string_view>;

/// Writes `event` with its fields. Text values containing spaces, quotes or `=` are quoted.
void write(Level level, std::string_view event, std::initializer_list<Field> fields = {});

inline void info(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::info, event, fields);
}
inline void warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::warn, event, fields);
}
inline void error(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::error, event, fields);
}
inline void debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  write(Level::debug, event, fields);
}

/// The line write() would print at wall-clock time `ts` (an RFC 3339 string); for tests.
std::string format_line(Format format, Level level, std::string_view ts, std::string_view event,
                        std::initializer_list<Field> fields);

}  // namespace visitd::log
