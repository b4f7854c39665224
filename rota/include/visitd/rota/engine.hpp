#pragma once
// The tracking engine: a pure, deterministic state machine over the whole rota.
//
// `apply(command, now)` takes a carer event or an office command; `advance(now)` fires the
// deadlines that fell due. Both report what changed as effects (visit changed, alert
// raised/changed/resolved, a carer's rota changed) and `apply` answers the sender with a
// Reply. No I/O, no threads, no wall clock: time is what the caller says it is, so the same
// commands at the same times always give the same state (replay rebuilds it exactly).
//
// Time never runs backwards inside the engine: a `now` earlier than one already seen is
// taken as the latest seen. `apply` first advances to `now`, so a command always meets the
// state as of its own time, however often the caller's timer has fired.
//
// Not thread-safe: one owner (the daemon's engine strand) calls it.

#include <array>
#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "visitd/config/settings.hpp"
#include "visitd/core/error.hpp"
#include "visitd/core/time.hpp"
#include "visitd/core/zone.hpp"
#include "visitd/geo/geodesic.hpp"
#include "visitd/rota/deadline_wheel.hpp"
#include "visitd/rota/event_table.hpp"
#include "visitd/rota/id_key.hpp"
#include "visitd/rota/import.hpp"
#include "visitd/rota/model.hpp"

namespace visitd::rota {

using VisitIndex = std::uint32_t;
using CarerIndex = std::uint32_t;
using ClientIndex = std::uint32_t;
using AlertIndex = std::uint32_t;
using BranchIndex = std::uint16_t;
/// A visit's carers: one, or two for a double-up, held inline (no allocation per visit).
using CarerList = boost::container::small_vector<CarerIndex, 2>;
inline constexpr std::uint32_t kNoIndex = 0xffffffffu;

// ---------------------------------------------------------------------------------------
// Commands

/// A position fix as a phone reports it.
struct Fix {
  geo::LatLon position;
  double accuracy_m = 0;
};

struct CheckIn {
  std::string event_id;
  std::string carer;  ///< the authenticated carer
  std::string visit;
  TimePoint at;  ///< the device's time
  std::optional<Fix> fix;
  Method method = Method::gps;
  std::string tag;  ///< NFC/QR tag read at the door
};

struct CheckOut {
  std::string event_id;
  std::string carer;
  std::string visit;
  TimePoint at;
  std::optional<Fix> fix;
  Method method = Method::gps;
  std::string tag;
  std::string note;
};

struct LocationPing {
  std::string event_id;
  std::string carer;
  TimePoint at;
  Fix fix;
};

struct RunningLate {
  std::string event_id;
  std::string carer;
  std::string visit;
  TimePoint eta;
  std::string reason;
};

/// Replaces a branch's rota for one local date (`PUT /api/rota`). Visits in the plan are
/// added or updated; visits of that date missing from it are cancelled unless a carer has
/// already checked in (those keep their record and state).
struct ImportRota {
  std::string branch;
  LocalDays date;
  std::vector<VisitPlan> visits;
  std::string by;
};

struct Reassign {
  std::string visit;
  std::vector<std::string> carers;
  std::string by;
};

struct Cancel {
  std::string visit;
  std::string reason;
  std::string by;
};

struct AckAlert {
  std::string alert;  ///< "A17"
  std::string by;
  std::string note;
};

struct ResolveAlert {
  std::string alert;
  std::string by;
  std::string note;
};

using Command = std::variant<CheckIn, CheckOut, LocationPing, RunningLate, ImportRota, Reassign,
                             Cancel, AckAlert, ResolveAlert>;

// ---------------------------------------------------------------------------------------
// Replies and effects

enum class Status : std::uint8_t {
  accepted,   ///< decided and changed state (the caller journals it, then acks)
  duplicate,  ///< an event id already decided: the original outcome, nothing changed
  unchanged,  ///< valid but nothing to do (e.g. ack of a resolved alert); nothing changed
  rejected,   ///< refused with `error`; nothing changed
};
std::string_view to_string(Status status);

struct ImportCounts {
  std::uint32_t imported = 0;   ///< visits new to the rota
  std::uint32_t updated = 0;    ///< existing visits whose plan changed
  std::uint32_t unchanged = 0;  ///< existing visits with the same plan
  std::uint32_t cancelled = 0;  ///< visits of that date no longer in the plan
  std::uint32_t kept = 0;       ///< no longer in the plan but already checked in: kept
};

/// The answer to the sender of a command.
struct Reply {
  Status status = Status::accepted;
  std::optional<Error> error;                ///< set when rejected
  VisitIndex visit = kNoIndex;               ///< the visit the command concerned, if any
  VisitState state = VisitState::scheduled;  ///< its state (for a duplicate: as first decided)
  Flags flags = 0;                           ///< its flags (for a duplicate: as first decided)
  AlertIndex alert = kNoIndex;               ///< the alert an ack/resolve concerned
  ImportCounts counts;                       ///< for ImportRota
  std::vector<ImportIssue> issues;           ///< for a refused ImportRota
  std::string note;                          ///< why nothing changed, for `unchanged`
};

enum class AlertTransition : std::uint8_t {
  raised,         ///< a new alert, triggered
  severity_rose,  ///< in place (late → missed); re-triggers an acknowledged alert
  updated,        ///< kind or details changed without a rise (e.g. rescheduled missed → late)
  acknowledged,
  retargeted,  ///< the visit was reassigned: the alert now concerns another carer
  resolved,
  escalated,  ///< the next step of its ladder fired: escalation_level is that step (1-based)
  reopened,   ///< acknowledged but not resolved within ack_timeout: triggered again
};
std::string_view to_string(AlertTransition transition);

struct Effect {
  enum class Kind : std::uint8_t { visit_changed, alert_changed, rota_changed };
  Kind kind;
  std::uint32_t index;  ///< VisitIndex, AlertIndex or CarerIndex by kind
  AlertTransition transition = AlertTransition::raised;  ///< alert_changed only
  /// escalated and reopened: the step (1-based) that pages, as it was when it fired; a
  /// caller that reads the alert after several steps fired at once still sees each one.
  int level = 0;

