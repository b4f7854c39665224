#include "visitd/store/snapshot_child.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

#include "visitd/store/engine_journal.hpp"

namespace visitd::store {
namespace {

/// Exit statuses of the child, told apart in finish()'s error.
constexpr int kSerializeFailed = 3;
constexpr int kWriteFailed = 4;
constexpr int kParentGone = 5;

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// The child's whole life. Never returns.
[[noreturn]] void run_child(const rota::Engine& engine, int pipe_fd, pid_t parent,
                            const sigset_t& parent_mask) {
  // Die with the daemon rather than outlive it holding its port, journal lock and sockets;
  // if it is already gone, there is nobody to read the bytes.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(kParentGone);
  // Keep only the pipe (as fd 3) and stdio: a socket the daemon closes must reach its peer
  // at once, not when this child ends, and the port must not stay open through it.
  if (::dup2(pipe_fd, 3) < 0) ::_exit(kWriteFailed);
  ::close_range(4, ~0U, 0);
  // Signals were blocked across the fork: the parent's handlers (Asio's write to the
  // daemon's own signal pipe) must never run here. Default actions, then unblocked.
  for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) {
    std::signal(sig, SIG_DFL);
  }
  ::pthread_sigmask(SIG_SETMASK, &parent_mask, nullptr);
  // The lowest share of the CPU that still always progresses: the daemon pays for each
  // page it writes while this child lives, so it must not live for ever under load.
  sched_param none{};
  ::sched_setscheduler(0, SCHED_BATCH, &none);
  ::setpriority(PRIO_PROCESS, 0, 19);
  std::string bytes;
  try {
    bytes = snapshot_bytes(engine);
  } catch (...) {
    ::_exit(kSerializeFailed);
  }
  ::_exit(write_all(3, bytes.data(), bytes.size()) ? 0 : kWriteFailed);
}

}  // namespace

std::optional<SnapshotChild> SnapshotChild::start(const rota::Engine& engine) {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) return std::nullopt;
  const pid_t parent = ::getpid();
  sigset_t all;
  sigset_t before;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &before);
  const pid_t pid = ::fork();
  const int fork_errno = errno;
  if (pid == 0) run_child(engine, fds[1], parent, before);
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    errno = fork_errno;
    return std::nullopt;
  }
  return SnapshotChild(pid, fds[0]);
}

SnapshotChild::SnapshotChild(SnapshotChild&& other) noexcept : pid_(other.pid_), fd_(other.fd_) {
  other.pid_ = -1;
  other.fd_ = -1;
}

SnapshotChild::~SnapshotChild() { reap_or_kill(); }

void SnapshotChild::reap_or_kill() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
}

std::string SnapshotChild::finish() {
  if (pid_ <= 0) throw std::logic_error("SnapshotChild::finish() called twice");
  std::string bytes;
  std::array<char, 1 << 16> buffer{};
  std::string read_error;
  for (;;) {
    const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
    if (n > 0) {
      bytes.append(buffer.data(), static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      read_error = std::strerror(errno);
      break;
    }
  }
  ::close(fd_);
  fd_ = -1;
  if (!read_error.empty()) ::kill(pid_, SIGKILL);
  int status = 0;
  pid_t waited = 0;
  while ((waited = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
  }
  const pid_t pid = pid_;
  pid_ = -1;
  const std::string who = "snapshot child " + std::to_string(pid);
  if (!read_error.empty()) throw std::runtime_error(who + ": reading its pipe: " + read_error);
  if (waited < 0) throw std::runtime_error(who + ": waitpid: " + std::strerror(errno));
  if (WIFSIGNALED(status)) {
    throw std::runtime_error(who + " was killed by signal " + std::to_string(WTERMSIG(status)));
  }
  if (WEXITSTATUS(status) == kSerializeFailed) {
    throw std::runtime_error(who + ": serializing the engine failed");
  }
  if (WEXITSTATUS(status) == kWriteFailed) {
    throw std::runtime_error(who + ": writing to its pipe failed");
  }
  if (WEXITSTATUS(status) != 0) {
    throw std::runtime_error(who + " exited with status " + std::to_string(WEXITSTATUS(status)));
  }
  return bytes;
}

}  // namespace visitd::store
