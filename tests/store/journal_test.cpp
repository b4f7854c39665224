#include "visitd/store/journal.hpp"

#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "store_test_util.hpp"
#include "visitd/store/crc32c.hpp"

using namespace visitd;
using namespace visitd::store;
using namespace visitd::store::test;

namespace {

// Bit-at-a-time CRC-32C, straight from the definition, to check the fast paths against.
std::uint32_t crc32c_reference(std::string_view bytes) {
  std::uint32_t crc = 0xFFFFFFFF;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78 : 0);
  }
  return ~crc;
}

std::string seg_name(std::uint64_t first, bool compacted = false) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(first));
  return std::string(buf) + (compacted ? ".cseg" : ".seg");
}

std::string bytes_of(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s.push_back(static_cast<char>(v));
  return s;
}

}  // namespace

TEST_CASE("crc32c gives the standard check value and the RFC 3720 test vectors") {
  struct Vector {
    const char* name;
    std::string bytes;
    std::uint32_t crc;
  };
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  const std::vector<Vector> vectors = {
      {"check value", "123456789", 0xE3069283},
      {"32 zero bytes", std::string(32, '\0'), 0x8A9136AA},
      {"32 0xff bytes", std::string(32, '\xff'), 0x62A8AB43},
      {"32 ascending bytes", ascending, 0x46DD794E},
      {"32 descending bytes", descending, 0x113FDB5C},
      {"iSCSI read command PDU",
       bytes_of({0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}),
       0xD9963A56},
      {"empty", "", 0},
  };
  for (const auto& v : vectors) {
    INFO(v.name);
    CHECK(crc32c(v.bytes) == v.crc);
    CHECK(detail::crc32c_portable(v.bytes.data(), v.bytes.size()) == v.crc);
    CHECK(crc32c_reference(v.bytes) == v.crc);
  }
  INFO("hardware crc32 instruction in use: " << detail::crc32c_hardware());

  // Both paths, every length and alignment up to 100 bytes, and continuation.
  std::mt19937_64 rng(42);
  std::string data(4096 + 64, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t n = 0; n <= 100; ++n) {
      const std::string_view s(data.data() + offset, n);
      REQUIRE(crc32c(s) == crc32c_reference(s));
      REQUIRE(detail::crc32c_portable(s.data(), s.size()) == crc32c_reference(s));
    }
  }
  const std::string_view all(data);
  REQUIRE(crc32c(all) == crc32c_reference(all));
  REQUIRE(crc32c(all.substr(1000), crc32c(all.substr(0, 1000))) == crc32c(all));
}

TEST_CASE("Records are replayed with their types, versions, times and payloads") {
  TempDir dir("journal-roundtrip");
  std::vector<Record> written;
  std::mt19937_64 rng(7);
  const auto make = [&](std::uint64_t i) {
    Record r;
    r.type = i % 3 == 0 ? RecordType::location : RecordType::command;
    r.version = static_cast<std::uint8_t>(1 + i % 4);
    r.time = at_ms(1'790'000'000'000 + static_cast<std::int64_t>(i) * 1000 - 500);
    std::size_t size = i % 7 == 0 ? 0 : static_cast<std::size_t>(rng() % 300);
    if (i == 20) size = 1 << 20;  // a large one
    r.payload.resize(size);
    for (auto& c : r.payload) c = static_cast<char>(rng());
    return r;
  };
  {
    RecoveryReport report;
    auto journal = Journal::open(test_options(dir.path()), &report);
    CHECK(report.records == 0);
    CHECK(report.last_seq == 0);
    CHECK(report.notes.empty());
    for (std::uint64_t i = 0; i < 50; ++i) {
      Record r = make(i);
      r.seq = journal->append(r.type, r.version, r.time, r.payload, nullptr);
      REQUIRE(r.seq == i + 1);
      written.push_back(std::move(r));
    }
    journal->flush();
    CHECK(journal->durable_seq() == 50);
    const auto replayed = read_all(*journal);
    REQUIRE(replayed.size() == written.size());
    for (std::size_t i = 0; i < written.size(); ++i) REQUIRE(same_record(replayed[i], written[i]));
  }
  SECTION("and again after reopening") {
    RecoveryReport report;
    auto journal = Journal::open(test_options(dir.path()), &report);
    CHECK(report.records == 50);
    CHECK(report.first_seq == 1);
    CHECK(report.last_seq == 50);
    CHECK(report.truncated_bytes == 0);
    const auto replayed = read_all(*journal);
    REQUIRE(replayed.size() == written.size());
    for (std::size_t i = 0; i < written.size(); ++i) REQUIRE(same_record(replayed[i], written[i]));
  }
  SECTION("from a given sequence number") {
    auto journal = Journal::open(test_options(dir.path()));
    const auto tail = read_all(*journal, 31);
    REQUIRE(tail.size() == 20);
    CHECK(same_record(tail.front(), written[30]));
    CHECK(read_all(*journal, 51).empty());
  }
}

