#pragma once
// The engine in the daemon: the one place the tracking engine and its journal are used,
// all on one Asio strand, so the engine needs no locks (design.md, "Data flow"):
//
//   session --submit--> strand: apply --> journal (group commit) --durable--> deliver (ack)
//                               effects --> board/carer fan-out, once durable
//   deadline timer (the engine's next deadline, not a sweep) --> strand: advance
//
// What leaves the strand for clients waits until the journal has made durable every record
// it depends on: an accepted command's answer waits for its own record; a duplicate's,
// a board delta, a carer's rota push and a new board's snapshot wait for every record
// appended before them. So nothing a client sees can be lost by a crash, and deltas reach
// boards in the order the engine made them. The one exception is an outage of a Redis
// store: then no command is accepted (phones keep their events and send them again), and
// boards get their deltas without waiting, so that alerts falling due still show; the
// acknowledgements and pages keep waiting for their records.
//
// Alerts that page: each alert transition goes through the notifier (alerts/notifier.hpp);
// the notices it makes are written to the journal's outbox and, once durable, handed to the
// pager, which delivers them off this strand. At start-up the outbox is read back: what no
// receiver took is sent again, and a page the engine decided but whose outbox record was
// lost in a crash is made again (never one that was written).
//
// Snapshots: after `[store] snapshot_every` records, or every `snapshot_interval` if any
// record came, the engine is copied on the strand (Engine::clone) and the copy serialized
// and written (then the journal compacted, dropping raw fixes older than
// `location_retention`) on a background thread.
//
// Thread-safety: every public member may be called from any thread; they post to the strand.
// Callbacks (Decided) run on the strand; Deliver may run on the strand or on the journal's
// flusher thread, so it must only post to its session.

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "visitd/alerts/notifier.hpp"
#include "visitd/config/settings.hpp"
#include "visitd/core/clock.hpp"
#include "visitd/rota/engine.hpp"
#include "visitd/store/log.hpp"
#include "visitd/websocket/auth.hpp"
#include "visitd/websocket/http_api.hpp"
#include "visitd/websocket/metrics.hpp"
#include "visitd/websocket/pager.hpp"
#include "visitd/websocket/presence.hpp"

namespace visitd::websocket {

/// A serialized server message, shared by every session it goes to.
using Frame = std::shared_ptr<const std::string>;

/// A session that receives pushed frames (a board's deltas, a carer's rota and messages).
/// Implementations post to their own strand: push() may be called from any thread.
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  /// Queues a frame. A subscriber that cannot keep up closes itself; pushes then do nothing.
  virtual void push(Frame frame) = 0;
};

/// An owned copy of an HTTP request, for the trip to the engine strand.
struct OwnedHttpRequest {
  std::string method, target, content_type, accept, body;
  HttpRequest view() const { return {method, target, content_type, accept, body}; }
};

class EngineHost : public std::enable_shared_from_this<EngineHost> {
 public:
  /// Called once an outcome may be sent: `error` empty when every record it depends on is
  /// durable, set when the journal failed and it never will be (send an `internal` error).
  using Deliver = std::function<void(std::error_code error)>;
  /// Runs on the strand right after the engine decided: builds the answer (from the engine's
  /// state at that moment) and returns how to deliver it.
  using Decided = std::function<Deliver(const rota::Reply& reply, const rota::Engine& engine)>;
  /// Runs on the strand before apply: an Error refuses the command without applying it.
  using Precheck = std::function<std::optional<Error>(const rota::Engine& engine)>;

  /// `engine` comes from store::recover(), which also tells `snapshot_seq`, the seq the
  /// newest snapshot covers. `journal`, `settings`, `metrics` and `clock` must outlive the host.
  /// `pager` delivers the notices alert transitions make; without one (tests of other
  /// things) notices are still decided and journaled, and owed until a daemon with one runs.
  /// `snapshot_bytes`, the size of that snapshot, decides how the first snapshot is taken
  /// (`[store] snapshot_fork_above`).
  EngineHost(boost::asio::io_context& io, const config::Settings& settings,
             std::unique_ptr<rota::Engine> engine, std::uint64_t snapshot_seq, store::Log& journal,
             Metrics& metrics, const Clock& clock, std::shared_ptr<Pager> pager = nullptr,
             std::size_t snapshot_bytes = 0);
  ~EngineHost();
  EngineHost(const EngineHost&) = delete;
  EngineHost& operator=(const EngineHost&) = delete;

  /// Reads the outbox back (what is owed goes to the pager), fires the deadlines that fell
  /// due while stopped, and arms the deadline and snapshot timers. Call once.
  void start();

