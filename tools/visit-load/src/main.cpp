// visit-load: drives visitd's carer WebSocket with many carers and reports throughput and
// ack latency. This file wires the parts; see --help for what a run does.

#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "carer_connection.hpp"
#include "load_run.hpp"
#include "options.hpp"
#include "rota_import.hpp"
#include "self_test.hpp"
#include "visitd/config/load.hpp"
#include "visitd/core/clock.hpp"
#include "visitd/core/error.hpp"
#include "visitd/core/zone.hpp"
#include "visitd/websocket/auth.hpp"

namespace {

using namespace visitd;
using namespace std::chrono_literals;

// A short tag unique to this run (base-36 seconds since the epoch): fresh event and visit ids.
std::string clock_tag(TimePoint now) {
  auto s = std::uint64_t(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  std::string tag;
  do {
    tag.insert(tag.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[s % 36]);
    s /= 36;
  } while (s != 0);
  return tag;
}

// Thousands of sockets need more descriptors than the usual soft limit of 1024.
void raise_descriptor_limit(unsigned wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted + 64) return;
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < wanted + 64) {
    std::fprintf(stderr,
                 "visit-load: warning: %llu descriptors allowed, %u connections wanted "
                 "(raise `ulimit -n`)\n",
                 static_cast<unsigned long long>(limit.rlim_cur), wanted);
  }
}

int run(const load::Options& options) {
  std::string secret = options.secret;
  std::string zone_name = options.timezone;
  if (!options.config.empty()) {
    const config::Settings settings = config::load_file(options.config);
    secret = settings.auth.secret;
    if (const config::Branch* b = settings.find_branch(options.branch); b && zone_name.empty()) {
      zone_name = b->timezone;
    }
  }
  if (zone_name.empty()) zone_name = "Europe/London";

  const TimePoint now = SystemClock().now();
  const std::string tag = options.tag.empty() ? clock_tag(now) : options.tag;
  auto carers = load::make_carers(options.carers, options.import ? options.visits : 0, tag,
                                  options.first_carer);

  if (options.import) {
    const auto zone = TimeZone::locate(zone_name);
    if (!zone) throw std::invalid_argument("--timezone: " + zone.error().message);
    LocalDays day = (*zone).local_day(now);
    if (!options.date.empty()) {
      const auto given = parse_local_date(options.date);
      if (!given) throw std::invalid_argument("--date must be YYYY-MM-DD, got " + options.date);
      day = *given;
    }
    websocket::Principal admin;
    admin.sub = "visit-load";
    admin.role = websocket::Role::admin;
    admin.all_branches = true;
    admin.expires = now + 1h;
    const std::string csv = load::make_rota_csv(carers, *zone, day, now);
    const std::string answer = load::put_rota(options.host, options.port, options.branch, day, csv,
                                              websocket::mint(admin, secret, now));
    std::fprintf(stderr, "imported %zu visits for %s on %s: %s\n",
                 std::size_t(options.carers) * options.visits, options.branch.c_str(),
                 format_local_date(day).c_str(), answer.c_str());
  }

  boost::asio::io_context resolver_io;
  boost::asio::ip::tcp::resolver resolver(resolver_io);
  const auto endpoint = resolver.resolve(options.host, options.port)->endpoint();

  std::vector<load::ConnectionSetup> setups;
  setups.reserve(carers.size());
  for (auto& carer : carers) {
    websocket::Principal who;
    who.sub = carer.id;
    who.role = websocket::Role::carer;
    who.branches = {options.branch};
    who.expires = now + 12h;
    load::ConnectionSetup s;
    s.endpoint = endpoint;
    s.host = options.host + ":" + options.port;
    s.token = websocket::mint(who, secret, now);
    s.id_prefix = tag + "-" + carer.id + "-";
    s.carer = std::move(carer);
    s.visits_from_rota = !options.import;
    s.paced = options.rate > 0;
    s.inflight = options.inflight;
    setups.push_back(std::move(s));
  }

  raise_descriptor_limit(options.carers);
  load::LoadRun run(options, std::move(setups));
  return run.run();
}

}  // namespace

int main(int argc, char** argv) {
  load::Options options;
  try {
    options = load::parse_options(std::vector<std::string_view>(argv + 1, argv + argc));
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "visit-load: %s (see --help)\n", e.what());
    return 2;
  }
  if (options.help) {
    std::fputs(load::kUsage, stdout);
    return 0;
  }
  if (options.self_test) return load::histogram_self_test() == 0 ? 0 : 1;
  try {
    return run(options);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "visit-load: %s\n", e.what());
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "visit-load: %s (see --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "visit-load: %s\n", e.what());
  }
  return 1;
}
