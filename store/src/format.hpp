#pragma once
// The journal's on-disk formats, shared by the journal, compaction and `inspect`: record
// framing, file names, the segment scanner that recovery and replay both use, and snapshot
// files. See journal.hpp for the layout.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace visitd::store::detail {

// --- records ---------------------------------------------------------------------------

inline constexpr std::size_t kRecordHeaderBytes = 28;
inline constexpr std::size_t kRecordCrcOffset = 4;
inline constexpr std::size_t kRecordCrcStart = 8;  // the checksum covers everything after it
/// Larger payloads are refused on append and treated as damage when read, so that a garbage
/// length can never make the reader allocate absurd amounts.
inline constexpr std::uint32_t kMaxPayloadBytes = 256u << 20;

constexpr std::uint64_t padded(std::uint64_t n) { return (n + 7) & ~std::uint64_t{7}; }
/// The bytes a record with `payload` bytes occupies in a segment, padding included.
constexpr std::uint64_t record_bytes(std::uint64_t payload) {
  return padded(kRecordHeaderBytes + payload);
}

struct RecordHeader {
  std::uint32_t length = 0;  ///< payload bytes
  std::uint32_t crc = 0;
  std::uint8_t type = 0;
  std::uint8_t version = 0;
  std::uint16_t reserved = 0;
  std::uint64_t seq = 0;
  std::int64_t time_ms = 0;
};

/// Writes the 28 header bytes (little-endian) to `out`.
void encode_header(const RecordHeader& header, char* out);
RecordHeader decode_header(const char* in);
/// The checksum of the record starting at `record` whose payload has `length` bytes.
std::uint32_t record_crc(const char* record, std::uint32_t length);
/// Stores `crc` into the record's crc field.
void store_crc(char* record, std::uint32_t crc);

// --- names -----------------------------------------------------------------------------

inline constexpr std::string_view kSegmentExt = ".seg";
inline constexpr std::string_view kCompactedExt = ".cseg";
inline constexpr std::string_view kSnapshotExt = ".snap";
inline constexpr std::string_view kTempExt = ".tmp";

/// A sequence number as the 20 digits used in file names.
std::string seq_digits(std::uint64_t seq);

struct SegmentFile {
  std::uint64_t first_seq = 0;  ///< from the name
  bool compacted = false;       ///< a .cseg: rewritten by compaction, gaps allowed
  std::filesystem::path path;
};

/// Recognises "<20 digits>.seg" and "<20 digits>.cseg".
std::optional<SegmentFile> parse_segment_name(const std::filesystem::path& path);
/// Recognises "<20 digits>.snap"; returns the sequence number.
std::optional<std::uint64_t> parse_snapshot_name(const std::filesystem::path& path);
std::string segment_name(std::uint64_t first_seq, bool compacted);
std::string snapshot_name(std::uint64_t seq);

/// What a journal directory holds.
struct JournalListing {
  std::vector<SegmentFile> segments;             ///< by first seq; a .seg before a .cseg
  std::vector<std::filesystem::path> temporary;  ///< *.tmp left by an interrupted rewrite
};
JournalListing list_journal(const std::filesystem::path& journal_dir);

struct SnapshotFile {
  std::uint64_t seq = 0;
  std::filesystem::path path;
};
/// The snapshots in `snapshot_dir`, newest first; *.tmp files go to `temporary` if given.
std::vector<SnapshotFile> list_snapshots(const std::filesystem::path& snapshot_dir,
                                         std::vector<std::filesystem::path>* temporary = nullptr);

// --- reading segments ------------------------------------------------------------------

/// Reads a file through a large buffer; a window can be asked for at any offset.
class ChunkReader {
 public:
  ChunkReader(int fd, const std::filesystem::path& path, std::uint64_t size);
  /// The bytes [offset, offset + n), valid until the next call; nullptr when that runs past
  /// the size given at construction. Throws JournalError when the file reads short.
  const char* view(std::uint64_t offset, std::size_t n);

 private:
  int fd_;
  const std::filesystem::path& path_;
  std::uint64_t size_;
  std::unique_ptr<char[]> buffer_;
  std::size_t capacity_ = 0;
  std::uint64_t buffer_offset_ = 0;
  std::size_t buffer_bytes_ = 0;
};

/// Which sequence numbers a segment may hold.
struct SeqRule {
  std::uint64_t first = 1;   ///< the segment's name
  bool contiguous = true;    ///< an ordinary segment: exactly first, first + 1, ...
  std::uint64_t after = 0;   ///< every seq is greater (the previous segment's last)
  std::uint64_t before = 0;  ///< compacted: every seq is smaller (next segment's name); 0: none
};

struct SegmentScan {
  std::uint64_t file_bytes = 0;
  std::uint64_t valid_bytes = 0;  ///< the end of the last good record
  std::uint64_t records = 0;
  std::uint64_t first_seq = 0;  ///< of the good records; 0 when none
  std::uint64_t last_seq = 0;
  bool damaged = false;
  std::uint64_t damage_offset = 0;
  std::uint64_t damage_seq = 0;  ///< the sequence number expected there (0 when unknown)
  std::string damage;            ///< what is wrong, for messages
  bool zero_tail = false;        ///< everything from the damage on is zero bytes
  /// A well-formed record (good checksum, later seq) follows the damage: the damage is in
  /// the middle of the log, not a torn tail.
  bool valid_after = false;
  std::uint64_t valid_after_offset = 0;
  std::uint64_t valid_after_seq = 0;
};

/// Called for each good record. `payload` points into the whole record as read, so the
/// record's own bytes (header, payload, padding) start kRecordHeaderBytes before it.
using RecordVisitor = std::function<void(const RecordHeader&, std::string_view payload)>;

/// Reads the first `size` bytes of a segment, calling `visit` (if any) for each good record,
/// and stops at the first damage. With `look_past_damage` it then searches the rest for a
/// well-formed record to tell a torn tail from mid-log damage.
SegmentScan scan_segment(int fd, const std::filesystem::path& path, std::uint64_t size,
                         const SeqRule& rule, bool look_past_damage,
                         const RecordVisitor* visit = nullptr);

// --- snapshots -------------------------------------------------------------------------

inline constexpr std::size_t kSnapshotHeaderBytes = 40;

/// magic, format version, seq, length, crc32c of the bytes, crc32c of the header.
std::string encode_snapshot_header(std::uint64_t seq, std::string_view bytes);

/// Reads and checks a snapshot file. Returns its bytes, or nullopt with `problem` set.
std::optional<std::string> read_snapshot(const std::filesystem::path& path,
                                         std::uint64_t expected_seq, std::string* problem);

}  // namespace visitd::store::detail
