#include "visitd/store/journal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "format.hpp"
#include "posix_file.hpp"

namespace visitd::store {
namespace {

namespace fs = std::filesystem;
using detail::File;
using detail::RecordHeader;
using detail::SegmentFile;
using detail::SegmentScan;
using detail::SeqRule;

constexpr const char* kJournalDir = "journal";
constexpr const char* kSnapshotDir = "snapshots";
constexpr const char* kSalvagedDir = "salvaged";
constexpr const char* kLockFile = "LOCK";
constexpr char kPadding[8] = {};

/// A segment as the running journal knows it. `bytes` is what may be read: every record
/// below it is checked (at open) or durable (written since).
struct Segment {
  std::uint64_t first_seq = 0;
  bool compacted = false;
  fs::path path;
  std::uint64_t bytes = 0;
  std::uint64_t records = 0;
  std::uint64_t last_seq = 0;  ///< 0 when it holds no records
};

/// The sequence rule for segment `k` of `segments`, given the last seq before it.
SeqRule rule_for(const std::vector<Segment>& segments, std::size_t k, std::uint64_t prev_last) {
  SeqRule rule;
  rule.first = segments[k].first_seq;
  rule.contiguous = !segments[k].compacted;
  rule.after = prev_last;
  rule.before = k + 1 < segments.size() ? segments[k + 1].first_seq : 0;
  return rule;
}

std::string describe_at(const fs::path& path, std::uint64_t offset) {
  return path.filename().string() + " at offset " + std::to_string(offset);
}

std::error_code errno_code(int err) { return {err, std::generic_category()}; }

void create_directory(const fs::path& dir, bool durable) {
  std::error_code ec;
  if (fs::create_directory(dir, ec)) {
    if (durable) detail::sync_directory(dir.parent_path().empty() ? "." : dir.parent_path());
  } else if (ec) {
    throw JournalError("cannot create " + dir.string() + ": " + ec.message());
  }
}

void remove_file(const fs::path& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    detail::throw_errno("cannot remove", path, errno);
}

void rename_file(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) detail::throw_errno("cannot rename", from, errno);
}

/// A name in `dir` not yet taken, starting with `name`.
fs::path unused_name(const fs::path& dir, const std::string& name) {
  fs::path p = dir / name;
  for (int i = 1; fs::exists(p); ++i) p = dir / (name + "." + std::to_string(i));
  return p;
}

}  // namespace

struct Journal::State {
  JournalOptions options;
  fs::path journal_dir;
  fs::path snapshot_dir;
  File lock;

  mutable std::mutex segments_mu;  // guards `segments`: the flusher appends, compaction edits
  std::vector<Segment> segments;
  // Replay holds it shared while it reads files; compaction exclusively while it swaps them.
  mutable std::shared_mutex files_mu;
  std::mutex compaction_mu;
  std::mutex snapshot_mu;

  // The flusher's own (open() sets them up before the flusher exists).
  File active;  // the last ordinary segment, open for writing; none after a compacted one
  std::uint64_t active_bytes = 0;
  std::string batch;
  std::vector<Durable> batch_callbacks;

  std::mutex mu;  // guards everything below except the atomics
  std::condition_variable wake_flusher;
  std::condition_variable batch_done;
  std::string pending;  // framed records; the flusher fills in the checksums
  std::vector<Durable> pending_callbacks;
  std::uint64_t pending_first_seq = 0;
  std::chrono::steady_clock::time_point pending_since;
  std::vector<Durable> refused;  // appends after a failure; answered on the flusher thread
  std::uint64_t next_seq = 1;
  std::uint64_t completed_seq = 0;  // callbacks have run for every record up to here
  int flush_waiters = 0;
  bool stopping = false;
  std::thread flusher;
  std::error_code failure;
  std::atomic<std::uint64_t> durable_seq{0};
  std::atomic<bool> failed{false};

