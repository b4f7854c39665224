#include "format.hpp"

#include <fcntl.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "posix_file.hpp"
#include "visitd/store/crc32c.hpp"
#include "visitd/store/journal.hpp"

namespace visitd::store::detail {
namespace {

template <typename T>
void store_le(char* out, T value) {
  if constexpr (std::endian::native == std::endian::big) {
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      out[i] = static_cast<char>(static_cast<std::make_unsigned_t<T>>(value) >> (8 * i));
    }
  } else {
    std::memcpy(out, &value, sizeof(T));
  }
}

template <typename T>
T load_le(const char* in) {
  if constexpr (std::endian::native == std::endian::big) {
    std::make_unsigned_t<T> v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      v |= static_cast<std::make_unsigned_t<T>>(static_cast<unsigned char>(in[i])) << (8 * i);
    }
    return static_cast<T>(v);
  } else {
    T v;
    std::memcpy(&v, in, sizeof(T));
    return v;
  }
}

constexpr std::size_t kChunkBytes = 4 << 20;
constexpr std::size_t kDigits = 20;

std::optional<std::uint64_t> parse_digits(std::string_view stem) {
  if (stem.size() != kDigits) return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(stem.data(), stem.data() + stem.size(), v);
  if (ec != std::errc() || end != stem.data() + stem.size()) return std::nullopt;
  return v;
}

std::string hex32(std::uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

bool all_zero(ChunkReader& in, std::uint64_t from, std::uint64_t to) {
  while (from < to) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(to - from, 1 << 16));
    const char* p = in.view(from, n);
    if (!std::all_of(p, p + n, [](char c) { return c == 0; })) return false;
    from += n;
  }
  return true;
}

// Is there a whole record with a good checksum at `offset`, later than `after`?
bool well_formed_at(ChunkReader& in, std::uint64_t offset, std::uint64_t size, std::uint64_t after,
                    RecordHeader* out) {
  if (size - offset < kRecordHeaderBytes) return false;
  const RecordHeader h = decode_header(in.view(offset, kRecordHeaderBytes));
  if (h.seq <= after || h.length > kMaxPayloadBytes) return false;
  if (record_bytes(h.length) > size - offset) return false;
  const char* p = in.view(offset, static_cast<std::size_t>(record_bytes(h.length)));
  if (record_crc(p, h.length) != h.crc) return false;
  *out = h;
  return true;
}

}  // namespace

void encode_header(const RecordHeader& h, char* out) {
  store_le(out, h.length);
  store_le(out + 4, h.crc);
  store_le(out + 8, h.type);
  store_le(out + 9, h.version);
  store_le(out + 10, h.reserved);
  store_le(out + 12, h.seq);
  store_le(out + 20, h.time_ms);
}

RecordHeader decode_header(const char* in) {
  RecordHeader h;
  h.length = load_le<std::uint32_t>(in);
  h.crc = load_le<std::uint32_t>(in + 4);
  h.type = load_le<std::uint8_t>(in + 8);
  h.version = load_le<std::uint8_t>(in + 9);
  h.reserved = load_le<std::uint16_t>(in + 10);
  h.seq = load_le<std::uint64_t>(in + 12);
  h.time_ms = load_le<std::int64_t>(in + 20);
  return h;
}

std::uint32_t record_crc(const char* record, std::uint32_t length) {
  return crc32c(record + kRecordCrcStart, kRecordHeaderBytes - kRecordCrcStart + length);
}

void store_crc(char* record, std::uint32_t crc) { store_le(record + kRecordCrcOffset, crc); }

std::string seq_digits(std::uint64_t seq) {
  char buf[kDigits + 1];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(seq));
  return buf;
}

std::optional<SegmentFile> parse_segment_name(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  if (ext != kSegmentExt && ext != kCompactedExt) return std::nullopt;
  const auto seq = parse_digits(path.stem().string());
  if (!seq || *seq == 0) return std::nullopt;
  return SegmentFile{*seq, ext == kCompactedExt, path};
}

std::optional<std::uint64_t> parse_snapshot_name(const std::filesystem::path& path) {
  if (path.extension().string() != kSnapshotExt) return std::nullopt;
  return parse_digits(path.stem().string());
}

