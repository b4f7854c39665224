#include "run_command.hpp"

#include <signal.h>
#include <unistd.h>

#if defined(VISITD_JEMALLOC)
#include <jemalloc/jemalloc.h>
#endif

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "visitd/config/load.hpp"
#include "visitd/core/clock.hpp"
#include "visitd/core/log.hpp"
#include "visitd/store/engine_journal.hpp"
#include "visitd/store/journal.hpp"
#include "visitd/store/redis_log.hpp"
#include "visitd/websocket/engine_host.hpp"
#include "visitd/websocket/metrics.hpp"
#include "visitd/websocket/server.hpp"

namespace visitd::daemon {
namespace net = boost::asio;

const char* const kRunUsage =
    R"(Usage: visitd run --config FILE [--salvage] [--log-format text|json]

Runs the daemon: reads FILE (see `visitd check-config`), opens the journal in [store] dir
(recovering a torn tail, which it reports) or, with [store] kind = "redis", the Redis stream
at [store] url (refusing a server that does not fsync every write), rebuilds the state from
the newest snapshot and the records after it, fires the deadlines that fell due while it was
down, then listens on [server] listen for the carer and board WebSockets and the HTTP API.

Options:
  --config FILE       The TOML config file (required).
  --salvage           Start even if the journal is damaged in the middle: keep every record
                      before the damage, move the rest to DIR/salvaged/ and say what was
                      dropped. Without it, such damage stops the daemon with a message.
  --log-format F      text (default): one line per event for people; json: one JSON object
                      per line for log shippers.
  -h, --help          This text.

Signals: SIGTERM or SIGINT stop it gracefully: no new connections, every owed ack is
delivered once durable, the journal is flushed, WebSockets close with 1001; exit status 0.
SIGHUP reads FILE again and puts its thresholds, tracking windows and branches in force
(recorded in the journal; a branch cannot be removed or change zone while running); a
file with errors changes nothing and says why. Other sections need a restart.

Logs go to stderr, one line per event of interest; the first says where it listens:
  ... info  listening addr=127.0.0.1:8080 ...
)";

namespace {

/// The malloc this binary runs on, for the start-up line (the build chooses it:
/// VISITD_ALLOCATOR).
std::string allocator_name() {
#if defined(VISITD_JEMALLOC)
  const char* version = nullptr;
  std::size_t size = sizeof(version);
  if (mallctl("version", static_cast<void*>(&version), &size, nullptr, 0) == 0 &&
      version != nullptr) {
    return std::string("jemalloc ") + version;
  }
  return "jemalloc";
#else
  return "system";
#endif
}

struct RunOptions {
  std::string config;
  bool salvage = false;
  log::Format format = log::Format::text;
  bool help = false;
};

RunOptions parse(const std::vector<std::string_view>& args) {
  RunOptions o;
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
    } else if (a == "--salvage") {
      o.salvage = true;
    } else if (a == "--log-format") {
      const auto f = take();
      if (!log::parse_format(f, o.format)) {
        throw std::invalid_argument("--log-format must be text or json, not " + std::string(f));
      }
    } else {
      throw std::invalid_argument("unknown option " + std::string(a));
    }
  }
  if (!o.help && o.config.empty()) throw std::invalid_argument("--config FILE is required");
  return o;
}

std::string text(std::uint64_t n) { return std::to_string(n); }

std::string rate_text(double rate) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", rate);
  return buf;
}