  void start_flusher() {
    if (!flusher.joinable()) flusher = std::thread([this] { run_flusher(); });
  }
  void run_flusher();
  std::error_code write_batch(std::uint64_t first_seq);
  std::error_code write_run(const char* data, std::size_t size, std::uint64_t first_seq,
                            std::uint64_t last_seq);
  std::error_code start_segment(std::uint64_t first_seq);
  int sync_data(int fd) const;

  void recover(RecoveryReport& report);
  std::uint64_t rewrite_segment(const Segment& segment, const SeqRule& rule, std::int64_t cutoff_ms,
                                std::size_t index);
};

// --- group commit ------------------------------------------------------------------------

int Journal::State::sync_data(int fd) const {
  if (options.sync_hook) return options.sync_hook(fd);
  if (!options.fsync) return 0;
  return ::fdatasync(fd) == 0 ? 0 : errno;
}

std::error_code Journal::State::start_segment(std::uint64_t first_seq) {
  const fs::path path = journal_dir / detail::segment_name(first_seq, false);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno_code(errno);
  File file(fd);
  if (options.fsync) {
    if (int err = detail::fsync_directory(journal_dir)) return errno_code(err);
  }
  active = std::move(file);
  active_bytes = 0;
  std::lock_guard lk(segments_mu);
  segments.push_back(Segment{first_seq, false, path, 0, 0, 0});
  return {};
}

std::error_code Journal::State::write_run(const char* data, std::size_t size,
                                          std::uint64_t first_seq, std::uint64_t last_seq) {
  if (int err = detail::write_at(active.get(), data, size, active_bytes)) return errno_code(err);
  // Never retried: after a failed fdatasync the kernel may have dropped the dirty pages, so
  // a later "successful" one would prove nothing.
  if (int err = sync_data(active.get())) return errno_code(err);
  active_bytes += size;
  std::lock_guard lk(segments_mu);
  Segment& seg = segments.back();
  seg.bytes = active_bytes;
  seg.records += last_seq - first_seq + 1;
  seg.last_seq = last_seq;
  return {};
}

std::error_code Journal::State::write_batch(std::uint64_t first_seq) {
  char* const data = batch.data();
  const std::size_t size = batch.size();
  std::size_t run_start = 0;
  std::uint64_t run_first = first_seq;
  std::uint64_t seq = first_seq;
  std::size_t at = 0;
  while (at < size) {
    const std::uint32_t length = detail::decode_header(data + at).length;
    const std::size_t bytes = detail::record_bytes(length);
    detail::store_crc(data + at, detail::record_crc(data + at, length));
    const std::uint64_t in_segment = active_bytes + (at - run_start);
    if (!active || (in_segment > 0 && in_segment + bytes > options.segment_bytes)) {
      if (at > run_start) {
        if (auto err = write_run(data + run_start, at - run_start, run_first, seq - 1)) return err;
      }
      if (auto err = start_segment(seq)) return err;
      run_start = at;
      run_first = seq;
    }
    at += bytes;
    ++seq;
  }
  if (at > run_start) return write_run(data + run_start, at - run_start, run_first, seq - 1);
  return {};
}

