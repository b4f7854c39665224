#pragma once
// The engine and its record log (the journal, or Redis) together: how an accepted command becomes a
// durable record, how snapshots are taken, and how the engine is rebuilt at start-up (newest
// snapshot, then the journal's tail replayed through the same engine code).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "visitd/alerts/notice.hpp"
#include "visitd/config/settings.hpp"
#include "visitd/rota/engine.hpp"
#include "visitd/store/log.hpp"

namespace visitd::store {

struct Recovered {
  std::unique_ptr<rota::Engine> engine;
  std::uint64_t snapshot_seq = 0;  ///< the snapshot started from; 0 when none
  std::size_t snapshot_bytes = 0;  ///< its size: how big the state was then
  std::uint64_t replayed = 0;      ///< records replayed after it
  std::uint64_t last_seq = 0;      ///< the journal's last record
  /// Replayed records the engine refused. Each was accepted when written, so anything but 0
  /// means the config changed under the record (e.g. a branch removed); logged, not fatal.
  std::uint64_t diverged = 0;
  /// The journal (a settings record or the snapshot) said which settings were in force; false
  /// for a new journal, or one written before settings were recorded (then the config's are
  /// assumed). The engine's settings() are the ones in force at the end of the journal.
  bool settings_recorded = false;
};

struct RestoredSnapshot {
  std::unique_ptr<rota::Engine> engine;
  bool settings_recorded = false;  ///< the snapshot carried its settings (else `settings`)
};

/// The engine a snapshot's bytes (as snapshot_bytes() made them) hold, under the settings
/// recorded in it, else `settings`. What recover() starts from. Throws JournalError.
RestoredSnapshot restore_snapshot(const config::Settings& settings, std::string_view bytes,
                                  std::uint64_t seq);

/// Rebuilds the engine from `journal`: the newest snapshot, else an engine starting at the
/// first record's time (at `origin` when the journal is empty), then the records after it.
/// Throws JournalError when a snapshot or record cannot be read (after trying older ones).
Recovered recover(const config::Settings& settings, const Log& journal, TimePoint origin);

/// What applying one record did (see apply_record).
struct Applied {
  bool diverged = false;  ///< a command the engine refused (it was accepted when written)
  bool settings = false;  ///< a settings record: its settings are in force now
};

/// Applies one record to `engine` as it was applied when written: a command at its time, the
/// settings it put in force, who an outbox notice told, a tick's advance. `effects` gets what
/// changed. recover() replays with it, and a standby follows the owner's log with it. Throws
/// JournalError for a record that cannot be read.
Applied apply_record(rota::Engine& engine, const Record& record, rota::Effects& effects);

/// Appends a tick at `now` (RecordType::tick): deadlines fell due up to it.
std::uint64_t record_tick(Log& journal, TimePoint now, Log::Durable on_durable);

/// Appends an accepted command decided at `now`. Location pings are written as `location`
/// records so that compaction can drop raw fixes after their retention.
std::uint64_t record(Log& journal, const rota::Command& command, TimePoint now,
                     Log::Durable on_durable);

/// Appends a settings record: `engine` has just put `engine.settings()` in force (at
/// start-up or on a reload), and a replay must do so at the same point.
std::uint64_t record_settings(Log& journal, const rota::Engine& engine, TimePoint now,
                              Log::Durable on_durable);

/// Writes a snapshot of `engine` (with the settings in force) covering every record appended so
/// far. Waits for those records to be durable first: a snapshot must never contain what the journal
/// could lose. Returns the sequence it covers, or 0 when the journal has failed (nothing written).
std::uint64_t snapshot(Log& journal, const rota::Engine& engine);

/// Appends a notice to the outbox: call it before the notice may be sent.
std::uint64_t record_notice(Log& journal, const alerts::Notice& notice, TimePoint now,
                            Log::Durable on_durable);

/// Appends how an attempt to deliver notices ended (the paging audit trail).
std::uint64_t record_delivery(Log& journal, const alerts::DeliveryRecord& delivery, TimePoint now,
                              Log::Durable on_durable);

/// Reads the whole outbox at start-up: `decided` sees every notice ever written, in order (to
/// rebuild who was paged about what); returns those no delivery record settled (delivered or
/// refused), in order: what is still owed. Compaction keeps both record types, so this
/// reads from the journal's first record. Throws JournalError for a damaged record.
std::vector<alerts::Notice> read_outbox(const Log& journal,
                                        const std::function<void(const alerts::Notice&)>& decided);

/// What snapshot() writes: the settings in force, then the engine's own snapshot. Take it
/// right after advance(now), as Engine::snapshot() requires; write it with
/// Log::write_snapshot once the records it covers are durable.
std::string snapshot_bytes(const rota::Engine& engine);

}  // namespace visitd::store
