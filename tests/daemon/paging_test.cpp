// Paging end to end: the real daemon, a real HTTP receiver started by the test, and Debian's
// prometheus-alertmanager. Late visits page the receivers their ladder names, grouped per
// carer; a check-in sends the resolution to whoever was paged; failed deliveries are retried
// under the same Idempotency-Key; a daemon killed in the middle of a ladder resumes it and
// pages nobody twice.

#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "daemon_fixture.hpp"
#include "receiver.hpp"

using namespace visitd::test;
using visitd::websocket::Role;
namespace json = boost::json;

namespace {

/// Late from the moment they are imported (they started a minute ago; late after 2 s).
DaemonConfig paging_config(const std::string& tables) {
  DaemonConfig c;
  c.thresholds = {{"late_after", "\"2s\""}, {"missed_after", "\"1h\""}};
  c.tables = tables;
  return c;
}

std::string webhook(const Receiver& r, std::string_view name = "hook") {
  return "[[receivers]]\nname = \"" + std::string(name) + "\"\ntype = \"webhook\"\nurl = \"" +
         r.url() + "/" + std::string(name) + "\"\n";
}

std::set<std::string> visits_in(const Received& r) {
  std::set<std::string> out;
  const json::value body = r.json();
  for (const auto& a : body.at("alerts").as_array()) out.insert(str(a, "visit"));
  return out;
}

std::string metrics(const Daemon& d) { return d.http("GET", "/metrics").body; }

/// The metrics once the pager has counted `deliveries` deliveries to `hook` ending in
/// `result`, or after 5 s. The pager counts one when the receiver's answer arrives, a moment
/// after the receiver has seen the request: reading at once would race it.
std::string metrics_after(const Daemon& d, std::string_view result, double deliveries) {
  const std::string label = "result=\"" + std::string(result) + "\"";
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    std::string m = metrics(d);
    if (sample(m, "visitd_notifications_total", {"receiver=\"hook\"", label}) >= deliveries ||
        std::chrono::steady_clock::now() > deadline) {
      return m;
    }
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace

TEST_CASE("Late visits page the webhook, one page per carer, a check-in tells the paged",
          "[paging]") {
  Receiver hook;
  Daemon d(paging_config(webhook(hook) + R"(
[escalation]
group_wait = "2s"
warning = [ { after = "0s", notify = ["hook"] } ]
)"));
  const auto start = now() - 1min;
  d.import_rota("B1", rota_csv({visit("V1", "C1", start), visit("V2", "C1", start - 1min),
                                visit("V3", "C2", start)}));

  auto got = hook.wait_for(2, 15s);
  REQUIRE(got.size() == 2);
  std::map<std::set<std::string>, Received> by_visits;
  for (const auto& r : got) by_visits[visits_in(r)] = r;
  REQUIRE(by_visits.count({"V1", "V2"}) == 1);  // C1's two late visits: one page
  REQUIRE(by_visits.count({"V3"}) == 1);
  for (const auto& r : got) {
    CHECK(r.target == "/hook");
    CHECK(r.content_type == "application/json");
    CHECK_FALSE(r.idempotency_key.empty());
    const json::value body = r.json();
    CHECK(str(body, "transition") == "triggered");
    for (const auto& a : body.at("alerts").as_array()) {
      CHECK(str(a, "kind") == "late");
      CHECK(str(a, "state") == "triggered");
      CHECK(a.at("escalation_level").as_int64() == 1);
    }
  }
  CHECK(got[0].idempotency_key != got[1].idempotency_key);

  // The board and the API say who was paged and when.
  const std::string office = token(Role::office, "sam", {"B1"});
  const auto alerts = d.api("GET", "/api/alerts?visit=V1", office).json();
  REQUIRE(alerts.at("alerts").as_array().size() == 1);
  CHECK(alerts.at("alerts").at(0).at("escalation_level").as_int64() == 1);
  const auto& notified = alerts.at("alerts").at(0).at("notified").as_array();
  REQUIRE(notified.size() == 1);
  CHECK(str(notified[0], "receiver") == "hook");
  CHECK(str(notified[0], "transition") == "triggered");
  CHECK(notified[0].at("level").as_int64() == 1);

  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  phone.next_of("rota");
  phone.send_text(check_in("e1", "V1"));
  REQUIRE(str(phone.next_of("ack"), "status") == "accepted");

  got = hook.wait_for(3, 10s);
  REQUIRE(got.size() == 3);
  const json::value resolved = got[2].json();
  CHECK(str(resolved, "transition") == "resolved");
  REQUIRE(resolved.at("alerts").as_array().size() == 1);
  CHECK(str(resolved.at("alerts").at(0), "visit") == "V1");
  CHECK(str(resolved.at("alerts").at(0), "resolution") == "checked_in");
  CHECK(got[2].idempotency_key.find("/resolved/hook") != std::string::npos);

  // The audit trail: raised, paged, resolved, and the resolution sent to whoever was paged.
  const std::string id = str(alerts.at("alerts").at(0), "id");
  const auto trail = d.api("GET", "/api/alerts/" + id, office);
  REQUIRE(trail.status == 200);
  std::vector<std::string> events;
  const json::value history = trail.json();
  for (const auto& e : history.at("history").as_array()) {
    events.push_back(str(e, "event") +
                     (e.as_object().contains("transition") ? ":" + str(e, "transition") : ""));
  }
  CHECK(events ==
        std::vector<std::string>{"raised", "notified:triggered", "resolved", "notified:resolved"});
  CHECK(d.api("GET", "/api/alerts/A999", office).status == 404);

  const std::string m = metrics_after(d, "delivered", 3);
  CHECK(sample(m, "visitd_notifications_total", {"receiver=\"hook\"", "result=\"delivered\""}) ==
        3);
  CHECK(sample(m, "visitd_notifications_queued") == 0);
  // Nothing more: no page twice, nothing for V2 or V3 until they change.
  std::this_thread::sleep_for(2500ms);
  CHECK(hook.received().size() == 3);
}

TEST_CASE("A receiver that fails is retried under the same Idempotency-Key", "[paging]") {
  Receiver hook;
  Daemon d(paging_config(webhook(hook) + R"(
[escalation]
group_wait = "0s"
retry_initial = "1s"
warning = [ { after = "0s", notify = ["hook"] } ]
)"));

  SECTION("500, then 200: delivered once, and said so") {
    hook.script({{500, std::nullopt}});
    d.import_rota("B1", rota_csv({visit("V1", "C1", now() - 1min)}));
    const auto got = hook.wait_for(2, 15s);
    REQUIRE(got.size() == 2);
    CHECK(got[0].idempotency_key == got[1].idempotency_key);
    CHECK(got[0].body == got[1].body);
    const std::string m = metrics_after(d, "delivered", 1);
    CHECK(sample(m, "visitd_notifications_total", {"receiver=\"hook\"", "result=\"failed\""}) == 1);
    CHECK(sample(m, "visitd_notifications_total", {"receiver=\"hook\"", "result=\"delivered\""}) ==
          1);
    CHECK(sample(m, "visitd_notification_retries_total") == 1);
    std::this_thread::sleep_for(2s);
    CHECK(hook.received().size() == 2);
  }
  SECTION("429 with Retry-After: 3 is waited for") {
    hook.script({{429, 3u}});
    d.import_rota("B1", rota_csv({visit("V1", "C1", now() - 1min)}));
    const auto got = hook.wait_for(2, 15s);
    REQUIRE(got.size() == 2);
    CHECK(got[1].at - got[0].at >= 2900ms);
    CHECK(got[0].idempotency_key == got[1].idempotency_key);
  }
  SECTION("400 is not retried") {
    hook.script({{400, std::nullopt}});
    d.import_rota("B1", rota_csv({visit("V1", "C1", now() - 1min)}));
    REQUIRE(hook.wait_for(1, 15s).size() == 1);
    std::this_thread::sleep_for(3s);
    CHECK(hook.received().size() == 1);
    CHECK(sample(metrics_after(d, "refused", 1), "visitd_notifications_total",
                 {"receiver=\"hook\"", "result=\"refused\""}) == 1);
  }
}

TEST_CASE("A daemon killed in the middle of a ladder resumes it and pages nobody twice",
          "[paging]") {
  Receiver hook;
  SECTION("the next step fires at its time after the restart") {
    Daemon d(paging_config(webhook(hook) + R"(
[escalation]
group_wait = "0s"
warning = [ { after = "0s", notify = ["hook"] }, { after = "8s", notify = ["hook"] } ]
)"));
    // Late 2 s after it starts (now): step 1 then, step 2 8 s later.
    const auto start = std::chrono::steady_clock::now();
    d.import_rota("B1", rota_csv({visit("V1", "C1", now())}));
    REQUIRE(hook.wait_for(1, 15s).size() == 1);
    std::this_thread::sleep_for(300ms);  // its delivery record is written, not necessarily synced
    d.kill9();
    d.start();
    const auto got = hook.wait_for(2, 20s);
    REQUIRE(got.size() >= 2);
    std::this_thread::sleep_for(2s);
    const auto all = hook.received();
    std::set<std::string> keys;
    for (const auto& r : all) keys.insert(r.idempotency_key);
    // Step 1 at most resent under its own key (at-least-once); step 2 once, on time.
    CHECK(keys.size() == 2);
    const json::value last = all.back().json();
    CHECK(last.at("alerts").at(0).at("escalation_level").as_int64() == 2);
    CHECK(str(last, "transition") == "escalated");
    CHECK(all.back().at - start >= 9s);
  }
  SECTION("a page the receiver had not taken is sent again after the restart") {
    hook.script({{503, std::nullopt}});
    Daemon d(paging_config(webhook(hook) + R"(
[escalation]
group_wait = "0s"
retry_initial = "1h"
retry_max = "1h"
warning = [ { after = "0s", notify = ["hook"] } ]
)"));
    d.import_rota("B1", rota_csv({visit("V1", "C1", now() - 1min)}));
    REQUIRE(hook.wait_for(1, 15s).size() == 1);  // refused with 503; next try in an hour
    d.kill9();
    d.start();
    const auto got = hook.wait_for(2, 15s);
    REQUIRE(got.size() == 2);
    CHECK(got[1].idempotency_key == got[0].idempotency_key);
    std::this_thread::sleep_for(2s);
    CHECK(hook.received().size() == 2);
  }
}

namespace {

/// Debian's prometheus-alertmanager on a free port in a temp dir, stopped at the end.
class Alertmanager {
 public:
  explicit Alertmanager(const std::filesystem::path& dir) {
    {
      boost::asio::io_context io;
      boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
      port_ = a.local_endpoint().port();
    }
    std::filesystem::create_directories(dir / "am");
    std::ofstream(dir / "am" / "alertmanager.yml") << "route:\n  receiver: office\n"
                                                      "  group_wait: 1s\n"
                                                      "receivers:\n  - name: office\n";
    const std::string config = "--config.file=" + (dir / "am" / "alertmanager.yml").string();
    const std::string storage = "--storage.path=" + (dir / "am").string();
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    const std::string log = (dir / "am" / "alertmanager.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* out = std::fopen(log.c_str(), "w");
      if (out != nullptr) {
        ::dup2(fileno(out), STDOUT_FILENO);
        ::dup2(fileno(out), STDERR_FILENO);
      }
      ::execl("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", config.c_str(),
              storage.c_str(), listen.c_str(),
              "--cluster.listen-address=", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 100; ++i) {
      try {
        if (http(port_, "GET", "/-/ready").status == 200) return;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(100ms);
    }
    throw std::runtime_error("prometheus-alertmanager did not become ready; see " + log);
  }
  ~Alertmanager() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  unsigned short port() const { return port_; }
  /// Alertmanager's active alerts for a visit.
  std::vector<json::value> alerts_for(std::string_view visit) const {
    std::vector<json::value> out;
    const json::value listed = http(port_, "GET", "/api/v2/alerts").json();
    for (const auto& a : listed.as_array()) {
      if (str(a.at("labels"), "visit") == visit) out.push_back(a);
    }
    return out;
  }

 private:
  pid_t pid_ = -1;
  unsigned short port_ = 0;
};

}  // namespace

TEST_CASE("Alertmanager receives visitd's alerts: firing, then resolved", "[paging]") {
  REQUIRE(std::filesystem::exists("/usr/bin/prometheus-alertmanager"));  // scripts/setup
  const auto dir = std::filesystem::temp_directory_path() /
                   ("visitd-am-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  Alertmanager am(dir);
  Daemon d(
      paging_config("[[receivers]]\nname = \"am\"\ntype = \"alertmanager\"\n"
                    "url = \"http://127.0.0.1:" +
                    std::to_string(am.port()) + "\"\n" + R"(
[escalation]
group_wait = "0s"
warning = [ { after = "0s", notify = ["am"] } ]
)"));
  d.import_rota("B1", rota_csv({visit("V1", "C1", now() - 1min)}));

  std::vector<json::value> firing;
  for (int i = 0; i < 100 && firing.empty(); ++i) {
    std::this_thread::sleep_for(100ms);
    firing = am.alerts_for("V1");
  }
  REQUIRE(firing.size() == 1);
  const json::value& a = firing[0];
  CHECK(str(a.at("labels"), "alertname") == "VisitNeedsAttention");
  CHECK(str(a.at("labels"), "branch") == "B1");
  CHECK(str(a.at("labels"), "carer") == "C1");
  CHECK(str(a.at("labels"), "client") == "CL-V1");
  CHECK(str(a.at("labels"), "severity") == "warning");
  CHECK(str(a.at("status"), "state") == "active");
  CHECK_FALSE(str(a.at("annotations"), "summary").empty());

  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  phone.next_of("rota");
  phone.send_text(check_in("e1", "V1"));
  REQUIRE(str(phone.next_of("ack"), "status") == "accepted");
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(100ms);
    gone = am.alerts_for("V1").empty();
  }
  CHECK(gone);  // resolved: Alertmanager lists active alerts only
}
