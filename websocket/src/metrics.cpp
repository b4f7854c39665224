#include "visitd/websocket/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <sstream>
#include <type_traits>

namespace visitd::websocket {
namespace {

constexpr std::array<std::string_view, kCommandTypes> kTypeNames = {
    "check_in", "check_out", "location",  "running_late", "import_rota",
    "reassign", "cancel",    "ack_alert", "resolve_alert"};
constexpr std::array<std::string_view, kConnectionRoles> kRoleNames = {"carer", "board", "http",
                                                                       "pending"};
constexpr std::size_t kErrorCodes = std::size_t(ErrorCode::bad_rota) + 1;

}  // namespace

CommandType command_type(const rota::Command& command) {
  // The variant's alternatives are listed in the same order as CommandType.
  static_assert(std::variant_size_v<rota::Command> == kCommandTypes);
  return static_cast<CommandType>(command.index());
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;

  auto& events = BuildCounter()
                     .Name("visitd_events_total")
                     .Help("Client and office commands decided, by type and result")
                     .Register(*registry_);
  for (std::size_t t = 0; t < kCommandTypes; ++t) {
    for (std::size_t s = 0; s < 4; ++s) {
      events_[t][s] =
          &events.Add({{"type", std::string(kTypeNames[t])},
                       {"result", std::string(rota::to_string(static_cast<rota::Status>(s)))}});
    }
  }
  errors_family_ = &BuildCounter()
                        .Name("visitd_errors_total")
                        .Help("Error replies sent to clients, by protocol error code")
                        .Register(*registry_);
  static_assert(kErrorCodes <= 32);
  for (std::size_t c = 0; c < kErrorCodes; ++c) {
    errors_[c] = &errors_family_->Add({{"code", std::string(to_string(ErrorCode(c)))}});
  }
  // 100 µs .. ~50 s: an ack normally waits for one group commit (a millisecond or two).
  prometheus::Histogram::BucketBoundaries latency;
  for (double b = 100e-6; b < 60; b *= 2) latency.push_back(b);
  ack_latency_ = &BuildHistogram()
                      .Name("visitd_ack_latency_seconds")
                      .Help("From receiving a carer event to writing its ack (durable)")
                      .Register(*registry_)
                      .Add({}, latency);
  prometheus::Histogram::BucketBoundaries fsync;
  for (double b = 50e-6; b < 10; b *= 2) fsync.push_back(b);
  fsync_ = &BuildHistogram()
                .Name("visitd_journal_fsync_seconds")
                .Help("Duration of one group commit's fdatasync")
                .Register(*registry_)
                .Add({}, fsync);
  auto& connections =
      BuildGauge()
          .Name("visitd_connections")
          .Help("Open connections by role (pending: WebSocket not yet authenticated)")
          .Register(*registry_);
  for (std::size_t r = 0; r < kConnectionRoles; ++r) {
    connections_[r] = &connections.Add({{"role", std::string(kRoleNames[r])}});
  }
  refused_family_ = &BuildCounter()
                         .Name("visitd_connections_refused_total")
                         .Help("Connections refused, by reason")
                         .Register(*registry_);
  auto& alerts =
      BuildGauge().Name("visitd_alerts").Help("Alerts by kind and state").Register(*registry_);
  for (std::size_t k = 0; k < alerts_.size(); ++k) {
    for (std::size_t s = 0; s < 3; ++s) {
      alerts_[k][s] =
          &alerts.Add({{"kind", std::string(rota::to_string(static_cast<rota::AlertKind>(k)))},
                       {"state", std::string(rota::to_string(static_cast<rota::AlertState>(s)))}});
    }
  }
  durable_seq_ = &BuildGauge()
                      .Name("visitd_journal_durable_seq")
                      .Help("Sequence number of the last journal record made durable")
                      .Register(*registry_)
                      .Add({});
  journal_failed_ = &BuildGauge()
                         .Name("visitd_journal_failed")
                         .Help("1 once a journal write or fsync failed: nothing more is accepted")
                         .Register(*registry_)
                         .Add({});
  store_unavailable_ = &BuildGauge()
                            .Name("visitd_store_unavailable")
                            .Help(
                                "1 while the store cannot make records durable (Redis "
                                "unreachable): nothing is acknowledged")
                            .Register(*registry_)
                            .Add({});
  store_unsafe_fsync_ = &BuildGauge()
                             .Name("visitd_store_unsafe_fsync")
                             .Help(
                                 "1 when the Redis store does not fsync every write "
                                 "(allow_unsafe_fsync): acknowledged events may be lost")
                             .Register(*registry_)
                             .Add({});
  queue_depth_ = &BuildGauge()
                      .Name("visitd_engine_queue_depth")
                      .Help("Commands waiting for the engine strand")
                      .Register(*registry_)
                      .Add({});
  boards_dropped_ = &BuildCounter()
                         .Name("visitd_boards_dropped_total")
                         .Help("Board connections closed because they read too slowly")
                         .Register(*registry_)
                         .Add({});
  auto& snapshots = BuildCounter()
                        .Name("visitd_snapshots_total")
                        .Help(
                            "Engine snapshots written to the store, by how the state was taken: "
                            "copy (the engine waited for a copy) or fork (for a fork)")
                        .Register(*registry_);
  snapshots_by_copy_ = &snapshots.Add({{"by", "copy"}});
  snapshots_by_fork_ = &snapshots.Add({{"by", "fork"}});
  notifications_family_ = &BuildCounter()
                               .Name("visitd_notifications_total")
                               .Help(
                                   "Delivery attempts of notices, by receiver and result "
                                   "(delivered, failed: retried, refused: given up)")
                               .Register(*registry_);
  // 10 ms .. ~3 h: group_wait (30 s by default) and retries are in it.
  prometheus::Histogram::BucketBoundaries delivery;
  for (double b = 0.01; b < 12'000; b *= 2) delivery.push_back(b);
  delivery_latency_ = &BuildHistogram()
                           .Name("visitd_notification_delivery_seconds")
                           .Help("From queueing a notice to a receiver taking it, retries included")
                           .Register(*registry_)
                           .Add({}, delivery);
  retries_ = &BuildCounter()
                  .Name("visitd_notification_retries_total")
                  .Help("Delivery attempts that failed and will be tried again")
                  .Register(*registry_)
                  .Add({});
  notifications_queued_ = &BuildGauge()
                               .Name("visitd_notifications_queued")
                               .Help("Deliveries waiting (grouping, backoff) or in flight")
                               .Register(*registry_)
                               .Add({});
  // 1 s .. ~18 h.
  prometheus::Histogram::BucketBoundaries ack;
  for (double b = 1; b < 70'000; b *= 2) ack.push_back(b);
  time_to_ack_ = &BuildHistogram()
                      .Name("visitd_time_to_acknowledge_seconds")
                      .Help("From an alert being raised (or re-triggered) to its acknowledgement")
                      .Register(*registry_)
                      .Add({}, ack);
  open_by_severity_ = &BuildGauge()
                           .Name("visitd_open_alerts")
                           .Help("Open (triggered or acknowledged) alerts by severity")
                           .Register(*registry_);
  for (std::size_t s = 0; s < open_severity_.size(); ++s) {
    open_severity_[s] = &open_by_severity_->Add(
        {{"severity", std::string(rota::to_string(static_cast<rota::Severity>(s)))}});
  }
}

void Metrics::count_notification(const std::string& receiver, std::string_view result) {
  // Per delivery attempt, not per event: the family's lookup lock is fine here.
  notifications_family_->Add({{"receiver", receiver}, {"result", std::string(result)}}).Increment();
}

std::string Metrics::serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return std::move(out).str();
}

void Metrics::count_event(CommandType type, rota::Status status) {
  events_[std::size_t(type)][std::size_t(status)]->Increment();
}

void Metrics::count_error(ErrorCode code) {
  if (std::size_t(code) < kErrorCodes) errors_[std::size_t(code)]->Increment();
}

void Metrics::count_refused(std::string_view reason) {
  // Rare (refusals only): the family's lookup lock is fine here.
  refused_family_->Add({{"reason", std::string(reason)}}).Increment();
}

void Metrics::set_alert(rota::AlertKind kind, rota::AlertState state, double value) {
  alerts_[std::size_t(kind)][std::size_t(state)]->Set(value);
}

}  // namespace visitd::websocket
