#include "daemon_fixture.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "visitd/core/zone.hpp"

#ifndef VISITD_BINARY
#error "VISITD_BINARY must name the visitd executable"
#endif

namespace visitd::test {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ws = boost::beast::websocket;
namespace json = boost::json;
using tcp = net::ip::tcp;

namespace {

constexpr auto kStartTimeout = 10s;
constexpr auto kHttpTimeout = 10s;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return std::move(out).str();
}

/// The port of the last `listening addr=127.0.0.1:PORT` line after `from` in `log`.
std::optional<unsigned short> listening_port(const std::string& log, std::size_t from) {
  constexpr std::string_view kMarker = "listening addr=";
  const auto at = log.find(kMarker, from);
  if (at == std::string::npos) return std::nullopt;
  const auto end = log.find('\n', at);
  if (end == std::string::npos) return std::nullopt;  // the line is not complete yet
  const std::string addr = log.substr(at + kMarker.size(), end - at - kMarker.size());
  const auto colon = addr.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return static_cast<unsigned short>(std::stoul(addr.substr(colon + 1)));
}

void append_lines(std::string& out, const Headers& lines) {
  for (const auto& [key, value] : lines) out += key + " = " + value + "\n";
}

const TimeZone& london() {
  static const TimeZone zone = *TimeZone::locate("Europe/London");
  return zone;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// HTTP

json::value HttpResponse::json() const { return json::parse(body); }

std::string HttpResponse::error_code() const {
  json::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return {};
  const auto* error = v.as_object().if_contains("error");
  return error != nullptr && error->is_object() ? str(*error, "code") : std::string();
}

HttpResponse http(unsigned short port, std::string_view method, std::string_view target,
                  const Headers& headers, std::string body) {
  net::io_context io;
  beast::tcp_stream stream(io);
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(bhttp::field::host, "127.0.0.1:" + std::to_string(port));
  req.keep_alive(false);
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = std::move(body);
  req.prepare_payload();

  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 << 20);
  beast::flat_buffer buffer;
  beast::error_code result;
  stream.expires_after(kHttpTimeout);
  stream.async_connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), port), [&](beast::error_code ec) {
        if (ec) {
          result = ec;
          return;
        }
        bhttp::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
          // A refusal may come before the whole body is taken: read it anyway.
          if (ec && ec != net::error::broken_pipe && ec != net::error::connection_reset) {
            result = ec;
            return;
          }
          bhttp::async_read(stream, buffer, parser,
                            [&](beast::error_code ec, std::size_t) { result = ec; });
        });
      });
  io.run();
  if (result) {
    throw std::runtime_error(std::string(method) + " " + std::string(target) + ": " +
                             result.message());
  }
  auto res = parser.release();
  HttpResponse out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  for (const auto& field : res) out.headers.insert(field.name_string(), field.value());
  return out;
}

// ---------------------------------------------------------------------------------------
// Daemon

