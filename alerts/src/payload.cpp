#include "visitd/alerts/payload.hpp"

#include "visitd/core/json_text.hpp"

namespace visitd::alerts {

namespace {

void field(std::string& out, std::string_view key, std::string_view value, bool comma = true) {
  if (comma) out += ',';
  append_json_string(out, key);
  out += ':';
  append_json_string(out, value);
}

std::string webhook(const Delivery& d) {
  std::string out = "{";
  field(out, "transition", to_string(d.notices.front().transition), false);
  field(out, "receiver", d.receiver.name);
  field(out, "summary", headline(d.notices));
  out += ",\"alerts\":[";
  for (std::size_t i = 0; i < d.notices.size(); ++i) {
    if (i > 0) out += ',';
    out += d.notices[i].alert_json.empty() ? "null" : d.notices[i].alert_json;
  }
  out += "]}";
  return out;
}

std::string_view pagerduty_action(Transition t) {
  switch (t) {
    case Transition::acknowledged:
      return "acknowledge";
    case Transition::resolved:
      return "resolve";
    default:
      return "trigger";
  }
}

std::string pagerduty(const Delivery& d) {
  const Notice& first = d.notices.front();
  std::string out = "{";
  field(out, "routing_key", d.receiver.routing_key, false);
  field(out, "event_action", pagerduty_action(first.transition));
  field(out, "dedup_key", first.key);
  if (first.page()) {
    out += ",\"payload\":{";
    field(out, "summary", headline(d.notices), false);
    field(out, "source", "visitd/" + first.branch);
    // Events v2 knows critical, error, warning and info: ours map onto it as they are.
    field(out, "severity", first.severity);
    field(out, "timestamp", format_rfc3339(first.at));
    field(out, "component", first.carer);
    field(out, "group", first.branch);
    field(out, "class", first.kind);
    out += ",\"custom_details\":{\"alerts\":[";
    for (std::size_t i = 0; i < d.notices.size(); ++i) {
      const Notice& n = d.notices[i];
      if (i > 0) out += ',';
      out += '{';
      field(out, "alert", n.alert, false);
      field(out, "key", n.key);
      field(out, "kind", n.kind);
      field(out, "visit", n.visit);
      field(out, "client", n.client);
      field(out, "summary", n.summary);
      out += ",\"escalation_level\":" + std::to_string(n.level);
      out += '}';
    }
    out += "]}}";
  }
  out += '}';
  return out;
}

void alertmanager_alert(std::string& out, const Notice& n, std::string_view severity,
                        std::optional<TimePoint> ends) {
  out += "{\"labels\":{";
  field(out, "alertname", "VisitNeedsAttention", false);
  field(out, "alert", n.alert);
  field(out, "visit", n.visit);
  field(out, "branch", n.branch);
  field(out, "carer", n.carer);
  field(out, "client", n.client);
  field(out, "severity", severity);
  out += "},\"annotations\":{";
  field(out, "summary", n.summary, false);
  field(out, "key", n.key);
  field(out, "kind", n.kind);
  out += '}';
  field(out, "startsAt", format_rfc3339(n.raised_at));
  field(out, "endsAt", format_rfc3339(ends ? *ends : n.at + std::chrono::hours(24)));
  out += '}';
}

std::string alertmanager(const Delivery& d) {
  std::string out = "[";
  bool first = true;
  for (const Notice& n : d.notices) {
    if (!first) out += ',';
    first = false;
    const bool resolved = n.transition == Transition::resolved;
    alertmanager_alert(out, n, n.severity, resolved ? std::optional(n.at) : std::nullopt);
    // Alertmanager tells alerts apart by their labels: a rise from warning to critical makes
    // a new one, so the warning one is resolved with it rather than left firing a day.
    if (n.severity == "critical") {
      out += ',';
      alertmanager_alert(out, n, "warning", n.at);
    }
  }
  out += ']';
  return out;
}

std::string trim_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

std::string headline(const std::vector<Notice>& notices) {
  if (notices.empty()) return "";
  if (notices.size() == 1) return notices.front().summary;
  const Notice& first = notices.front();
  std::string out = (first.carer.empty() ? std::string("A carer") : first.carer) + ": " +
                    std::to_string(notices.size()) + " visits need attention in branch " +
                    first.branch + " (";
  for (std::size_t i = 0; i < notices.size(); ++i) {
    if (i > 0) out += ", ";
    out += notices[i].visit + " " + notices[i].kind;
  }
  return out + ")";
}

Request request_for(const Delivery& d) {
  Request r;
  if (d.receiver.type == "pagerduty") {
    r.url = d.receiver.url;
    r.body = pagerduty(d);
  } else if (d.receiver.type == "alertmanager") {
    r.url = trim_slash(d.receiver.url) + "/api/v2/alerts";
    r.body = alertmanager(d);
  } else {
    r.url = d.receiver.url;
    r.body = webhook(d);
  }
  return r;
}

}  // namespace visitd::alerts
