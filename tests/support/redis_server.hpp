#pragma once
// A real redis-server for tests: started on a free 127.0.0.1 port in its own temp dir, with
// the persistence visitd requires (appendonly yes, appendfsync always) unless told otherwise.
// kill9() and start() again simulate a crash and a restart on the same data (the AOF).
// The destructor kills it and removes the dir (kept when VISITD_KEEP_TEST_DIRS is set).
// Not thread-safe.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace visitd::test {

class RedisServer {
 public:
  /// `extra` are more redis-server arguments ("--appendfsync", "everysec", ...), given after
  /// the defaults so that they win.
  explicit RedisServer(std::vector<std::string> extra = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  /// Starts it (again) on the same port and dir; waits up to 10 s for PING to answer.
  void start();
  /// SIGKILL; waits for the process to be gone.
  void kill9();
  /// SIGTERM; waits for it to exit.
  void stop();
  bool running() const { return pid_ > 0; }

  unsigned short port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  /// Runs commands over a plain socket (inline protocol: no spaces inside arguments; several
  /// separated by "\r\n") and returns the raw RESP answers, e.g. "+PONG\r\n"; for tests
  /// that poke at the server (simple replies only: one line per command).
  std::string command(const std::string& line) const;

 private:
  std::filesystem::path dir_;
  std::vector<std::string> extra_;
  unsigned short port_ = 0;
  pid_t pid_ = -1;
};

/// True when /usr/bin/redis-server exists (scripts/setup installs it).
bool have_redis_server();

}  // namespace visitd::test