std::string segment_name(std::uint64_t first_seq, bool compacted) {
  return seq_digits(first_seq) + std::string(compacted ? kCompactedExt : kSegmentExt);
}

std::string snapshot_name(std::uint64_t seq) { return seq_digits(seq) + std::string(kSnapshotExt); }

namespace {

template <typename Visit>
void for_each_entry(const std::filesystem::path& dir, Visit visit) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) throw JournalError("cannot list " + dir.string() + ": " + ec.message());
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    visit(it->path());
  }
  if (ec) throw JournalError("cannot list " + dir.string() + ": " + ec.message());
}

}  // namespace

JournalListing list_journal(const std::filesystem::path& journal_dir) {
  JournalListing out;
  for_each_entry(journal_dir, [&](const std::filesystem::path& p) {
    if (p.extension().string() == kTempExt) {
      out.temporary.push_back(p);
    } else if (auto seg = parse_segment_name(p)) {
      out.segments.push_back(std::move(*seg));
    }
  });
  std::sort(out.segments.begin(), out.segments.end(), [](const auto& a, const auto& b) {
    return a.first_seq != b.first_seq ? a.first_seq < b.first_seq : a.compacted < b.compacted;
  });
  return out;
}

std::vector<SnapshotFile> list_snapshots(const std::filesystem::path& snapshot_dir,
                                         std::vector<std::filesystem::path>* temporary) {
  std::vector<SnapshotFile> out;
  for_each_entry(snapshot_dir, [&](const std::filesystem::path& p) {
    if (p.extension().string() == kTempExt) {
      if (temporary != nullptr) temporary->push_back(p);
    } else if (auto seq = parse_snapshot_name(p)) {
      out.push_back({*seq, p});
    }
  });
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.seq > b.seq; });
  return out;
}

ChunkReader::ChunkReader(int fd, const std::filesystem::path& path, std::uint64_t size)
    : fd_(fd), path_(path), size_(size) {}

const char* ChunkReader::view(std::uint64_t offset, std::size_t n) {
  if (offset > size_ || n > size_ - offset) return nullptr;
  if (offset >= buffer_offset_ && offset + n <= buffer_offset_ + buffer_bytes_) {
    return buffer_.get() + (offset - buffer_offset_);
  }
  // Refill from `offset`: sequential scans re-read at most the one record that straddled
  // the end of the previous window.
  const std::size_t want =
      static_cast<std::size_t>(std::min<std::uint64_t>(std::max(n, kChunkBytes), size_ - offset));
  if (want > capacity_) {
    buffer_.reset(new char[want]);
    capacity_ = want;
  }
  buffer_offset_ = offset;
  buffer_bytes_ = read_at(fd_, buffer_.get(), want, offset, path_);
  if (buffer_bytes_ < n) {
    buffer_bytes_ = 0;
    throw JournalError(path_.string() + " became shorter while being read (at offset " +
                       std::to_string(offset) + ")");
  }
  return buffer_.get();
}

