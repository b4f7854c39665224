#pragma once
// visit-sim's command line.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agency.hpp"
#include "plan.hpp"

namespace visitd::sim {

struct Options {
  std::string config;  ///< --config FILE (required): secret, branches, listen address
  std::string url;     ///< --url ws://HOST:PORT; empty: the config's [server] listen
  std::string token;   ///< --token: an admin token instead of one minted from the secret
  std::vector<std::string> branches;  ///< --branches; empty: every branch in the config
  std::string rota;                   ///< --rota FILE: play this CSV instead of generating
  std::string date;                   ///< --date YYYY-MM-DD; empty: demo today
  AgencyOptions agency;               ///< --seed, --carers, --clients, --double-ups, ...
  Mix mix;                            ///< --mix, --duplicates
  std::optional<double> hours;        ///< --hours: demo hours to play, from now
  std::string tag;                    ///< --tag: event id prefix; empty: from the clock
  double progress_s = 5;              ///< --progress: seconds between progress lines
  std::string print_rota;             ///< --print-rota BRANCH: print its CSV and exit
  bool help = false;
};

extern const char* const kUsage;

/// Parses argv[1..]; `--opt value` and `--opt=value` both work. Throws std::invalid_argument
/// naming the option for a usage error.
Options parse_options(const std::vector<std::string_view>& args);

/// `ws://host:port` (or `http://`) split into host and port; throws std::invalid_argument.
std::pair<std::string, std::string> split_url(std::string_view url);

}  // namespace visitd::sim