TEST_CASE("A record is reported durable only after its batch was synced, in sequence order") {
  TempDir dir("journal-durable");
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool gate_open = false;
  std::atomic<int> syncs{0};
  auto options = test_options(dir.path());
  options.sync_hook = [&](int) {
    std::unique_lock lk(gate_mu);
    gate_cv.wait(lk, [&] { return gate_open; });
    ++syncs;
    return 0;
  };
  auto journal = Journal::open(options);

  std::mutex seen_mu;
  std::vector<std::uint64_t> seen;
  std::vector<int> syncs_seen;
  std::vector<std::error_code> errors;
  const auto on_durable = [&](std::uint64_t seq, std::error_code ec) {
    std::lock_guard lk(seen_mu);
    seen.push_back(seq);
    syncs_seen.push_back(syncs.load());
    errors.push_back(ec);
  };
  for (int i = 0; i < 20; ++i) journal->append(RecordType::command, 1, at_ms(i), "x", on_durable);

  // The flusher is now inside the sync: nothing may be reported durable yet.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  {
    std::lock_guard lk(seen_mu);
    CHECK(seen.empty());
  }
  CHECK(journal->durable_seq() == 0);
  for (int i = 20; i < 40; ++i) journal->append(RecordType::command, 1, at_ms(i), "y", on_durable);
  {
    std::lock_guard lk(gate_mu);
    gate_open = true;
  }
  gate_cv.notify_all();
  journal->flush();

  CHECK(journal->durable_seq() == 40);
  std::lock_guard lk(seen_mu);
  REQUIRE(seen.size() == 40);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i] == i + 1);
    CHECK(syncs_seen[i] >= 1);
    CHECK(!errors[i]);
  }
  // Records appended while the first sync was blocked needed a second sync.
  CHECK(syncs_seen.back() >= 2);
}

TEST_CASE("Segments roll over at segment_bytes and replay spans them") {
  TempDir dir("journal-segments");
  auto options = test_options(dir.path());
  options.segment_bytes = 1024;
  const std::string payload(100, 'p');  // 128 bytes per record: 8 per segment
  {
    auto journal = Journal::open(options);
    for (int i = 0; i < 100; ++i)
      journal->append(RecordType::command, 1, at_ms(i), payload, nullptr);
    // One record larger than a segment gets a segment of its own.
    journal->append(RecordType::command, 1, at_ms(100), std::string(3000, 'L'), nullptr);
    journal->append(RecordType::command, 1, at_ms(101), payload, nullptr);
    journal->flush();
  }
  const auto files = segment_files(dir.path());
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.filename().string());
  std::vector<std::string> expected;
  for (int first = 1; first <= 97; first += 8) expected.push_back(seg_name(first));
  expected.push_back(seg_name(101));
  expected.push_back(seg_name(102));
  CHECK(names == expected);
  for (std::size_t k = 0; k + 3 < files.size(); ++k) CHECK(fs::file_size(files[k]) == 1024);
  CHECK(fs::file_size(files[files.size() - 2]) > 1024);

  RecoveryReport report;
  auto journal = Journal::open(options, &report);
  CHECK(report.segments == 15);
  CHECK(report.records == 102);
  const auto all = read_all(*journal);
  REQUIRE(all.size() == 102);
  for (std::size_t i = 0; i < all.size(); ++i) REQUIRE(all[i].seq == i + 1);
  CHECK(all[100].payload == std::string(3000, 'L'));
  const auto from_50 = read_all(*journal, 50);
  REQUIRE(from_50.size() == 53);
  CHECK(from_50.front().seq == 50);
}

