// The edges of a connection's life, over real sockets: max_connections, clients that dawdle
// over their headers, WebSockets that go silent, tokens that expire on an open socket, a
// SIGTERM with acks in flight, browser and non-browser upgrades, and configs the daemon must
// refuse to run with.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "daemon_fixture.hpp"

using namespace visitd::test;
using visitd::TimePoint;
using visitd::websocket::Principal;
using visitd::websocket::Role;
namespace json = boost::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

/// A bare TCP connection to 127.0.0.1:port, for clients no library would be: ones that send
/// half a request and dawdle, or upgrade and then never answer a ping.
class RawConnection {
 public:
  explicit RawConnection(unsigned short port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect() to port " + std::to_string(port) + " failed");
    }
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  /// Writes all of `bytes`; false when the peer has gone (EPIPE, ECONNRESET).
  bool write(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads what arrives for up to `timeout` (into received()) and stops early once the peer
  /// has closed the connection (end of stream or reset). True if it has.
  bool wait_closed(std::chrono::milliseconds timeout) {
    return read_until([] { return false; }, timeout);
  }
  /// Reads until received() holds `marker`, the connection ends, or `timeout`; true if
  /// `marker` came.
  bool wait_for(std::string_view marker, std::chrono::milliseconds timeout) {
    read_until([&] { return received_.find(marker) != std::string::npos; }, timeout);
    return received_.find(marker) != std::string::npos;
  }

  bool closed() const { return closed_; }
  const std::string& received() const { return received_; }

 private:
  template <class Done>
  bool read_until(Done done, std::chrono::milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (!closed_ && !done()) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(std::max(left, 0ms).count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) break;  // the time is up
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) {
        received_.append(chunk, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        closed_ = true;
      }
    }
    return closed_;
  }

  int fd_;
  std::string received_;
  bool closed_ = false;
};

constexpr std::string_view kHealthz = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// The opcodes of the (unmasked, server-sent) WebSocket frames in `bytes`.
std::vector<int> frame_opcodes(std::string_view bytes) {
  std::vector<int> out;
  while (bytes.size() >= 2) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
    std::size_t header = 2;
    std::uint64_t length = byte(1) & 0x7f;
    if (length == 126) {
      if (bytes.size() < 4) break;
      length = (std::uint64_t(byte(2)) << 8) | byte(3);
      header = 4;
    } else if (length == 127) {
      if (bytes.size() < 10) break;
      length = 0;
      for (std::size_t i = 2; i < 10; ++i) length = (length << 8) | byte(i);
      header = 10;
    }
    if (bytes.size() < header + length) break;
    out.push_back(byte(0) & 0x0f);
    bytes.remove_prefix(header + length);
  }
  return out;
}

Headers bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

/// A fresh directory for configs the daemon is expected to refuse; removed at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "visitd-it-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

  /// Writes `toml` to `name` in the dir and returns its path.
  std::filesystem::path config(std::string_view name, const std::string& toml) const {
    const auto file = path_ / name;
    std::ofstream(file) << toml;
    return file;
  }

 private:
  std::filesystem::path path_;
};

/// A config that would run, but for what `listen`, `store_dir` and `auth` say.
std::string config_toml(std::string_view listen, const std::filesystem::path& store_dir,
                        bool with_secret) {
  std::string toml = "[server]\nlisten = \"" + std::string(listen) + "\"\n";
  toml += "\n[store]\nkind = \"journal\"\ndir = \"" + store_dir.string() + "\"\n";
  if (with_secret) toml += "\n[auth]\nsecret = \"" + std::string(kSecret) + "\"\n";
  toml += "\n[[branches]]\nid = \"B1\"\ntimezone = \"Europe/London\"\n";
  return toml;
}

}  // namespace