void Journal::State::run_flusher() {
  std::unique_lock lk(mu);
  for (;;) {
    wake_flusher.wait(lk,
                      [&] { return stopping || !pending_callbacks.empty() || !refused.empty(); });
    if (!refused.empty()) {
      std::vector<Durable> answer;
      answer.swap(refused);
      const std::error_code err = failure;
      lk.unlock();
      for (auto& callback : answer) {
        if (callback) callback(0, err);
      }
      lk.lock();
      continue;
    }
    if (pending_callbacks.empty()) {
      if (stopping) return;
      continue;
    }
    if (!failed.load(std::memory_order_relaxed)) {
      // The batch closes group_delay after its first record, when it is big enough, or at
      // once when someone waits in flush() or the journal closes.
      wake_flusher.wait_until(lk, pending_since + options.group_delay, [&] {
        return stopping || flush_waiters > 0 || pending.size() >= options.group_bytes;
      });
    }
    batch.swap(pending);
    batch_callbacks.swap(pending_callbacks);
    const std::uint64_t first = pending_first_seq;
    const std::uint64_t last = first + batch_callbacks.size() - 1;
    std::error_code err = failure;
    lk.unlock();

    if (!err) {
      err = write_batch(first);
      if (err) {
        std::lock_guard relock(mu);
        failure = err;
        failed.store(true);
      } else {
        durable_seq.store(last, std::memory_order_release);
      }
    }
    for (std::size_t i = 0; i < batch_callbacks.size(); ++i) {
      if (batch_callbacks[i]) batch_callbacks[i](first + i, err);
    }
    batch_callbacks.clear();
    // Keep the buffer for the next batch unless a burst made it far larger than usual.
    if (batch.capacity() > 4 * std::max<std::size_t>(options.group_bytes, 1 << 16)) {
      batch = std::string();
    } else {
      batch.clear();
    }

    lk.lock();
    completed_seq = last;
    batch_done.notify_all();
  }
}

std::uint64_t Journal::append(RecordType type, std::uint8_t version, TimePoint time,
                              std::string_view payload, Durable on_durable) {
  if (payload.size() > detail::kMaxPayloadBytes) {
    throw JournalError("record of " + std::to_string(payload.size()) +
                       " bytes is larger than the journal's limit of " +
                       std::to_string(detail::kMaxPayloadBytes));
  }
  State& s = *state_;
  RecordHeader h;
  h.length = static_cast<std::uint32_t>(payload.size());
  h.type = static_cast<std::uint8_t>(type);
  h.version = version;
  h.time_ms = time.time_since_epoch().count();
  char header[detail::kRecordHeaderBytes];
  const std::size_t padding = detail::record_bytes(payload.size()) - sizeof header - payload.size();

  std::unique_lock lk(s.mu);
  s.start_flusher();
  if (s.failed.load(std::memory_order_relaxed)) {
    s.refused.push_back(std::move(on_durable));
    lk.unlock();
    s.wake_flusher.notify_one();
    return 0;
  }
  h.seq = s.next_seq++;
  detail::encode_header(h, header);
  const bool first = s.pending_callbacks.empty();
  if (first) {
    s.pending_first_seq = h.seq;
    s.pending_since = std::chrono::steady_clock::now();
  }
  s.pending.append(header, sizeof header);
  s.pending.append(payload);
  s.pending.append(kPadding, padding);
  s.pending_callbacks.push_back(std::move(on_durable));
  const bool wake = first || s.pending.size() >= s.options.group_bytes;
  lk.unlock();
  if (wake) s.wake_flusher.notify_one();
  return h.seq;
}

void Journal::flush() {
  State& s = *state_;
  std::unique_lock lk(s.mu);
  if (s.flusher.joinable() && s.flusher.get_id() == std::this_thread::get_id()) {
    throw std::logic_error("Journal::flush() called from a durability callback");
  }
  const std::uint64_t target = s.next_seq - 1;
  if (s.completed_seq >= target) return;
  ++s.flush_waiters;
  s.wake_flusher.notify_one();
  s.batch_done.wait(lk, [&] { return s.completed_seq >= target; });
  --s.flush_waiters;
}

std::uint64_t Journal::last_seq() const {
  std::lock_guard lk(state_->mu);
  return state_->next_seq - 1;
}

std::uint64_t Journal::durable_seq() const {
  return state_->durable_seq.load(std::memory_order_acquire);
}

bool Journal::failed() const { return state_->failed.load(); }

std::error_code Journal::failure() const {
  std::lock_guard lk(state_->mu);
  return state_->failure;
}

Journal::~Journal() {
  if (!state_) return;
  State& s = *state_;
  {
    std::lock_guard lk(s.mu);
    s.stopping = true;
  }
  s.wake_flusher.notify_all();
  if (s.flusher.joinable()) s.flusher.join();
}

