#pragma once
// The daemon's Prometheus metrics, served at `/metrics` by the daemon's own HTTP server
// through prometheus-cpp's text serializer (no second listener).
//
//   visitd_events_total{type,result}        client and office commands by type and outcome
//                                            (result: accepted, duplicate, unchanged, rejected)
//   visitd_errors_total{code}               error replies sent, by protocol code
//   visitd_ack_latency_seconds              event received → ack written (histogram)
//   visitd_alerts{kind,state}               alerts by kind and state, now
//   visitd_connections{role}                open connections: carer, board, http, pending
//                                            (WebSockets not yet authenticated)
//   visitd_connections_refused_total{reason} at accept: over max_connections; at upgrade:
//                                            origin, unauthenticated, forbidden
//   visitd_journal_fsync_seconds            one group commit's fdatasync (histogram)
//   visitd_journal_durable_seq              the last record made durable
//   visitd_journal_failed                   1 once an fsync or write failed (not ready)
//   visitd_store_unavailable                1 while Redis is unreachable (not ready)
//   visitd_store_unsafe_fsync               1 when Redis does not fsync every write
//   visitd_engine_queue_depth               commands posted to the engine, not yet decided
//   visitd_boards_dropped_total             boards closed because they read too slowly
//   visitd_snapshots_total{by}              snapshots written, by copy or fork
//   visitd_notifications_total{receiver,result} notice deliveries: delivered, failed, refused
//   visitd_notification_delivery_seconds    notice queued → taken by its receiver (histogram)
//   visitd_notification_retries_total       failed attempts that will be retried
//   visitd_notifications_queued             deliveries grouping, backing off or in flight
//   visitd_time_to_acknowledge_seconds      alert raised → acknowledged (histogram)
//   visitd_open_alerts{severity}            open alerts by severity, now
//
// Thread-safety: every member may be used from any thread (prometheus-cpp metrics are
// atomic); the label children are created up front so the hot path never takes the
// registry's lock.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <string>

#include "visitd/core/error.hpp"
#include "visitd/rota/engine.hpp"

namespace visitd::websocket {

/// Which kind of command, as `type` labels it: the protocol's message type names.
enum class CommandType : std::uint8_t {
  check_in,
  check_out,
  location,
  running_late,
  import_rota,
  reassign,
  cancel,
  ack_alert,
  resolve_alert,
};
inline constexpr std::size_t kCommandTypes = 9;
CommandType command_type(const rota::Command& command);

enum class ConnectionRole : std::uint8_t { carer, board, http, pending };
inline constexpr std::size_t kConnectionRoles = 4;

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// The exposition text of every metric.
  std::string serialize() const;

  void count_event(CommandType type, rota::Status status);
  void count_error(ErrorCode code);
  void observe_ack_latency(double seconds) { ack_latency_->Observe(seconds); }
  void observe_fsync(double seconds) { fsync_->Observe(seconds); }
  prometheus::Gauge& connections(ConnectionRole role) { return *connections_[std::size_t(role)]; }
  void count_refused(std::string_view reason);
  /// Sets the alert gauges: `counts[kind][state]`.
  void set_alert(rota::AlertKind kind, rota::AlertState state, double value);
  prometheus::Gauge& durable_seq() { return *durable_seq_; }
  prometheus::Gauge& journal_failed() { return *journal_failed_; }
  prometheus::Gauge& store_unavailable() { return *store_unavailable_; }
  prometheus::Gauge& store_unsafe_fsync() { return *store_unsafe_fsync_; }
  prometheus::Gauge& engine_queue_depth() { return *queue_depth_; }
  prometheus::Counter& boards_dropped() { return *boards_dropped_; }
  /// By a forked child, or from a copy made on the engine's strand.
  prometheus::Counter& snapshots(bool forked) {
    return forked ? *snapshots_by_fork_ : *snapshots_by_copy_;
  }
  void count_notification(const std::string& receiver, std::string_view result);
  void observe_delivery(double seconds) { delivery_latency_->Observe(seconds); }
  prometheus::Counter& notification_retries() { return *retries_; }
  prometheus::Gauge& notifications_queued() { return *notifications_queued_; }
  void observe_time_to_ack(double seconds) { time_to_ack_->Observe(seconds); }
  prometheus::Gauge& open_alerts(rota::Severity severity) {
    return *open_severity_[std::size_t(severity)];
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::array<std::array<prometheus::Counter*, 4>, kCommandTypes> events_{};
  prometheus::Family<prometheus::Counter>* errors_family_ = nullptr;
  std::array<prometheus::Counter*, 32> errors_{};
  prometheus::Histogram* ack_latency_ = nullptr;
  prometheus::Histogram* fsync_ = nullptr;
  std::array<prometheus::Gauge*, kConnectionRoles> connections_{};
  prometheus::Family<prometheus::Counter>* refused_family_ = nullptr;
  std::array<std::array<prometheus::Gauge*, 3>, 8> alerts_{};
  prometheus::Gauge* durable_seq_ = nullptr;
  prometheus::Gauge* journal_failed_ = nullptr;
  prometheus::Gauge* store_unavailable_ = nullptr;
  prometheus::Gauge* store_unsafe_fsync_ = nullptr;
  prometheus::Gauge* queue_depth_ = nullptr;
  prometheus::Counter* boards_dropped_ = nullptr;
  prometheus::Counter* snapshots_by_copy_ = nullptr;
  prometheus::Counter* snapshots_by_fork_ = nullptr;
  prometheus::Family<prometheus::Counter>* notifications_family_ = nullptr;
  prometheus::Histogram* delivery_latency_ = nullptr;
  prometheus::Counter* retries_ = nullptr;
  prometheus::Gauge* notifications_queued_ = nullptr;
  prometheus::Histogram* time_to_ack_ = nullptr;
  prometheus::Family<prometheus::Gauge>* open_by_severity_ = nullptr;
  std::array<prometheus::Gauge*, 3> open_severity_{};
};

}  // namespace visitd::websocket