TEST_CASE(
    "Beyond max_connections a new connection is closed at once without an answer, and one "
    "is served again as soon as another closes",
    "[limits]") {
  DaemonConfig config;
  config.server = {{"max_connections", "3"}};
  Daemon d(config);
  d.import_rota("B1", rota_csv({visit("V1", "C1;C2;C3", today_at(-5min))}));
  // The import's connection counts until the daemon has seen it close (on a loaded machine,
  // a moment later): wait until only the metrics request itself is open.
  const auto settled = SteadyClock::now() + 5s;
  while (sample(d.http("GET", "/metrics").body, "visitd_connections", {"role=\"http\""}) > 1 &&
         SteadyClock::now() < settled) {
    std::this_thread::sleep_for(20ms);
  }

  std::list<WsClient> phones;  // three carer sockets: the limit
  for (const char* carer : {"C1", "C2", "C3"}) {
    phones.emplace_back(d.port(), "/ws/carer", bearer(token(Role::carer, carer)));
    REQUIRE(phones.back().status() == 101);
    REQUIRE(str(phones.back().next(), "type") == "rota");
  }

  {
    RawConnection extra(d.port());
    const auto opened = SteadyClock::now();
    extra.write(kHealthz);
    CHECK(extra.wait_closed(3s));
    CHECK(SteadyClock::now() - opened < 1s);
    CHECK(extra.received().empty());
  }
  CHECK_THROWS(d.http("GET", "/healthz"));  // the same, through an HTTP client

  // The three that were in still work.
  int n = 0;
  for (WsClient& phone : phones) {
    const std::string id = "in-" + std::to_string(++n);
    phone.send_text(location(id));
    const json::value ack = phone.next();
    CHECK(str(ack, "id") == id);
    CHECK(str(ack, "status") == "accepted");
  }

  phones.pop_front();  // C1's phone goes: its slot is free once the daemon sees it go
  std::optional<HttpResponse> metrics;
  const auto deadline = SteadyClock::now() + 3s;
  while (!metrics && SteadyClock::now() < deadline) {
    try {
      metrics = d.http("GET", "/metrics");
    } catch (const std::runtime_error&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(sample(metrics->body, "visitd_connections_refused_total",
               {R"(reason="max_connections")"}) >= 2);
  CHECK(sample(metrics->body, "visitd_connections", {R"(role="carer")"}) == 2);
}

TEST_CASE(
    "Clients dawdling over their request headers hold nobody up and are cut off after "
    "request_timeout",
    "[limits]") {
  DaemonConfig config;
  config.server = {{"request_timeout", "\"1s\""}};  // threads = 2: fewer than the dawdlers
  Daemon d(config);

  constexpr std::size_t kDawdlers = 4;
  std::vector<std::unique_ptr<RawConnection>> dawdlers;
  for (std::size_t i = 0; i < kDawdlers; ++i) {
    dawdlers.push_back(std::make_unique<RawConnection>(d.port()));
    dawdlers.back()->write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
  }
  const auto opened = SteadyClock::now();
  std::vector<std::optional<SteadyClock::duration>> closed_after(kDawdlers);
  std::optional<HttpResponse> health;
  SteadyClock::duration health_took{};

  // A byte of header every ~100 ms from each, well inside any per-read timeout.
  while (SteadyClock::now() - opened < 3500ms) {
    bool all_closed = true;
    for (std::size_t i = 0; i < kDawdlers; ++i) {
      if (closed_after[i]) continue;
      dawdlers[i]->write("a");
      if (dawdlers[i]->wait_closed(25ms)) {
        closed_after[i] = SteadyClock::now() - opened;
      } else {
        all_closed = false;
      }
    }
    if (all_closed) break;
    if (!health && SteadyClock::now() - opened > 300ms) {
      const auto asked = SteadyClock::now();
      health = d.http("GET", "/healthz");
      health_took = SteadyClock::now() - asked;
    }
  }

  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health_took < 500ms);
  for (std::size_t i = 0; i < kDawdlers; ++i) {
    INFO("dawdler " << i);
    REQUIRE(closed_after[i]);
    INFO("closed after "
         << std::chrono::duration_cast<std::chrono::milliseconds>(*closed_after[i]).count()
         << " ms");
    CHECK(*closed_after[i] > 800ms);
    CHECK(*closed_after[i] < 3s);
    CHECK_THAT(dawdlers[i]->received(), !Catch::Contains("200 OK"));
  }
  CHECK(d.http("GET", "/healthz").status == 200);
}

TEST_CASE(
    "A token that expires while its socket is open gets unauthenticated on the next message "
    "and the socket closed with 1008, and that message is not processed",
    "[limits]") {
  Daemon d;
  d.import_rota("B1", rota_csv({visit("V1", "C1", today_at(-5min))}));

  // `exp` is in whole seconds: the next whole second plus one is 1 to 2 s away.
  const TimePoint expires = std::chrono::floor<std::chrono::seconds>(now()) + 2s;
  Principal carer;
  carer.sub = "C1";
  carer.role = Role::carer;
  carer.expires = expires;
  Principal office;
  office.sub = "olga";
  office.role = Role::office;
  office.branches = {"B1"};
  office.expires = expires;

  WsClient phone(d.port(), "/ws/carer", bearer(visitd::websocket::mint(carer, kSecret, now())));
  REQUIRE(phone.status() == 101);
  REQUIRE(str(phone.next(), "type") == "rota");
  WsClient board(d.port(), "/ws/board", {{"Origin", std::string(kAllowedOrigin)}});
  REQUIRE(board.status() == 101);
  board.send_text(auth(visitd::websocket::mint(office, kSecret, now())));
  REQUIRE(str(board.next(), "type") == "snapshot");
  phone.send_text(location("before"));
  REQUIRE(str(phone.next(), "status") == "accepted");

  std::this_thread::sleep_for(expires - now() + 200ms);
  REQUIRE(now() > expires);

  phone.send_text(check_in("late-in", "V1"));
  const json::value e = phone.next();
  CHECK(str(e, "type") == "error");
  CHECK(str(e, "code") == "unauthenticated");
  REQUIRE(phone.wait_closed(3s));
  CHECK(phone.close_code() == 1008);

  board.send_text(R"({"type":"ack_alert","alert":"A1","note":"on it"})");
  // The phone's socket closing may first bring the board V1 again (phone offline since ...).
  const json::value b = board.next_of("error");
  CHECK(str(b, "type") == "error");
  CHECK(str(b, "code") == "unauthenticated");
  REQUIRE(board.wait_closed(3s));
  CHECK(board.close_code() == 1008);

  const std::string admin = token(Role::admin, "root", {"*"});
  const json::value v1 = d.api("GET", "/api/visits/V1", admin).json();
  CHECK(str(v1, "state") == "scheduled");
  CHECK(v1.at("check_ins").as_array().empty());

  // A fresh token: the same event is new to the daemon, not a duplicate.
  WsClient again = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(again.next(), "type") == "rota");
  again.send_text(check_in("late-in", "V1"));
  CHECK(str(again.next(), "status") == "accepted");
}