// --- recovery ----------------------------------------------------------------------------

namespace {

/// Where the scan at open stopped, when it did not reach the end cleanly.
struct Damage {
  std::size_t segment = 0;  // index into the listing
  std::uint64_t offset = 0;
  std::uint64_t file_bytes = 0;
  std::string what;
  bool torn_tail = false;  // nothing intact follows in the last segment: an unfinished write
};

/// Moves what salvage drops into DIR/salvaged rather than deleting it: these are legal
/// records, and an operator may want to look at them.
void keep_dropped_tail(const fs::path& salvaged, const fs::path& segment, std::uint64_t offset,
                       std::uint64_t size, bool durable) {
  const fs::path out_path =
      unused_name(salvaged, segment.filename().string() + ".from-" + std::to_string(offset));
  File in = detail::open_file(segment, O_RDONLY);
  File out = detail::open_file(out_path, O_WRONLY | O_CREAT | O_EXCL);
  std::string buffer(1 << 20, '\0');
  for (std::uint64_t at = offset; at < size;) {
    const std::size_t n = detail::read_at(
        in.get(), buffer.data(), std::min<std::uint64_t>(buffer.size(), size - at), at, segment);
    if (n == 0) break;
    if (int err = detail::write_at(out.get(), buffer.data(), n, at - offset)) {
      detail::throw_errno("cannot write", out_path, err);
    }
    at += n;
  }
  if (durable) detail::sync_file(out.get(), out_path);
}

void truncate_file(const fs::path& path, std::uint64_t size, bool durable) {
  File f = detail::open_file(path, O_WRONLY);
  if (::ftruncate(f.get(), static_cast<off_t>(size)) != 0) {
    detail::throw_errno("cannot truncate", path, errno);
  }
  if (durable) detail::sync_file(f.get(), path);
}

}  // namespace

