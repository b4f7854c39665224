#pragma once
// A whole load run: opens the connections (a bounded number at a time), warms up, measures,
// drains the answers, closes, and prints the progress and the result.
//
// Thread-safety: run() is called once, from one thread; everything else runs on the run's
// strand of the io_context it owns.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <memory>
#include <string>
#include <vector>

#include "carer_connection.hpp"
#include "options.hpp"
#include "run_stats.hpp"

namespace visitd::load {

class LoadRun {
 public:
  /// `setups` has one entry per connection.
  LoadRun(const Options& options, std::vector<ConnectionSetup> setups);

  /// Runs to the end and prints the RESULT line; returns the exit status.
  int run();

 private:
  enum class Phase { connecting, warmup, measuring, draining, closing, idle };

  void open_more();
  void on_opened();
  void all_opened();
  void pace();
  void end_of_load();
  void drain_or_close();
  void close_all();
  void wait_closed();
  void tick();
  void print_progress();
  int report() const;

  Options options_;
  boost::asio::io_context io_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer ticker_;
  boost::asio::steady_timer phase_timer_;
  boost::asio::steady_timer pacer_;
  RunStats stats_;
  std::vector<ConnectionSetup> setups_;
  std::vector<std::shared_ptr<CarerConnection>> connections_;
  std::size_t next_to_open_ = 0;
  std::size_t opening_ = 0;
  std::size_t opened_ = 0;  ///< attempts finished, failed or not
  Phase phase_ = Phase::connecting;
  SteadyClock::time_point started_;
  SteadyClock::time_point deadline_;
  std::uint64_t acked_at_last_tick_ = 0;
  // --rate: event k of the run is due at pace_start_ + k / rate, on connection k mod N.
  SteadyClock::time_point pace_start_;
  std::uint64_t paced_ = 0;
  bool pacing_ = false;
  double cpu_at_measure_start_ = 0;  ///< this process's CPU seconds
  double cpu_in_window_ = 0;
};

}  // namespace visitd::load
