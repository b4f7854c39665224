#include "visitd/websocket/pager.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include "http_client.hpp"
#include "visitd/alerts/payload.hpp"
#include "visitd/core/log.hpp"
#include "visitd/store/engine_journal.hpp"

namespace visitd::websocket {
namespace net = boost::asio;

namespace {

/// The timer never sleeps longer than this (a wall-clock step delays a retry at most this).
constexpr auto kMaxSleep = std::chrono::seconds(30);
/// A receiver that takes longer than this to answer has failed this attempt.
constexpr auto kRequestTimeout = std::chrono::seconds(10);
/// Requests in flight at once, over all receivers: a branch-wide outage makes thousands of
/// deliveries due together, and a receiver (or this process's descriptors) must not get
/// them all in the same instant. The rest wait their turn, oldest first.
constexpr std::size_t kMaxInFlight = 32;

}  // namespace

Pager::Pager(net::io_context& io, const config::Settings& settings, store::Log& journal,
             Metrics& metrics, const Clock& clock, std::uint64_t seed)
    : strand_(net::make_strand(io)),
      journal_(journal),
      metrics_(metrics),
      clock_(clock),
      dispatcher_(settings, seed),
      timer_(strand_) {}

void Pager::enqueue(std::vector<alerts::Notice> notices) {
  net::post(strand_, [self = shared_from_this(), notices = std::move(notices)]() mutable {
    if (self->closed_) return;  // still owed in the outbox: the next start sends them
    const TimePoint now = self->clock_.now();
    for (auto& n : notices) self->dispatcher_.add(std::move(n), now);
    self->arm();
  });
}

void Pager::reconfigure(std::shared_ptr<const config::Settings> settings) {
  net::post(strand_, [self = shared_from_this(), settings = std::move(settings)] {
    self->dispatcher_.reconfigure(*settings);
    self->settings_ = settings;
  });
}

void Pager::close() {
  net::post(strand_, [self = shared_from_this()] {
    self->closed_ = true;
    self->timer_.cancel();
  });
}

void Pager::arm() {
  metrics_.notifications_queued().Set(double(dispatcher_.queued() + dispatcher_.in_flight()));
  const auto next = dispatcher_.next_due();
  if (!next || closed_ || dispatcher_.in_flight() >= kMaxInFlight) return;  // finished() re-arms
  if (armed_for_ && *armed_for_ <= *next) return;  // an earlier wake-up re-arms after it
  armed_for_ = next;
  // On a demo clock ([clock] rate), a retry due in demo time is that much sooner in real time.
  timer_.expires_after(
      std::clamp<Duration>(real_wait(clock_, *next - clock_.now()), Duration::zero(), kMaxSleep));
  timer_.async_wait(net::bind_executor(
      strand_, [self = shared_from_this()](boost::system::error_code ec) { self->on_timer(ec); }));
}

void Pager::on_timer(boost::system::error_code ec) {
  if (ec == net::error::operation_aborted && !closed_) {
    return;  // re-armed for an earlier time
  }
  armed_for_.reset();
  if (closed_) return;
  const std::size_t room = kMaxInFlight - std::min(kMaxInFlight, dispatcher_.in_flight());
  for (auto& delivery : dispatcher_.take(clock_.now(), room)) send(std::move(delivery));
  arm();
}

void Pager::send(alerts::Delivery delivery) {
  const std::uint64_t id = delivery.id;
  const auto started = std::chrono::steady_clock::now();
  auto done = [self = shared_from_this(), id, receiver = delivery.receiver.name,
               count = delivery.notices.size(), first = delivery.first_queued,
               started](PostResult result) {
    alerts::Attempt attempt;
    attempt.status = result.status;
    attempt.retry_after = result.retry_after;
    attempt.detail = result.status == 0 ? result.error : result.body_start;
    self->finished(id, receiver, count, std::move(attempt), first, started);
  };
  if (delivery.receiver.type.empty()) {
    // Removed from the config by a reload: the dispatcher refuses it (and says why).
    net::post(strand_, [done = std::move(done)]() mutable { done(PostResult{}); });
    return;
  }
  const alerts::Request built = alerts::request_for(delivery);
  PostRequest request;
  request.url = built.url;
  request.content_type = built.content_type;
  request.body = built.body;
  request.headers.emplace_back("Idempotency-Key", delivery.idempotency_key);
  request.timeout = kRequestTimeout;
  post(strand_, std::move(request), std::move(done));
}

void Pager::finished(std::uint64_t id, std::string receiver, std::size_t notices,
                     alerts::Attempt attempt, TimePoint first_queued,
                     std::chrono::steady_clock::time_point started) {
  const TimePoint now = clock_.now();
  alerts::Settled settled = dispatcher_.finish(id, attempt, now);
  const auto result = alerts::to_string(settled.record.result);
  metrics_.count_notification(receiver, result);
  if (settled.record.result == alerts::DeliveryResult::delivered) {
    metrics_.observe_delivery(std::chrono::duration<double>(now - first_queued).count());
  } else if (settled.record.result == alerts::DeliveryResult::failed) {
    metrics_.notification_retries().Increment();
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  log::write(settled.record.result == alerts::DeliveryResult::delivered ? log::Level::info
                                                                        : log::Level::warn,
             "notification",
             {{"receiver", receiver},
              {"result", std::string(result)},
              {"notices", std::to_string(notices)},
              {"attempt", std::to_string(settled.record.attempt)},
              {"status", std::to_string(settled.record.status)},
              {"ms", std::to_string(std::llround(ms))},
              {"detail", settled.record.detail}});

  // The outcome is the audit trail; a restart resends what no record says was settled, so
  // this need not wait for its fsync.
  store::record_delivery(journal_, settled.record, now,
                         [recorded = recorded_](std::uint64_t, std::error_code ec) {
                           if (recorded) recorded(ec);
                         });
  // Copies for a fallback receiver are new notices: the engine host records them on their
  // alert and in the outbox, then hands them back through enqueue().
  if (!settled.fallback.empty() && fallback_sink_) fallback_sink_(std::move(settled.fallback));
  arm();
}

}  // namespace visitd::websocket
