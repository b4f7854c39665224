#pragma once
// `visitd token`: mints a bearer token from the config's secret.

#include <string_view>
#include <vector>

namespace visitd::daemon {

/// Runs `visitd token` with the arguments after `token`: prints the token on stdout, or an
/// error on stderr. Returns the exit status: 0 printed, 1 config error (printed as
/// FILE:LINE: KEY: why), 2 usage error.
int token_command(const std::vector<std::string_view>& args);

}  // namespace visitd::daemon
