#pragma once
// visitd's settings: what the TOML config file says, parsed once into immutable, typed
// values (see load.hpp). Thread-safe to share: nothing here changes after loading.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"

namespace visitd::config {

using namespace std::chrono_literals;

/// The thresholds that decide a visit's lifecycle (../shared/design.md).
struct Thresholds {
  Duration late_after = 15min;      ///< no check-in by start + this: late
  Duration missed_after = 60min;    ///< no check-in by start + this: missed
  Duration overrun_after = 15min;   ///< no check-out by check-in + planned + this
  Duration no_checkout_after = 2h;  ///< still in progress at check-in + planned + this
  double short_ratio = 0.75;        ///< completed in less than this share of planned: short
  double geofence_m = 150;          ///< default geofence radius when a client has none

  bool operator==(const Thresholds&) const = default;
};

/// A partial set of thresholds that overrides another (a branch, a visit type, the
/// time-critical set). Unset members inherit.
struct ThresholdOverrides {
  std::optional<Duration> late_after;
  std::optional<Duration> missed_after;
  std::optional<Duration> overrun_after;
  std::optional<Duration> no_checkout_after;
  std::optional<double> short_ratio;
  std::optional<double> geofence_m;

  /// `base` with every set member of this replacing its counterpart.
  Thresholds apply_to(Thresholds base) const;
  bool empty() const;

  bool operator==(const ThresholdOverrides&) const = default;
};

/// Thresholds at one level of the hierarchy: the values themselves plus the overrides
/// for visit types and for time-critical visits.
struct ThresholdLayer {
  ThresholdOverrides values;
  std::map<std::string, ThresholdOverrides, std::less<>> types;  ///< by visit type
  ThresholdOverrides time_critical;

  bool operator==(const ThresholdLayer&) const = default;
};

/// Rules of the tracking engine that are not per-visit thresholds ([tracking]).
struct Tracking {
  Duration early_window = 2h;     ///< a check-in is accepted from start - early_window
  Duration late_window = 4h;      ///< ... until end + late_window
  Duration device_skew = 2min;    ///< device time further in the future than this: not trusted
  Duration shift_lead = 1h;       ///< pings accepted from first visit's start - shift_lead
  Duration shift_tail = 1h;       ///< ... to last visit's end + shift_tail
  Duration offline_window = 72h;  ///< older events are refused (too_old); ping ids kept this long
  /// Predict lateness: raise a visit's start alert as `at_risk` (info) when the carer's
  /// estimated arrival passes start + late_after.
  bool at_risk = true;
  /// Accept location pings at all. Off: every ping is refused (`forbidden`) and not kept, and
  /// at-risk estimates start from check-outs and visits under way only.
  bool location_pings = true;
  /// Pings closer together than this (per carer) update the last fix but do not make the
  /// engine estimate the carer's arrival again.
  Duration min_ping_interval = 1min;
  double road_factor = 1.4;    ///< road distance / geodesic distance, for travel estimates
  double speed_kmh = 30;       ///< average door-to-door speed between clients
  Duration travel_minimum{0};  ///< added to every estimate: parking, walking to the door

  bool operator==(const Tracking&) const = default;
};

/// A branch of the agency ([[branches]]).
struct Branch {
  std::string id;
  std::string name;
  std::string timezone = "Europe/London";  ///< IANA name, validated when loading
  ThresholdLayer thresholds;               ///< [branches.thresholds]: this branch's overrides

  bool operator==(const Branch&) const = default;
};

/// A notification receiver ([[receivers]]).
struct Receiver {
  std::string name;
  std::string type;  ///< webhook | pagerduty | alertmanager
  std::string url;
  std::string routing_key;  ///< pagerduty only
  /// Another receiver that gets a notification this one failed to take `fallback_after`
  /// times in a row ([escalation] fallback_after); empty: keep retrying this one alone.
  std::string fallback;

  bool operator==(const Receiver&) const = default;
};

/// A weekly window of an on-call schedule, in the schedule's local wall time.
struct OnCallWindow {
  std::uint8_t days = 0;  ///< bit d: the window starts on weekday d (0 = Sunday ... 6 = Saturday)
  Duration from{0};       ///< time of day it starts
  Duration to{0};         ///< time of day it ends; at or before `from`: the next day (overnight)
  std::vector<std::string> notify;  ///< receiver names

  bool operator==(const OnCallWindow&) const = default;
};

/// Dated cover that replaces the weekly windows, e.g. a holiday (local wall times).
struct OnCallOverride {
  LocalTime from;
  LocalTime to;  ///< after `from`
  std::vector<std::string> notify;

  bool operator==(const OnCallOverride&) const = default;
};

/// `[[oncall]]`: who is paged when an escalation step names this schedule: an override
/// covering the moment, else the weekly window it falls in, else `default`.
struct OnCall {
  std::string name;
  std::string timezone = "Europe/London";
  std::vector<std::string> fallback;  ///< the `default` key
  std::vector<OnCallWindow> windows;
  std::vector<OnCallOverride> overrides;

  bool operator==(const OnCall&) const = default;
};

/// One rung of an escalation ladder.
struct EscalationStep {
  Duration after{0};
  std::vector<std::string> notify;  ///< receiver or on-call schedule names

