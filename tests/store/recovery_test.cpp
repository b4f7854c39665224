#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "store_test_util.hpp"
#include "visitd/store/journal.hpp"

using namespace visitd;
using namespace visitd::store;
using namespace visitd::store::test;

namespace {

constexpr std::size_t kHeader = 28;
constexpr std::size_t record_bytes(std::size_t payload) { return (kHeader + payload + 7) & ~7u; }

struct SegmentCopy {
  std::string name;
  std::uint64_t first_seq = 0;
  std::string bytes;
  std::vector<std::size_t> offsets;  // where each record starts
  std::vector<std::size_t> payload_sizes;
};

/// A journal written through the API, kept in memory so that tests can damage copies of it.
struct Pristine {
  std::vector<Record> records;  // records[i].seq == i + 1
  std::vector<SegmentCopy> segments;
};

Pristine make_journal(std::size_t count, std::size_t segment_bytes, std::uint64_t seed) {
  TempDir dir("recovery-source");
  auto options = test_options(dir.path());
  options.segment_bytes = segment_bytes;
  Pristine p;
  std::mt19937_64 rng(seed);
  {
    auto journal = Journal::open(options);
    for (std::size_t i = 0; i < count; ++i) {
      Record r;
      r.type = rng() % 2 ? RecordType::command : RecordType::location;
      r.version = static_cast<std::uint8_t>(1 + rng() % 3);
      r.time = at_ms(static_cast<std::int64_t>(1'790'000'000'000 + i * 997));
      r.payload.resize(rng() % 120);
      for (auto& c : r.payload) c = static_cast<char>(rng());
      r.seq = journal->append(r.type, r.version, r.time, r.payload, nullptr);
      p.records.push_back(std::move(r));
    }
    journal->flush();
  }
  for (const auto& path : segment_files(dir.path())) {
    SegmentCopy s;
    s.name = path.filename().string();
    s.first_seq = std::stoull(path.stem().string());
    s.bytes = read_file(path);
    std::size_t offset = 0;
    for (std::uint64_t seq = s.first_seq; offset < s.bytes.size(); ++seq) {
      s.offsets.push_back(offset);
      s.payload_sizes.push_back(p.records[seq - 1].payload.size());
      offset += record_bytes(p.records[seq - 1].payload.size());
    }
    REQUIRE(offset == s.bytes.size());
    p.segments.push_back(std::move(s));
  }
  return p;
}

/// Makes `segments` the whole journal of data directory `dir`. Files are rewritten in place
/// rather than removed and created: on ext4 with online discard, freeing blocks costs
/// milliseconds, which thousands of trials would feel.
void install(const fs::path& dir, const std::vector<SegmentCopy>& segments) {
  const fs::path journal = dir / "journal";
  fs::create_directories(journal);
  std::vector<std::string> wanted;
  for (const auto& s : segments) wanted.push_back(s.name);
  for (const auto& e : fs::directory_iterator(journal)) {
    const auto name = e.path().filename().string();
    if (name != "LOCK" && std::find(wanted.begin(), wanted.end(), name) == wanted.end()) {
      fs::remove(e.path());
    }
  }
  if (fs::exists(dir / "salvaged")) {
    for (const auto& e : fs::directory_iterator(dir / "salvaged")) fs::remove(e.path());
  }
  for (const auto& s : segments) {
    const fs::path path = journal / s.name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, s.bytes.data(), s.bytes.size(), 0) ==
            static_cast<ssize_t>(s.bytes.size()));
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    if (static_cast<std::size_t>(st.st_size) != s.bytes.size()) {
      REQUIRE(::ftruncate(fd, static_cast<off_t>(s.bytes.size())) == 0);
    }
    ::close(fd);
  }
}

/// Opens, replays and closes; fails the test on any record that differs from the original.
std::vector<Record> open_and_read(const fs::path& dir, const Pristine& p, bool salvage,
                                  RecoveryReport* report) {
  auto options = test_options(dir);
  options.salvage = salvage;
  auto journal = Journal::open(options, report);
  const auto records = read_all(*journal);
  for (std::size_t i = 0; i < records.size(); ++i) {
    REQUIRE(i < p.records.size());
    REQUIRE(same_record(records[i], p.records[i]));
  }
  return records;
}