  bool operator==(const Effect&) const = default;
};
using Effects = std::vector<Effect>;

// ---------------------------------------------------------------------------------------
// State

struct CheckRecord {
  CarerIndex carer;
  IdKey event_id;         ///< a UUID's 36 characters inline: no heap block per record
  TimePoint at;           ///< the time the record uses: device time when plausible
  TimePoint device_at;    ///< what the device said
  TimePoint received_at;  ///< when visitd received it
  std::optional<Fix> fix;
  double distance_m = -1;  ///< from the client's home; -1 without a fix
  Method method = Method::gps;
  std::string note;  ///< check-outs only
};

/// What an arrival estimate starts from (see Engine: "At risk").
enum class RiskBasis : std::uint8_t {
  none,         ///< no estimate
  stated,       ///< the carer's own `running_late` eta
  location,     ///< the carer's last location fix
  left,         ///< the check-out of the carer's previous visit
  in_visit,     ///< still at the previous visit, due to finish at `since`
  overrunning,  ///< still at the previous visit, past its planned finish `since`
};
std::string_view to_string(RiskBasis basis);

/// An estimate of when a carer reaches a visit, and why.
struct Risk {
  RiskBasis basis = RiskBasis::none;
  TimePoint eta;      ///< the estimated (or stated) arrival
  Duration drive{0};  ///< the travel estimate from `from` (or the fix) to the client
  /// The previous visit (the carer is at or left its client's home), if the basis has one.
  VisitIndex from = kNoIndex;
  TimePoint since;  ///< the fix's time, the check-out's, or the planned finish

