#include "options.hpp"

#include <charconv>
#include <stdexcept>
#include <string>

namespace visitd::load {

const char* const kUsage = R"(visit-load - load generator for visitd's carer WebSocket

Usage: visit-load --url ws://HOST:PORT (--secret S | --config FILE) [options]

Opens --carers connections to HOST:PORT/ws/carer, each authenticated at the upgrade with
`Authorization: Bearer <token>` (role carer, sub C0001, C0002..., expiring in 12h, minted
with the secret), and sends each carer's realistic mix: location pings, and a check_in and
a check_out for each of its visits, with unique event ids and device time `at` = now. It
reads every server message, matches acks and errors to events by `id`, and reports the
acked events/s and the send-to-ack latency (p50, p99, p99.9, max).

Options:
  --url URL              the daemon, ws://HOST:PORT (paths /ws/carer and /api/rota)
                         [ws://127.0.0.1:8080]
  --secret S             the HS256 secret that signs the tokens ([auth] secret)
  --config FILE          read the secret (and the branch's time zone) from visitd's config
  --carers N             connections, one carer each [100]
  --first-carer K        the first carer's number: ids C<K>, C<K+1>... [1]; loaders run at
                         once against one agency need carers of their own
  --rate R               events/s over all connections, one schedule dealt round robin,
                         sent on time whatever the acks (latency counts from the scheduled
                         time, so a late sender shows); 0 = flat out [0]
  --inflight K           flat out: unacked events each connection keeps outstanding [1]
  --duration D           measured time, after the warm-up, e.g. 10s, 1m [10s]
  --warmup D             load sent before measuring [2s]
  --branch B             the branch of the carers and of the imported rota [B1]
  --import               first PUT /api/rota?branch=B&date=DAY (admin token): for each
                         carer --visits visits that span now, so that check-ins are in the
                         visit window and pings on shift. Visit ids carry --tag, so that
                         every run has fresh visits.
  --visits N             visits per carer with --import [3]
  --date YYYY-MM-DD      the rota's date with --import [today in the branch's zone]
  --timezone ZONE        the branch's IANA zone [the branch's in --config, else Europe/London]
  --tag T                prefix of event and visit ids [derived from the clock]
  --idle                 open the connections, send nothing, hold them for --duration, then
                         report (memory per idle connection: read the server's RSS while
                         they are held; `READY connected=N` is printed on stdout when all
                         are open)
  --threads N            I/O threads, 1 or 2 [1]
  --connect-concurrency N  connections being opened at once [256]
  --self-test            check the latency histogram against exact percentiles; exit
  --help                 this text

Without --import, each carer uses the visits of the first `rota` message the server pushes
(those not yet checked in); with none, it sends only location pings.

Output: a progress line per second on stderr; at the end one line on stdout:
  RESULT mode=load carers=N sent=N acked=N events_per_s=X p50_us=X p99_us=X p999_us=X
         max_us=X errors=N accepted=N duplicate=N unanswered=N skipped=N
         connect_failures=N disconnects=N client_cpu_pct=X
(on one line), followed on stderr by the count of each error code. events_per_s counts
the acks received in the measured window; the latencies are those of the events sent in
it (errors count in neither); client_cpu_pct is visit-load's own CPU use in the window
(near 100 x threads: the load generator, not the server, was the limit). --idle prints
  RESULT mode=idle carers=N connected=N connect_failures=N disconnects=N
Exit status: 0 if every connection opened and no event got an error or went unanswered,
1 otherwise, 2 for a usage error.
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

Duration to_duration(std::string_view name, std::string_view text, bool zero_ok) {
  if (zero_ok && (text == "0" || text == "0s")) return Duration(0);
  const auto d = parse_duration(text);
  if (!d || d->count() <= 0) {
    throw std::invalid_argument(std::string(name) + " must be a duration like 10s or 2m, got '" +
                                std::string(text) + "'");
  }
  return *d;
}

// ws://HOST:PORT[/]; the paths are fixed by the protocol.
void split_url(Options& o) {
  constexpr std::string_view kScheme = "ws://";
  std::string_view rest = o.url;
  if (!rest.starts_with(kScheme)) {
    throw std::invalid_argument("--url must look like ws://127.0.0.1:8080, got '" + o.url + "'");
  }
  rest.remove_prefix(kScheme.size());
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/") {
      throw std::invalid_argument("--url takes no path (/ws/carer and /api/rota are implied)");
    }
    rest = rest.substr(0, slash);
  }
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) {
    throw std::invalid_argument("--url needs a host and a port, got '" + o.url + "'");
  }
  o.host = std::string(rest.substr(0, colon));
  o.port = std::to_string(to_count("--url port", rest.substr(colon + 1), 1, 65535));
}

}  // namespace

