#pragma once
// A snapshot serialized by a child process, so that taking it holds the engine only for a
// fork(), not for a copy of its whole state.
//
// The child is fork()ed from the thread that owns the engine: it sees the engine exactly as it
// was at that moment (the pages are shared copy-on-write), serializes it with snapshot_bytes(),
// writes the bytes to a pipe and _exit()s. Copying the engine instead (Engine::clone) held the
// engine's strand for 9-17 ms with 300,000 decided events, and would take about a second for a
// day of 1,000,000 visits; fork() copies page tables, not the state.
//
// In the child only the forking thread exists, and locks other threads held at the fork stay
// held: the child touches nothing but the engine, malloc (which glibc makes safe across fork),
// the pipe and _exit. It closes every other descriptor it inherited (sockets, the journal's
// lock, the listening port), never runs the parent's signal handlers (signals are blocked
// across the fork, then reset), dies with the parent (PR_SET_PDEATHSIG), and runs at the
// lowest priority that still progresses (SCHED_BATCH, nice 19).
//
// The fork itself stops the whole daemon, not only the caller's thread: glibc takes every
// malloc arena lock and the kernel the address space's lock while it copies page tables.
//
// Thread-safety: start() on the engine's thread; finish() and the destructor on any one thread.

#include <sys/types.h>

#include <optional>
#include <string>

#include "visitd/rota/engine.hpp"

namespace visitd::store {

class SnapshotChild {
 public:
  /// Forks a child that serializes `engine` (take it right after advance(now), as
  /// snapshot_bytes() requires). Returns nullopt, with errno set, when the pipe or the fork
  /// fails (e.g. ENOMEM): the caller can copy the engine instead.
  static std::optional<SnapshotChild> start(const rota::Engine& engine);

  SnapshotChild(SnapshotChild&& other) noexcept;
  SnapshotChild& operator=(SnapshotChild&&) = delete;
  SnapshotChild(const SnapshotChild&) = delete;
  SnapshotChild& operator=(const SnapshotChild&) = delete;
  /// Kills and reaps a child whose bytes were not read: no zombie is left behind.
  ~SnapshotChild();

  /// The child's pid (for logs and tests).
  pid_t pid() const { return pid_; }

  /// Reads the child's bytes to the end and reaps it. Throws std::runtime_error when the child
  /// did not exit 0 (killed, or its serialization threw), so a partial snapshot is never used.
  std::string finish();

 private:
  SnapshotChild(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  void reap_or_kill();

  pid_t pid_ = -1;
  int fd_ = -1;
};

}  // namespace visitd::store
