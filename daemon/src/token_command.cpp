#include "token_command.hpp"

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "visitd/config/load.hpp"
#include "visitd/core/error.hpp"
#include "visitd/websocket/auth.hpp"

namespace visitd::daemon {

int token_command(const std::vector<std::string_view>& args) {
  namespace ws = visitd::websocket;
  ws::TokenOptions options;
  try {
    options = ws::parse_token_options(args);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "visitd token: %s; see visitd token --help\n", e.what());
    return 2;
  }
  if (options.help) {
    std::fputs(ws::kTokenUsage, stdout);
    return 0;
  }
  try {
    const auto settings = config::load_file(options.config);
    // A command-line tool, so the wall clock is the right one here.
    const auto now = std::chrono::floor<Duration>(std::chrono::system_clock::now());
    const std::string token = ws::mint_from_options(options, settings, now);
    std::printf("%s\n", token.c_str());
    return 0;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "visitd: %s\n", e.what());
    return 1;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "visitd token: %s\n", e.what());
    return 2;
  }
}

}  // namespace visitd::daemon
