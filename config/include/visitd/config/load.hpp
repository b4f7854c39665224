#pragma once
// Reading the TOML config file into Settings.

#include <string>
#include <string_view>

#include "visitd/config/settings.hpp"

namespace visitd::config {

/// Reads and validates a config file. Throws ConfigError naming the file, the line and the
/// key for a syntax error, a wrong type, an invalid value (a bad duration, an unknown time
/// zone, a receiver named in an escalation step that does not exist) or an unknown key:
/// typos must not silently fall back to defaults.
Settings load_file(const std::string& path);

/// The same from text; `source` names it in errors.
Settings load_string(std::string_view toml, const std::string& source = "<string>");

/// The effective settings as TOML, every key with its value (defaults included), as
/// `visitd check-config` prints them.
std::string describe(const Settings& settings);

/// The part of the settings that decides what the tracking engine does (thresholds,
/// tracking windows, branches, escalation ladders with the receivers and on-call schedules
/// they name, routing keys redacted) as describe() text: what the journal records so that a
/// replay decides under the settings that were in force. load_string() reads it back.
std::string describe_tracking(const Settings& settings);

}  // namespace visitd::config