TEST_CASE("Reopening a journal continues its sequence") {
  TempDir dir("journal-reopen");
  {
    auto journal = Journal::open(test_options(dir.path()));
    for (int i = 0; i < 10; ++i) journal->append(RecordType::command, 1, at_ms(i), "a", nullptr);
  }  // the destructor flushes
  RecoveryReport report;
  auto journal = Journal::open(test_options(dir.path()), &report);
  CHECK(report.last_seq == 10);
  CHECK(journal->last_seq() == 10);
  CHECK(journal->durable_seq() == 10);
  CHECK(journal->append(RecordType::command, 1, at_ms(10), "b", nullptr) == 11);
  journal->flush();
  const auto all = read_all(*journal);
  REQUIRE(all.size() == 11);
  CHECK(all.back().payload == "b");
}

TEST_CASE("Concurrent appends get distinct, contiguous sequence numbers and are all durable") {
  TempDir dir("journal-threads");
  auto options = test_options(dir.path());
  options.segment_bytes = 64 << 10;
  auto journal = Journal::open(options);
  constexpr int kThreads = 8;
  constexpr int kEach = 2000;
  std::atomic<int> durable{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        journal->append(RecordType::command, 1, at_ms(i),
                        std::to_string(t) + ":" + std::to_string(i),
                        [&](std::uint64_t, std::error_code ec) {
                          ++durable;
                          if (ec) ++errors;
                        });
      }
    });
  }
  for (auto& t : threads) t.join();
  journal->flush();
  CHECK(durable == kThreads * kEach);
  CHECK(errors == 0);
  const auto all = read_all(*journal);
  REQUIRE(all.size() == kThreads * kEach);
  std::vector<int> next(kThreads, 0);
  for (std::size_t i = 0; i < all.size(); ++i) {
    REQUIRE(all[i].seq == i + 1);
    // Each thread's records appear in the order it appended them.
    const auto colon = all[i].payload.find(':');
    const int t = std::stoi(all[i].payload.substr(0, colon));
    REQUIRE(std::stoi(all[i].payload.substr(colon + 1)) == next[t]++);
  }
}

