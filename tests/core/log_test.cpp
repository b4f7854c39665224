// Log lines: one per event, readable as text, parseable as JSON, never split by a value.

#include "visitd/core/log.hpp"

#include <catch2/catch.hpp>

using namespace visitd;

TEST_CASE("A text log line has time, level, event and key=value fields") {
  const auto line = log::format_line(log::Format::text, log::Level::info, "2026-11-23T09:00:00Z",
                                     "listening", {{"addr", "127.0.0.1:8080"}, {"threads", "2"}});
  CHECK(line == "2026-11-23T09:00:00Z info  listening addr=127.0.0.1:8080 threads=2\n");
}

TEST_CASE("A text value with spaces, quotes or newlines is quoted, so the line stays one line") {
  const auto line = log::format_line(log::Format::text, log::Level::error, "T", "journal_failed",
                                     {{"error", "Input/output error"}, {"note", "a\nb \"c\""}});
  CHECK(line == "T error journal_failed error=\"Input/output error\" note=\"a\\nb \\\"c\\\"\"\n");
}

TEST_CASE("A JSON log line is one object with every field as a string") {
  const auto line = log::format_line(log::Format::json, log::Level::warn, "T", "origin_refused",
                                     {{"origin", "http://evil\"x"}});
  CHECK(line ==
        "{\"ts\":\"T\",\"level\":\"warn\",\"event\":\"origin_refused\","
        "\"origin\":\"http://evil\\\"x\"}\n");
}

TEST_CASE("Only text and json are log formats") {
  log::Format f = log::Format::text;
  CHECK(log::parse_format("json", f));
  CHECK(f == log::Format::json);
  CHECK_FALSE(log::parse_format("JSON", f));
  CHECK_FALSE(log::parse_format("", f));
}