/// The embedded journal in [store] dir, recovered (a torn tail cut, reported).
std::unique_ptr<store::Log> open_journal(const config::Settings& settings,
                                         const RunOptions& options, websocket::Metrics& metrics) {
  store::JournalOptions journal_options;
  journal_options.dir = settings.store.dir;
  journal_options.group_delay = settings.store.group_delay;
  journal_options.salvage = options.salvage;
  // Times each group commit's fdatasync for the metrics; the journal still decides what a
  // failure means (it stops, and nothing more is acknowledged).
  journal_options.sync_hook = [&metrics](int fd) {
    const auto start = std::chrono::steady_clock::now();
    const int result = ::fdatasync(fd) == 0 ? 0 : errno;
    metrics.observe_fsync(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return result;
  };
  store::RecoveryReport report;
  auto journal = store::Journal::open(journal_options, &report);
  for (const auto& note : report.notes) log::warn("journal_recovery", {{"note", note}});
  if (report.truncated_bytes > 0) {
    log::warn("journal_torn_tail", {{"truncated_bytes", text(report.truncated_bytes)},
                                    {"after_seq", text(report.truncated_after_seq)}});
  }
  if (report.salvaged_dropped_bytes > 0) {
    log::warn("journal_salvaged", {{"dropped_bytes", text(report.salvaged_dropped_bytes)}});
  }
  return journal;
}

/// The Redis store at [store] url (its persistence checked; see redis_log.hpp), as a standby:
/// the daemon follows the lease holder's writes until it takes the lease (at once when free).
std::unique_ptr<store::RedisLog> open_redis(const config::Settings& settings) {
  store::RedisOptions redis_options;
  redis_options.url = settings.store.url;
  redis_options.keyspace = settings.store.keyspace;
  redis_options.allow_unsafe_fsync = settings.store.allow_unsafe_fsync;
  redis_options.daemon_id = settings.store.daemon_id;
  if (redis_options.daemon_id.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    redis_options.daemon_id = host;
  }
  redis_options.lease_ttl = settings.store.lease_ttl;
  // Another daemon took the keyspace: stop as on SIGTERM (the store refuses every write
  // meanwhile), exit 1, and let the supervisor start this one again as a standby.
  redis_options.on_failed = [](const std::string&) { ::kill(::getpid(), SIGTERM); };
  log::info("redis_store_opening",
            {{"keyspace", settings.store.keyspace}, {"daemon", redis_options.daemon_id}});
  auto log = store::RedisLog::open_standby(redis_options);
  log::info("redis_store", {{"stream", log->stream_key()}, {"last_seq", text(log->last_seq())}});
  return log;
}

}  // namespace

namespace {

/// SIGHUP: reads the config again; its thresholds, tracking windows and branches go in force
/// now (and into the journal). A config with errors changes nothing.
void reload(const std::string& file, websocket::EngineHost& host) {
  std::shared_ptr<const config::Settings> next;
  try {
    next = std::make_shared<const config::Settings>(config::load_file(file));
  } catch (const ConfigError& e) {
    log::error("reload_refused", {{"error", e.what()}, {"effect", "the settings in force stay"}});
    return;
  }
  host.reload(next, [file](websocket::EngineHost::ReloadOutcome outcome) {
    if (outcome.error) {
      log::error("reload_refused", {{"file", file},
                                    {"error", outcome.error->message},
                                    {"effect", "the settings in force stay"}});
    } else if (outcome.unchanged) {
      log::info("reloaded", {{"file", file}, {"tracking", "unchanged"}});
    } else {
      log::info("reloaded", {{"file", file}, {"tracking", "new thresholds and branches in force"}});
    }
  });
}

}  // namespace