TEST_CASE(
    "A WebSocket that never answers a ping is closed about idle_timeout after it went "
    "silent, while one that answers stays open",
    "[limits]") {
  DaemonConfig config;
  config.server = {{"idle_timeout", "\"2s\""}};
  Daemon d(config);
  d.import_rota("B1", rota_csv({visit("V1", "C1;C2", today_at(-5min))}));

  // Beast answers pings while a read is pending, as WsClient always has one.
  WsClient answering = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C2"));
  REQUIRE(str(answering.next(), "type") == "rota");

  // The silent one upgrades by hand, then never writes a byte (reading sends nothing).
  RawConnection silent(d.port());
  silent.write(
      "GET /ws/carer HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer " +
      token(Role::carer, "C1") + "\r\n\r\n");
  REQUIRE(silent.wait_for("\r\n\r\n", 5s));
  const auto upgraded = SteadyClock::now();
  REQUIRE_THAT(silent.received(), Catch::StartsWith("HTTP/1.1 101"));

  std::optional<SteadyClock::duration> silent_for;
  while (SteadyClock::now() - upgraded < 3500ms) {
    if (!silent_for && silent.wait_closed(10ms)) silent_for = SteadyClock::now() - upgraded;
    answering.receive(40ms);  // lets the answering client read, and so answer pings
  }

  REQUIRE(silent_for);
  INFO("closed " << std::chrono::duration_cast<std::chrono::milliseconds>(*silent_for).count()
                 << " ms after the upgrade");
  CHECK(*silent_for > 1500ms);
  CHECK(*silent_for < 3200ms);  // 2 s, give or take a timer tick
  const std::string& bytes = silent.received();
  const auto frames = frame_opcodes(std::string_view(bytes).substr(bytes.find("\r\n\r\n") + 4));
  REQUIRE_FALSE(frames.empty());
  CHECK(frames.front() == 0x1);                               // the rota
  CHECK(std::count(frames.begin(), frames.end(), 0x9) >= 1);  // a ping it left unanswered

  CHECK_FALSE(answering.closed());
  answering.send_text(location("still-here"));
  CHECK(str(answering.next_of("ack"), "id") == "still-here");
}

