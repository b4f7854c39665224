#pragma once
// A real HTTP receiver for paging tests: listens on 127.0.0.1:0 on its own thread and
// records every request (path, Idempotency-Key, body, when), answering each with the next
// scripted status (then 200), and a Retry-After header when the script gives one.
//
// Thread-safety: every member may be called from the test's thread while it serves.

#include <boost/json/value.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace visitd::test {

struct Received {
  std::string target;
  std::string idempotency_key;
  std::string content_type;
  std::string body;
  std::chrono::steady_clock::time_point at;
  boost::json::value json() const;
};

struct Answer {
  unsigned status = 200;
  std::optional<unsigned> retry_after_s;
};

class Receiver {
 public:
  Receiver();
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  unsigned short port() const { return port_; }
  /// "http://127.0.0.1:<port>"
  std::string url() const;
  /// The next requests get these answers, in order; later ones 200.
  void script(std::vector<Answer> answers);
  /// Waits up to `timeout` for at least `n` requests; returns all received so far.
  std::vector<Received> wait_for(std::size_t n, std::chrono::milliseconds timeout);
  std::vector<Received> received() const;

 private:
  unsigned short port_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Received> received_;
  std::deque<Answer> script_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace visitd::test
