#pragma once
// Delivers notices (alerts/notice.hpp) to receivers over HTTP(S), off the engine's strand:
// the engine host hands it notices once their outbox records are durable; the pager groups,
// sends, retries and falls back as alerts::Dispatcher decides, journals every attempt's
// outcome (the audit trail, and what a restart reads to know what is still owed) and counts
// it in the metrics. Delivery never blocks the engine: the pager has its own strand, and each
// request runs on its own.
//
// Thread-safety: every public member may be called from any thread; they post to the strand.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "visitd/alerts/dispatcher.hpp"
#include "visitd/alerts/notice.hpp"
#include "visitd/config/settings.hpp"
#include "visitd/core/clock.hpp"
#include "visitd/store/log.hpp"
#include "visitd/websocket/metrics.hpp"

namespace visitd::websocket {

class Pager : public std::enable_shared_from_this<Pager> {
 public:
  /// `journal`, `metrics` and `clock` must outlive the pager. `seed` drives the retry jitter.
  Pager(boost::asio::io_context& io, const config::Settings& settings, store::Log& journal,
        Metrics& metrics, const Clock& clock, std::uint64_t seed);

  /// Queues notices whose outbox records are durable.
  void enqueue(std::vector<alerts::Notice> notices);
  /// Where copies for a fallback receiver go: they are new notices, so the engine host
  /// records them on the alert and in the outbox, then enqueues them. Set before the first
  /// enqueue(); without it no fallback is sent.
  void on_fallback(std::function<void(std::vector<alerts::Notice>)> sink) {
    fallback_sink_ = std::move(sink);
  }
  /// Told when each delivery record the pager journals is durable (or failed): the engine
  /// host's answers wait for every record appended before them, these included, so it must
  /// hear of them. Set before the first enqueue().
  void on_recorded(std::function<void(std::error_code)> recorded) {
    recorded_ = std::move(recorded);
  }
  /// New receivers and delivery timings (a reload).
  void reconfigure(std::shared_ptr<const config::Settings> settings);
  /// Stops: no new attempt starts. Attempts in flight end on their own; what they carried is
  /// resent at the next start if no delivery record says it arrived.
  void close();

 private:
  void arm();
  void on_timer(boost::system::error_code ec);
  void send(alerts::Delivery delivery);
  void finished(std::uint64_t id, std::string receiver, std::size_t notices,
                alerts::Attempt attempt, TimePoint first_queued,
                std::chrono::steady_clock::time_point started);

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  std::shared_ptr<const config::Settings> settings_;  ///< set by reconfigure()
  store::Log& journal_;
  Metrics& metrics_;
  const Clock& clock_;
  alerts::Dispatcher dispatcher_;
  boost::asio::steady_timer timer_;
  std::optional<TimePoint> armed_for_;
  bool closed_ = false;
  std::function<void(std::vector<alerts::Notice>)> fallback_sink_;
  std::function<void(std::error_code)> recorded_;
};

}  // namespace visitd::websocket