  bool operator==(const EscalationStep&) const = default;
};

/// `[escalation]`: the ladders (frozen on an alert when it triggers) and how pages go out.
struct Escalation {
  Duration ack_timeout = 30min;  ///< an acknowledged alert not resolved by then re-triggers
  unsigned max_reopens = 3;      ///< ... at most this many times per alert (loops are limited)
  Duration group_wait = 30s;     ///< pages for one carer in one branch within this: one page
  Duration retry_initial = 1s;   ///< first delay after a failed delivery (then doubling)...
  Duration retry_max = 5min;     ///< ... up to this, with jitter
  unsigned fallback_after = 5;   ///< failed attempts before a receiver's fallback is also sent
  std::vector<EscalationStep> critical;
  std::vector<EscalationStep> warning;
  std::vector<EscalationStep> info;           ///< must stay empty: info never pages
  std::vector<EscalationStep> time_critical;  ///< for time-critical visits; empty: by severity

  bool operator==(const Escalation&) const = default;
};

struct Server {
  std::string listen = "127.0.0.1:8080";
  std::vector<std::string> allowed_origins;
  std::size_t max_message = 64 * 1024;   ///< WebSocket message bytes; config writes `64KiB`
  std::size_t max_body = 8 << 20;        ///< HTTP request body bytes (rota imports)
  unsigned threads = 2;                  ///< I/O threads; the engine runs on one strand of them
  std::size_t max_connections = 20'000;  ///< open sockets; more are closed at accept
  double rate_limit = 20;                ///< client messages per second per connection...
  unsigned rate_burst = 100;             ///< ... with bursts up to this many (offline resends)
  Duration idle_timeout = 5min;          ///< a WebSocket silent this long (pings unanswered)
  Duration request_timeout = 10s;        ///< to read one HTTP request, headers and body
  std::size_t board_queue = 4096;        ///< messages waiting for a slow board before closing it
  std::string dashboard = "dashboard";   ///< the board's static files, served at `/`

  bool operator==(const Server&) const = default;
};

struct Store {
  std::string kind = "journal";  ///< journal | redis
  std::string dir = "./data";
  std::string url;  ///< redis only: redis://[[user]:password@]host[:port][/db]
  /// Redis only: the name in the keys' hash tag, `visitd:{agency}:log`, so that several
  /// agencies (or test runs) can share a server.
  std::string keyspace = "agency";
  /// Redis only: start even if the server does not fsync every write (`appendfsync always`);
  /// warned about loudly and shown in /readyz and a metric, because an acknowledged event
  /// may then be lost when Redis itself crashes.
  bool allow_unsafe_fsync = false;
  /// Redis only: who this daemon is in the keyspace's lease (empty: the host name). Two
  /// daemons sharing a keyspace need different ids; a restart keeps its id.
  std::string daemon_id;
  /// Redis only: how long the lease lasts unless renewed: a standby takes over this long
  /// after the owner died.
  Duration lease_ttl = 10s;
  Duration location_retention = 24h * 30;
  std::chrono::microseconds group_delay{1000};  ///< the journal's group commit window (ms steps)
  std::uint64_t snapshot_every = 100'000;       ///< a snapshot after this many records...
  Duration snapshot_interval = 10min;           ///< ... or this long after the last, if any came
  /// Once the last snapshot was at least this big, the next is serialized by a forked child
  /// (the engine waits for the fork) instead of from a copy (it waits for the copy); 0: always.
  std::size_t snapshot_fork_above = std::size_t{16} << 20;

  bool operator==(const Store&) const = default;
};

struct Auth {
  std::string secret;       ///< the secret itself (from `secret`, or read from `secret_file`)
  std::string secret_file;  ///< where it came from, if a file

  bool operator==(const Auth&) const = default;
};

/// `[clock]`: a demo clock that starts at a chosen instant and runs `rate` times as fast as
/// real time, so that a simulated day can be shown in minutes. Only the tracking (the
/// engine, its deadlines, the board's time) runs on it; tokens keep real time.
struct DemoClock {
  /// The instant it starts at (`start` in RFC 3339, or a local time `2026-11-23 07:00` in
  /// the first branch's zone). Unset, with `start_time` unset too: the real time at start-up.
  std::optional<TimePoint> start;
  /// `start = "07:00"`: that time of the day the daemon starts on, in the first branch's
  /// zone (see demo_start()), so that one config shows "today" on any day.
  std::optional<Duration> start_time;
  double rate = 1;  ///< demo seconds per real second

  bool operator==(const DemoClock&) const = default;
};

/// Everything the config file says.
struct Settings {
  std::string source;  ///< the file it was read from
  Server server;
  Store store;
  Auth auth;
  ThresholdLayer thresholds;  ///< [thresholds], [thresholds.time_critical], [thresholds.types.X]
  Tracking tracking;
  std::vector<Branch> branches;
  std::vector<Receiver> receivers;
  std::vector<OnCall> oncall;
  Escalation escalation;
  std::optional<DemoClock> clock;  ///< [clock]; unset: the system clock

  /// The branch with this id, or nullptr.
  const Branch* find_branch(std::string_view id) const;

  /// The effective thresholds for a visit: defaults, then [thresholds], then the visit
  /// type's overrides, then the branch's values and its type overrides, then (for a
  /// time-critical visit) the global and the branch's time-critical overrides.
  Thresholds thresholds_for(std::string_view branch, std::string_view visit_type,
                            bool time_critical) const;

  /// Where the demo clock starts when the daemon starts at `real_now`; an Error when
  /// `start_time` does not exist that day (a DST gap). Requires `clock`.
  Result<TimePoint> demo_start(TimePoint real_now) const;

  /// Member-wise; describe()'s output re-loads to settings equal to the ones described.
  bool operator==(const Settings&) const = default;
};

}  // namespace visitd::config