Options parse_options(const std::vector<std::string_view>& args) {
  Options o;
  bool secret_given = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view name = args[i];
    std::string_view inline_value;
    bool has_inline = false;
    if (const auto eq = name.find('='); name.starts_with("--") && eq != std::string_view::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    auto value = [&]() -> std::string_view {
      if (has_inline) return inline_value;
      if (i + 1 >= args.size()) throw std::invalid_argument(std::string(name) + " needs a value");
      return args[++i];
    };
    auto flag = [&] {
      if (has_inline) throw std::invalid_argument(std::string(name) + " takes no value");
      return true;
    };
    if (name == "--help" || name == "-h") {
      o.help = true;
    } else if (name == "--url") {
      o.url = std::string(value());
    } else if (name == "--secret") {
      o.secret = std::string(value());
      secret_given = true;
    } else if (name == "--config") {
      o.config = std::string(value());
    } else if (name == "--carers") {
      o.carers = to_count(name, value(), 1, 1'000'000);
    } else if (name == "--first-carer") {
      o.first_carer = to_count(name, value(), 1, 9'000'000);
    } else if (name == "--rate") {
      const std::string text(value());
      std::size_t used = 0;
      try {
        o.rate = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != text.size() || !(o.rate >= 0)) {
        throw std::invalid_argument("--rate must be a number of events/s >= 0, got '" + text + "'");
      }
    } else if (name == "--inflight") {
      o.inflight = to_count(name, value(), 1, 100'000);
    } else if (name == "--duration") {
      o.duration = to_duration(name, value(), false);
    } else if (name == "--warmup") {
      o.warmup = to_duration(name, value(), true);
    } else if (name == "--branch") {
      o.branch = std::string(value());
      if (o.branch.empty()) throw std::invalid_argument("--branch must not be empty");
    } else if (name == "--import") {
      o.import = flag();
    } else if (name == "--visits") {
      o.visits = to_count(name, value(), 1, 30);
    } else if (name == "--date") {
      o.date = std::string(value());
    } else if (name == "--timezone") {
      o.timezone = std::string(value());
    } else if (name == "--tag") {
      o.tag = std::string(value());
      if (o.tag.empty()) throw std::invalid_argument("--tag must not be empty");
    } else if (name == "--idle") {
      o.idle = flag();
    } else if (name == "--threads") {
      o.threads = to_count(name, value(), 1, 2);
    } else if (name == "--connect-concurrency") {
      o.connect_concurrency = to_count(name, value(), 1, 100'000);
    } else if (name == "--self-test") {
      o.self_test = flag();
    } else {
      throw std::invalid_argument("unknown option '" + std::string(args[i]) + "'");
    }
  }
  if (o.help || o.self_test) return o;
  split_url(o);
  if (secret_given == !o.config.empty()) {
    throw std::invalid_argument("give either --secret or --config (to mint the tokens)");
  }
  if (secret_given && o.secret.empty()) throw std::invalid_argument("--secret must not be empty");
  if (o.idle && (o.import || o.rate > 0)) {
    throw std::invalid_argument("--idle sends nothing: it takes no --import or --rate");
  }
  return o;
}

}  // namespace visitd::load
