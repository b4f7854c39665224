// Journal benchmarks (issue 3): appends/s with group commit against the same with fsync off,
// for 1 and 64 writers that each wait for their record's durability before the next (like a
// phone waiting for its ack); replay speed from a warm page cache; open (recovery scan) speed.
//
//   journal_bench                      the Google Benchmark runs, then a summary vs targets
//   journal_bench --startup N          time open + newest snapshot + tail replay for a journal
//                                      of N records (default 10,000,000; needs ~N*232 bytes)
//   journal_bench --startup N FILE     the same with a real engine's snapshot (from
//                                      engine_bench --write-snapshot), restored as at start-up
//
// Journals are written under std::filesystem::temp_directory_path() (TMPDIR), which must be
// on the disk to be measured, and removed afterwards.

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>

#include "visitd/config/settings.hpp"
#include "visitd/store/engine_journal.hpp"
#include "visitd/store/journal.hpp"

namespace {

namespace fs = std::filesystem;
using visitd::TimePoint;
using visitd::store::Journal;
using visitd::store::JournalOptions;
using visitd::store::Record;
using visitd::store::RecordType;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPayloadBytes = 200;

fs::path fresh_dir(const std::string& tag) {
  static int counter = 0;
  const fs::path p =
      fs::temp_directory_path() / ("visitd-journal-bench-" + tag + "-" +
                                   std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(p);
  return p;
}

std::string payload(std::uint64_t i) {
  std::string p(kPayloadBytes, 'x');
  std::snprintf(p.data(), p.size(), "{\"event\":%llu,", static_cast<unsigned long long>(i));
  return p;
}

TimePoint some_time(std::uint64_t i) {
  return TimePoint(std::chrono::milliseconds(1'795'000'000'000 + static_cast<std::int64_t>(i)));
}

// What the summary prints, filled in by the last (reported) run of each benchmark.
struct AppendFigures {
  double records_per_second = 0;
  double records_per_sync = 0;
  double sync_us = 0;  // mean fdatasync latency
};
struct Summary {
  std::map<std::tuple<int, bool, std::int64_t>, AppendFigures> append;  // writers, durable, delay
  double replay_per_second = 0;
  std::uint64_t replay_records = 0;
  double open_per_second = 0;
};
Summary summary;

// --- appends -------------------------------------------------------------------------------

struct AppendRun {
  fs::path dir;
  std::unique_ptr<Journal> journal;
  std::unique_ptr<std::atomic<bool>[]> acked;  // one per writer; outlives the flusher
  std::atomic<std::uint64_t> syncs{0};
  std::atomic<std::uint64_t> sync_ns{0};  // time spent in fdatasync
  std::atomic<std::uint64_t> durable{0};
  Clock::time_point start;
};
AppendRun* append_run = nullptr;  // set up by thread 0 before the start barrier

// state.range(0): 1 = group commit with fdatasync, 0 = fsync off (same batching);
// state.range(1): group_delay in microseconds.
void BM_DurableAppend(benchmark::State& state) {
  const bool durable = state.range(0) == 1;
  const auto delay = std::chrono::microseconds(state.range(1));
  if (state.thread_index() == 0) {
    append_run = new AppendRun;
    append_run->dir = fresh_dir("append");
    append_run->acked = std::make_unique<std::atomic<bool>[]>(state.threads());
    JournalOptions options;
    options.dir = append_run->dir;
    options.fsync = durable;
    options.group_delay = delay;
    options.sync_hook = [durable, run = append_run](int fd) {
      ++run->syncs;
      if (!durable) return 0;
      const auto t0 = Clock::now();
      const int err = ::fdatasync(fd) == 0 ? 0 : errno;
      run->sync_ns += static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
      return err;
    };
    append_run->journal = Journal::open(options);
  }
  const std::string body = payload(static_cast<std::uint64_t>(state.thread_index()));
  std::uint64_t i = 0;
  for (auto _ : state) {
    AppendRun& run = *append_run;
    if (i == 0 && state.thread_index() == 0) run.start = Clock::now();
    std::atomic<bool>& acked = run.acked[state.thread_index()];
    acked.store(false, std::memory_order_relaxed);
    run.journal->append(RecordType::command, 1, some_time(i++), body,
                        [&acked, &run](std::uint64_t, std::error_code ec) {
                          if (ec) std::abort();
                          ++run.durable;
                          acked.store(true, std::memory_order_release);
                          acked.notify_one();
                        });
    acked.wait(false, std::memory_order_acquire);  // like a phone awaiting its ack
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    // Every thread has passed the end-of-loop barrier, so every record has been acked.
    AppendRun* run = append_run;
    const double seconds = std::chrono::duration<double>(Clock::now() - run->start).count();
    const double records = static_cast<double>(run->durable.load());
    const double per_sync =
        records / static_cast<double>(std::max<std::uint64_t>(1, run->syncs.load()));
    const double sync_us = static_cast<double>(run->sync_ns.load()) / 1e3 /
                           static_cast<double>(std::max<std::uint64_t>(1, run->syncs.load()));
    state.counters["records_per_sync"] = per_sync;
    state.counters["fdatasync_us"] = sync_us;
    summary.append[{state.threads(), durable, delay.count()}] = {records / seconds, per_sync,
                                                                 sync_us};
    run->journal.reset();
    fs::remove_all(run->dir);
    delete run;
    append_run = nullptr;
  }
}
constexpr std::int64_t kDefaultDelayUs = 1500;  // JournalOptions' default
BENCHMARK(BM_DurableAppend)
    ->ArgNames({"fsync", "delay_us"})
    ->Args({1, kDefaultDelayUs})
    ->Args({0, kDefaultDelayUs})
    ->Threads(1)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(2.0);
// The same at the top of the "1-2 ms" range, to show how the ratio depends on it.
BENCHMARK(BM_DurableAppend)
    ->ArgNames({"fsync", "delay_us"})
    ->Args({1, 2000})
    ->Args({0, 2000})
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(2.0);

// --- replay and open -----------------------------------------------------------------------

struct ReplaySource {
  fs::path dir;
  std::uint64_t records = 0;
  ~ReplaySource() { fs::remove_all(dir); }
};

const ReplaySource& replay_source(std::uint64_t records) {
  static std::map<std::uint64_t, std::unique_ptr<ReplaySource>> sources;
  auto& source = sources[records];
  if (!source) {
    source = std::make_unique<ReplaySource>();
    source->dir = fresh_dir("replay");
    source->records = records;
    JournalOptions options;
    options.dir = source->dir;
    options.fsync = false;
    auto journal = Journal::open(options);
    for (std::uint64_t i = 0; i < records; ++i) {
      journal->append(i % 3 ? RecordType::command : RecordType::location, 1, some_time(i),
                      payload(i), nullptr);
    }
    journal->flush();
  }
  return *source;
}

void BM_Replay(benchmark::State& state) {
  const auto& source = replay_source(static_cast<std::uint64_t>(state.range(0)));
  JournalOptions options;
  options.dir = source.dir;
  options.fsync = false;
  const auto journal = Journal::open(options);
  std::uint64_t bytes = 0;
  std::uint64_t seen = 0;
  for (auto _ : state) {
    journal->replay(1, [&](const Record& r) {
      bytes += r.payload.size();
      ++seen;
    });
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(static_cast<std::int64_t>(seen));
  summary.replay_records = source.records;
}

void BM_Open(benchmark::State& state) {
  const auto& source = replay_source(static_cast<std::uint64_t>(state.range(0)));
  JournalOptions options;
  options.dir = source.dir;
  options.fsync = false;
  for (auto _ : state) {
    auto journal = Journal::open(options);  // scans and checks every record
    benchmark::DoNotOptimize(journal.get());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * source.records));
}

// Google Benchmark computes the rates; this reporter keeps the ones the summary needs.
class Keeper : public benchmark::ConsoleReporter {
 public:
  Keeper() : ConsoleReporter(::isatty(STDOUT_FILENO) != 0 ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) continue;
      const auto rate = run.counters.find("items_per_second");
      if (rate == run.counters.end()) continue;
      const std::string name = run.benchmark_name();
      if (name.rfind("BM_Replay", 0) == 0) summary.replay_per_second = rate->second;
      if (name.rfind("BM_Open", 0) == 0) summary.open_per_second = rate->second;
    }
  }
};

