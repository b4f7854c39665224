#pragma once
// Helpers shared by the store tests: a temporary directory that cleans up after itself, and
// small readers for journal files.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "visitd/store/journal.hpp"

namespace visitd::store::test {

namespace fs = std::filesystem;

/// A fresh directory under the system's temp directory, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static std::atomic<unsigned> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() / ("visitd-" + tag + "-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter++) + "-" + std::to_string(stamp));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline TimePoint at_ms(std::int64_t ms) { return TimePoint(Duration(ms)); }

/// Options for tests: no real fdatasync (tests that care use sync_hook), short batches.
inline JournalOptions test_options(const fs::path& dir) {
  JournalOptions o;
  o.dir = dir;
  o.fsync = false;
  o.group_delay = std::chrono::microseconds(200);
  return o;
}

inline std::vector<Record> read_all(const Journal& journal, std::uint64_t from = 1) {
  std::vector<Record> out;
  journal.replay(from, [&](const Record& r) { out.push_back(r); });
  return out;
}

/// The segment files of a data directory, in name order.
inline std::vector<fs::path> segment_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir / "journal")) {
    const auto ext = e.path().extension();
    if (ext == ".seg" || ext == ".cseg") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline bool same_record(const Record& a, const Record& b) {
  return a.seq == b.seq && a.type == b.type && a.version == b.version && a.time == b.time &&
         a.payload == b.payload;
}

}  // namespace visitd::store::test
