// Delivery decisions with an injected clock and a seeded generator: grouping, retries with
// backoff and Retry-After, refusals, fallbacks, idempotency keys; and what each receiver type
// gets on the wire.

#include "visitd/alerts/dispatcher.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "visitd/alerts/payload.hpp"
#include "visitd/config/load.hpp"

using namespace std::chrono_literals;
using namespace visitd;
using alerts::Attempt;
using alerts::DeliveryResult;
using alerts::Notice;
using alerts::Transition;

namespace {

TimePoint at(const char* t) { return *parse_rfc3339(t); }

constexpr const char* kConfig = R"(
[[receivers]]
name = "pager"
type = "webhook"
url = "http://127.0.0.1:9000/hook"
fallback = "backup"

[[receivers]]
name = "backup"
type = "webhook"
url = "http://127.0.0.1:9000/backup"

[[receivers]]
name = "pd"
type = "pagerduty"
url = "http://127.0.0.1:9000/v2/enqueue"
routing_key = "R0UT1NG"

[[receivers]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:9093/"

[escalation]
group_wait = "30s"
retry_initial = "1s"
retry_max = "1m"
fallback_after = 3
critical = [ { after = "0s", notify = ["pager"] } ]
)";

const config::Settings& settings() {
  static const config::Settings s = config::load_string(kConfig, "dispatcher.toml");
  return s;
}

Notice page(std::string alert, std::string visit, std::string carer, std::string receiver = "pager",
            Transition t = Transition::triggered) {
  Notice n;
  n.alert = std::move(alert);
  n.subject = n.alert + "/page/critical/L1/R0";
  n.receiver = std::move(receiver);
  n.transition = t;
  n.level = 1;
  n.visit = std::move(visit);
  n.key = "visit/" + n.visit + "/start";
  n.branch = "B1";
  n.carer = std::move(carer);
  n.client = "CL-" + n.visit;
  n.kind = "missed";
  n.severity = "critical";
  n.summary = n.carer + " has not checked in at " + n.client;
  n.raised_at = at("2026-11-23T09:15:00Z");
  n.at = at("2026-11-23T10:00:00Z");
  n.alert_json = "{\"id\":\"" + n.alert + "\",\"visit\":\"" + n.visit + "\"}";
  return n;
}

}  // namespace

TEST_CASE("Dispatcher: four missed visits of one carer within group_wait go out as one page") {
  alerts::Dispatcher d(settings(), 1);
  const TimePoint t0 = at("2026-11-23T10:00:00Z");
  d.add(page("A1", "V1", "C1"), t0);
  d.add(page("A2", "V2", "C1"), t0 + 5s);
  d.add(page("A3", "V3", "C2"), t0 + 6s);  // another carer: another page
  d.add(page("A4", "V4", "C1"), t0 + 20s);
  d.add(page("A5", "V5", "C1"), t0 + 29s);
  CHECK(d.take(t0 + 29s).empty());
  CHECK(d.next_due() == t0 + 30s);

  const auto due = d.take(t0 + 30s);
  REQUIRE(due.size() == 1);
  CHECK(due[0].notices.size() == 4);
  CHECK(due[0].receiver.url == "http://127.0.0.1:9000/hook");
  CHECK(due[0].idempotency_key.rfind("group/", 0) == 0);
  CHECK(d.take(t0 + 35s).empty());
  CHECK(d.take(t0 + 36s).size() == 1);  // C2's, 30 s after its own first page

  // A page after the group went out starts a new group.
  d.add(page("A6", "V6", "C1"), t0 + 31s);
  CHECK(d.next_due() == t0 + 61s);
}

