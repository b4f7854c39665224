// `visitd journal inspect DIR`: the same scan as recovery, reporting instead of repairing.

#include <fcntl.h>

#include <sstream>

#include "format.hpp"
#include "posix_file.hpp"
#include "visitd/store/journal.hpp"

namespace visitd::store {
namespace {

namespace fs = std::filesystem;

std::string seq_range(std::uint64_t first, std::uint64_t last) {
  if (first == 0) return "no records";
  return "seqs " + std::to_string(first) + ".." + std::to_string(last);
}

}  // namespace

std::string inspect(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw JournalError(dir.string() + " is not a directory");
  const fs::path journal_dir = dir / "journal";
  const fs::path snapshot_dir = dir / "snapshots";
  if (!fs::is_directory(journal_dir, ec)) {
    throw JournalError("no journal in " + dir.string() + " (" + journal_dir.string() +
                       " does not exist)");
  }

  std::ostringstream out;
  const detail::JournalListing listing = detail::list_journal(journal_dir);
  const auto& files = listing.segments;
  out << "journal " << journal_dir.string() << "\n";

  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
  std::uint64_t first = 0;
  std::uint64_t prev_last = 0;
  bool prev_compacted = false;
  bool torn = false;
  bool damaged = false;
  for (std::size_t k = 0; k < files.size(); ++k) {
    const detail::SegmentFile& file = files[k];
    const std::string name = file.path.filename().string();
    if (k + 1 < files.size() && files[k + 1].first_seq == file.first_seq) {
      out << "  segment " << name << ": superseded by " << files[k + 1].path.filename().string()
          << " (compaction was interrupted; start-up removes it)\n";
      continue;
    }
    try {
      const detail::File f = detail::open_file(file.path, O_RDONLY);
      const std::uint64_t size = detail::file_size(f.get(), file.path);
      bytes += size;
      const bool chained =
          k == 0 ? file.first_seq == 1
                 : (prev_compacted ? file.first_seq > prev_last : file.first_seq == prev_last + 1);
      detail::SeqRule rule;
      rule.first = file.first_seq;
      rule.contiguous = !file.compacted;
      rule.after = prev_last;
      rule.before = k + 1 < files.size() ? files[k + 1].first_seq : 0;
      const detail::SegmentScan scan = detail::scan_segment(f.get(), file.path, size, rule, true);
      out << "  segment " << name << (file.compacted ? " (compacted)" : "") << ": " << size
          << " bytes, " << scan.records << " records, " << seq_range(scan.first_seq, scan.last_seq)
          << "\n";
      if (!chained) {
        damaged = true;
        out << "    DAMAGE: "
            << (k == 0
                    ? "the journal starts at seq " + std::to_string(file.first_seq) +
                          ", not 1: earlier segments are missing"
                    : "sequence gap: the segment starts at seq " + std::to_string(file.first_seq) +
                          " but the one before ends at seq " + std::to_string(prev_last))
            << "\n";
      }
      if (scan.damaged) {
        out << "    DAMAGE at offset " << scan.damage_offset << ": " << scan.damage;
        if (scan.zero_tail) out << "; zero bytes from there to the end";
        const bool tail = k + 1 == files.size() && !scan.valid_after && !file.compacted;
        if (tail) {
          torn = true;
          out << "\n    torn tail: start-up would truncate " << size - scan.damage_offset
              << " bytes after seq " << (scan.records > 0 ? scan.last_seq : prev_last) << "\n";
        } else {
          damaged = true;
          if (scan.valid_after) {
            out << "; an intact record (seq " << scan.valid_after_seq << ") follows at offset "
                << scan.valid_after_offset;
          }
          out << "\n    mid-log damage: start-up refuses without --salvage\n";
        }
      }
      records += scan.records;
      if (first == 0) first = scan.first_seq;
      if (scan.records > 0) {
        prev_last = scan.last_seq;
      } else if (!file.compacted) {
        prev_last = std::max(prev_last, file.first_seq - 1);
      }
      prev_compacted = file.compacted;
    } catch (const JournalError& e) {
      damaged = true;
      out << "  segment " << name << ": unreadable: " << e.what() << "\n";
    }
  }
  for (const auto& p : listing.temporary) {
    out << "  leftover " << p.filename().string() << " (start-up removes it)\n";
  }

  std::size_t valid_snapshots = 0;
  std::uint64_t newest_valid = 0;
  std::vector<detail::SnapshotFile> snapshots;
  if (fs::is_directory(snapshot_dir, ec)) {
    snapshots = detail::list_snapshots(snapshot_dir);
    out << "snapshots " << snapshot_dir.string() << "\n";
    for (const auto& snap : snapshots) {
      std::string problem;
      const std::uint64_t size = fs::file_size(snap.path, ec);
      const bool valid = detail::read_snapshot(snap.path, snap.seq, &problem).has_value();
      out << "  snapshot " << snap.path.filename().string() << ": seq " << snap.seq << ", "
          << (ec ? 0 : size) << " bytes, " << (valid ? "valid" : "DAMAGED (" + problem + ")")
          << "\n";
      if (valid && valid_snapshots++ == 0) newest_valid = snap.seq;
    }
  }

  out << "total: " << files.size() << " segments, " << bytes << " bytes, " << records
      << " records, " << seq_range(first, prev_last) << "; " << snapshots.size() << " snapshots ("
      << valid_snapshots << " valid";
  if (valid_snapshots > 0) out << ", newest valid at seq " << newest_valid;
  out << ")\n";
  out << "status: "
      << (damaged ? "DAMAGED: start-up refuses without --salvage"
          : torn  ? "torn tail: start-up truncates it"
                  : "ok")
      << "\n";
  return out.str();
}

}  // namespace visitd::store
