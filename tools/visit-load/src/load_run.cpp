#include "load_run.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

namespace visitd::load {

namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

// How long to wait for the answers to events already sent once sending stops, and for the
// closing handshakes.
constexpr auto kDrainTimeout = 10s;
constexpr auto kCloseTimeout = 10s;
// The pacer sends every event due within this long of one wake-up together.
constexpr auto kPacerTick = 100us;

double us(std::uint64_t ns) { return double(ns) / 1000.0; }

// User and system CPU seconds of this process so far: whether visit-load itself was the
// bottleneck shows in the RESULT line.
double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

const char* phase_name(int phase) {
  static const char* const kNames[] = {"connecting", "warmup",  "measuring",
                                       "draining",   "closing", "idle"};
  return kNames[phase];
}

}  // namespace

LoadRun::LoadRun(const Options& options, std::vector<ConnectionSetup> setups)
    : options_(options),
      io_(int(options.threads)),
      strand_(net::make_strand(io_)),
      ticker_(strand_),
      phase_timer_(strand_),
      pacer_(strand_),
      setups_(std::move(setups)) {}

int LoadRun::run() {
  connections_.reserve(setups_.size());
  for (auto& setup : setups_) {
    connections_.push_back(std::make_shared<CarerConnection>(io_, stats_, std::move(setup)));
  }
  setups_.clear();
  started_ = SteadyClock::now();
  net::post(strand_, [this] {
    open_more();
    tick();
  });
  std::vector<std::thread> extra;
  for (unsigned i = 1; i < options_.threads; ++i) extra.emplace_back([this] { io_.run(); });
  io_.run();
  for (auto& t : extra) t.join();
  return report();
}

void LoadRun::open_more() {
  while (opening_ < options_.connect_concurrency && next_to_open_ < connections_.size()) {
    ++opening_;
    connections_[next_to_open_++]->open(
        [this](bool) { net::post(strand_, [this] { on_opened(); }); });
  }
}

void LoadRun::on_opened() {
  --opening_;
  ++opened_;
  if (opened_ == connections_.size()) return all_opened();
  open_more();
}

void LoadRun::all_opened() {
  const auto now = SteadyClock::now();
  std::fprintf(stderr, "connected %llu of %zu in %.1f s\n",
               static_cast<unsigned long long>(stats_.connected.load()), connections_.size(),
               std::chrono::duration<double>(now - started_).count());
  if (options_.idle) {
    phase_ = Phase::idle;
    std::printf("READY connected=%llu\n", static_cast<unsigned long long>(stats_.connected.load()));
    std::fflush(stdout);
    deadline_ = now + options_.duration;
    phase_timer_.expires_at(deadline_);
    phase_timer_.async_wait([this](boost::system::error_code) { close_all(); });
    return;
  }
  phase_ = options_.warmup.count() > 0 ? Phase::warmup : Phase::measuring;
  stats_.measure_from = now + options_.warmup;
  stats_.measure_until = stats_.measure_from + options_.duration;
  for (auto& c : connections_) c->start_sending();
  if (options_.rate > 0) {
    pacing_ = true;
    pace_start_ = now;
    pace();
  }
  phase_timer_.expires_at(stats_.measure_from);
  phase_timer_.async_wait([this](boost::system::error_code) {
    phase_ = Phase::measuring;
    cpu_at_measure_start_ = cpu_seconds();
    phase_timer_.expires_at(stats_.measure_until);
    phase_timer_.async_wait([this](boost::system::error_code) { end_of_load(); });
  });
}

void LoadRun::pace() {
  if (!pacing_) return;
  // One schedule for the whole run rather than a timer per connection: at tens of thousands
  // of events/s, a timer wake-up per event would cost visit-load more than the event.
  const auto now = SteadyClock::now();
  const std::chrono::duration<double> interval(1.0 / options_.rate);
  auto due = [&](std::uint64_t k) {
    return pace_start_ + std::chrono::duration_cast<SteadyClock::duration>(interval * double(k));
  };
  for (; due(paced_) <= now; ++paced_) {
    connections_[paced_ % connections_.size()]->send_due(due(paced_));
  }
  // Sleep until the next event is due, but at least kPacerTick: at high rates each wake-up
  // sends a batch.
  pacer_.expires_at(std::max(due(paced_), now + kPacerTick));
  pacer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) pace();
  });
}