BENCHMARK(BM_Replay)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Open)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime();

const char* verdict(bool ok) { return ok ? "met" : "NOT MET"; }

void print_summary() {
  std::printf("\nSummary (targets from issue 3)\n");
  for (const auto& [key, synced] : summary.append) {
    const auto [writers, durable, delay_us] = key;
    if (!durable) continue;
    const auto unsynced = summary.append.find({writers, false, delay_us});
    if (unsynced == summary.append.end()) continue;
    const double ratio = synced.records_per_second / unsynced->second.records_per_second;
    std::printf(
        "appends, %2d writer(s) awaiting acks, group_delay %lld us: group commit %.0f records/s "
        "(%.1f records/fdatasync, fdatasync %.0f us), fsync off %.0f records/s (%.1f "
        "records/batch); durable/unsynced %.2f",
        writers, static_cast<long long>(delay_us), synced.records_per_second,
        synced.records_per_sync, synced.sync_us, unsynced->second.records_per_second,
        unsynced->second.records_per_sync, ratio);
    if (writers == 64) std::printf("  target >= 0.80: %s", verdict(ratio >= 0.8));
    std::printf("\n");
  }
  if (summary.replay_per_second > 0) {
    std::printf("replay, %llu records of %zu bytes: %.0f records/s  target >= 500000: %s\n",
                static_cast<unsigned long long>(summary.replay_records), kPayloadBytes,
                summary.replay_per_second, verdict(summary.replay_per_second >= 500'000));
  }
  if (summary.open_per_second > 0) {
    std::printf("open (recovery scan, every record checked): %.0f records/s\n",
                summary.open_per_second);
  }
}

// --- start-up of a large journal -----------------------------------------------------------

/// `--startup N [SNAPSHOT]`: a journal of N records whose newest snapshot covers all but the
/// last 1%: by default 64 MiB of filler, which measures the journal's part alone; with
/// SNAPSHOT (a file from `engine_bench --write-snapshot`), a real engine's state, which is
/// then restored as the daemon's start-up does. The tail records are filler either way:
/// they are read and checked, not applied (the engine applies a 100,000-record tail in about
/// 0.15 s, engine section).
int startup(std::uint64_t records, const char* snapshot_file) {
  std::string state(64 << 20, 's');
  if (snapshot_file != nullptr) {
    std::ifstream in(snapshot_file, std::ios::binary);
    state.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::printf("cannot read %s\n", snapshot_file);
      return 1;
    }
  }
  const fs::path dir = fresh_dir("startup");
  std::printf("writing %llu records of %zu bytes to %s ...\n",
              static_cast<unsigned long long>(records), kPayloadBytes, dir.c_str());
  std::fflush(stdout);
  const std::uint64_t snapshot_at = records - records / 100;  // the last 1% is the tail
  {
    JournalOptions options;
    options.dir = dir;
    options.fsync = false;
    auto journal = Journal::open(options);
    for (std::uint64_t i = 0; i < records; ++i) {
      journal->append(i % 3 ? RecordType::command : RecordType::location, 1, some_time(i),
                      payload(i), nullptr);
      if (i + 1 == snapshot_at) {
        journal->flush();
        journal->write_snapshot(snapshot_at, state);
      }
    }
    journal->flush();
  }
  const std::size_t state_bytes = state.size();
  state = std::string();  // the timed part starts with a fresh process's memory, near enough
  std::uint64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(dir / "journal")) {
    if (e.is_regular_file()) bytes += e.file_size();
  }
  ::sync();  // so that the timed part does not compete with writeback
  const auto t0 = Clock::now();
  JournalOptions options;
  options.dir = dir;
  auto journal = Journal::open(options);
  const auto t1 = Clock::now();
  auto snapshot = journal->latest_snapshot();
  const auto t2 = Clock::now();
  // The snapshot carries its settings; these are only the fallback, and outlive the engine.
  const visitd::config::Settings fallback;
  visitd::store::RestoredSnapshot restored;  // kept until the end: its destruction is not timed
  if (snapshot_file != nullptr && snapshot) {
    restored = visitd::store::restore_snapshot(fallback, snapshot->bytes, snapshot->seq);
  }
  const std::size_t visits = restored.engine ? restored.engine->visit_count() : 0;
  const auto t3 = Clock::now();
  std::uint64_t tail = 0;
  journal->replay(snapshot ? snapshot->seq + 1 : 1, [&](const Record&) { ++tail; });
  const auto t4 = Clock::now();
  const auto s = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::printf(
      "start-up, %llu records (%.2f GB of segments), warm page cache: open %.2f s, newest "
      "snapshot (%.0f MiB, seq %llu) %.2f s, engine restored from it (%zu visits) %.2f s, tail "
      "of %llu records read %.3f s; total %.2f s  target < 5 s: %s\n",
      static_cast<unsigned long long>(records), static_cast<double>(bytes) / 1e9, s(t0, t1),
      static_cast<double>(state_bytes) / (1 << 20),
      static_cast<unsigned long long>(snapshot ? snapshot->seq : 0), s(t1, t2), visits, s(t2, t3),
      static_cast<unsigned long long>(tail), s(t3, t4), s(t0, t4), verdict(s(t0, t4) < 5.0));
  journal.reset();
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--startup") {
    return startup(argc >= 3 ? std::strtoull(argv[2], nullptr, 10) : 10'000'000,
                   argc >= 4 ? argv[3] : nullptr);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Keeper keeper;
  benchmark::RunSpecifiedBenchmarks(&keeper);
  benchmark::Shutdown();
  print_summary();
  return 0;
}
