#include "options.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace visitd::sim {

const char* const kUsage = R"(visit-sim - plays a home care agency's day against a running visitd

Usage: visit-sim --config FILE [options]

Generates an agency from a seed (for each branch in the config: clients at real-looking
addresses around a market town, carers on staggered shifts, a day's rota with travel time
between visits, double-ups and time-critical medication rounds), or reads --rota FILE;
imports it with PUT /api/rota (an admin token minted from the config's secret, or --token);
then plays every carer's phone over /ws/carer (first-message auth): on time, early, late
(often saying so with running_late), no-shows, overruns, short visits, check-ins from the
wrong place, offline phones that send their queue later with device times, and connections
lost before the ack (the events are resent: duplicates). Each event waits for its ack.

Time is the daemon's: the board's snapshot gives its time and clock_rate, so with a demo
clock ([clock] rate = 60) a day plays in minutes, and without one it plays in real time.
The same seed gives the same rota and the same behaviours.

Options:
  --config FILE        visitd's config: [auth] secret, [[branches]], [server] listen (required)
  --url URL            the daemon, ws://HOST:PORT [from [server] listen]
  --token T            admin token for the import and the board [minted from the secret]
  --branches A,B       branches to simulate [every branch in the config]
  --rota FILE          play this CSV rota (protocol.md columns) for the one branch given
                       with --branches, instead of generating one
  --date YYYY-MM-DD    the day [today on the daemon's (demo) clock in the branch's zone]
  --seed N             the agency and its behaviours [1]
  --carers N           carers per branch [10]
  --clients N          clients per branch [36]
  --double-ups P       share of personal care visits needing two carers [0.12]
  --medication P       share of visits that are time-critical medication rounds [0.2]
  --mix LIST           behaviour weights, e.g. on_time=80,late=15,no_show=5 (those not named
                       weigh 0); names: on_time, early, late, no_show, overrun, short,
                       wrong_place, offline [on_time=70,early=6,late=8,no_show=3,overrun=5,
                       short=4,wrong_place=2,offline=2]
  --duplicates P       chance a send loses its connection before the ack and is resent [0.03]
  --hours H            play H demo hours from now, then stop [the whole day]
  --tag T              prefix of event ids, so that a rerun sends fresh ones [from the clock]
  --progress S         seconds between progress lines [5]
  --print-rota BRANCH  print the generated CSV rota of BRANCH for --date and exit (no daemon)
  -h, --help           this text

Output: the import's answers, the plan's summary, a progress line every --progress seconds
on stderr (demo time, phones online, events sent/acked, errors by code), and at the end
  RESULT sent=N accepted=N duplicate=N resent=N reconnects=N errors=N abandoned=N
on stdout (abandoned: events that got no answer after repeated reconnects), the errors by
code, and the day's visits by state from GET /api/visits.
With no demo clock the day plays in real time; steps already past when it starts are sent
at once with their device times, as a phone that was offline would (those past the
daemon's visit window are refused: outside_visit_window).
Ctrl-C stops the phones (each closes its socket) and prints the same.
Exit status: 0 when the day was played, 1 when the daemon could not be used, 2 for a usage
error.
)";

namespace {

unsigned to_count(std::string_view name, std::string_view text, unsigned min, unsigned max) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    throw std::invalid_argument(std::string(name) + " must be a whole number from " +
                                std::to_string(min) + " to " + std::to_string(max) + ", got '" +
                                std::string(text) + "'");
  }
  return value;
}

double to_number(std::string_view name, std::string_view text, double min, double max) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value) ||
      value < min || value > max) {
    char range[64];
    std::snprintf(range, sizeof range, " must be a number from %g to %g", min, max);
    throw std::invalid_argument(std::string(name) + range + ", got '" + std::string(text) + "'");
  }
  return value;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    if (auto part = text.substr(0, comma); !part.empty()) out.emplace_back(part);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
  }
  return out;
}

}  // namespace

std::pair<std::string, std::string> split_url(std::string_view url) {
  for (const std::string_view scheme : {"ws://", "http://"}) {
    if (url.starts_with(scheme)) url.remove_prefix(scheme.size());
  }
  if (const auto slash = url.find('/'); slash != std::string_view::npos) url = url.substr(0, slash);
  const auto colon = url.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == url.size()) {
    throw std::invalid_argument("--url must be ws://HOST:PORT, got '" + std::string(url) + "'");
  }
  std::string host(url.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  to_count("the port in --url", url.substr(colon + 1), 1, 65535);
  return {host, std::string(url.substr(colon + 1))};
}

Options parse_options(const std::vector<std::string_view>& args) {
  Options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    std::string_view value;
    bool has_value = false;
    if (const auto eq = a.find('='); a.starts_with("--") && eq != std::string_view::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    const auto take = [&]() -> std::string_view {
      if (has_value) return value;
      if (i + 1 >= args.size()) throw std::invalid_argument(std::string(a) + " needs a value");
      return args[++i];
    };
    if (a == "-h" || a == "--help") {
      o.help = true;
    } else if (a == "--config") {
      o.config = take();
    } else if (a == "--url") {
      o.url = take();
      split_url(o.url);
    } else if (a == "--token") {
      o.token = take();
    } else if (a == "--branches") {
      o.branches = split_list(take());
      if (o.branches.empty()) throw std::invalid_argument("--branches needs at least one id");
    } else if (a == "--rota") {
      o.rota = take();
    } else if (a == "--date") {
      o.date = take();
      if (!parse_local_date(o.date)) {
        throw std::invalid_argument("--date must be YYYY-MM-DD, got '" + o.date + "'");
      }
    } else if (a == "--seed") {
      const auto t = take();
      std::uint64_t seed = 0;
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), seed);
      if (ec != std::errc() || end != t.data() + t.size()) {
        throw std::invalid_argument("--seed must be a whole number, got '" + std::string(t) + "'");
      }
      o.agency.seed = seed;
    } else if (a == "--carers") {
      o.agency.carers = to_count(a, take(), 1, 500);
    } else if (a == "--clients") {
      o.agency.clients = to_count(a, take(), 1, 5000);
    } else if (a == "--double-ups") {
      o.agency.double_up_share = to_number(a, take(), 0, 1);
    } else if (a == "--medication") {
      o.agency.medication_share = to_number(a, take(), 0, 1);
    } else if (a == "--mix") {
      const double duplicates = o.mix.duplicates;
      o.mix = Mix::parse(take());
      o.mix.duplicates = duplicates;
    } else if (a == "--duplicates") {
      o.mix.duplicates = to_number(a, take(), 0, 1);
    } else if (a == "--hours") {
      o.hours = to_number(a, take(), 0.01, 48);
    } else if (a == "--tag") {
      o.tag = take();
      if (o.tag.empty() || o.tag.size() > 32) {
        throw std::invalid_argument("--tag must be 1 to 32 characters");
      }
    } else if (a == "--progress") {
      o.progress_s = to_number(a, take(), 0.1, 3600);
    } else if (a == "--print-rota") {
      o.print_rota = take();
    } else {
      throw std::invalid_argument("unknown option " + std::string(a));
    }
  }
  if (o.help) return o;
  if (o.config.empty()) throw std::invalid_argument("--config FILE is required");
  if (!o.rota.empty() && o.branches.size() != 1) {
    throw std::invalid_argument("--rota FILE needs --branches with the one branch it is for");
  }
  return o;
}

}  // namespace visitd::sim
