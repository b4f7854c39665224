#pragma once
// visit-load's command line.

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "visitd/core/time.hpp"

namespace visitd::load {

struct Options {
  std::string url = "ws://127.0.0.1:8080";
  std::string host = "127.0.0.1";  ///< from url
  std::string port = "8080";       ///< from url
  std::string secret;              ///< --secret, or read from --config
  std::string config;              ///< --config FILE
  unsigned carers = 100;
  unsigned first_carer = 1;  ///< carer ids are C0001 on from here (several loaders at once)
  double rate = 0;           ///< events/s over all connections; 0: flat out
  unsigned inflight = 1;
  Duration duration = std::chrono::seconds(10);
  Duration warmup = std::chrono::seconds(2);
  std::string branch = "B1";
  bool import = false;
  std::string date;      ///< --date; empty: today in the branch's zone
  std::string timezone;  ///< --timezone; empty: the branch's in --config, else Europe/London
  unsigned visits = 3;   ///< visits per carer in an imported rota
  std::string tag;       ///< prefix of event and visit ids; empty: derived from the clock
  bool idle = false;
  unsigned threads = 1;
  unsigned connect_concurrency = 256;
  bool self_test = false;
  bool help = false;
};

extern const char* const kUsage;

/// Parses argv[1..]; `--opt value` and `--opt=value` both work. Throws std::invalid_argument
/// naming the option for a usage error.
Options parse_options(const std::vector<std::string_view>& args);

}  // namespace visitd::load
