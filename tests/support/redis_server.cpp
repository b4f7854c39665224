#include "redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace visitd::test {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kRedisServer = "/usr/bin/redis-server";

/// A port the kernel has just handed out, and so free a moment ago.
unsigned short free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int connect_to(unsigned short port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool have_redis_server() { return ::access(kRedisServer, X_OK) == 0; }

RedisServer::RedisServer(std::vector<std::string> extra) : extra_(std::move(extra)) {
  static std::atomic<unsigned> counter{0};
  dir_ = fs::temp_directory_path() /
         ("visitd-redis-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  port_ = free_port();
  start();
}

RedisServer::~RedisServer() {
  if (pid_ > 0) kill9();
  if (std::getenv("VISITD_KEEP_TEST_DIRS") != nullptr) {
    std::cerr << "redis test dir kept: " << dir_ << "\n";
  } else {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

void RedisServer::start() {
  if (pid_ > 0) throw std::runtime_error("redis-server is already running");
  std::vector<std::string> args{kRedisServer,
                                "--port",
                                std::to_string(port_),
                                "--bind",
                                "127.0.0.1",
                                "--dir",
                                dir_.string(),
                                "--appendonly",
                                "yes",
                                "--appendfsync",
                                "always",
                                "--save",
                                "",
                                "--daemonize",
                                "no",
                                "--logfile",
                                (dir_ / "redis.log").string()};
  args.insert(args.end(), extra_.begin(), extra_.end());
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Dies with the test process, even one killed by a timeout, and holds none of its
    // output pipes (a reader of them would wait for it forever).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execv(kRedisServer, argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited at start; see " +
                               (dir_ / "redis.log").string());
    }
    try {
      // A server with requirepass answers NOAUTH: it is up all the same.
      const std::string answer = command("PING");
      if (answer.rfind("+PONG", 0) == 0 || answer.rfind("-NOAUTH", 0) == 0) return;
    } catch (const std::exception&) {
      // not listening yet
    }
    std::this_thread::sleep_for(20ms);
  }
  kill9();
  throw std::runtime_error("redis-server did not answer PING within 10 s");
}

void RedisServer::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string RedisServer::command(const std::string& line) const {
  const int fd = connect_to(port_);
  if (fd < 0) throw std::runtime_error("cannot connect to redis-server");
  const std::string out = line + "\r\n";
  if (::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) {
    ::close(fd);
    throw std::runtime_error("cannot write to redis-server");
  }
  // One answer line per command line (the short answers tests ask for): wait for them all.
  const auto lines = [](const std::string& text) {
    std::size_t n = 0;
    for (auto at = text.find("\r\n"); at != std::string::npos; at = text.find("\r\n", at + 2)) {
      ++n;
    }
    return n;
  };
  const std::size_t want = lines(out);
  std::string answer;
  char buf[4096];
  while (lines(answer) < want) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (answer.empty()) throw std::runtime_error("no answer from redis-server");
  return answer;
}

}  // namespace visitd::test