Daemon::Daemon(DaemonConfig config, bool wait) : config_(std::move(config)) {
  std::string pattern = (std::filesystem::temp_directory_path() / "visitd-it-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  write_config();
  if (wait) {
    start();
  } else {
    spawn();
  }
}

Daemon::~Daemon() {
  if (running()) stop(5s);
  if (std::getenv("VISITD_KEEP_TEST_DIRS") != nullptr) {
    std::fprintf(stderr, "visitd test dir kept: %s\n", dir_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void Daemon::write_config() const {
  std::string toml = "[server]\nlisten = \"127.0.0.1:0\"\nthreads = 2\n";
  toml += "allowed_origins = [\"" + std::string(kAllowedOrigin) + "\"]\n";
  append_lines(toml, config_.server);
  // The journal unless the test names a store kind (e.g. "redis" with its url).
  const bool kind_given = std::any_of(config_.store.begin(), config_.store.end(),
                                      [](const auto& line) { return line.first == "kind"; });
  toml += kind_given ? "\n[store]\n" : "\n[store]\nkind = \"journal\"\n";
  toml += "dir = \"" + (dir_ / "data").string() + "\"\n";
  append_lines(toml, config_.store);
  toml += "\n[auth]\nsecret = \"" + std::string(kSecret) + "\"\n";
  toml += "\n[thresholds]\n";
  append_lines(toml, config_.thresholds);
  toml += "\n[tracking]\n";
  append_lines(toml, config_.tracking);
  if (!config_.clock.empty()) {
    toml += "\n[clock]\n";
    append_lines(toml, config_.clock);
  }
  for (const char* id : {"B1", "B2"}) {
    toml += "\n[[branches]]\nid = \"" + std::string(id) + "\"\ntimezone = \"Europe/London\"\n";
  }
  toml += "\n" + config_.tables;
  std::ofstream(dir_ / "visitd.toml") << toml;
}

void Daemon::start() {
  spawn();
  wait_listening(kStartTimeout);
}

void Daemon::spawn() {
  if (running()) throw std::logic_error("the daemon is already running");
  const std::filesystem::path log_path = dir_ / "visitd.log";
  std::error_code ec;
  log_from_ = std::filesystem::exists(log_path, ec)
                  ? std::size_t(std::filesystem::file_size(log_path, ec))
                  : 0;
  const std::string config = (dir_ / "visitd.toml").string();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0) ::_exit(126);
    if (::chdir(dir_.c_str()) != 0) ::_exit(126);
    ::execl(VISITD_BINARY, VISITD_BINARY, "run", "--config", config.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
}

void Daemon::wait_listening(std::chrono::milliseconds timeout) {
  const std::filesystem::path log_path = dir_ / "visitd.log";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (const auto port = listening_port(read_file(log_path), log_from_)) {
      port_ = *port;
      return;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("visitd exited before listening; its log:\n" + log());
    }
    std::this_thread::sleep_for(10ms);
  }
  kill9();
  throw std::runtime_error("visitd did not listen within " + std::to_string(timeout.count()) +
                           " ms; its log:\n" + log());
}

int Daemon::stop(std::chrono::milliseconds grace) {
  if (!running()) return -1;
  ::kill(pid_, SIGTERM);
  return wait_exit(grace);
}

int Daemon::wait_exit(std::chrono::milliseconds timeout) {
  if (!running()) return -1;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void Daemon::kill9() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void Daemon::reload(DaemonConfig config) {
  config_ = std::move(config);
  write_config();
  if (running()) ::kill(pid_, SIGHUP);
}

RunOutcome run_visitd(const std::filesystem::path& config_file, std::chrono::milliseconds timeout) {
  const std::filesystem::path config = std::filesystem::absolute(config_file);
  const std::filesystem::path log_path = config.string() + ".log";
  const std::filesystem::path cwd = config.parent_path();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0) ::_exit(126);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
    ::execl(VISITD_BINARY, VISITD_BINARY, "run", "--config", config.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  RunOutcome out;
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      out.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  out.log = read_file(log_path);
  return out;
}

std::string Daemon::log() const { return read_file(dir_ / "visitd.log"); }

HttpResponse Daemon::http(std::string_view method, std::string_view target, const Headers& headers,
                          std::string body) const {
  return test::http(port_, method, target, headers, std::move(body));
}

HttpResponse Daemon::api(std::string_view method, std::string_view target, std::string_view token,
                         std::string body, std::string_view content_type) const {
  Headers headers{{"Authorization", "Bearer " + std::string(token)}};
  if (!body.empty()) headers.emplace_back("Content-Type", std::string(content_type));
  return http(method, target, headers, std::move(body));
}

void Daemon::import_rota(std::string_view branch, const std::string& csv) const {
  const auto res = api("PUT", "/api/rota?branch=" + std::string(branch) + "&date=" + today(),
                       token(websocket::Role::admin, "root", {"*"}), csv, "text/csv");
  INFO(res.body);
  REQUIRE(res.status == 200);
}

// ---------------------------------------------------------------------------------------
// Tokens, times, rotas

std::string token(websocket::Role role, std::string_view sub, std::vector<std::string> branches,
                  std::chrono::seconds ttl, std::string_view secret) {
  websocket::Principal who;
  who.sub = std::string(sub);
  who.role = role;
  if (branches.size() == 1 && branches[0] == "*") {
    who.all_branches = true;
  } else {
    who.branches = std::move(branches);
  }
  who.expires = now() + ttl;
  return websocket::mint(who, secret, now());
}

TimePoint now() { return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now()); }

std::string rfc3339(TimePoint t) { return format_rfc3339(t); }

std::string today() { return format_local_date(london().local_day(now())); }

TimePoint today_at(std::chrono::minutes offset) {
  const LocalDays day = london().local_day(now());
  const TimePoint first = *london().to_sys(LocalTime(day) + 1min);
  const TimePoint last = *london().to_sys(LocalTime(day + std::chrono::days(1)) - 2min);
  return std::clamp(now() + offset, first, last);
}

bool is_today(std::chrono::minutes offset) {
  return london().local_day(now() + offset) == london().local_day(now());
}

VisitRow visit(std::string id, std::string carers, TimePoint start, std::chrono::minutes length) {
  VisitRow row;
  row.client = "CL-" + id;
  row.id = std::move(id);
  row.carers = std::move(carers);
  row.start = start;
  row.end = start + length;
  return row;
}

std::string rota_csv(const std::vector<VisitRow>& rows) {
  std::string csv = "visit_id,client_id,client_name,lat,lon,carers,start,end,notes\n";
  for (const VisitRow& r : rows) {
    csv += r.id + "," + r.client + ",Client " + r.client + "," + std::to_string(r.lat) + "," +
           std::to_string(r.lon) + "," + r.carers + "," + rfc3339(r.start) + "," + rfc3339(r.end) +
           "," + r.notes + "\n";
  }
  return csv;
}

std::string check_in(std::string_view id, std::string_view visit, double lat, double lon) {
  return json::serialize(json::object{{"type", "check_in"},
                                      {"id", id},
                                      {"visit", visit},
                                      {"at", rfc3339(now())},
                                      {"lat", lat},
                                      {"lon", lon},
                                      {"accuracy", 12},
                                      {"method", "gps"}});
}

std::string check_out(std::string_view id, std::string_view visit, std::string_view note) {
  return json::serialize(json::object{{"type", "check_out"},
                                      {"id", id},
                                      {"visit", visit},
                                      {"at", rfc3339(now())},
                                      {"lat", 51.5014},
                                      {"lon", -0.1419},
                                      {"accuracy", 10},
                                      {"note", note}});
}

std::string location(std::string_view id) {
  return json::serialize(json::object{{"type", "location"},
                                      {"id", id},
                                      {"at", rfc3339(now())},
                                      {"lat", 51.5},
                                      {"lon", -0.14},
                                      {"accuracy", 20}});
}

std::string auth(std::string_view token) {
  return json::serialize(json::object{{"type", "auth"}, {"token", token}});
}

std::string str(const json::value& v, std::string_view key) {
  if (!v.is_object()) return {};
  const auto* member = v.as_object().if_contains(key);
  return member != nullptr && member->is_string() ? std::string(member->as_string())
                                                  : std::string();
}

// ---------------------------------------------------------------------------------------
// WebSocket client

WsClient::WsClient(unsigned short port, std::string_view target, const Headers& headers,
                   int receive_buffer)
    : ws_(io_) {
  auto& socket = beast::get_lowest_layer(ws_).socket();
  socket.open(tcp::v4());
  if (receive_buffer > 0) socket.set_option(net::socket_base::receive_buffer_size(receive_buffer));
  ws_.set_option(ws::stream_base::decorator([headers](ws::request_type& req) {
    for (const auto& [name, value] : headers) req.set(name, value);
  }));
  ws_.read_message_max(64 << 20);

  ws::response_type response;
  bool done = false;
  beast::error_code result;
  beast::get_lowest_layer(ws_).expires_after(kHttpTimeout);
  beast::get_lowest_layer(ws_).async_connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), port), [&](beast::error_code ec) {
        if (ec) {
          result = ec;
          done = true;
          return;
        }
        ws_.async_handshake(response, "127.0.0.1:" + std::to_string(port), std::string(target),
                            [&](beast::error_code ec) {
                              result = ec;
                              done = true;
                            });
      });
  while (!done && io_.run_one() > 0) {
  }
  beast::get_lowest_layer(ws_).expires_never();
  if (result && result != ws::error::upgrade_declined) {
    throw std::runtime_error("WebSocket " + std::string(target) + ": " + result.message());
  }
  status_ = response.result_int();
  if (result) {
    refusal_body_ = response.body();
    closed_ = true;
    end_ = result;
    return;
  }
  do_read();
}

