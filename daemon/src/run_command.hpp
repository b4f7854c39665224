#pragma once
// `visitd run`: the daemon. Loads the config, opens and recovers the journal, rebuilds the
// engine (newest snapshot + the journal's tail), then serves until SIGTERM or SIGINT.

#include <string_view>
#include <vector>

namespace visitd::daemon {

extern const char* const kRunUsage;

/// Runs `visitd run` with the arguments after `run`. Returns the exit status: 0 after a
/// graceful stop, 1 when it cannot start (config, journal, address), 2 for a usage error.
int run_command(const std::vector<std::string_view>& args);

}  // namespace visitd::daemon