  bool operator==(const Risk&) const = default;
};

/// Why a visit is late, when the engine knows: then its late alert waits for `missed` (or
/// the stated eta) before it pages.
enum class LateCause : std::uint8_t {
  none,
  previous_overrun,  ///< the carer is still at, or left late from, their previous visit
  running_late,      ///< the carer said so, with an eta within missed_after
};
std::string_view to_string(LateCause cause);

struct Visit {
  // What a carer event reads of every visit it passes over (next_visit, carer_visit) comes
  // first, so that it shares one or two cache lines rather than spreading over five.
  TimePoint start;
  TimePoint end;
  VisitState state = VisitState::scheduled;
  bool time_critical = false;
  LateCause cause = LateCause::none;
  Flags flags = 0;
  std::uint16_t thresholds = 0;  ///< index into the engine's resolved thresholds
  BranchIndex branch = 0;
  ClientIndex client = 0;
  std::vector<CheckRecord> check_ins;
  CarerList carers;  ///< the lead carer first

  std::vector<CheckRecord> check_outs;
  std::string id;
  std::string type;
  std::string notes;
  LocalDays day;  ///< local date of start in the branch's zone: the rota it belongs to
  std::int64_t late_by_s = 0;
  std::optional<TimePoint> eta;  ///< from running_late
  std::string eta_reason;
  std::string cancel_reason;
  /// The arrival estimate that put the visit at risk (or explains its lateness); basis none
  /// otherwise. Cleared at the first check-in.
  Risk risk;

  DeadlineWheel::Handle start_deadline;
  DeadlineWheel::Handle end_deadline;
  std::array<AlertIndex, 5> alerts{kNoIndex, kNoIndex, kNoIndex, kNoIndex, kNoIndex};

  Duration planned() const { return end - start; }
  bool checked_in(CarerIndex c) const;
  bool checked_out(CarerIndex c) const;
  bool assigned(CarerIndex c) const;
};

struct Client {
  std::string id;
  std::string name;
  geo::LatLon location;
  std::optional<double> geofence_m;
  std::string tag;
};

struct Shift {
  TimePoint from;  ///< first visit's start - shift_lead
  TimePoint to;    ///< last visit's end + shift_tail
};

struct Carer {
  std::string id;
  std::vector<VisitIndex> visits;  ///< every visit ever assigned, by start
  /// One per local day with visits, by time; today's and tomorrow's inline.
  boost::container::small_vector<Shift, 2> shifts;
  std::optional<Fix> last_fix;
  TimePoint last_fix_at;
  VisitIndex at_risk = kNoIndex;  ///< the visit this carer's estimate put at risk, if any
  TimePoint assessed_at;          ///< when a ping last made the engine estimate (min_ping_interval)
  DeadlineWheel::Handle recheck;  ///< when the estimate changes with time alone
  /// Whether the last estimate started from a visit the carer is still at: pings cannot
  /// change it then, and do not estimate again.
  bool at_visit = false;
  /// Derived, never snapshot or compared: how many of `visits` the last search for the next
  /// visit passed (none of those can be it again until the rota changes; 0: search all).
  mutable std::size_t passed = 0;
};

enum class AlertPhase : std::uint8_t { start, end, location, duration, double_up };
std::string_view to_string(AlertPhase phase);

enum class AlertKind : std::uint8_t {
  at_risk,
  late,
  missed,
  overrunning,
  no_checkout,
  short_visit,
  outside_geofence,
  double_up_incomplete,
};
std::string_view to_string(AlertKind kind);

enum class Severity : std::uint8_t { info, warning, critical };
std::string_view to_string(Severity severity);

enum class AlertState : std::uint8_t { triggered, acknowledged, resolved };
std::string_view to_string(AlertState state);

enum class Resolution : std::uint8_t {
  none,
  checked_in,
  checked_out,
  synced_late,
  cancelled,
  reassigned,
  user,
  rescheduled,  ///< extension: the office moved the visit so the condition no longer holds
  on_track,     ///< extension: an at_risk alert whose estimate came back inside the window
};
std::string_view to_string(Resolution resolution);

/// A notification sent about an alert (its outbox record): who, why, when.
struct Notified {
  std::string receiver;
  std::string transition;  ///< triggered, escalated, acknowledged, resolved
  int level = 0;           ///< the escalation step it paged (pages), or the level reached
  TimePoint at;

