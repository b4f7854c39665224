#include "visitd/alerts/notice.hpp"

#include "visitd/core/binary.hpp"

namespace visitd::alerts {

namespace {

constexpr std::uint8_t kNoticeFormat = 1;
constexpr std::uint8_t kDeliveryFormat = 1;

template <class Enum>
Enum get_enum(Reader& r, Enum last) {
  const auto v = r.u8();
  if (v > std::uint8_t(last)) r.fail();
  return Enum(v);
}

Error damaged(std::string_view what) {
  return Error{ErrorCode::internal, "the journal's " + std::string(what) + " record is damaged"};
}

}  // namespace

std::string_view to_string(Transition t) {
  static constexpr std::string_view kNames[] = {"triggered", "escalated", "acknowledged",
                                                "resolved"};
  return kNames[std::size_t(t)];
}

std::string_view to_string(DeliveryResult r) {
  static constexpr std::string_view kNames[] = {"delivered", "failed", "refused"};
  return kNames[std::size_t(r)];
}

rota::Notified notified(const Notice& n) {
  return rota::Notified{n.receiver, std::string(to_string(n.transition)), n.level, n.at};
}

std::string encode(const Notice& n) {
  std::string out;
  Writer w(out);
  w.u8(kNoticeFormat);
  w.str(n.subject);
  w.str(n.receiver);
  w.u8(std::uint8_t(n.transition));
  w.svarint(n.level);
  for (const std::string* s : {&n.alert, &n.key, &n.visit, &n.branch, &n.carer, &n.client, &n.kind,
                               &n.severity, &n.summary}) {
    w.str(*s);
  }
  w.time(n.raised_at);
  w.time(n.at);
  w.str(n.alert_json);
  return out;
}

Result<Notice> decode_notice(std::string_view bytes) {
  Reader r(bytes);
  if (r.u8() != kNoticeFormat) return damaged("outbox");
  Notice n;
  n.subject = r.str();
  n.receiver = r.str();
  n.transition = get_enum(r, Transition::resolved);
  n.level = int(r.svarint());
  for (std::string* s : {&n.alert, &n.key, &n.visit, &n.branch, &n.carer, &n.client, &n.kind,
                         &n.severity, &n.summary}) {
    *s = r.str();
  }
  n.raised_at = r.time();
  n.at = r.time();
  n.alert_json = r.str();
  if (!r.ok() || !r.at_end() || n.subject.empty() || n.receiver.empty()) return damaged("outbox");
  return n;
}

std::string encode(const DeliveryRecord& d) {
  std::string out;
  Writer w(out);
  w.u8(kDeliveryFormat);
  w.str(d.receiver);
  w.varint(d.notices.size());
  for (const auto& id : d.notices) w.str(id);
  w.u8(std::uint8_t(d.result));
  w.svarint(d.status);
  w.varint(d.attempt);
  w.str(d.detail);
  return out;
}

Result<DeliveryRecord> decode_delivery(std::string_view bytes) {
  Reader r(bytes);
  if (r.u8() != kDeliveryFormat) return damaged("delivery");
  DeliveryRecord d;
  d.receiver = r.str();
  d.notices.resize(r.count());
  for (auto& id : d.notices) id = r.str();
  d.result = get_enum(r, DeliveryResult::refused);
  d.status = int(r.svarint());
  d.attempt = unsigned(r.varint());
  d.detail = r.str();
  if (!r.ok() || !r.at_end()) return damaged("delivery");
  return d;
}

}  // namespace visitd::alerts