WsClient WsClient::with_token(unsigned short port, std::string_view target,
                              std::string_view token) {
  return WsClient(port, target, {{"Authorization", "Bearer " + std::string(token)}});
}

void WsClient::do_read() {
  ws_.async_read(buffer_, [this](beast::error_code ec, std::size_t) {
    if (ec) {
      closed_ = true;
      end_ = ec;
      if (ec == ws::error::closed) close_code_ = ws_.reason().code;
      return;
    }
    inbox_.push_back(beast::buffers_to_string(buffer_.data()));
    buffer_.consume(buffer_.size());
    do_read();
  });
}

template <class Done>
bool WsClient::run_until(Done done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= 0s) return false;
    if (io_.stopped()) io_.restart();
    if (io_.run_one_for(left) == 0 && io_.stopped() && !done()) {
      // Nothing left to run (the connection is gone): waiting longer cannot help.
      return done();
    }
  }
  return true;
}

void WsClient::send(std::string_view data, bool text) {
  if (closed_) throw std::runtime_error("send on a closed WebSocket: " + end_reason());
  bool done = false;
  beast::error_code result;
  ws_.text(text);
  ws_.async_write(net::buffer(data), [&](beast::error_code ec, std::size_t) {
    result = ec;
    done = true;
  });
  if (!run_until([&] { return done; }, kHttpTimeout)) {
    throw std::runtime_error("a WebSocket write did not finish within 10 s");
  }
  if (result && !closed_) {
    closed_ = true;
    end_ = result;
  }
}

