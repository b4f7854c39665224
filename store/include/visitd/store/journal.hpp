#pragma once
// The embedded journal: an append-only, checksummed, segmented log of every accepted
// command, from which the engine's state is rebuilt by replay. A record is durable (and may
// be acknowledged) only once the flusher has written it and fdatasync has returned.
//
// On disk: DIR/journal/<first-seq, 20 digits>.seg segment files of records
//   [u32 length][u32 crc32c][u8 type][u8 version][u16 reserved][u64 seq][i64 time_ms][payload]
// (length = payload bytes; a record counts only when all of its padded bytes are present)
// 8-byte aligned (zero padding), crc32c over everything after the crc field; the directory is
// fsync'd when a segment is created or removed. Snapshots are DIR/snapshots/<seq>.snap,
// written atomically (temp file, fsync, rename, fsync dir).
//
// Sequence numbers start at 1 and are contiguous, within an ordinary segment and across the
// chain of segments (each named by its first seq). Compaction rewrites a segment as
// DIR/journal/<first-seq>.cseg: its records keep their seqs, so gaps are legal inside it and
// between it and the next segment (it covers every seq from its name up to the next name);
// a gap anywhere else is corruption. A segment that is full, or a record that would overflow
// it, starts the next segment (a record larger than segment_bytes gets a segment of its own).
//
// Recovery at open: damage in the last ordinary segment with no intact record after it (a
// short header, a length past the end, a checksum mismatch, a zero-filled tail) is a torn
// write and is truncated. Damage anywhere else, a seq out of order, or a torn tail whose
// records a snapshot covers (they were durable, so this is not an unfinished write) refuses to
// start unless `salvage`: then what precedes the damage is kept and the rest is moved to
// DIR/salvaged/. A write that reached the disk out of order (a later page without an earlier
// one, possible on power loss) therefore needs salvage too: the journal cannot tell it from
// corruption. If salvage leaves the journal ending before the newest valid snapshot, the
// journal continues after the snapshot's seq (an empty .cseg records the gap), so that no seq
// is ever used twice. Leftover *.tmp files, and a .seg that a finished compaction had
// replaced, are removed. DIR/journal/LOCK is flock'ed so that one Journal uses a directory.
//
// Thread-safety: append() may be called from any thread; callbacks run on the flusher thread,
// in seq order, and must not throw or call flush(). replay(), latest_snapshot() and compact()
// may run while others append; replay() sees the records durable when it starts.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "visitd/core/time.hpp"
#include "visitd/store/log.hpp"

namespace visitd::store {

struct JournalOptions {
  std::filesystem::path dir;                    ///< the data directory
  std::size_t segment_bytes = 64 << 20;         ///< a new segment once one reaches this size
  std::chrono::microseconds group_delay{1500};  ///< a batch closes this long after its first...
  std::size_t group_bytes = 1 << 20;            ///< ... or at this many bytes
  bool fsync = true;                            ///< false only for benchmarks
  bool salvage = false;                         ///< keep what precedes mid-log damage
  /// Test hook: called instead of fdatasync(fd); return 0 or an errno value.
  std::function<int(int fd)> sync_hook;
};

/// What recovery found when the journal was opened.
struct RecoveryReport {
  std::uint64_t first_seq = 0;  ///< 0 when empty
  std::uint64_t last_seq = 0;
  std::uint64_t records = 0;
  std::uint64_t segments = 0;
  std::uint64_t truncated_bytes = 0;         ///< torn tail cut off
  std::uint64_t truncated_after_seq = 0;     ///< the last good record before the cut
  std::uint64_t salvaged_dropped_bytes = 0;  ///< with salvage: what was dropped
  std::vector<std::string> notes;            ///< one line per thing done, for the log
};

class Journal final : public Log {
 public:
  /// Opens (creating if needed) the journal in options.dir, recovering as described in the
  /// header comment. Throws JournalError when it cannot start safely.
  static std::unique_ptr<Journal> open(JournalOptions options, RecoveryReport* report = nullptr);
  ~Journal();  ///< flushes what is pending, stops the flusher

  /// Reads every record with seq >= from, in order; sees the records durable when it starts.
  void replay(std::uint64_t from, const std::function<void(const Record&)>& visit) const override;
  /// Callbacks run on the flusher thread. After a failed fsync the journal accepts nothing.
  std::uint64_t append(RecordType type, std::uint8_t version, TimePoint time,
                       std::string_view payload, Durable on_durable) override;
  std::uint64_t last_seq() const override;
  std::uint64_t durable_seq() const override;
  bool failed() const override;  ///< an fsync or write failed
  std::error_code failure() const override;
  void flush() override;
  void write_snapshot(std::uint64_t seq, std::string_view bytes) override;
  /// Older snapshots are tried if the newest is damaged.
  std::optional<Snapshot> latest_snapshot() const override;
  /// Rewrites the segments wholly covered by the newest snapshot, dropping `location` records
  /// whose time is before `drop_locations_before`; keeps every other record. Removes
  /// snapshots older than the newest two. Returns the number of records dropped.
  std::uint64_t compact(TimePoint drop_locations_before) override;

 private:
  Journal() = default;
  struct State;
  std::unique_ptr<State> state_;
};

/// A read-only look at a journal directory for `visitd journal inspect DIR`: segments,
/// record counts, first/last sequence, snapshots and any damage, as text. Never modifies.
std::string inspect(const std::filesystem::path& dir);

}  // namespace visitd::store
