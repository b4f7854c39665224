#pragma once
// A notice: one notification to one receiver about one alert's transition. Notices are the
// outbox: each is written to the journal before it is sent, and a delivery record follows
// when a receiver took it (or refused it for good), so a restart resends exactly the ones
// still owed.
//
// Every notice has a stable identity derived from what it says, never from when it was
// made: "A17/page/L2/R0" is the second step of A17's ladder before any ack timed out, and
// "A17/resolved" its resolution. A replay that decides the same page again finds it by
// that identity and does not page twice; receivers get it as the Idempotency-Key.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "visitd/core/error.hpp"
#include "visitd/core/time.hpp"
#include "visitd/rota/engine.hpp"

namespace visitd::alerts {

/// What a notice tells its receiver; the names are the webhook's `transition` values.
enum class Transition : std::uint8_t { triggered, escalated, acknowledged, resolved };
std::string_view to_string(Transition transition);

struct Notice {
  std::string subject;   ///< "A17/page/L2/R0", "A17/ack/R0", "A17/resolved": what it says
  std::string receiver;  ///< the receiver's name
  Transition transition = Transition::triggered;
  int level = 0;  ///< the escalation step (1-based) for pages; the level reached otherwise

  // The alert, as it was at the transition.
  std::string alert;  ///< "A17"
  std::string key;    ///< "visit/V1/start"
  std::string visit;
  std::string branch;
  std::string carer;
  std::string client;
  std::string kind;      ///< late, missed, ...
  std::string severity;  ///< info, warning, critical
  std::string summary;
  TimePoint raised_at;
  TimePoint at;            ///< when the transition happened (engine time)
  std::string alert_json;  ///< the alert object of protocol.md at that moment

  /// Unique in the outbox and stable across restarts: subject + "/" + receiver. Also the
  /// Idempotency-Key of a delivery holding this notice alone.
  std::string id() const { return subject + "/" + receiver; }
  /// A page (triggered or escalated) rather than a notice of ack or resolution.
  bool page() const {
    return transition == Transition::triggered || transition == Transition::escalated;
  }
};

/// What the alert keeps of a notice (rota::Alert::notified).
rota::Notified notified(const Notice& notice);

/// The journal's `outbox` record payload (format 1), and back. decode() refuses damaged or
/// foreign bytes with an Error.
std::string encode(const Notice& notice);
Result<Notice> decode_notice(std::string_view bytes);

/// How a delivery ended, as the journal's `delivery` record keeps it.
enum class DeliveryResult : std::uint8_t {
  delivered,  ///< a 2xx answer
  failed,     ///< a retryable failure (5xx, 429, network): tried again later
  refused,    ///< a 4xx other than 429: the receiver will never take it; not retried
};
std::string_view to_string(DeliveryResult result);

/// One attempt at delivering notices to a receiver (the `delivery` record, format 1).
struct DeliveryRecord {
  std::string receiver;
  std::vector<std::string> notices;  ///< Notice::id() of each notice it carried
  DeliveryResult result = DeliveryResult::delivered;
  int status = 0;  ///< the HTTP status, 0 for a network error
  unsigned attempt = 1;
  std::string detail;  ///< the error, for the audit trail
};
std::string encode(const DeliveryRecord& record);
Result<DeliveryRecord> decode_delivery(std::string_view bytes);

}  // namespace visitd::alerts