TEST_CASE("Dispatcher: 500 then 200 is one delivery under one idempotency key") {
  alerts::Dispatcher d(settings(), 2);
  const TimePoint t0 = at("2026-11-23T10:00:00Z");
  Notice ack = page("A1", "V1", "C1", "pager", Transition::acknowledged);
  ack.subject = "A1/ack/R0";
  d.add(ack, t0);  // not a page: no group wait
  auto first = d.take(t0);
  REQUIRE(first.size() == 1);
  CHECK(first[0].idempotency_key == "A1/ack/R0/pager");
  auto settled = d.finish(first[0].id, Attempt{500, std::nullopt, "boom"}, t0);
  CHECK(settled.record.result == DeliveryResult::failed);
  CHECK_FALSE(settled.done);
  CHECK(d.queued() == 1);
  const auto retry_at = *d.next_due();
  CHECK(retry_at >= t0 + 500ms);
  CHECK(retry_at <= t0 + 1s);

  auto second = d.take(retry_at);
  REQUIRE(second.size() == 1);
  CHECK(second[0].attempt == 2);
  CHECK(second[0].idempotency_key == first[0].idempotency_key);
  settled = d.finish(second[0].id, Attempt{200, std::nullopt, ""}, retry_at);
  CHECK(settled.done);
  CHECK(settled.record.result == DeliveryResult::delivered);
  CHECK(settled.record.notices == std::vector<std::string>{"A1/ack/R0/pager"});
  CHECK(d.queued() == 0);
  CHECK_FALSE(d.next_due());
}

TEST_CASE("Dispatcher: a 429's Retry-After is waited for, backoff doubles to retry_max") {
  alerts::Dispatcher d(settings(), 3);
  const TimePoint t0 = at("2026-11-23T10:00:00Z");
  Notice n = page("A1", "V1", "C1", "pager", Transition::resolved);
  d.add(n, t0);
  auto due = d.take(t0);
  d.finish(due[0].id, Attempt{429, 120s, "slow down"}, t0);
  CHECK(*d.next_due() == t0 + 120s);

  for (unsigned attempt = 1; attempt <= 10; ++attempt) {
    const Duration full = std::min<Duration>(1s * (1u << std::min(attempt - 1, 20u)), 1min);
    const Duration wait = d.backoff(attempt);
    CHECK(wait >= full / 2);
    CHECK(wait <= full);
  }
}

TEST_CASE(
    "Dispatcher: a 4xx is refused at once and goes to the fallback, failures fall back after N") {
  const TimePoint t0 = at("2026-11-23T10:00:00Z");
  SECTION("refused") {
    alerts::Dispatcher d(settings(), 4);
    Notice n = page("A1", "V1", "C1", "pager", Transition::resolved);
    d.add(n, t0);
    auto due = d.take(t0);
    const auto settled = d.finish(due[0].id, Attempt{400, std::nullopt, "bad request"}, t0);
    CHECK(settled.done);
    CHECK(settled.record.result == DeliveryResult::refused);
    REQUIRE(settled.fallback.size() == 1);
    CHECK(settled.fallback[0].receiver == "backup");
    CHECK(settled.fallback[0].id() == "A1/page/critical/L1/R0/backup");
    CHECK(d.queued() == 0);
  }
  SECTION("three network failures") {
    alerts::Dispatcher d(settings(), 5);
    d.add(page("A1", "V1", "C1"), t0);
    TimePoint now = t0 + 30s;
    std::size_t fallbacks = 0;
    for (int i = 0; i < 5; ++i) {
      auto due = d.take(now);
      REQUIRE(due.size() == 1);
      const auto settled = d.finish(due[0].id, Attempt{0, std::nullopt, "connection refused"}, now);
      CHECK(settled.record.result == DeliveryResult::failed);
      CHECK(settled.record.attempt == unsigned(i + 1));
      fallbacks += settled.fallback.size();
      if (i < 2) CHECK(settled.fallback.empty());
      now = *d.next_due();
    }
    CHECK(fallbacks == 1);  // once, at the third failure; the pager is still being tried
    CHECK(d.queued() == 1);
  }
  SECTION("a receiver removed by a reload is refused, not retried for ever") {
    alerts::Dispatcher d(settings(), 6);
    d.add(page("A1", "V1", "C1", "gone", Transition::resolved), t0);
    auto due = d.take(t0);
    CHECK(due[0].receiver.type.empty());
    const auto settled = d.finish(due[0].id, Attempt{0, std::nullopt, ""}, t0);
    CHECK(settled.record.result == DeliveryResult::refused);
  }
}

TEST_CASE("Dispatcher: the same seed gives the same retry times") {
  alerts::Dispatcher a(settings(), 42);
  alerts::Dispatcher b(settings(), 42);
  for (unsigned i = 1; i < 8; ++i) CHECK(a.backoff(i) == b.backoff(i));
}

