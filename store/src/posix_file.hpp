#pragma once
// Thin RAII and error helpers over the POSIX calls the journal needs (open, pread, pwrite,
// fsync of files and directories). Errors become JournalError with the path and errno text,
// or an errno value where the caller decides (the flusher turns those into a failed journal).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace visitd::store::detail {

/// An owned file descriptor.
class File {
 public:
  File() = default;
  explicit File(int fd) : fd_(fd) {}
  File(File&& other) noexcept : fd_(other.release()) {}
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset();

 private:
  int fd_ = -1;
};

/// "what PATH: strerror(err)" as a JournalError.
[[noreturn]] void throw_errno(std::string_view what, const std::filesystem::path& path, int err);

/// open(2) with O_CLOEXEC; throws JournalError on failure.
File open_file(const std::filesystem::path& path, int flags, unsigned mode = 0644);

std::uint64_t file_size(int fd, const std::filesystem::path& path);

/// Reads up to `size` bytes at `offset`, retrying short reads; returns the count (less than
/// `size` only at end of file). Throws JournalError on an I/O error.
std::size_t read_at(int fd, void* data, std::size_t size, std::uint64_t offset,
                    const std::filesystem::path& path);

/// Writes all of `size` bytes at `offset`; returns 0 or the errno of the failure.
int write_at(int fd, const void* data, std::size_t size, std::uint64_t offset);

/// fsync(2) of a directory, so that a created, renamed or removed entry is durable.
void sync_directory(const std::filesystem::path& dir);
/// The same, returning 0 or the errno of the failure.
int fsync_directory(const std::filesystem::path& dir);

/// fsync(2) of a file; throws JournalError on failure.
void sync_file(int fd, const std::filesystem::path& path);

/// Writes `bytes` to a new file `path` (replacing any), fsyncs it if `durable`. Throws.
void write_new_file(const std::filesystem::path& path, std::string_view header,
                    std::string_view bytes, bool durable);

}  // namespace visitd::store::detail