  bool operator==(const Notified&) const = default;
};

struct Alert {
  std::uint32_t number = 0;  ///< the id is "A" + number
  VisitIndex visit = kNoIndex;
  AlertPhase phase = AlertPhase::start;
  AlertKind kind = AlertKind::late;
  Severity severity = Severity::warning;
  AlertState state = AlertState::triggered;
  CarerIndex carer = kNoIndex;
  TimePoint raised_at;
  TimePoint updated_at;
  std::optional<TimePoint> acked_at;
  std::string acked_by;
  std::optional<TimePoint> resolved_at;
  std::string resolved_by;
  Resolution resolution = Resolution::none;
  std::string note;
  int escalation_level = 0;  ///< how many steps of its ladder have fired
  std::uint32_t seq = 1;
  /// The escalation ladder frozen when it triggered (an index into the engine's ladders), or
  /// kNoLadder: info alerts, and severities whose ladder is empty, page no one.
  std::uint16_t ladder = kNoLadder;
  TimePoint ladder_from;     ///< step i fires at ladder_from + step i's `after`
  std::uint8_t reopens = 0;  ///< times an ack timed out; at most [escalation] max_reopens
  /// The ladder waits: a late visit whose cause is known (LateCause) pages once missed, or
  /// once the carer's stated eta passes without a check-in.
  bool held = false;
  DeadlineWheel::Handle step;      ///< the next step, or the ack timeout while acknowledged
  std::vector<Notified> notified;  ///< every notification about it, in order

  static constexpr std::uint16_t kNoLadder = 0xffff;

  std::string id() const {
    std::string s(1, 'A');  // appended, not "A" + ...: GCC 12 -O3 warns falsely on that
    s += std::to_string(number);
    return s;
  }
  /// `visit/V1/start`: needs the visit's id.
  std::string key(std::string_view visit_id) const;
  bool open() const { return state != AlertState::resolved; }
};

struct BranchInfo {
  std::string id;
  TimeZone zone;
};

/// A 128-bit digest of (carer, event id): the key under which an event's decision is kept.
struct EventKey {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  bool operator==(const EventKey&) const = default;
  static EventKey of(std::string_view carer, std::string_view event_id);
};

class Engine {
 public:
  /// The settings must outlive the engine. Branches come from settings.branches.
  explicit Engine(const config::Settings& settings, TimePoint origin = TimePoint{});

  Engine& operator=(const Engine&) = delete;

  /// A copy of the whole state, independent of this engine from then on: the daemon takes
  /// one on its strand (a few flat copies) and serializes it on another thread, so that a
  /// snapshot does not hold up events. Shares the settings.
  std::unique_ptr<Engine> clone() const { return std::unique_ptr<Engine>(new Engine(*this)); }

  /// Decides a command at `now`; appends what changed to `effects`.
  Reply apply(const Command& command, TimePoint now, Effects& effects);
  /// Fires every deadline due at or before `now`; appends what changed to `effects`.
  void advance(TimePoint now, Effects& effects);

  /// Puts new settings in force at `now` (a config reload): thresholds for every visit,
  /// shift bounds, the tracking windows, and branches added. Deadlines are planned again
  /// from the new thresholds, and those now due fire (appending to `effects`). The engine
  /// keeps `settings` alive. Refused (nothing changes) when a branch that the engine knows
  /// is missing or has another time zone: its rota's local days would change meaning.
  /// Like apply(), this is a decision the journal must record, so that a replay makes it at
  /// the same point.
  std::optional<Error> reconfigure(std::shared_ptr<const config::Settings> settings, TimePoint now,
                                   Effects& effects);
  /// The settings in force.
  const config::Settings& settings() const { return *settings_; }
  /// When `advance` next has something to do (never later than the earliest deadline).
  std::optional<TimePoint> next_deadline() const;
  /// The latest time the engine has seen.
  TimePoint now() const { return now_; }