TEST_CASE(
    "On SIGTERM every ack in flight is delivered before the 1001, every acked event survives "
    "the restart, and events racing the stop get an ack or internal, never a record without "
    "an ack",
    "[limits]") {
  DaemonConfig config;
  config.server = {{"rate_limit", "100000"}, {"rate_burst", "100000"}};
  // Acks wait for a group commit this long after its first record (or a flush): the acks of
  // the first burst are still owed when SIGTERM comes.
  config.store = {{"group_delay", "\"1s\""}};
  Daemon d(config);
  d.import_rota("B1", rota_csv({visit("V1", "C1", today_at(-5min))}));

  WsClient phone = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(phone.next(), "type") == "rota");

  std::vector<std::string> in_flight;  // accepted by the engine before SIGTERM, acks owed
  std::vector<std::string> racing;     // sent while it stops
  std::map<std::string, json::value> replies;
  const auto take = [&](const std::string& message) {
    json::value v = json::parse(message);
    const std::string id = str(v, "id");
    INFO(message);
    CHECK(replies.count(id) == 0);  // one reply per event
    replies[id] = std::move(v);
  };

  for (int i = 0; i < 50; ++i) {
    in_flight.push_back("p" + std::to_string(i));
    phone.send_text(location(in_flight.back()));
  }
  // A refusal needs no durability, so it comes at once; the engine decides in order, so once
  // it is here every ping before it has been accepted and journaled, its ack waiting.
  phone.send_text(check_in("probe", "V404"));
  for (;;) {
    const json::value reply = phone.next();
    if (str(reply, "id") == "probe") {
      REQUIRE(str(reply, "code") == "unknown_visit");
      break;
    }
    take(json::serialize(reply));
  }
  CHECK(replies.empty());  // nothing acked yet: all 50 are in flight

  int status = -1;
  std::thread stopper([&] { status = d.stop(); });
  // Events keep coming while it stops: each races the shutdown.
  for (int i = 0; i < 2000 && !phone.closed(); ++i) {
    const std::string id = "q" + std::to_string(i);
    try {
      phone.send_text(location(id));
    } catch (const std::runtime_error&) {
      break;  // closed before this one could be sent
    }
    racing.push_back(id);
    while (auto m = phone.receive(1ms)) take(*m);
  }
  while (auto m = phone.receive(5s)) take(*m);
  stopper.join();

  INFO(racing.size() << " events sent while stopping; " << replies.size() << " replies");
  REQUIRE(phone.closed());
  CHECK(phone.close_code() == 1001);
  CHECK(status == 0);

  for (const auto& id : in_flight) {
    INFO(id);
    REQUIRE(replies.count(id) == 1);
    CHECK(str(replies[id], "type") == "ack");
    CHECK(str(replies[id], "status") == "accepted");
  }
  std::vector<std::string> acked;
  std::vector<std::string> refused;
  std::vector<std::string> unanswered;
  for (const auto& id : racing) {
    const auto reply = replies.find(id);
    if (reply == replies.end()) {
      unanswered.push_back(id);
      continue;
    }
    INFO(json::serialize(reply->second));
    if (str(reply->second, "type") == "ack") {
      CHECK(str(reply->second, "status") == "accepted");
      acked.push_back(id);
    } else {
      CHECK(str(reply->second, "type") == "error");
      CHECK(str(reply->second, "code") == "internal");
      refused.push_back(id);
    }
  }
  CHECK(replies.size() == in_flight.size() + acked.size() + refused.size());  // nothing else
  acked.insert(acked.end(), in_flight.begin(), in_flight.end());

  d.start();
  WsClient again = WsClient::with_token(d.port(), "/ws/carer", token(Role::carer, "C1"));
  REQUIRE(str(again.next(), "type") == "rota");
  for (const auto* ids : {&acked, &refused, &unanswered}) {
    for (const auto& id : *ids) again.send_text(location(id));
  }
  std::map<std::string, std::string> resent;  // id -> status of the ack
  const std::size_t expected = acked.size() + refused.size() + unanswered.size();
  while (resent.size() < expected) {
    const json::value reply = again.next();
    INFO(json::serialize(reply));
    REQUIRE(str(reply, "type") == "ack");
    resent[str(reply, "id")] = str(reply, "status");
  }
  // Acked: durable. Refused with internal: not recorded. Unanswered (the close came before
  // the daemon read them, or it read them too late to answer): not recorded either, since a
  // recorded event's ack is owed before the 1001.
  for (const auto& id : acked) {
    INFO("acked " << id);
    CHECK(resent[id] == "duplicate");
  }
  for (const auto& id : refused) {
    INFO("refused " << id);
    CHECK(resent[id] == "accepted");
  }
  for (const auto& id : unanswered) {
    INFO("unanswered " << id);
    CHECK(resent[id] == "accepted");
  }
}