TEST_CASE("A failed fsync fails the journal and nothing is reported durable after it") {
  TempDir dir("journal-eio");
  std::atomic<int> sync_calls{0};
  std::atomic<bool> fail_now{false};
  auto options = test_options(dir.path());
  options.sync_hook = [&](int) {
    ++sync_calls;
    return fail_now ? EIO : 0;
  };
  auto journal = Journal::open(options);

  std::mutex mu;
  std::vector<std::pair<std::uint64_t, std::error_code>> results;
  const auto record = [&](std::uint64_t seq, std::error_code ec) {
    std::lock_guard lk(mu);
    results.emplace_back(seq, ec);
  };
  for (int i = 0; i < 5; ++i) journal->append(RecordType::command, 1, at_ms(i), "ok", record);
  journal->flush();
  CHECK(journal->durable_seq() == 5);
  CHECK_FALSE(journal->failed());

  fail_now = true;
  for (int i = 5; i < 10; ++i) journal->append(RecordType::command, 1, at_ms(i), "lost", record);
  journal->flush();  // returns although nothing could be made durable
  CHECK(journal->failed());
  CHECK(journal->failure() == std::errc::io_error);
  CHECK(journal->durable_seq() == 5);
  const int calls_at_failure = sync_calls;

  // Afterwards: refused at once, with the error, and never synced again.
  fail_now = false;
  CHECK(journal->append(RecordType::command, 1, at_ms(10), "late", record) == 0);
  journal->flush();
  for (int i = 0; i < 200 &&
                  [&] {
                    std::lock_guard lk(mu);
                    return results.size() < 11;
                  }();
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(sync_calls == calls_at_failure);
  CHECK(journal->durable_seq() == 5);

  std::lock_guard lk(mu);
  REQUIRE(results.size() == 11);
  for (int i = 0; i < 5; ++i) {
    CHECK(results[i].first == static_cast<std::uint64_t>(i + 1));
    CHECK_FALSE(results[i].second);
  }
  for (int i = 5; i < 10; ++i) {
    CHECK(results[i].first == static_cast<std::uint64_t>(i + 1));
    CHECK(results[i].second == std::errc::io_error);
  }
  CHECK(results[10].first == 0);
  CHECK(results[10].second == std::errc::io_error);
}

TEST_CASE("Snapshots are written atomically and the newest valid one is used") {
  TempDir dir("journal-snapshots");
  auto journal = Journal::open(test_options(dir.path()));
  CHECK_FALSE(journal->latest_snapshot());
  for (int i = 0; i < 10; ++i) journal->append(RecordType::command, 1, at_ms(i), "c", nullptr);
  // Not durable yet: refused, so a snapshot never holds what the journal could lose.
  CHECK_THROWS_AS(journal->write_snapshot(10, "too early"), JournalError);
  journal->flush();
  journal->write_snapshot(5, "state at 5");
  journal->write_snapshot(10, std::string(100000, 's'));

  auto latest = journal->latest_snapshot();
  REQUIRE(latest);
  CHECK(latest->seq == 10);
  CHECK(latest->bytes == std::string(100000, 's'));

  SECTION("a damaged newest snapshot is skipped") {
    const fs::path newest = dir.path() / "snapshots" / "00000000000000000010.snap";
    std::string bytes = read_file(newest);
    bytes[5000] ^= 0x10;
    write_file(newest, bytes);
    latest = journal->latest_snapshot();
    REQUIRE(latest);
    CHECK(latest->seq == 5);
    CHECK(latest->bytes == "state at 5");
  }
  SECTION("a truncated newest snapshot is skipped") {
    const fs::path newest = dir.path() / "snapshots" / "00000000000000000010.snap";
    fs::resize_file(newest, 30000);
    latest = journal->latest_snapshot();
    REQUIRE(latest);
    CHECK(latest->seq == 5);
  }
  SECTION("an unfinished temporary file is ignored and removed at open") {
    write_file(dir.path() / "snapshots" / "00000000000000000011.snap.tmp", "half");
    CHECK(journal->latest_snapshot()->seq == 10);
    journal.reset();
    journal = Journal::open(test_options(dir.path()));
    CHECK_FALSE(fs::exists(dir.path() / "snapshots" / "00000000000000000011.snap.tmp"));
  }
}

TEST_CASE("Compaction drops old location records and keeps every command") {
  TempDir dir("journal-compact");
  auto options = test_options(dir.path());
  options.segment_bytes = 1024;  // 128-byte records: 8 per segment
  const std::int64_t minute = 60'000;
  const std::string payload(100, 'q');
  // 80 records, one a minute; odd seqs are location fixes.
  const auto type_of = [](std::uint64_t seq) {
    return seq % 2 == 1 ? RecordType::location : RecordType::command;
  };
  {
    auto journal = Journal::open(options);
    for (std::uint64_t seq = 1; seq <= 80; ++seq) {
      journal->append(type_of(seq), 1, at_ms(static_cast<std::int64_t>(seq) * minute), payload,
                      nullptr);
    }
    journal->flush();
    journal->write_snapshot(10, "old");
    journal->write_snapshot(20, "older than newest");
    journal->write_snapshot(44, "newest");
    // The snapshot at 44 covers segments 1-8, 9-16, ..., 33-40 (41-48 is not whole).
    // Drop fixes before minute 30: seqs 1, 3, ..., 29 (15 records).
    CHECK(journal->compact(at_ms(30 * minute)) == 15);
    // Compacting again with the same cutoff finds nothing more.
    CHECK(journal->compact(at_ms(30 * minute)) == 0);

    const auto all = read_all(*journal);
    std::vector<std::uint64_t> seqs;
    for (const auto& r : all) {
      seqs.push_back(r.seq);
      CHECK(r.payload == payload);
      CHECK(r.type == type_of(r.seq));
    }
    std::vector<std::uint64_t> expected;
    for (std::uint64_t seq = 1; seq <= 80; ++seq) {
      if (seq < 30 && type_of(seq) == RecordType::location) continue;
      expected.push_back(seq);
    }
    CHECK(seqs == expected);
    CHECK(read_all(*journal, 20).front().seq == 20);

    // Segments 1..25 held the dropped fixes and are now compacted files.
    const auto files = segment_files(dir.path());
    std::vector<std::string> names;
    for (const auto& f : files) names.push_back(f.filename().string());
    CHECK(names[0] == seg_name(1, true));
    CHECK(names[3] == seg_name(25, true));
    CHECK(names[4] == seg_name(33));
    // Snapshots: only the newest two are kept.
    CHECK_FALSE(fs::exists(dir.path() / "snapshots" / "00000000000000000010.snap"));
    CHECK(fs::exists(dir.path() / "snapshots" / "00000000000000000020.snap"));
    CHECK(fs::exists(dir.path() / "snapshots" / "00000000000000000044.snap"));

    // Appending still works, and the journal still opens and replays.
    CHECK(journal->append(RecordType::command, 1, at_ms(81 * minute), payload, nullptr) == 81);
    journal->flush();
    expected.push_back(81);
  }
  RecoveryReport report;
  auto journal = Journal::open(options, &report);
  CHECK(report.last_seq == 81);
  CHECK(report.first_seq == 2);
  std::vector<std::uint64_t> seqs;
  journal->replay(1, [&](const Record& r) { seqs.push_back(r.seq); });
  std::vector<std::uint64_t> expected;
  for (std::uint64_t seq = 1; seq <= 81; ++seq) {
    if (seq < 30 && seq % 2 == 1) continue;
    expected.push_back(seq);
  }
  CHECK(seqs == expected);
  CHECK(journal->append(RecordType::command, 1, at_ms(0), "next", nullptr) == 82);

  SECTION("a later compaction with a later cutoff drops more") {
    journal->flush();
    journal->write_snapshot(82, "everything");
    // Now segments up to 73-80 are covered: fixes 31..79 before minute 100 are dropped.
    CHECK(journal->compact(at_ms(100 * minute)) == 25);
    journal.reset();
    journal = Journal::open(options);
    std::uint64_t commands = 0, locations = 0;
    journal->replay(
        1, [&](const Record& r) { (r.type == RecordType::command ? commands : locations)++; });
    CHECK(commands == 42);
    CHECK(locations == 0);
  }
}

TEST_CASE("An interrupted compaction is completed when the journal opens") {
  TempDir dir("journal-compact-crash");
  auto options = test_options(dir.path());
  options.segment_bytes = 1024;
  {
    auto journal = Journal::open(options);
    for (int i = 1; i <= 20; ++i) {
      journal->append(i % 2 ? RecordType::location : RecordType::command, 1, at_ms(i),
                      std::string(100, 'z'), nullptr);
    }
    journal->flush();
    journal->write_snapshot(20, "s");
  }
  // As if compaction had renamed its new file into place and stopped before removing the
  // old one, and another rewrite had left its temporary file.
  const fs::path journal_dir = dir.path() / "journal";
  {
    const std::string old = read_file(journal_dir / seg_name(1));
    auto journal = Journal::open(options);
    CHECK(journal->compact(at_ms(1000)) > 0);
    journal.reset();
    write_file(journal_dir / seg_name(1), old);
    write_file(journal_dir / (seg_name(1, true) + ".tmp"), "partial");
  }
  RecoveryReport report;
  auto journal = Journal::open(options, &report);
  CHECK_FALSE(fs::exists(journal_dir / seg_name(1)));
  CHECK_FALSE(fs::exists(journal_dir / (seg_name(1, true) + ".tmp")));
  CHECK(report.notes.size() == 2);
  // Segments 1-8 and 9-16 were compacted (fixes dropped); 17-20 was the open segment.
  std::vector<std::uint64_t> seqs;
  journal->replay(1, [&](const Record& r) { seqs.push_back(r.seq); });
  CHECK(seqs == std::vector<std::uint64_t>{2, 4, 6, 8, 10, 12, 14, 16, 17, 18, 19, 20});
}

TEST_CASE("inspect lists segments, record counts, sequence numbers, snapshots and damage") {
  TempDir dir("journal-inspect");
  auto options = test_options(dir.path());
  options.segment_bytes = 1024;
  {
    auto journal = Journal::open(options);
    for (int i = 0; i < 20; ++i) {
      journal->append(RecordType::command, 1, at_ms(i), std::string(100, 'i'), nullptr);
    }
    journal->flush();
    journal->write_snapshot(12, "snap");
  }
  std::string text = inspect(dir.path());
  INFO(text);
  CHECK(text.find("segment " + seg_name(1) + ": 1024 bytes, 8 records, seqs 1..8") !=
        std::string::npos);
  CHECK(text.find("segment " + seg_name(17) + ": 512 bytes, 4 records, seqs 17..20") !=
        std::string::npos);
  CHECK(text.find("snapshot 00000000000000000012.snap: seq 12") != std::string::npos);
  CHECK(text.find("valid") != std::string::npos);
  CHECK(text.find("total: 3 segments, 2560 bytes, 20 records, seqs 1..20") != std::string::npos);
  CHECK(text.find("status: ok") != std::string::npos);

  SECTION("a torn tail is shown and left alone") {
    const fs::path last = dir.path() / "journal" / seg_name(17);
    fs::resize_file(last, 500);
    text = inspect(dir.path());
    CHECK(text.find("torn tail: start-up would truncate 116 bytes after seq 19") !=
          std::string::npos);
    CHECK(text.find("status: torn tail") != std::string::npos);
    CHECK(fs::file_size(last) == 500);
  }
  SECTION("mid-log damage is shown") {
    const fs::path first = dir.path() / "journal" / seg_name(1);
    std::string bytes = read_file(first);
    bytes[200] ^= 1;
    write_file(first, bytes);
    text = inspect(dir.path());
    CHECK(text.find("DAMAGE at offset 128") != std::string::npos);
    CHECK(text.find("status: DAMAGED") != std::string::npos);
  }
  SECTION("a directory without a journal is an error") {
    TempDir empty("journal-inspect-empty");
    CHECK_THROWS_AS(inspect(empty.path()), JournalError);
  }
}

TEST_CASE("Only one Journal may use a directory at a time") {
  TempDir dir("journal-lock");
  auto first = Journal::open(test_options(dir.path()));
  CHECK_THROWS_AS(Journal::open(test_options(dir.path())), JournalError);
  first.reset();
  CHECK_NOTHROW(Journal::open(test_options(dir.path())));
}