void LoadRun::end_of_load() {
  pacing_ = false;
  pacer_.cancel();
  cpu_in_window_ = cpu_seconds() - cpu_at_measure_start_;
  phase_ = Phase::draining;
  for (auto& c : connections_) c->stop_sending();
  deadline_ = SteadyClock::now() + kDrainTimeout;
  drain_or_close();
}

void LoadRun::drain_or_close() {
  if (stats_.pending.load() <= 0 || SteadyClock::now() >= deadline_) return close_all();
  phase_timer_.expires_after(10ms);
  phase_timer_.async_wait([this](boost::system::error_code) { drain_or_close(); });
}

void LoadRun::close_all() {
  phase_ = Phase::closing;
  for (auto& c : connections_) c->close();
  deadline_ = SteadyClock::now() + kCloseTimeout;
  wait_closed();
}

void LoadRun::wait_closed() {
  if (stats_.open.load() <= 0 || SteadyClock::now() >= deadline_) {
    io_.stop();
    return;
  }
  phase_timer_.expires_after(10ms);
  phase_timer_.async_wait([this](boost::system::error_code) { wait_closed(); });
}

void LoadRun::tick() {
  ticker_.expires_after(1s);
  ticker_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    print_progress();
    tick();
  });
}

void LoadRun::print_progress() {
  const auto elapsed = std::chrono::duration<double>(SteadyClock::now() - started_).count();
  const std::uint64_t acked = stats_.acked.load();
  std::fprintf(stderr,
               "[%6.1fs] %-10s open=%lld acked/s=%llu pending=%lld errors=%llu p99_us=%.0f "
               "(window so far)\n",
               elapsed, phase_name(int(phase_)), static_cast<long long>(stats_.open.load()),
               static_cast<unsigned long long>(acked - acked_at_last_tick_),
               static_cast<long long>(stats_.pending.load()),
               static_cast<unsigned long long>(stats_.errors.load()),
               us(stats_.latency.percentile(99)));
  acked_at_last_tick_ = acked;
}

int LoadRun::report() const {
  const auto failures = stats_.connect_failures.load();
  const auto disconnects = stats_.disconnects.load();
  const auto errors = stats_.errors.load();
  if (options_.idle) {
    std::printf(
        "RESULT mode=idle carers=%zu connected=%llu connect_failures=%llu disconnects=%llu\n",
        connections_.size(), static_cast<unsigned long long>(stats_.connected.load()),
        static_cast<unsigned long long>(failures), static_cast<unsigned long long>(disconnects));
    return failures == 0 && disconnects == 0 ? 0 : 1;
  }
  const double seconds = std::chrono::duration<double>(options_.duration).count();
  const auto unanswered =
      stats_.lost.load() + std::uint64_t(std::max<std::int64_t>(0, stats_.pending.load()));
  const auto& h = stats_.latency;
  std::printf(
      "RESULT mode=load carers=%zu sent=%llu acked=%llu events_per_s=%.0f p50_us=%.1f "
      "p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%llu accepted=%llu duplicate=%llu "
      "unanswered=%llu skipped=%llu connect_failures=%llu disconnects=%llu client_cpu_pct=%.0f\n",
      connections_.size(), static_cast<unsigned long long>(stats_.sent.load()),
      static_cast<unsigned long long>(stats_.acked.load()),
      double(stats_.acked_in_window.load()) / seconds, us(h.percentile(50)), us(h.percentile(99)),
      us(h.percentile(99.9)), us(h.max()), static_cast<unsigned long long>(errors),
      static_cast<unsigned long long>(stats_.accepted.load()),
      static_cast<unsigned long long>(stats_.duplicate.load()),
      static_cast<unsigned long long>(unanswered),
      static_cast<unsigned long long>(stats_.skipped.load()),
      static_cast<unsigned long long>(failures), static_cast<unsigned long long>(disconnects),
      100.0 * cpu_in_window_ / seconds);
  std::fflush(stdout);
  for (const auto& [code, count] : stats_.errors_by_code()) {
    std::fprintf(stderr, "errors %s=%llu\n", code.c_str(), static_cast<unsigned long long>(count));
  }
  return failures == 0 && disconnects == 0 && errors == 0 && unanswered == 0 ? 0 : 1;
}

}  // namespace visitd::load
