#pragma once
// What a delivery looks like on the wire, per receiver type:
//
// - webhook: POST url,
// `{"transition":"...","receiver":"...","summary":"...","alerts":[<alert>...]}`
//   with the alert objects of protocol.md as they were at the transition.
// - pagerduty: POST url, an Events API v2 event: event_action trigger / acknowledge / resolve,
//   dedup_key the alert's key (a grouped page uses its first alert's key and lists every
//   alert in custom_details), payload summary, source, severity, timestamp, custom_details.
// - alertmanager: POST url/api/v2/alerts, one Alertmanager alert per notice with the labels
//   alertname, alert, visit, branch, carer, client, severity and annotations summary and key;
//   firing until startsAt + 24h unless resolved sooner (endsAt = the resolution time).
//
// Every request carries the delivery's Idempotency-Key header (added by the sender).

#include <string>

#include "visitd/alerts/dispatcher.hpp"

namespace visitd::alerts {

struct Request {
  std::string url;
  std::string body;
  std::string content_type = "application/json";
};

/// The request for a delivery; `delivery.receiver.type` must be one the config accepts.
Request request_for(const Delivery& delivery);

/// One line for a person: the alert's summary, or "C1: 4 visits need attention (...)".
std::string headline(const std::vector<Notice>& notices);

}  // namespace visitd::alerts