  /// Instead of start(): the store is a standby (Redis) following another daemon's writes.
  /// The engine is a replica, kept up by follow(); boards and phones get its changes; commands
  /// are refused (`internal`, "send it again") and /readyz fails until promote().
  /// `settings_recorded` as store::Recovered says; `followed_from` is the last record the
  /// engine has (store::Recovered::last_seq). A command a standby's client sends goes to the
  /// owner (store::Log::forward), authorised here first; its answer is sent once the replica
  /// has applied what it describes.
  void start_standby(bool settings_recorded, std::uint64_t followed_from);
  /// A record the owner wrote, in order: applied to the replica, its changes pushed to the
  /// boards and phones (nobody is paged from a standby). Any thread.
  void follow(store::Record record);
  /// The store has made this daemon the owner: puts the config's settings in force (and
  /// records them) if they differ from those recorded, then does what start() does. `done`
  /// runs on the strand, with the error when the config's settings were refused (the daemon
  /// must stop then, as it would at start-up). Any thread.
  void promote(std::function<void(std::optional<Error>)> done);
  /// Shutdown, step 1: refuse new commands (`internal`, "shutting down"), stop the timers,
  /// wait on a helper thread until the journal has flushed everything appended, deliver
  /// what waited for it, then call `done` (on the strand).
  void close(std::function<void()> done);

  /// Decides `command` (after `precheck`, if any) and delivers the outcome as described.
  void submit(rota::Command command, Precheck precheck, Decided decided);

  /// Subscribes a board of `who` (office, coordinator or admin): it gets a `snapshot` of its
  /// branches (today's visits in each branch's zone, every open alert), then every `visit`
  /// and `alert` delta in those branches.
  void subscribe_board(std::weak_ptr<Subscriber> board, Principal who);
  /// Subscribes a carer's phone: it gets the carer's `rota` now and whenever it changes, and
  /// office messages. The carer's phone counts as online (presence) from now on.
  void subscribe_carer(std::weak_ptr<Subscriber> phone, std::string carer);
  /// A connection of the carer's phone ended, last heard at `last_heard`: once it was the
  /// last, boards see `phone_offline_since` on the carer's open arrival alerts and visits.
  void phone_gone(std::string carer, TimePoint last_heard);

  /// An HTTP API request (see http_api.hpp); `done` gets the answer once it may be sent.
  void http(std::shared_ptr<const OwnedHttpRequest> request, Principal who,
            std::function<void(HttpAnswer)> done);

  struct ReloadOutcome {
    bool unchanged = false;      ///< the tracking settings were the same: nothing done
    std::optional<Error> error;  ///< refused (nothing changed), e.g. a branch removed
  };
  /// SIGHUP: puts `next`'s thresholds, tracking windows and branches in force now, records
  /// that in the journal, and sends the boards what changed (visits that turn late under
  /// tighter thresholds...). `done` runs on the strand.
  void reload(std::shared_ptr<const config::Settings> next,
              std::function<void(ReloadOutcome)> done);

  /// True while the journal accepts writes and the host is not closing: `/readyz`.
  bool ready() const;
  /// Why not ready, for `/readyz`'s body; empty when ready.
  std::string not_ready_reason() const;
  /// A standing warning for `/readyz` (a Redis store that does not fsync every write).
  std::string warning() const;
  /// Sets the gauges read from the store (availability, unsafe fsync): before a scrape.
  void refresh_metrics();

  /// The rota window pushed to carers: visits overlapping [now - kRotaBehind, now + kRotaAhead).
  static constexpr Duration kRotaBehind = std::chrono::hours(12);
  static constexpr Duration kRotaAhead = std::chrono::hours(36);

 private:
  struct Pending {
    std::uint64_t after_seq;  ///< runs once the journal is durable up to here
    /// Gets an error instead when the journal failed first (then only answers are sent).
    std::function<void(std::error_code)> run;
    /// Only shows state (a board's delta or snapshot): while the store is unavailable it
    /// goes out at once, so that the boards still see alerts fall due during an outage.
    bool view = false;
  };
  struct Board {
    std::weak_ptr<Subscriber> session;
    Principal who;
  };

