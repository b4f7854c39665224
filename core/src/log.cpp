#include "visitd/core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>

#include "visitd/core/json_text.hpp"
#include "visitd/core/time.hpp"

namespace visitd::log {
namespace {

std::atomic<Format> g_format{Format::text};
std::atomic<Level> g_level{Level::info};

std::string_view name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
  }
  return "info";
}

void append_text_value(std::string& out, std::string_view v) {
  const bool plain = !v.empty() && v.find_first_of(" \"=\t\n\r\\") == std::string_view::npos;
  if (plain) {
    out += v;
  } else {
    append_json_string(out, v);  // quoted and escaped: one line, unambiguous
  }
}

}  // namespace

void set_format(Format format) { g_format.store(format); }
void set_level(Level min_level) { g_level.store(min_level); }

bool parse_format(std::string_view text, Format& out) {
  if (text == "text") {
    out = Format::text;
  } else if (text == "json") {
    out = Format::json;
  } else {
    return false;
  }
  return true;
}

std::string format_line(Format format, Level level, std::string_view ts, std::string_view event,
                        std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(128);
  if (format == Format::json) {
    line += "{\"ts\":";
    append_json_string(line, ts);
    line += ",\"level\":";
    append_json_string(line, name(level));
    line += ",\"event\":";
    append_json_string(line, event);
    for (const auto& [k, v] : fields) {
      line += ',';
      append_json_string(line, k);
      line += ':';
      append_json_string(line, v);
    }
    line += "}\n";
  } else {
    line += ts;
    line += ' ';
    line += name(level);
    if (level == Level::info || level == Level::warn) line += ' ';  // align the event column
    line += ' ';
    line += event;
    for (const auto& [k, v] : fields) {
      line += ' ';
      line += k;
      line += '=';
      append_text_value(line, v);
    }
    line += '\n';
  }
  return line;
}

void write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (level < g_level.load(std::memory_order_relaxed)) return;
  const auto now = std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  const std::string line = format_line(g_format.load(std::memory_order_relaxed), level,
                                       format_rfc3339(now), event, fields);
  // One write per line (stderr is unbuffered, but fputs may split): lines never interleave.
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) return;  // nowhere to report a logging failure
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace visitd::log