  // Read access for serialization, boards and tests.
  const Visit& visit(VisitIndex i) const { return visits_[i]; }
  const Alert& alert(AlertIndex i) const { return alerts_[i]; }
  const Carer& carer(CarerIndex i) const { return carers_[i]; }
  /// Where a carer was last located, for the office: only while the carer is on shift at
  /// `at` and only a fix taken during that shift (nothing of a carer off shift is shown).
  struct Sighting {
    Fix fix;
    TimePoint at;
  };
  std::optional<Sighting> last_seen(CarerIndex carer, TimePoint at) const;
  const Client& client(ClientIndex i) const { return clients_[i]; }
  const BranchInfo& branch(BranchIndex i) const { return branches_[i]; }
  std::size_t visit_count() const { return visits_.size(); }
  std::size_t alert_count() const { return alerts_.size(); }
  /// The open (triggered or acknowledged) alerts, in the order they were raised: what a
  /// board or the office lists, from one bit per alert ever raised, read 64 at a time.
  std::vector<AlertIndex> open_alerts() const;
  std::size_t carer_count() const { return carers_.size(); }
  std::size_t branch_count() const { return branches_.size(); }
  std::optional<VisitIndex> find_visit(std::string_view id) const;
  std::optional<AlertIndex> find_alert(std::string_view id) const;
  std::optional<CarerIndex> find_carer(std::string_view id) const;
  std::optional<BranchIndex> find_branch(std::string_view id) const;
  /// The visits of a branch's rota for one local date (cancelled ones included), in the
  /// order they were first imported; empty when that date has no rota.
  std::span<const VisitIndex> visits_on(BranchIndex branch, LocalDays day) const;
  std::string alert_key(AlertIndex i) const { return alerts_[i].key(visits_[alerts_[i].visit].id); }
  const config::Thresholds& thresholds(const Visit& v) const { return thresholds_[v.thresholds]; }
  /// Records that a notification about an alert was decided and written to the outbox (live,
  /// and from the journal's outbox records on replay), so that the alert object says who was
  /// told what and when. Not a transition: the alert's seq does not change.
  void note_notified(AlertIndex a, Notified notified) {
    alerts_[a].notified.push_back(std::move(notified));
  }
  /// The escalation ladder frozen on an alert (empty when it pages no one).
  std::span<const config::EscalationStep> ladder(const Alert& a) const {
    if (a.ladder == Alert::kNoLadder) return {};
    return ladders_[a.ladder];
  }
  std::size_t pending_deadlines() const { return wheel_.size(); }
  std::size_t remembered_events() const { return decided_.size(); }

  /// The engine's whole state as versioned bytes, for the journal's snapshots. Take it right
  /// after advance(now): an engine restored from it then carries on exactly as this one.
  std::string snapshot() const;
  /// An engine in the state a snapshot recorded, under (possibly reloaded) settings. An
  /// Error for damaged bytes, a newer format, or a branch the settings no longer have.
  static Result<std::unique_ptr<Engine>> restore(const config::Settings& settings,
                                                 std::string_view bytes);
  /// The same, keeping `settings` alive for as long as the engine.
  static Result<std::unique_ptr<Engine>> restore(std::shared_ptr<const config::Settings> settings,
                                                 std::string_view bytes);

  /// Every piece of state, in a canonical text form: two engines with equal dumps are in
  /// the same state. For replay and determinism checks; slow.
  std::string canonical_dump() const;

