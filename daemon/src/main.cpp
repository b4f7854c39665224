// visitd: the command line. Subcommands wire the modules together; this file only parses
// arguments and reports.

#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "run_command.hpp"
#include "token_command.hpp"
#include "visitd/config/load.hpp"
#include "visitd/core/error.hpp"
#include "visitd/store/journal.hpp"
#include "visitd/store/redis_log.hpp"

namespace {

constexpr const char* kUsage = R"(visitd - live tracking of home care visits

Usage:
  visitd run --config FILE [--salvage] [--log-format text|json]
                             Run the daemon: carer and board WebSockets, the HTTP API,
                             the journal. Stops gracefully on SIGTERM.
  visitd check-config FILE   Read FILE, print the effective settings (defaults included)
                             or every error with file:line and key; exit 1 on error.
  visitd journal inspect DIR Print the journal in data directory DIR: segments, record
                             counts, first/last sequence, snapshots and any damage.
  visitd status --config FILE
                             With [store] kind = "redis": which daemon owns the keyspace,
                             its epoch and lease expiry, the stream's end and the snapshot.
  visitd token --config FILE --role R --sub ID [--branches a,b] [--ttl 12h] [--name N]
                             Print a signed access token (HS256 JWT) for a user or carer.
  visitd --version           Print the version.
  visitd --help              This text. `visitd COMMAND --help` explains a command.
)";

constexpr const char* kCheckConfigUsage = R"(Usage: visitd check-config FILE

Reads the TOML config FILE and prints the effective settings, every key with the value
visitd will use (defaults included; the auth secret is redacted). A syntax error, an
unknown key, a wrong type or an invalid value is printed as FILE:LINE: KEY: why, and the
exit status is 1.
)";

constexpr const char* kJournalUsage = R"(Usage: visitd journal inspect DIR

Reads the journal in the data directory DIR ([store] dir in the config) without changing
it, and prints each segment (records, first and last sequence number, bytes), the
snapshots, and any damage found: a torn tail (which `visitd run` would truncate) or
corruption in the middle (which stops `visitd run` unless started with --salvage).
)";

int journal(const std::vector<std::string_view>& args) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    std::fputs(kJournalUsage, stdout);
    return 0;
  }
  if (args.size() != 2 || args[0] != "inspect") {
    std::fputs(kJournalUsage, stderr);
    return 2;
  }
  try {
    std::fputs(visitd::store::inspect(std::string(args[1])).c_str(), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "visitd: %s\n", e.what());
    return 1;
  }
}

constexpr const char* kStatusUsage = R"(Usage: visitd status --config FILE

For a Redis store ([store] kind = "redis" in FILE): connects to [store] url and prints
which daemon holds the keyspace's lease, at which epoch and for how much longer, each
standby following it and how many records it is behind, where the record stream ends, and
which record the snapshot covers (what a daemon starting would replay). Changes nothing.
Exit status 1 if the server cannot be read.
)";

int status(const std::vector<std::string_view>& args) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    std::fputs(kStatusUsage, stdout);
    return 0;
  }
  std::string file;
  if (args.size() == 2 && args[0] == "--config") {
    file = args[1];
  } else if (args.size() == 1 && args[0].starts_with("--config=")) {
    file = args[0].substr(9);
  } else {
    std::fputs(kStatusUsage, stderr);
    return 2;
  }
  try {
    const auto settings = visitd::config::load_file(file);
    if (settings.store.kind != "redis") {
      std::fprintf(stderr, "visitd: %s uses the journal in %s: see `visitd journal inspect %s`\n",
                   file.c_str(), settings.store.dir.c_str(), settings.store.dir.c_str());
      return 1;
    }
    visitd::store::RedisOptions options;
    options.url = settings.store.url;
    options.keyspace = settings.store.keyspace;
    options.lease_ttl = settings.store.lease_ttl;
    std::fputs(visitd::store::redis_status(options).c_str(), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "visitd: %s\n", e.what());
    return 1;
  }
}

int check_config(const std::vector<std::string_view>& args) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    std::fputs(kCheckConfigUsage, stdout);
    return 0;
  }
  if (args.size() != 1) {
    std::fputs(kCheckConfigUsage, stderr);
    return 2;
  }
  try {
    const auto settings = visitd::config::load_file(std::string(args[0]));
    std::fputs(visitd::config::describe(settings).c_str(), stdout);
    return 0;
  } catch (const visitd::ConfigError& e) {
    std::fprintf(stderr, "visitd: %s\n", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::puts("visitd 0.1.0");
    return 0;
  }
  const std::string_view command = args[0];
  args.erase(args.begin());
  if (command == "run") return visitd::daemon::run_command(args);
  if (command == "check-config") return check_config(args);
  if (command == "journal") return journal(args);
  if (command == "status") return status(args);
  if (command == "token") return visitd::daemon::token_command(args);
  std::fprintf(stderr, "visitd: unknown command '%.*s'; see visitd --help\n", int(command.size()),
               command.data());
  return 2;
}