  void on_submit(rota::Command& command, const Precheck& precheck, const Decided& decided);
  void on_http(const OwnedHttpRequest& request, const Principal& who,
               const std::function<void(HttpAnswer)>& done);
  /// Journals an accepted command; `deliver` runs when it is durable (or failed).
  void journal_accepted(const rota::Command& command, Deliver deliver);
  /// Runs `run` once everything appended so far is durable (at once if it already is); a
  /// `view` also at once while the store is unavailable (see Pending::view).
  void after_durable(std::function<void(std::error_code)> run, bool view = false);
  /// Runs the views waiting in pending_, in order (the store is unavailable).
  void release_views();
  /// A record's outcome, on the flusher thread: a failure stops the host; success lets
  /// what waited for it go (notify_durable).
  void recorded(std::error_code ec);
  /// Called from the flusher thread: schedules drain() on the strand (coalesced).
  void notify_durable();
  void drain();
  /// Sends the effects' deltas and rota pushes, in order, once durable.
  void publish(const rota::Effects& effects);
  void track_alert(rota::AlertIndex alert);
  /// Journals notices to the outbox; hands them to the pager once durable.
  void send_notices(std::vector<alerts::Notice> notices);
  void resume_outbox();
  void reconfigure_paging(const std::shared_ptr<const config::Settings>& next);
  void fan_out_board(rota::BranchIndex branch, const Frame& frame);
  void push_rota(rota::CarerIndex carer);
  Frame rota_frame(std::string_view carer) const;
  std::size_t message_carer(const CarerMessage& message);
  void snapshot_frames(const Principal& who, std::string& out) const;
  /// Sends boards the carer's open arrival alerts and awaited visits again (presence changed).
  void republish_carer(std::string_view carer);

  void arm_deadline();
  void on_deadline(boost::system::error_code ec);
  void arm_snapshot_timer();
  void maybe_snapshot(bool timer);
  /// Runs `job` on the background thread (it may block on the journal), then `then` on the
  /// strand. The io_context has work meanwhile: the daemon's io.run() cannot return, and its
  /// journal go, while a job still uses it. Both may use `this`: the host is kept alive.
  void in_background(std::function<void()> job, std::function<void()> then);
  void journal_failed(std::error_code error);

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  const config::Settings& settings_;
  std::unique_ptr<rota::Engine> engine_;
  store::Log& journal_;
  Metrics& metrics_;
  const Clock& clock_;

  // Strand-only state.
  rota::Effects effects_;  ///< reused per command
  std::vector<std::uint32_t> touched_visits_, touched_alerts_, touched_carers_;  ///< publish()'s
  std::deque<Pending> pending_;
  std::vector<Board> boards_;
  std::unordered_map<std::string, std::vector<std::weak_ptr<Subscriber>>> phones_;
  Presence presence_;
  /// Open alerts, for board snapshots; and each alert's last (kind, state) for the gauges.
  std::vector<std::uint8_t> alert_class_;
  std::vector<double> alert_counts_;
  std::vector<std::uint8_t> alert_open_severity_;  ///< per alert: severity while open, else 0xff
  std::array<double, 3> open_by_severity_{};
  alerts::Notifier notifier_;
  std::shared_ptr<Pager> pager_;
  boost::asio::steady_timer deadline_timer_;
  std::optional<TimePoint> armed_for_;
  boost::asio::steady_timer snapshot_timer_;
  std::uint64_t snapshot_seq_ = 0;  ///< the last snapshot's (or start-up's) journal seq
  bool snapshot_running_ = false;
  std::size_t last_snapshot_bytes_ = 0;  ///< how big the engine's state was at the last snapshot
  TimePoint last_compaction_{};
  std::size_t boards_joining_ = 0;  ///< boards whose snapshot waits in pending_
  bool closing_ = false;
  std::atomic<bool> standby_{false};
  bool settings_recorded_ = false;  ///< standby: the log said which settings are in force
  std::uint64_t applied_seq_ = 0;   ///< standby: the last record the replica has applied
  /// Standby: answers from the owner waiting for the replica to reach their record.
  std::multimap<std::uint64_t, std::function<void()>> awaiting_;
  void forward(const rota::Command& command, CommandType type, Decided decided);
  void forwarded(const std::optional<std::string>& answer, CommandType type,
                 const Decided& decided);
  void answer_awaiting(std::uint64_t seq);
  /// Owner: a command a standby forwarded.
  void on_forwarded(const store::Log::Forwarded& forwarded);
  /// Deadlines fell due: tells a standby (a tick record), then the boards.
  void advanced(const rota::Effects& effects);

  std::atomic<bool> drain_posted_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> closed_{false};
  std::atomic<long> queued_{0};
  /// Snapshot writes and the shutdown flush: blocking work kept off the I/O threads.
  boost::asio::thread_pool background_{1};
};

}  // namespace visitd::websocket