TEST_CASE("Payloads: webhook, PagerDuty Events v2 and Alertmanager bodies") {
  alerts::Dispatcher d(settings(), 7);
  const TimePoint t0 = at("2026-11-23T10:00:00Z");
  for (const char* r : {"pager", "pd", "am"}) {
    d.add(page("A1", "V1", "C1", r), t0);
    d.add(page("A2", "V2", "C1", r), t0 + 1s);
  }
  auto due = d.take(t0 + 30s);
  REQUIRE(due.size() == 3);
  for (const auto& delivery : due) {
    const auto req = alerts::request_for(delivery);
    const auto body = boost::json::parse(req.body);
    if (delivery.receiver.type == "webhook") {
      CHECK(req.url == "http://127.0.0.1:9000/hook");
      CHECK(body.at("transition") == "triggered");
      REQUIRE(body.at("alerts").as_array().size() == 2);
      CHECK(body.at("alerts").at(1).at("id") == "A2");
      CHECK(body.at("summary").as_string().find("C1: 2 visits") == 0);
    } else if (delivery.receiver.type == "pagerduty") {
      CHECK(req.url == "http://127.0.0.1:9000/v2/enqueue");
      CHECK(body.at("routing_key") == "R0UT1NG");
      CHECK(body.at("event_action") == "trigger");
      CHECK(body.at("dedup_key") == "visit/V1/start");
      CHECK(body.at("payload").at("severity") == "critical");
      CHECK(body.at("payload").at("source") == "visitd/B1");
      CHECK(body.at("payload").at("timestamp") == "2026-11-23T10:00:00Z");
      CHECK(body.at("payload").at("custom_details").at("alerts").as_array().size() == 2);
    } else {
      CHECK(req.url == "http://127.0.0.1:9093/api/v2/alerts");
      const auto& list = body.as_array();
      REQUIRE(list.size() == 4);  // each critical alert also resolves its warning label set
      CHECK(list[0].at("labels").at("alertname") == "VisitNeedsAttention");
      CHECK(list[0].at("labels").at("visit") == "V1");
      CHECK(list[0].at("labels").at("carer") == "C1");
      CHECK(list[0].at("labels").at("client") == "CL-V1");
      CHECK(list[0].at("labels").at("severity") == "critical");
      CHECK(list[0].at("startsAt") == "2026-11-23T09:15:00Z");
      CHECK(list[0].at("endsAt") == "2026-11-24T10:00:00Z");
      CHECK(list[1].at("labels").at("severity") == "warning");
      CHECK(list[1].at("endsAt") == "2026-11-23T10:00:00Z");
    }
  }
  // A resolution to PagerDuty: resolve by dedup_key, no payload.
  Notice done = page("A1", "V1", "C1", "pd", Transition::resolved);
  d.add(done, t0 + 40s);
  const auto res = d.take(t0 + 40s);
  REQUIRE(res.size() == 1);
  const auto body = boost::json::parse(alerts::request_for(res[0]).body);
  CHECK(body.at("event_action") == "resolve");
  CHECK(body.at("dedup_key") == "visit/V1/start");
  CHECK_FALSE(body.as_object().contains("payload"));
}

TEST_CASE("Dispatcher: take() hands out at most `limit` deliveries, oldest first") {
  alerts::Dispatcher d(settings(), 8);
  const TimePoint t0 = at("2026-11-23T10:00:00Z");
  for (int i = 0; i < 5; ++i) {
    Notice n =
        page("A" + std::to_string(i), "V" + std::to_string(i), "C1", "pager", Transition::resolved);
    d.add(n, t0 + std::chrono::seconds(i));
  }
  const auto first = d.take(t0 + 10s, 2);
  REQUIRE(first.size() == 2);
  CHECK(first[0].notices[0].alert == "A0");
  CHECK(first[1].notices[0].alert == "A1");
  CHECK(d.in_flight() == 2);
  CHECK(d.queued() == 3);
  CHECK(d.take(t0 + 10s, 0).empty());
  CHECK(d.take(t0 + 10s).size() == 3);
}