std::uint64_t test_seed() {
  if (const char* env = std::getenv("VISITD_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

}  // namespace

TEST_CASE("Cutting the last segment at every byte of its last records keeps the prefix") {
  const Pristine p = make_journal(40, 2048, 1);
  REQUIRE(p.segments.size() >= 2);
  const SegmentCopy& last = p.segments.back();
  REQUIRE(last.offsets.size() >= 6);
  const std::size_t from = last.offsets[last.offsets.size() - 6];
  TempDir dir("recovery-cut");
  const fs::path data = dir.path() / "data";
  const fs::path last_path = data / "journal" / last.name;

  for (std::size_t cut = from; cut <= last.bytes.size(); ++cut) {
    INFO("cut at byte " << cut << " of " << last.bytes.size());
    auto segments = p.segments;
    segments.back().bytes.resize(cut);
    install(data, segments);

    // The records that end (padding included) at or before the cut survive.
    std::size_t whole = 0;
    while (whole < last.offsets.size() &&
           last.offsets[whole] + record_bytes(last.payload_sizes[whole]) <= cut) {
      ++whole;
    }
    const std::size_t good_end =
        whole == 0 ? 0 : last.offsets[whole - 1] + record_bytes(last.payload_sizes[whole - 1]);
    const std::uint64_t last_good = last.first_seq - 1 + whole;

    RecoveryReport report;
    const auto records = open_and_read(data, p, false, &report);
    REQUIRE(records.size() == last_good);
    CHECK(report.last_seq == last_good);
    CHECK(report.records == last_good);
    CHECK(report.truncated_bytes == cut - good_end);
    if (cut != good_end) {
      CHECK(report.truncated_after_seq == last_good);
      CHECK(report.notes.size() == 1);
    } else {
      CHECK(report.notes.empty());
    }
    CHECK(fs::file_size(last_path) == good_end);

    // The journal carries on from there, and opens cleanly afterwards.
    {
      auto journal = Journal::open(test_options(data));
      REQUIRE(journal->append(RecordType::command, 1, at_ms(0), "after", nullptr) == last_good + 1);
    }
    RecoveryReport again;
    auto journal = Journal::open(test_options(data), &again);
    CHECK(again.truncated_bytes == 0);
    CHECK(again.last_seq == last_good + 1);
  }
}

TEST_CASE("A zero-filled or garbage tail is truncated") {
  const Pristine p = make_journal(20, 1 << 20, 2);
  TempDir dir("recovery-tail");
  auto segments = p.segments;
  std::string tail;
  SECTION("zeros") { tail.assign(4096, '\0'); }
  SECTION("garbage") {
    std::mt19937 rng(3);
    for (int i = 0; i < 4096; ++i) tail.push_back(static_cast<char>(rng()));
  }
  SECTION("a header claiming an absurd length") {
    tail.assign(64, '\0');
    tail[0] = tail[1] = tail[2] = '\xff';
    tail[3] = '\x7f';
    tail[12] = 21;  // seq 21
  }
  segments.back().bytes += tail;
  install(dir.path(), segments);
  RecoveryReport report;
  const auto records = open_and_read(dir.path(), p, false, &report);
  CHECK(records.size() == 20);
  CHECK(report.truncated_bytes == tail.size());
  CHECK(report.truncated_after_seq == 20);
  REQUIRE(report.notes.size() == 1);
  INFO(report.notes[0]);
  CHECK(report.notes[0].find(p.segments.back().name) != std::string::npos);
}

TEST_CASE("Damage before intact records refuses to start unless salvaging") {
  const Pristine p = make_journal(30, 1024, 4);
  REQUIRE(p.segments.size() >= 3);
  TempDir dir("recovery-midlog");
  auto segments = p.segments;
  std::uint64_t keep = 0;      // records salvage keeps
  std::string message_part;    // something the refusal must mention
  bool removes_later = false;  // salvage moves later segments away

  SECTION("a flipped bit in the middle of the last segment") {
    auto& s = segments.back();
    s.bytes[s.offsets[2] + kHeader] ^= 0x04;
    keep = s.first_seq + 1;
    message_part = s.name + " at offset " + std::to_string(s.offsets[2]);
  }
  SECTION("a record missing from the middle of a segment (a sequence gap)") {
    auto& s = segments.back();
    s.bytes.erase(s.offsets[1], s.offsets[2] - s.offsets[1]);
    keep = s.first_seq;
    message_part = "sequence number " + std::to_string(s.first_seq + 2) + " where " +
                   std::to_string(s.first_seq + 1) + " was expected";
  }
  SECTION("a torn record at the end of a segment that is not the last") {
    auto& s = segments[1];
    s.bytes.resize(s.bytes.size() - 3);
    keep = segments[2].first_seq - 2;
    message_part = s.name;
    removes_later = true;
  }
  SECTION("a missing segment") {
    segments.erase(segments.begin() + 1);
    keep = p.segments[1].first_seq - 1;
    message_part = "but the one before ends at seq " + std::to_string(keep);
    removes_later = true;
  }
  SECTION("a missing first segment") {
    segments.erase(segments.begin());
    keep = 0;
    message_part = "earlier segments are missing";
    removes_later = true;
  }
  install(dir.path(), segments);
  {
    RecoveryReport report;
    try {
      Journal::open(test_options(dir.path()), &report);
      FAIL("opened a journal with mid-log damage");
    } catch (const JournalError& e) {
      const std::string what = e.what();
      INFO(what);
      CHECK(what.find(message_part) != std::string::npos);
      CHECK(what.find("seq " + std::to_string(keep + 1)) != std::string::npos);
      CHECK(what.find("--salvage") != std::string::npos);
    }
  }
  // Refusing changed nothing.
  for (const auto& s : segments) CHECK(read_file(dir.path() / "journal" / s.name) == s.bytes);

  RecoveryReport report;
  const auto records = open_and_read(dir.path(), p, true, &report);
  CHECK(records.size() == keep);
  CHECK(report.last_seq == keep);
  CHECK(report.salvaged_dropped_bytes > 0);
  REQUIRE(report.notes.size() == 1);
  CHECK(report.notes[0].find("salvage") != std::string::npos);
  CHECK(fs::is_directory(dir.path() / "salvaged"));
  CHECK_FALSE(fs::is_empty(dir.path() / "salvaged"));
  if (removes_later) CHECK(segment_files(dir.path()).size() <= 2);

  // Afterwards the journal opens without salvage and continues after what was kept.
  {
    auto journal = Journal::open(test_options(dir.path()));
    CHECK(journal->append(RecordType::command, 1, at_ms(0), "next", nullptr) == keep + 1);
  }
  auto journal = Journal::open(test_options(dir.path()));
  CHECK(journal->last_seq() == keep + 1);
  CHECK(read_all(*journal).size() == keep + 1);
}

TEST_CASE("Damage inside a compacted segment refuses to start") {
  TempDir dir("recovery-compacted");
  auto options = test_options(dir.path());
  options.segment_bytes = 1024;
  {
    auto journal = Journal::open(options);
    for (int i = 1; i <= 30; ++i) {
      journal->append(i % 2 ? RecordType::location : RecordType::command, 1, at_ms(i),
                      std::string(100, 'c'), nullptr);
    }
    journal->flush();
    journal->write_snapshot(30, "s");
    REQUIRE(journal->compact(at_ms(1000)) > 0);
  }
  const fs::path compacted = dir.path() / "journal" / "00000000000000000001.cseg";
  REQUIRE(fs::exists(compacted));
  std::string bytes = read_file(compacted);
  SECTION("a flipped bit") { bytes[40] ^= 1; }
  SECTION("a torn end, which cannot be an unfinished write in a compacted file") {
    bytes.resize(bytes.size() - 1);
  }
  write_file(compacted, bytes);
  CHECK_THROWS_AS(Journal::open(options), JournalError);
  options.salvage = true;
  CHECK_NOTHROW(Journal::open(options));
}

TEST_CASE("A damaged tail that a snapshot covers is damage, not an unfinished write") {
  TempDir dir("recovery-snapshot-ahead");
  auto options = test_options(dir.path());
  {
    auto journal = Journal::open(options);
    for (int i = 1; i <= 10; ++i) journal->append(RecordType::command, 1, at_ms(i), "r", nullptr);
    journal->flush();
    journal->write_snapshot(10, "state at 10");
  }
  const fs::path seg = dir.path() / "journal" / "00000000000000000001.seg";
  fs::resize_file(seg, fs::file_size(seg) - 5);  // record 10 was durable: the disk lost it
  try {
    Journal::open(options);
    FAIL("opened a journal that lost durable records");
  } catch (const JournalError& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("covered by snapshot 10") != std::string::npos);
  }

  options.salvage = true;
  RecoveryReport report;
  {
    auto journal = Journal::open(options, &report);
    CHECK(report.last_seq == 9);
    CHECK(journal->last_seq() == 10);  // continues after the snapshot, never reusing seq 10
    CHECK(journal->latest_snapshot()->seq == 10);
    CHECK(journal->append(RecordType::command, 1, at_ms(11), "after", nullptr) == 11);
  }
  options.salvage = false;
  auto journal = Journal::open(options, &report);
  CHECK(report.notes.empty());
  std::vector<std::uint64_t> seqs;
  journal->replay(1, [&](const Record& r) { seqs.push_back(r.seq); });
  CHECK(seqs == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 11});
  CHECK(journal->append(RecordType::command, 1, at_ms(12), "more", nullptr) == 12);
}