int run_command(const std::vector<std::string_view>& args) {
  RunOptions options;
  try {
    options = parse(args);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "visitd run: %s\n\n%s", e.what(), kRunUsage);
    return 2;
  }
  if (options.help) {
    std::fputs(kRunUsage, stdout);
    return 0;
  }
  log::set_format(options.format);

  config::Settings settings;
  try {
    settings = config::load_file(options.config);
  } catch (const ConfigError& e) {
    log::error("config_refused", {{"error", e.what()}});
    return 1;
  }
  if (settings.auth.secret.empty()) {
    log::error("config_refused", {{"file", options.config},
                                  {"error", "[auth] secret or secret_file is required to run"}});
    return 1;
  }
  // Tokens are checked against real time (the server's clock); the tracking runs on the
  // demo clock when [clock] configures one.
  SystemClock real_clock;
  std::unique_ptr<ScaledClock> demo_clock;
  if (settings.clock) {
    auto start = settings.demo_start(real_clock.now());
    if (!start) {
      log::error(
          "config_refused",
          {{"file", options.config}, {"key", "clock.start"}, {"error", start.error().message}});
      return 1;
    }
    demo_clock = std::make_unique<ScaledClock>(*start, settings.clock->rate);
    log::warn("demo_clock", {{"start", format_rfc3339(*start)},
                             {"rate", rate_text(settings.clock->rate)},
                             {"effect", "visits are tracked on demo time, not the real time"}});
  }
  const Clock& clock = demo_clock ? static_cast<const Clock&>(*demo_clock) : real_clock;
  websocket::Metrics metrics;

  std::unique_ptr<store::Log> journal;
  store::RedisLog* redis = nullptr;  ///< the journal when on Redis: a standby until promoted
  store::Recovered recovered;
  const bool on_redis = settings.store.kind == "redis";
  const std::string where = on_redis ? "redis" : settings.store.dir;
  try {
    if (on_redis) {
      auto log = open_redis(settings);
      redis = log.get();
      journal = std::move(log);
    } else {
      journal = open_journal(settings, options, metrics);
    }
    const auto started = std::chrono::steady_clock::now();
    recovered = store::recover(settings, *journal, clock.now());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    log::info("recovered", {{"store", where},
                            {"snapshot_seq", text(recovered.snapshot_seq)},
                            {"replayed", text(recovered.replayed)},
                            {"last_seq", text(recovered.last_seq)},
                            {"seconds", std::to_string(seconds)}});
    if (recovered.diverged > 0) {
      log::warn("replay_diverged",
                {{"records", text(recovered.diverged)},
                 {"why",
                  "records accepted earlier were refused on replay: did the config "
                  "change (a branch removed, thresholds)?"}});
    }
  } catch (const std::exception& e) {
    log::error("journal_refused", {{"store", where}, {"error", e.what()}});
    return 1;
  }

  // The journal records the tracking settings in force, so that a replay decides every past
  // event under the settings it was decided under. A config edited while the daemon was
  // stopped takes effect now, and that is recorded too.
  // (A Redis standby does this when it takes the store over: EngineHost::promote.)
  const bool changed = config::describe_tracking(recovered.engine->settings()) !=
                       config::describe_tracking(settings);
  if (!redis && (changed || !recovered.settings_recorded)) {
    rota::Effects ignored;  // nobody is connected yet; boards get a snapshot
    if (auto error = recovered.engine->reconfigure(std::make_shared<config::Settings>(settings),
                                                   clock.now(), ignored)) {
      log::error("config_refused", {{"file", options.config}, {"error", error->message}});
      return 1;
    }
    store::record_settings(*journal, *recovered.engine, recovered.engine->now(), {});
    journal->flush();
    if (journal->failed()) {
      log::error("journal_failed", {{"error", journal->failure().message()}});
      return 1;
    }
    if (recovered.settings_recorded) {
      log::info("config_changed", {{"file", options.config},
                                   {"effect", "new thresholds and branches apply from now"}});
    }
  }

  net::io_context io(int(settings.server.threads));
  // Retry jitter only needs to differ between daemons, not to be reproducible.
  auto pager = std::make_shared<websocket::Pager>(io, settings, *journal, metrics, clock,
                                                  std::random_device{}());
  auto host = std::make_shared<websocket::EngineHost>(io, settings, std::move(recovered.engine),
                                                      recovered.snapshot_seq, *journal, metrics,
                                                      clock, pager, recovered.snapshot_bytes);
  websocket::Server server(io, settings, host, metrics, real_clock);
  try {
    server.start();
  } catch (const std::exception& e) {
    log::error("listen_failed", {{"addr", settings.server.listen}, {"error", e.what()}});
    return 1;
  }
  int exit_code = 0;  ///< set when the daemon must stop with an error
  net::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  if (redis) {
    host->start_standby(recovered.settings_recorded, recovered.last_seq);
    redis->follow(
        recovered.last_seq, [host](const store::Record& r) { host->follow(r); },
        [host, &exit_code, &options] {
          host->promote([&exit_code, &options](std::optional<Error> error) {
            if (!error) {
              log::info("owner", {{"effect", "this daemon now decides, records and pages"}});
              return;
            }
            log::error("config_refused", {{"file", options.config}, {"error", error->message}});
            exit_code = 1;
            ::kill(::getpid(), SIGTERM);
          });
        });
  } else {
    host->start();
  }
  const auto endpoint = server.local_endpoint();
  log::info("listening",
            {{"addr", endpoint.address().to_string() + ":" + std::to_string(endpoint.port())},
             {"threads", text(settings.server.threads)},
             {"journal_seq", text(journal->last_seq())},
             {"allocator", allocator_name()}});

  net::steady_timer drain_timer(io);
  const auto stop_started = std::make_shared<std::chrono::steady_clock::time_point>();
  std::function<void(const boost::system::error_code&, int)> on_signal;
  std::function<void()> wait_for_sessions = [&] {
    // Sessions close their WebSockets (1001) and go; give them a few seconds, then stop.
    if (server.open_sessions() == 0 ||
        std::chrono::steady_clock::now() - *stop_started > std::chrono::seconds(5)) {
      io.stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([&](const boost::system::error_code&) { wait_for_sessions(); });
  };
  on_signal = [&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      signals.async_wait(on_signal);
      reload(options.config, *host);
      return;
    }
    log::info("stopping", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
    *stop_started = std::chrono::steady_clock::now();
    server.shutdown([&] { net::post(io, wait_for_sessions); });
  };
  signals.async_wait(on_signal);

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < settings.server.threads; ++i) threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  // Its callbacks post to the io_context, which goes before the store.
  if (redis) redis->stop_following();

  journal->flush();
  const bool failed = journal->failed();
  log::info("stopped",
            {{"durable_seq", text(journal->durable_seq())}, {"journal", failed ? "failed" : "ok"}});
  return failed ? 1 : exit_code;
}

}  // namespace visitd::daemon