void WsClient::send_text(std::string_view text) { send(text, true); }
void WsClient::send_binary(std::string_view bytes) { send(bytes, false); }

std::optional<std::string> WsClient::receive(std::chrono::milliseconds timeout) {
  run_until([&] { return !inbox_.empty() || closed_; }, timeout);
  if (inbox_.empty()) return std::nullopt;
  std::string message = std::move(inbox_.front());
  inbox_.pop_front();
  return message;
}

json::value WsClient::next(std::chrono::milliseconds timeout) {
  const auto message = receive(timeout);
  if (!message) {
    throw std::runtime_error(
        closed_ ? "the WebSocket closed (" + end_reason() + ") while a message was expected"
                : "no message within " + std::to_string(timeout.count()) + " ms");
  }
  json::error_code ec;
  json::value v = json::parse(*message, ec);
  if (ec) throw std::runtime_error("the server sent something that is not JSON: " + *message);
  return v;
}

json::value WsClient::next_of(std::string_view type, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    json::value v = next(std::max(left, 0ms));
    if (str(v, "type") == type) return v;
  }
}

std::vector<json::value> WsClient::drain(std::chrono::milliseconds window) {
  std::vector<json::value> out;
  const auto deadline = std::chrono::steady_clock::now() + window;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) break;
    const auto message = receive(left);
    if (!message) break;
    out.push_back(json::parse(*message));
  }
  return out;
}

bool WsClient::wait_closed(std::chrono::milliseconds timeout) {
  run_until(
      [&] {
        inbox_.clear();
        return closed_;
      },
      timeout);
  return closed_;
}

std::string WsClient::end_reason() const {
  if (!closed_) return "open";
  if (close_code_ != 0) return "close code " + std::to_string(close_code_);
  return end_.message();
}

/// The value of the sample of `name` whose labels include every one of `labels`; -1 if none.
double sample(const std::string& metrics, std::string_view name,
              std::initializer_list<std::string_view> labels) {
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(std::string(name) + "{") && !line.starts_with(std::string(name) + " ")) {
      continue;
    }
    bool all = true;
    for (const auto label : labels) all = all && line.find(label) != std::string::npos;
    if (all) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

}  // namespace visitd::test