TEST_CASE("Random bit flips never yield a record that differs from what was written") {
  const std::uint64_t seed = test_seed();
  std::fprintf(stderr, "bit flips: seed %llu (set VISITD_SEED to replay)\n",
               static_cast<unsigned long long>(seed));
  INFO("seed " << seed << " (set VISITD_SEED to replay)");
  std::mt19937_64 rng(seed);
  const Pristine p = make_journal(24, 1024, seed);
  REQUIRE(p.segments.size() >= 2);
  std::size_t total_bits = 0;
  for (const auto& s : p.segments) total_bits += s.bytes.size() * 8;

  TempDir dir("recovery-flips");
  const fs::path data = dir.path() / "data";
  int torn = 0, refused = 0, harmless = 0;
  for (int trial = 0; trial < 10000; ++trial) {
    std::size_t bit = rng() % total_bits;
    std::size_t k = 0;
    while (bit >= p.segments[k].bytes.size() * 8) bit -= p.segments[k++].bytes.size() * 8;
    const SegmentCopy& hit = p.segments[k];
    const std::size_t byte = bit / 8;
    auto segments = p.segments;
    segments[k].bytes[byte] ^= static_cast<char>(1u << (bit % 8));

    // Which record the flip landed in, and whether in its padding (which nothing reads).
    std::size_t r = 0;
    while (r + 1 < hit.offsets.size() && hit.offsets[r + 1] <= byte) ++r;
    const bool in_padding = byte >= hit.offsets[r] + kHeader + hit.payload_sizes[r];
    const std::uint64_t seq = hit.first_seq + r;
    const bool tail = k + 1 == p.segments.size() && r + 1 == hit.offsets.size();
    INFO("trial " << trial << ": bit " << bit % 8 << " of byte " << byte << " of " << hit.name
                  << " (seq " << seq << (in_padding ? ", padding" : "") << ")");

    install(data, segments);
    RecoveryReport report;
    if (in_padding) {
      REQUIRE(open_and_read(data, p, false, &report).size() == p.records.size());
      ++harmless;
      continue;
    }
    if (tail) {
      REQUIRE(open_and_read(data, p, false, &report).size() == seq - 1);
      REQUIRE(report.truncated_after_seq == seq - 1);
      REQUIRE(report.truncated_bytes == hit.bytes.size() - hit.offsets[r]);
      ++torn;
      continue;
    }
    REQUIRE_THROWS_AS(open_and_read(data, p, false, &report), JournalError);
    ++refused;
    install(data, segments);
    REQUIRE(open_and_read(data, p, true, &report).size() == seq - 1);
    REQUIRE(report.salvaged_dropped_bytes > 0);
  }
  CHECK(torn > 0);
  CHECK(refused > 0);
  CHECK(harmless > 0);
}