 private:
  struct Decision {
    VisitIndex visit = kNoIndex;
    VisitState state = VisitState::scheduled;
    Flags flags = 0;
  };
  /// A deadline's payload is (index << 2) | kind: a visit's index for the phases, an
  /// alert's for its escalation, a carer's for at-risk.
  enum class DeadlineKind : std::uint8_t { start_phase, end_phase, escalation, at_risk };
  static std::uint64_t payload(std::uint32_t index, DeadlineKind kind) {
    return (std::uint64_t(index) << 2) | std::uint64_t(kind);
  }

  Reply on(const CheckIn& c, Effects& fx);
  Reply on(const CheckOut& c, Effects& fx);
  Reply on(const LocationPing& c, Effects& fx);
  Reply on(const RunningLate& c, Effects& fx);
  Reply on(const ImportRota& c, Effects& fx);
  Reply on(const Reassign& c, Effects& fx);
  Reply on(const Cancel& c, Effects& fx);
  Reply on(const AckAlert& c, Effects& fx);
  Reply on(const ResolveAlert& c, Effects& fx);

  struct CarerVisit {
    VisitIndex visit;
    CarerIndex carer;
  };
  /// Looks up the visit a carer event concerns and checks the carer may act on it.
  Result<CarerVisit> carer_visit(std::string_view carer, std::string_view visit) const;
  std::optional<Reply> duplicate_of(const EventKey& key) const;
  Reply accepted(VisitIndex v) const;
  void remember(const EventKey& key, VisitIndex v);
  /// The time a record uses: the device's when plausible, else the receive time.
  TimePoint plausible(TimePoint device, TimePoint not_before, Flags& flags) const;

  CarerIndex carer_of(std::string_view id);
  ClientIndex upsert_client(const ClientPlan& plan);
  std::uint16_t thresholds_index(BranchIndex b, std::string_view type, bool time_critical);
  void rebuild_shifts(CarerIndex c);
  /// The earliest-starting of the carer's shifts that covers t, if any.
  const Shift* shift_at(const Carer& carer, TimePoint t) const;
  bool on_shift(const Carer& carer, TimePoint t) const;

  void plan_start(VisitIndex v);
  void plan_end(VisitIndex v);
  void fire(std::uint32_t index, DeadlineKind kind, TimePoint at, Effects& fx);
  void on_start_deadline(VisitIndex v, TimePoint at, Effects& fx);
  void on_end_deadline(VisitIndex v, TimePoint at, Effects& fx);
  void check_double_up(VisitIndex v, TimePoint at, Effects& fx);
  void complete_if_done(VisitIndex v, TimePoint at, Effects& fx);
  void settle_start_phase(VisitIndex v, TimePoint at, Effects& fx);

  AlertIndex raise(VisitIndex v, AlertPhase phase, AlertKind kind, Severity severity,
                   CarerIndex carer, TimePoint at, Effects& fx);
  void resolve(AlertIndex a, Resolution why, std::string_view by, TimePoint at, Effects& fx);
  void resolve_phase(VisitIndex v, AlertPhase phase, Resolution why, TimePoint at, Effects& fx);
  AlertIndex open_alert(const Visit& v, AlertPhase phase) const;
  /// Freezes the ladder for the alert's severity (and the visit's time-criticality) on it,
  /// counting from `at`, and plans its first step.
  void start_ladder(AlertIndex a, TimePoint at);
  /// Plans the alert's next step, or its ack timeout while acknowledged; cancels either
  /// once resolved.
  void plan_escalation(AlertIndex a);
  void on_escalation_deadline(AlertIndex a, TimePoint at, Effects& fx);
  std::uint16_t intern_ladder(const std::vector<config::EscalationStep>& steps);
  void touch(VisitIndex v, Effects& fx);
  CarerIndex missing_carer(const Visit& v) const;
  Severity late_severity(const Visit& v) const;

