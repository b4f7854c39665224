#pragma once
// The real `visitd run` as a child process, and the small synchronous clients the daemon
// tests talk to it with.
//
// Daemon: a fresh temp dir holding a generated config (listen 127.0.0.1:0, the journal in
// the dir, branches B1 and B2 in Europe/London) and the daemon's log (stdout and stderr).
// start() waits for the `listening addr=` line to learn the port; the destructor stops the
// process (SIGTERM, then SIGKILL) and removes the dir (kept, and named on stderr, when the
// environment has VISITD_KEEP_TEST_DIRS). Not thread-safe.
//
// HttpResponse http(...): one request on a fresh connection, at most 10 s.
// WsClient: one WebSocket connection; a read is always pending while it is open, so that
// receive() can time out without breaking the stream. Not thread-safe (one per thread).

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "visitd/core/time.hpp"
#include "visitd/websocket/auth.hpp"

namespace visitd::test {

using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

/// The HS256 secret of every generated config.
inline constexpr std::string_view kSecret = "integration-test-secret-0123456789";
/// The one browser origin the generated configs allow.
inline constexpr std::string_view kAllowedOrigin = "http://board.test";

/// Config values a test changes: `key = value` lines (values as TOML writes them, e.g.
/// {"max_message", "\"4KiB\""}) added to [server], [store] (after `dir`, which it must not
/// repeat; `kind` is "journal" unless given), [thresholds] and [tracking]; `clock`, when not
/// empty, makes a [clock].
struct DaemonConfig {
  Headers server;
  Headers thresholds;
  Headers tracking;
  Headers store;
  /// Raw TOML appended at the end: [[receivers]], [[oncall]], [escalation].
  std::string tables;
  Headers clock = {};
};

struct HttpResponse {
  unsigned status = 0;
  boost::beast::http::fields headers;
  std::string body;

  /// The body parsed as JSON; throws when it is not JSON.
  boost::json::value json() const;
  /// `error.code` of a JSON error body; "" when there is none.
  std::string error_code() const;
};

/// One HTTP/1.1 request to 127.0.0.1:port on its own connection.
HttpResponse http(unsigned short port, std::string_view method, std::string_view target,
                  const Headers& headers = {}, std::string body = {});

class Daemon {
 public:
  /// Starts it (see start()); with `wait` false only spawns it (see spawn()).
  explicit Daemon(DaemonConfig config = {}, bool wait = true);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Starts `visitd run` on the dir (again after stop() or kill9(): a restart) and waits
  /// up to 10 s for it to listen. Throws std::runtime_error with the log if it does not.
  void start();
  /// start() in two steps: spawn() the process, then wait_listening() for its port (a
  /// standby daemon listens only once it holds its store's lease).
  void spawn();
  void wait_listening(std::chrono::milliseconds timeout);
  /// SIGTERM, then SIGKILL if it has not exited within `grace`. The exit status, or 128 +
  /// the signal that ended it.
  int stop(std::chrono::milliseconds grace = 10s);
  /// Waits for a daemon that stops by itself; SIGKILL if it is still running after
  /// `timeout`. The exit status as stop() gives it.
  int wait_exit(std::chrono::milliseconds timeout);
  /// SIGKILL, no questions asked; waits for the process to be gone.
  void kill9();
  /// Rewrites the config file with `config` and sends SIGHUP (a running daemon reloads it);
  /// later starts use it too.
  void reload(DaemonConfig config);
  bool running() const { return pid_ > 0; }

  unsigned short port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }
  /// Everything the daemon wrote to stdout and stderr, across restarts.
  std::string log() const;

  /// An HTTP request to this daemon.
  HttpResponse http(std::string_view method, std::string_view target, const Headers& headers = {},
                    std::string body = {}) const;
  /// A request with `Authorization: Bearer token`.
  HttpResponse api(std::string_view method, std::string_view target, std::string_view token,
                   std::string body = {}, std::string_view content_type = "application/json") const;
  /// `PUT /api/rota?branch=..&date=<today>` with an admin token; REQUIREs 200.
  void import_rota(std::string_view branch, const std::string& csv) const;

 private:
  void write_config() const;

  DaemonConfig config_;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  unsigned short port_ = 0;
  std::size_t log_from_ = 0;  ///< where the current run's log starts
};

/// How a `visitd run` that was expected to end by itself ended.
struct RunOutcome {
  /// The exit status, 128 + the signal that ended it, or -1 when it was still running at
  /// the timeout (it is then killed).
  int status = -1;
  /// Everything it wrote to stdout and stderr.
  std::string log;
};
/// Runs `visitd run --config config` in the config's directory, its output in
/// `config` + ".log", and waits up to `timeout` for it to exit; for configs it must refuse.
RunOutcome run_visitd(const std::filesystem::path& config, std::chrono::milliseconds timeout = 10s);