void Journal::State::recover(RecoveryReport& report) {
  const bool durable = options.fsync;
  detail::JournalListing listing = detail::list_journal(journal_dir);
  std::vector<fs::path> snapshot_temporary;
  const auto snapshots = detail::list_snapshots(snapshot_dir, &snapshot_temporary);

  // A .seg next to a .cseg of the same first seq: compaction finished writing and renaming
  // the .cseg but stopped before removing the .seg it replaces.
  std::vector<fs::path> superseded;
  for (std::size_t i = 0; i + 1 < listing.segments.size();) {
    if (listing.segments[i].first_seq == listing.segments[i + 1].first_seq) {
      superseded.push_back(listing.segments[i].path);
      listing.segments.erase(listing.segments.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  const auto& files = listing.segments;

  // Read everything first; change nothing until we know it is safe to start.
  std::vector<Segment> good;
  std::optional<Damage> damage;
  std::uint64_t prev_last = 0;
  std::uint64_t first_record = 0;
  bool prev_compacted = false;
  for (std::size_t k = 0; k < files.size(); ++k) {
    const SegmentFile& file = files[k];
    File f = detail::open_file(file.path, O_RDONLY);
    const std::uint64_t size = detail::file_size(f.get(), file.path);
    const bool chained =
        k == 0 ? file.first_seq == 1
               : (prev_compacted ? file.first_seq > prev_last : file.first_seq == prev_last + 1);
    if (!chained) {
      damage = Damage{k, 0, size,
                      k == 0 ? "the journal starts at seq " + std::to_string(file.first_seq) +
                                   ", not 1: earlier segments are missing"
                             : "the segment starts at seq " + std::to_string(file.first_seq) +
                                   " but the one before ends at seq " + std::to_string(prev_last),
                      false};
      break;
    }
    SeqRule rule;
    rule.first = file.first_seq;
    rule.contiguous = !file.compacted;
    rule.after = prev_last;
    rule.before = k + 1 < files.size() ? files[k + 1].first_seq : 0;
    const SegmentScan scan = detail::scan_segment(f.get(), file.path, size, rule, true);
    good.push_back(Segment{file.first_seq, file.compacted, file.path, scan.valid_bytes,
                           scan.records, scan.last_seq});
    if (scan.records > 0) {
      if (first_record == 0) first_record = scan.first_seq;
      prev_last = scan.last_seq;
    } else if (!file.compacted) {
      prev_last = file.first_seq - 1;
    }
    prev_compacted = file.compacted;
    if (scan.damaged) {
      std::string what = scan.damage;
      if (scan.zero_tail) what += "; zero bytes from there to the end";
      if (scan.valid_after && scan.valid_after_offset != scan.damage_offset) {
        what += "; an intact record (seq " + std::to_string(scan.valid_after_seq) +
                ") follows at offset " + std::to_string(scan.valid_after_offset);
      }
      const bool last = k + 1 == files.size();
      damage = Damage{k, scan.damage_offset, size, std::move(what),
                      last && !scan.valid_after && !file.compacted};
      break;
    }
  }
  const std::uint64_t journal_last = prev_last;

  // A snapshot newer than the journal's end means records that were durable are gone (a
  // damaged tail was not a torn write, or the disk lost acknowledged data).
  std::optional<std::uint64_t> ahead;
  for (const auto& snap : snapshots) {
    if (snap.seq <= journal_last) break;
    if (detail::read_snapshot(snap.path, snap.seq, nullptr)) {
      ahead = snap.seq;
      break;
    }
  }

  if (damage && (!damage->torn_tail || ahead) && !options.salvage) {
    const SegmentFile& file = files[damage->segment];
    std::string message = "journal " + journal_dir.string() + ": " +
                          describe_at(file.path, damage->offset) + " (seq " +
                          std::to_string(prev_last + 1) + "): " + damage->what;
    if (damage->torn_tail) {
      message += "; the records there are covered by snapshot " + std::to_string(*ahead) +
                 ", so they were durable: this is damage, not an unfinished write";
    } else if (damage->segment + 1 < files.size()) {
      message +=
          "; " + std::to_string(files.size() - damage->segment - 1) + " later segment(s) follow";
    }
    throw JournalError(message + ". Refusing to start; --salvage keeps the records before seq " +
                       std::to_string(prev_last + 1) + " and drops the rest");
  }
  if (!damage && ahead && !options.salvage) {
    throw JournalError("journal " + journal_dir.string() + " ends at seq " +
                       std::to_string(journal_last) + " but snapshot " + std::to_string(*ahead) +
                       " is newer: durable records are missing. Refusing to start; --salvage "
                       "continues from the snapshot");
  }

  // Now change things.
  bool journal_dir_changed = false;
  for (const auto& p : listing.temporary) {
    remove_file(p);
    report.notes.push_back("removed " + p.filename().string() + ", left by an interrupted rewrite");
    journal_dir_changed = true;
  }
  for (const auto& p : superseded) {
    remove_file(p);
    report.notes.push_back("removed " + p.filename().string() +
                           ": compaction had already replaced it");
    journal_dir_changed = true;
  }
  for (const auto& p : snapshot_temporary) remove_file(p);

  if (damage) {
    const SegmentFile& file = files[damage->segment];
    const std::uint64_t cut_bytes = damage->file_bytes - damage->offset;
    if (damage->torn_tail && !ahead) {
      truncate_file(file.path, damage->offset, durable);
      report.truncated_bytes = cut_bytes;
      report.truncated_after_seq = journal_last;
      report.notes.push_back("truncated a torn tail: " + std::to_string(cut_bytes) + " bytes of " +
                             describe_at(file.path, damage->offset) + " (" + damage->what +
                             "); the last good record is seq " + std::to_string(journal_last));
    } else {
      const fs::path salvaged = options.dir / kSalvagedDir;
      create_directory(salvaged, durable);
      std::uint64_t dropped = cut_bytes;
      std::string what = "salvage: kept seqs up to " + std::to_string(journal_last) + "; dropped " +
                         describe_at(file.path, damage->offset) + " (" + damage->what + ")";
      if (damage->offset == 0) {
        rename_file(file.path, unused_name(salvaged, file.path.filename().string()));
        if (!good.empty() && good.back().path == file.path) good.pop_back();
      } else {
        keep_dropped_tail(salvaged, file.path, damage->offset, damage->file_bytes, durable);
        truncate_file(file.path, damage->offset, durable);
      }
      for (std::size_t k = damage->segment + 1; k < files.size(); ++k) {
        std::error_code ec;
        dropped += fs::file_size(files[k].path, ec);
        rename_file(files[k].path, unused_name(salvaged, files[k].path.filename().string()));
        what += ", " + files[k].path.filename().string();
      }
      if (durable) detail::sync_directory(salvaged);
      journal_dir_changed = true;
      report.salvaged_dropped_bytes = dropped;
      report.notes.push_back(what + ": " + std::to_string(dropped) + " bytes, kept in " +
                             salvaged.string());
    }
  }

  if (ahead) {
    // Salvage continues after the snapshot: an empty compacted segment records that the
    // seqs between the journal's end and the snapshot are known only from the snapshot.
    if (!good.empty() && !good.back().compacted && good.back().records == 0) {
      remove_file(good.back().path);
      good.pop_back();
    }
    const std::uint64_t gap_first = journal_last + 1;
    if (good.empty() || !good.back().compacted) {
      const fs::path gap = journal_dir / detail::segment_name(gap_first, true);
      detail::open_file(gap, O_WRONLY | O_CREAT | O_TRUNC);
      good.push_back(Segment{gap_first, true, gap, 0, 0, 0});
    }
    const fs::path next = journal_dir / detail::segment_name(*ahead + 1, false);
    detail::open_file(next, O_WRONLY | O_CREAT | O_TRUNC);
    good.push_back(Segment{*ahead + 1, false, next, 0, 0, 0});
    journal_dir_changed = true;
    report.notes.push_back("salvage: the journal ends at seq " + std::to_string(journal_last) +
                           " but snapshot " + std::to_string(*ahead) +
                           " is newer; continuing at seq " + std::to_string(*ahead + 1));
  }
  if (journal_dir_changed && durable) detail::sync_directory(journal_dir);

  // Ready to append.
  segments = std::move(good);
  std::uint64_t next = journal_last + 1;
  if (!segments.empty()) {
    const Segment& tail = segments.back();
    if (!tail.compacted) {
      active = detail::open_file(tail.path, O_WRONLY);
      active_bytes = tail.bytes;
      next = tail.first_seq + tail.records;
    } else {
      next = std::max(next, tail.first_seq + 1);  // a new .seg may not share its name
    }
  }
  next_seq = next;
  completed_seq = next - 1;
  durable_seq.store(next - 1);

  report.segments = segments.size();
  report.first_seq = first_record;
  for (const auto& seg : segments) report.records += seg.records;
  report.last_seq = journal_last;
}

std::unique_ptr<Journal> Journal::open(JournalOptions options, RecoveryReport* report) {
  if (options.dir.empty()) throw JournalError("journal: no data directory given");
  if (options.segment_bytes == 0) throw JournalError("journal: segment_bytes must be positive");
  std::unique_ptr<Journal> journal(new Journal());
  journal->state_ = std::make_unique<State>();
  State& s = *journal->state_;
  s.options = std::move(options);
  s.journal_dir = s.options.dir / kJournalDir;
  s.snapshot_dir = s.options.dir / kSnapshotDir;

  std::error_code ec;
  if (!fs::is_directory(s.options.dir, ec)) {
    fs::create_directories(s.options.dir, ec);
    if (ec) throw JournalError("cannot create " + s.options.dir.string() + ": " + ec.message());
  }
  create_directory(s.journal_dir, s.options.fsync);
  create_directory(s.snapshot_dir, s.options.fsync);

  const fs::path lock_path = s.journal_dir / kLockFile;
  s.lock = detail::open_file(lock_path, O_RDWR | O_CREAT);
  if (::flock(s.lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      throw JournalError("journal " + s.journal_dir.string() +
                         " is in use by another visitd (or another Journal in this process)");
    }
    detail::throw_errno("cannot lock", lock_path, errno);
  }

  RecoveryReport local;
  RecoveryReport& out = report != nullptr ? *report : local;
  out = RecoveryReport{};
  s.recover(out);
  return journal;
}

// --- replay ------------------------------------------------------------------------------

void Journal::replay(std::uint64_t from, const std::function<void(const Record&)>& visit) const {
  const State& s = *state_;
  std::shared_lock files(s.files_mu);
  std::vector<Segment> segments;
  {
    std::lock_guard lk(s.segments_mu);
    segments = s.segments;
  }
  Record record;
  const detail::RecordVisitor each = [&](const RecordHeader& h, std::string_view payload) {
    if (h.seq < from) return;
    record.seq = h.seq;
    record.type = static_cast<RecordType>(h.type);
    record.version = h.version;
    record.time = TimePoint(Duration(h.time_ms));
    record.payload.assign(payload);
    visit(record);
  };
  std::uint64_t prev_last = 0;
  for (std::size_t k = 0; k < segments.size(); ++k) {
    const Segment& seg = segments[k];
    const SeqRule rule = rule_for(segments, k, prev_last);
    prev_last = std::max(prev_last, seg.last_seq);
    if (seg.bytes == 0 || (k + 1 < segments.size() && segments[k + 1].first_seq <= from)) continue;
    File f = detail::open_file(seg.path, O_RDONLY);
    const SegmentScan scan = detail::scan_segment(f.get(), seg.path, seg.bytes, rule, false, &each);
    if (scan.damaged) {
      throw JournalError("journal " + s.journal_dir.string() + ": " +
                         describe_at(seg.path, scan.damage_offset) + ": " + scan.damage +
                         " (the file changed after the journal was opened)");
    }
  }
}

// --- snapshots ---------------------------------------------------------------------------

void Journal::write_snapshot(std::uint64_t seq, std::string_view bytes) {
  State& s = *state_;
  if (seq > durable_seq()) {
    throw JournalError("snapshot at seq " + std::to_string(seq) +
                       " covers records that are not durable yet (durable up to " +
                       std::to_string(durable_seq()) + ")");
  }
  std::lock_guard guard(s.snapshot_mu);
  const fs::path final_path = s.snapshot_dir / detail::snapshot_name(seq);
  fs::path temp_path = final_path;
  temp_path += detail::kTempExt;
  try {
    detail::write_new_file(temp_path, detail::encode_snapshot_header(seq, bytes), bytes,
                           s.options.fsync);
    rename_file(temp_path, final_path);
    if (s.options.fsync) detail::sync_directory(s.snapshot_dir);
  } catch (...) {
    ::unlink(temp_path.c_str());
    throw;
  }
}

std::optional<Journal::Snapshot> Journal::latest_snapshot() const {
  for (const auto& snap : detail::list_snapshots(state_->snapshot_dir)) {
    if (auto bytes = detail::read_snapshot(snap.path, snap.seq, nullptr)) {
      return Snapshot{snap.seq, std::move(*bytes)};
    }
  }
  return std::nullopt;
}

// --- compaction --------------------------------------------------------------------------

std::uint64_t Journal::State::rewrite_segment(const Segment& segment, const SeqRule& rule,
                                              std::int64_t cutoff_ms, std::size_t index) {
  const auto droppable = [&](const RecordHeader& h) {
    return h.type == static_cast<std::uint8_t>(RecordType::location) && h.time_ms < cutoff_ms;
  };
  const auto check = [&](const SegmentScan& scan) {
    if (scan.damaged) {
      throw JournalError("compaction: " + describe_at(segment.path, scan.damage_offset) + ": " +
                         scan.damage + " (the file changed after the journal was opened)");
    }
  };

  File in = detail::open_file(segment.path, O_RDONLY);
  std::uint64_t dropped = 0;
  const detail::RecordVisitor count = [&](const RecordHeader& h, std::string_view) {
    if (droppable(h)) ++dropped;
  };
  check(detail::scan_segment(in.get(), segment.path, segment.bytes, rule, false, &count));
  if (dropped == 0) return 0;

  const fs::path final_path = journal_dir / detail::segment_name(segment.first_seq, true);
  fs::path temp_path = final_path;
  temp_path += detail::kTempExt;
  Segment rewritten{segment.first_seq, true, final_path, 0, 0, 0};
  try {
    File out = detail::open_file(temp_path, O_WRONLY | O_CREAT | O_TRUNC);
    std::string buffer;
    const auto drain = [&] {
      if (int err = detail::write_at(out.get(), buffer.data(), buffer.size(), rewritten.bytes)) {
        detail::throw_errno("cannot write", temp_path, err);
      }
      rewritten.bytes += buffer.size();
      buffer.clear();
    };
    const detail::RecordVisitor copy = [&](const RecordHeader& h, std::string_view payload) {
      if (droppable(h)) return;
      // Kept records are copied as they are on disk, checksum and padding included.
      buffer.append(payload.data() - detail::kRecordHeaderBytes, detail::record_bytes(h.length));
      ++rewritten.records;
      rewritten.last_seq = h.seq;
      if (buffer.size() >= (4u << 20)) drain();
    };
    check(detail::scan_segment(in.get(), segment.path, segment.bytes, rule, false, &copy));
    drain();
    if (options.fsync) detail::sync_file(out.get(), temp_path);
  } catch (...) {
    ::unlink(temp_path.c_str());
    throw;
  }

  std::unique_lock files(files_mu);
  rename_file(temp_path, final_path);
  if (options.fsync) detail::sync_directory(journal_dir);
  if (!segment.compacted) {
    remove_file(segment.path);
    if (options.fsync) detail::sync_directory(journal_dir);
  }
  std::lock_guard lk(segments_mu);
  segments[index] = std::move(rewritten);
  return dropped;
}

std::uint64_t Journal::compact(TimePoint drop_locations_before) {
  State& s = *state_;
  std::lock_guard guard(s.compaction_mu);
  const auto snapshots = detail::list_snapshots(s.snapshot_dir);
  std::vector<std::uint64_t> valid;  // the newest two good ones
  for (const auto& snap : snapshots) {
    if (detail::read_snapshot(snap.path, snap.seq, nullptr)) {
      valid.push_back(snap.seq);
      if (valid.size() == 2) break;
    }
  }
  if (valid.empty()) return 0;
  const std::uint64_t covered = valid.front();

  std::vector<Segment> segments;
  {
    std::lock_guard lk(s.segments_mu);
    segments = s.segments;
  }
  std::uint64_t dropped = 0;
  std::uint64_t prev_last = 0;
  // Never the last segment: the flusher may be writing to it.
  for (std::size_t k = 0; k + 1 < segments.size(); ++k) {
    if (segments[k + 1].first_seq - 1 > covered) break;
    const SeqRule rule = rule_for(segments, k, prev_last);
    prev_last = std::max(prev_last, segments[k].last_seq);
    dropped +=
        s.rewrite_segment(segments[k], rule, drop_locations_before.time_since_epoch().count(), k);
  }

  if (valid.size() == 2) {
    bool removed = false;
    for (const auto& snap : snapshots) {
      if (snap.seq < valid.back()) {
        remove_file(snap.path);
        removed = true;
      }
    }
    if (removed && s.options.fsync) detail::sync_directory(s.snapshot_dir);
  }
  return dropped;
}

}  // namespace visitd::store
