#include "posix_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "visitd/store/journal.hpp"

namespace visitd::store::detail {

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

void File::reset() {
  if (fd_ >= 0) ::close(fd_);  // nothing useful to do with a close error: data was synced
  fd_ = -1;
}

void throw_errno(std::string_view what, const std::filesystem::path& path, int err) {
  throw JournalError(std::string(what) + " " + path.string() + ": " + std::strerror(err));
}

File open_file(const std::filesystem::path& path, int flags, unsigned mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_errno("cannot open", path, errno);
  return File(fd);
}

std::uint64_t file_size(int fd, const std::filesystem::path& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("cannot stat", path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

std::size_t read_at(int fd, void* data, std::size_t size, std::uint64_t offset,
                    const std::filesystem::path& path) {
  auto* p = static_cast<char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read", path, errno);
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

int write_at(int fd, const void* data, std::size_t size, std::uint64_t offset) {
  const auto* p = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, p + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

int fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const File d(fd);
  return ::fsync(d.get()) == 0 ? 0 : errno;
}

void sync_directory(const std::filesystem::path& dir) {
  if (int err = fsync_directory(dir)) throw_errno("cannot fsync directory", dir, err);
}

void sync_file(int fd, const std::filesystem::path& path) {
  if (::fsync(fd) != 0) throw_errno("cannot fsync", path, errno);
}

void write_new_file(const std::filesystem::path& path, std::string_view header,
                    std::string_view bytes, bool durable) {
  File f = open_file(path, O_WRONLY | O_CREAT | O_TRUNC);
  if (int err = write_at(f.get(), header.data(), header.size(), 0)) {
    throw_errno("cannot write", path, err);
  }
  if (int err = write_at(f.get(), bytes.data(), bytes.size(), header.size())) {
    throw_errno("cannot write", path, err);
  }
  if (durable) sync_file(f.get(), path);
}

}  // namespace visitd::store::detail