/// A token signed with kSecret (or `secret`) for `sub` in `role`, over `branches` ("*":
/// all), expiring `ttl` from now (negative: already expired).
std::string token(websocket::Role role, std::string_view sub,
                  std::vector<std::string> branches = {}, std::chrono::seconds ttl = 1h,
                  std::string_view secret = kSecret);

/// Now, to the millisecond.
TimePoint now();
/// RFC 3339 in UTC.
std::string rfc3339(TimePoint t);
/// Today's date in Europe/London, `2026-11-23`: the date rotas are imported for.
std::string today();
/// `now + offset`, moved into today (Europe/London) if it falls on another day, so that a
/// visit starting then belongs to today's rota whatever the time of day.
TimePoint today_at(std::chrono::minutes offset);
/// Whether `now + offset` is still today in Europe/London.
bool is_today(std::chrono::minutes offset);

/// One row of a CSV rota.
struct VisitRow {
  std::string id;
  std::string carers;  ///< `;`-separated
  TimePoint start;
  TimePoint end;
  std::string client;
  double lat = 51.5014;
  double lon = -0.1419;
  std::string notes;
};
/// A visit of client CL-<id> (at 51.5014,-0.1419) from `start` for `length`.
VisitRow visit(std::string id, std::string carers, TimePoint start,
               std::chrono::minutes length = 60min);
/// The CSV of a rota with these rows (header row first).
std::string rota_csv(const std::vector<VisitRow>& rows);

/// Carer events as a phone sends them (`at` now), by default at the door of a VisitRow's
/// default client.
std::string check_in(std::string_view id, std::string_view visit, double lat = 51.5014,
                     double lon = -0.1419);
std::string check_out(std::string_view id, std::string_view visit, std::string_view note = "");
std::string location(std::string_view id);
std::string auth(std::string_view token);

/// In a /metrics text: the value of the sample of `name` whose labels include every one of
/// `labels` (e.g. `reason="origin"`); -1 if there is none.
double sample(const std::string& metrics, std::string_view name,
              std::initializer_list<std::string_view> labels = {});

/// A WebSocket client connection to /ws/carer or /ws/board.
class WsClient {
 public:
  /// Connects to 127.0.0.1:port and asks to upgrade `target` with `headers` (e.g.
  /// Authorization, Origin). A refused upgrade is not an error: see status().
  /// `receive_buffer`, when not 0, sets SO_RCVBUF before connecting (a slow reader's window).
  WsClient(unsigned short port, std::string_view target, const Headers& headers = {},
           int receive_buffer = 0);
  /// Opens with `Authorization: Bearer token`.
  static WsClient with_token(unsigned short port, std::string_view target, std::string_view token);

  /// 101 when upgraded, else the HTTP status the server answered the upgrade with.
  unsigned status() const { return status_; }
  /// The body of a refused upgrade.
  const std::string& refusal_body() const { return refusal_body_; }

  void send_text(std::string_view text);
  void send_binary(std::string_view bytes);
  /// The next message, or nullopt if none came within `timeout` or the connection closed.
  std::optional<std::string> receive(std::chrono::milliseconds timeout = 5s);
  /// The next message parsed as JSON; throws std::runtime_error when none comes in time.
  boost::json::value next(std::chrono::milliseconds timeout = 5s);
  /// The next message whose "type" is `type`, skipping others; throws when none comes.
  boost::json::value next_of(std::string_view type, std::chrono::milliseconds timeout = 5s);
  /// Messages arriving within `window`; stops early once closed.
  std::vector<boost::json::value> drain(std::chrono::milliseconds window);

  /// Waits up to `timeout` for the connection to end (discarding messages). True if it
  /// did; then close_code() says how.
  bool wait_closed(std::chrono::milliseconds timeout = 5s);
  bool closed() const { return closed_; }
  /// The WebSocket close code the server sent; 0 when the connection ended without a close
  /// frame (or has not ended).
  unsigned close_code() const { return close_code_; }
  /// Why the connection ended, for messages.
  std::string end_reason() const;

 private:
  void do_read();
  void send(std::string_view data, bool text);
  /// Runs handlers until `done()` or `timeout`; false on timeout.
  template <class Done>
  bool run_until(Done done, std::chrono::milliseconds timeout);

  boost::asio::io_context io_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::flat_buffer buffer_;
  std::deque<std::string> inbox_;
  unsigned status_ = 0;
  std::string refusal_body_;
  bool closed_ = false;
  unsigned close_code_ = 0;
  boost::beast::error_code end_;
};

/// The JSON object's string member, "" when absent or not a string; for terse assertions.
std::string str(const boost::json::value& v, std::string_view key);

}  // namespace visitd::test