SegmentScan scan_segment(int fd, const std::filesystem::path& path, std::uint64_t size,
                         const SeqRule& rule, bool look_past_damage, const RecordVisitor* visit) {
  SegmentScan r;
  r.file_bytes = size;
  ChunkReader in(fd, path, size);
  std::uint64_t offset = 0;
  std::uint64_t last = rule.contiguous ? std::max(rule.after, rule.first - 1) : rule.after;
  const auto damage = [&](std::string what) {
    r.damaged = true;
    r.damage_offset = offset;
    r.damage_seq = rule.contiguous ? rule.first + r.records : 0;
    r.damage = std::move(what);
  };
  while (offset < size) {
    const std::uint64_t left = size - offset;
    if (left < kRecordHeaderBytes) {
      damage("short record header (" + std::to_string(left) + " bytes)");
      break;
    }
    const RecordHeader h = decode_header(in.view(offset, kRecordHeaderBytes));
    if (h.length > kMaxPayloadBytes || record_bytes(h.length) > left) {
      damage("record length " + std::to_string(h.length) + " runs past the end of the file");
      break;
    }
    const char* p = in.view(offset, static_cast<std::size_t>(record_bytes(h.length)));
    const std::uint32_t crc = record_crc(p, h.length);
    if (crc != h.crc) {
      damage("checksum mismatch (stored " + hex32(h.crc) + ", computed " + hex32(crc) + ")");
      break;
    }
    const bool in_order = rule.contiguous ? h.seq == rule.first + r.records
                                          : h.seq > last && h.seq >= rule.first &&
                                                (rule.before == 0 || h.seq < rule.before);
    if (!in_order) {
      damage("sequence number " + std::to_string(h.seq) +
             (rule.contiguous ? " where " + std::to_string(rule.first + r.records) + " was expected"
                              : " out of order or outside the segment's range"));
      // The record itself is intact, so this is never a torn tail.
      r.valid_after = true;
      r.valid_after_offset = offset;
      r.valid_after_seq = h.seq;
      break;
    }
    if (visit != nullptr) {
      (*visit)(h, std::string_view(p + kRecordHeaderBytes, h.length));
    }
    if (r.records++ == 0) r.first_seq = h.seq;
    r.last_seq = last = h.seq;
    offset += record_bytes(h.length);
    r.valid_bytes = offset;
  }
  if (r.damaged && !r.valid_after && look_past_damage) {
    r.zero_tail = all_zero(in, r.damage_offset, size);
    if (!r.zero_tail) {
      for (std::uint64_t at = r.damage_offset + 8; at < size; at += 8) {
        RecordHeader h;
        if (well_formed_at(in, at, size, last, &h)) {
          r.valid_after = true;
          r.valid_after_offset = at;
          r.valid_after_seq = h.seq;
          break;
        }
      }
    }
  }
  return r;
}

namespace {
constexpr char kSnapshotMagic[8] = {'V', 'I', 'S', 'I', 'T', 'D', 'S', 'N'};
constexpr std::uint32_t kSnapshotFormat = 1;
}  // namespace

std::string encode_snapshot_header(std::uint64_t seq, std::string_view bytes) {
  std::string h(kSnapshotHeaderBytes, '\0');
  std::memcpy(h.data(), kSnapshotMagic, sizeof kSnapshotMagic);
  store_le(h.data() + 8, kSnapshotFormat);
  store_le(h.data() + 12, std::uint32_t{0});
  store_le(h.data() + 16, seq);
  store_le(h.data() + 24, static_cast<std::uint64_t>(bytes.size()));
  store_le(h.data() + 32, crc32c(bytes));
  store_le(h.data() + 36, crc32c(h.data(), 36));
  return h;
}

std::optional<std::string> read_snapshot(const std::filesystem::path& path,
                                         std::uint64_t expected_seq, std::string* problem) {
  const auto fail = [&](std::string what) -> std::optional<std::string> {
    if (problem != nullptr) *problem = std::move(what);
    return std::nullopt;
  };
  try {
    File f = open_file(path, O_RDONLY);
    const std::uint64_t size = file_size(f.get(), path);
    if (size < kSnapshotHeaderBytes) return fail("shorter than its header");
    char h[kSnapshotHeaderBytes];
    if (read_at(f.get(), h, sizeof h, 0, path) != sizeof h) return fail("shorter than its header");
    if (std::memcmp(h, kSnapshotMagic, sizeof kSnapshotMagic) != 0) return fail("not a snapshot");
    if (load_le<std::uint32_t>(h + 36) != crc32c(h, 36)) return fail("header checksum mismatch");
    if (load_le<std::uint32_t>(h + 8) != kSnapshotFormat) {
      return fail("unknown snapshot format " + std::to_string(load_le<std::uint32_t>(h + 8)));
    }
    if (load_le<std::uint64_t>(h + 16) != expected_seq) return fail("sequence differs from name");
    const std::uint64_t length = load_le<std::uint64_t>(h + 24);
    if (length != size - kSnapshotHeaderBytes) {
      return fail("length " + std::to_string(length) + " but the file holds " +
                  std::to_string(size - kSnapshotHeaderBytes) + " bytes");
    }
    std::string bytes(static_cast<std::size_t>(length), '\0');
    if (read_at(f.get(), bytes.data(), bytes.size(), kSnapshotHeaderBytes, path) != length) {
      return fail("became shorter while being read");
    }
    if (crc32c(bytes) != load_le<std::uint32_t>(h + 32)) return fail("checksum mismatch");
    return bytes;
  } catch (const JournalError& e) {
    return fail(e.what());
  }
}

}  // namespace visitd::store::detail