TEST_CASE(
    "An upgrade from an allowed browser Origin and one with no Origin at all are both "
    "served, and their boards get live deltas",
    "[limits]") {
  Daemon d;
  d.import_rota("B1", rota_csv({visit("V1", "C1", today_at(-5min))}));
  const std::string office = token(Role::office, "olga", {"B1"});

  // A browser: an Origin, and the token in its first message.
  WsClient browser(d.port(), "/ws/board", {{"Origin", std::string(kAllowedOrigin)}});
  REQUIRE(browser.status() == 101);
  browser.send_text(auth(office));
  const json::value snapshot = browser.next();
  CHECK(str(snapshot, "type") == "snapshot");
  CHECK(snapshot.at("visits").as_array().size() == 1);

  // A program: no Origin, the token in a header.
  WsClient program(d.port(), "/ws/board", bearer(office));
  REQUIRE(program.status() == 101);
  CHECK(str(program.next(), "type") == "snapshot");

  // A phone app inside a browser-like web view sends the allowed Origin too.
  WsClient phone(d.port(), "/ws/carer",
                 {{"Origin", std::string(kAllowedOrigin)},
                  {"Authorization", "Bearer " + token(Role::carer, "C1")}});
  REQUIRE(phone.status() == 101);
  REQUIRE(str(phone.next(), "type") == "rota");
  phone.send_text(check_in("o1", "V1"));
  CHECK(str(phone.next(), "status") == "accepted");

  for (WsClient* board : {&browser, &program}) {
    const json::value delta = board->next_of("visit");
    CHECK(str(delta.at("visit"), "id") == "V1");
    CHECK(str(delta.at("visit"), "state") == "in_progress");
  }
}

TEST_CASE(
    "/readyz is 200 while serving, and visitd run refuses an unwritable store dir, a missing "
    "secret and a port in use with a non-zero exit and a log line that says which",
    "[limits]") {
  Daemon d;
  const auto ready = d.http("GET", "/readyz");
  CHECK(ready.status == 200);
  CHECK(str(ready.json(), "status") == "ready");

  ScratchDir scratch;
  SECTION("a store dir under a regular file") {
    std::ofstream(scratch.path() / "a-file") << "not a directory\n";
    const auto store = scratch.path() / "a-file" / "data";
    const auto run =
        run_visitd(scratch.config("unwritable.toml", config_toml("127.0.0.1:0", store, true)), 10s);
    INFO(run.log);
    CHECK(run.status != 0);
    CHECK(run.status != -1);  // it exited by itself
    CHECK_THAT(run.log, Catch::Contains("journal_refused"));
    CHECK_THAT(run.log, Catch::Contains(store.string()));
    CHECK_THAT(run.log, !Catch::Contains("listening"));
  }
  SECTION("no [auth] secret") {
    const auto run = run_visitd(
        scratch.config("nosecret.toml", config_toml("127.0.0.1:0", scratch.path() / "data", false)),
        10s);
    INFO(run.log);
    CHECK(run.status != 0);
    CHECK(run.status != -1);
    CHECK_THAT(run.log, Catch::Contains("config_refused"));
    CHECK_THAT(run.log, Catch::Contains("secret"));
    CHECK_THAT(run.log, !Catch::Contains("listening"));
  }
  SECTION("the port of the daemon already running") {
    const std::string listen = "127.0.0.1:" + std::to_string(d.port());
    const auto run = run_visitd(
        scratch.config("taken.toml", config_toml(listen, scratch.path() / "data", true)), 10s);
    INFO(run.log);
    CHECK(run.status != 0);
    CHECK(run.status != -1);
    CHECK_THAT(run.log, Catch::Contains("listen_failed"));
    CHECK_THAT(run.log, Catch::Contains(listen));
    CHECK(d.http("GET", "/healthz").status == 200);  // the first one is unharmed
  }
}