  // At risk (engine.cpp, "At risk"): per carer, never a scan of every visit.
  /// Estimates again when the carer reaches their next visit; raises, updates or resolves
  /// that visit's at_risk alert, and plans the carer's recheck.
  void assess(CarerIndex c, TimePoint at, Effects& fx);
  static constexpr std::size_t kNoPosition = ~std::size_t{0};
  /// Where in the carer's visits their next visit not yet due late is: assigned (first
  /// listed), nobody checked in; kNoPosition when none.
  std::size_t next_visit(CarerIndex c, TimePoint at) const;
  /// Where visit v is in the carer's visits; kNoPosition when not there.
  std::size_t position(CarerIndex c, VisitIndex v) const;
  /// When carer c reaches their visit at `position` as of `at`, from where they are or were
  /// (not what they said); basis none without anything to go on. `recheck` (if given) is set when
  /// the estimate changes with time alone while still inside the window.
  Risk whereabouts(CarerIndex c, std::size_t position, TimePoint at,
                   std::optional<TimePoint>* recheck) const;
  /// The late alert's ladder waits / goes on (see Alert::held).
  void hold(AlertIndex a);
  void release(AlertIndex a, TimePoint at, Effects& fx);
  /// Why the visit is late as of `at`, and the estimate that says so.
  LateCause late_cause(VisitIndex v, TimePoint at, Risk& risk) const;

  /// Member-wise; only clone() copies an engine.
  Engine(const Engine&) = default;

  const config::Settings* settings_;
  std::shared_ptr<const config::Settings> owned_settings_;  ///< set by reconfigure()
  TimePoint now_;
  DeadlineWheel wheel_;

  std::vector<BranchInfo> branches_;
  std::vector<Visit> visits_;
  std::vector<Client> clients_;
  /// Each client's location again, densely: at-risk estimates read it on pings, and a few
  /// hundred kilobytes stay in cache where the whole clients do not.
  std::vector<geo::LatLon> homes_;
  std::vector<Carer> carers_;
  std::deque<Alert> alerts_;  ///< chunked: raising an alert never moves the others
  /// Derived, never snapshot or compared: which of alerts_ are open, one bit each. Raising
  /// and resolving are O(1) in any order (a sorted list of the open ones cost at-risk apply
  /// 6 to 10%: tens of thousands open, each resolved one erased from the middle).
  std::vector<std::uint64_t> open_bits_;
  void mark_open(AlertIndex a, bool open);
  /// Searched with a string_view, without building a string per event.
  template <class T>
  using IdMap = boost::unordered_flat_map<IdKey, T, IdKeyHash, IdKeyEqual>;
  IdMap<VisitIndex> visit_ids_;
  IdMap<ClientIndex> client_ids_;
  IdMap<CarerIndex> carer_ids_;
  std::map<std::pair<BranchIndex, std::int32_t>, std::vector<VisitIndex>> days_;

  std::vector<std::vector<config::EscalationStep>> ladders_;  ///< frozen, deduplicated
  std::vector<config::Thresholds> thresholds_;
  Duration longest_late_after_{0};  ///< of thresholds_: how far back a next visit may start
  /// Derived, never snapshot or compared: no shift ever built was longer, so a shift that
  /// started earlier than this before t cannot cover t (see shift_at).
  Duration longest_shift_{0};
  std::map<std::string, std::uint16_t, std::less<>> thresholds_ids_;

  /// Every accepted carer event's decision: check-ins, check-outs and running-late for
  /// ever, location pings until `expire_at` (see pings_).
  EventTable<EventKey, Decision> decided_;
  /// A ping is forgotten once a resend would surely be refused as too old: at
  /// max(receive time, device time) + offline_window + device_skew. When forgotten depends
  /// only on the ping, never on when advance() ran, so replays agree exactly.
  struct PingMemory {
    TimePoint forget_at;
    EventKey key;
  };
  /// Pings whose device time was at most device_skew ahead, remembered until receive time
  /// + offline_window + 2 x device_skew (a bound on their forget time): ascending.
  std::deque<PingMemory> pings_;
  /// The rare pings from a clock further ahead, by their own forget time.
  std::multimap<TimePoint, EventKey> pings_ahead_;
};

}  // namespace visitd::rota
