#include "http_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "visitd/core/log.hpp"
#include "websocket_session.hpp"

namespace visitd::websocket::detail {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;

namespace {

/// Request headers larger than this are refused (431) before the body is read.
constexpr std::uint32_t kMaxHeaderBytes = 16 * 1024;
/// Files served from the dashboard directory; the board is a handful of small files.
constexpr std::uintmax_t kMaxFileBytes = 8 << 20;

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

std::string_view mime_type(std::string_view path) {
  const auto dot = path.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : path.substr(dot);
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".json") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

HttpAnswer json_answer(unsigned status, std::string body) {
  HttpAnswer a;
  a.status = status;
  a.body = std::move(body);
  return a;
}

/// The bearer token of an `Authorization` header; empty when there is none.
std::optional<std::string_view> bearer(std::string_view header) {
  constexpr std::string_view kScheme = "Bearer ";
  if (header.size() <= kScheme.size()) return std::nullopt;
  // The scheme is case-insensitive (RFC 7235).
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return std::nullopt;
    }
  }
  return header.substr(kScheme.size());
}

}  // namespace

HttpSession::HttpSession(net::ip::tcp::socket&& socket, std::shared_ptr<ServerContext> ctx)
    : stream_(std::move(socket)), ctx_(std::move(ctx)), slot_(*ctx_, ConnectionRole::http) {}

HttpSession::~HttpSession() {
  if (registration_ != 0) ctx_->withdraw(registration_);
}

void HttpSession::run() {
  registration_ = ctx_->enroll(weak_from_this());
  // On the session's strand from the start (the socket was accepted onto it).
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&HttpSession::do_read, shared_from_this()));
}

void HttpSession::shut_down() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    self->stopping_ = true;
    // Between requests: close now. Mid-request: the response is written, then it closes.
    if (!self->response_) self->close();
  });
}

void HttpSession::do_read() {
  if (stopping_) return close();
  parser_.emplace();
  parser_->header_limit(kMaxHeaderBytes);
  parser_->body_limit(ctx_->settings.server.max_body);
  // One deadline for the whole request, headers and body: a client sending a byte a second
  // holds nothing but its own connection, and not for long.
  stream_.expires_after(ctx_->settings.server.request_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
}

void HttpSession::on_read(beast::error_code ec, std::size_t) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == net::error::operation_aborted || ec == net::error::connection_reset) {
    return close();
  }
  if (ec) {
    keep_alive_ = false;
    version_ = 11;
    head_ = false;
    if (ec == http::error::body_limit) {
      HttpAnswer a = error_answer(Error{
          ErrorCode::bad_message, "the body is larger than [server] max_body (" +
                                      std::to_string(ctx_->settings.server.max_body) + " bytes)"});
      a.status = 413;
      return respond(a);
    }
    if (ec == http::error::header_limit) {
      HttpAnswer a =
          error_answer(Error{ErrorCode::bad_message, "the request headers are too large"});
      a.status = 431;
      return respond(a);
    }
    return respond(
        error_answer(Error{ErrorCode::bad_message, "not an HTTP/1.1 request: " + ec.message()}));
  }
  route(parser_->release());
}

void HttpSession::route(Request&& request) {
  version_ = request.version();
  keep_alive_ = request.keep_alive() && !stopping_;
  head_ = request.method() == http::verb::head;
  const std::string_view path = path_of(request.target());

  if (beast::websocket::is_upgrade(request)) return upgrade(std::move(request));

  if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      HttpAnswer a = error_answer(Error{ErrorCode::bad_message, "use GET"});
      a.status = 405;
      a.headers.emplace_back("Allow", "GET, HEAD");
      return respond(a);
    }
    if (path == "/healthz") return respond(json_answer(200, R"({"status":"ok"})"));
    if (path == "/readyz") {
      if (ctx_->host->ready()) {
        const std::string warning = ctx_->host->warning();
        if (warning.empty()) return respond(json_answer(200, R"({"status":"ready"})"));
        std::string body = R"({"status":"ready","warning":)";
        append_json_string(body, warning);
        body += '}';
        return respond(json_answer(200, std::move(body)));
      }
      std::string body = R"({"status":"not_ready","reason":)";
      append_json_string(body, ctx_->host->not_ready_reason());
      body += '}';
      return respond(json_answer(503, std::move(body)));
    }
    HttpAnswer metrics;
    metrics.content_type = "text/plain; version=0.0.4; charset=utf-8";
    ctx_->host->refresh_metrics();
    metrics.body = ctx_->metrics.serialize();
    return respond(metrics);
  }

  if (path == "/api" || path.starts_with("/api/")) {
    const auto token = bearer(request[http::field::authorization]);
    if (!token) {
      HttpAnswer a =
          error_answer(Error{ErrorCode::unauthenticated, "send Authorization: Bearer <token>"});
      a.headers.emplace_back("WWW-Authenticate", "Bearer");
      return respond(a);
    }
    auto who = verify(*token, ctx_->settings.auth.secret, ctx_->clock.now());
    if (!who) {
      HttpAnswer a = error_answer(who.error());
      a.headers.emplace_back("WWW-Authenticate", R"(Bearer error="invalid_token")");
      return respond(a);
    }
    auto owned = std::make_shared<OwnedHttpRequest>();
    owned->method = std::string(request.method_string());
    owned->target = std::string(request.target());
    owned->content_type = std::string(request[http::field::content_type]);
    owned->accept = std::string(request[http::field::accept]);
    owned->body = std::move(request.body());
    response_ = std::make_shared<http::response<http::string_body>>();  // busy until answered
    ctx_->host->http(std::move(owned), std::move(*who),
                     [self = shared_from_this()](HttpAnswer answer) {
                       net::post(self->stream_.get_executor(),
                                 [self, answer = std::move(answer)] { self->respond(answer); });
                     });
    return;
  }

  if (path.starts_with("/ws/")) {
    HttpAnswer a = error_answer(
        Error{ErrorCode::bad_message, "this is a WebSocket endpoint: open it with an upgrade"});
    a.status = 426;
    a.headers.emplace_back("Upgrade", "websocket");
    return respond(a);
  }
  serve_file(request);
}

void HttpSession::upgrade(Request&& request) {
  const std::string_view path = path_of(request.target());
  Channel channel;
  if (path == "/ws/carer") {
    channel = Channel::carer;
  } else if (path == "/ws/board") {
    channel = Channel::board;
  } else {
    keep_alive_ = false;
    return respond(
        error_answer(Error{ErrorCode::bad_message, "no WebSocket at " + std::string(path) +
                                                       ": use /ws/carer or /ws/board"}));
  }
  // Browsers always send Origin; phones' apps and other programs usually do not. A page
  // served from elsewhere must not drive a user's board with the user's cookies or token.
  const auto origin = request.find(http::field::origin);
  if (origin != request.end()) {
    const auto& allowed = ctx_->settings.server.allowed_origins;
    if (std::find(allowed.begin(), allowed.end(), origin->value()) == allowed.end()) {
      ctx_->metrics.count_refused("origin");
      log::warn("origin_refused", {{"origin", origin->value()}, {"path", path}});
      keep_alive_ = false;
      return respond(
          error_answer(Error{ErrorCode::forbidden, "origin " + std::string(origin->value()) +
                                                       " is not in [server] allowed_origins"}));
    }
  }
  std::optional<Principal> who;
  if (const auto header = request.find(http::field::authorization); header != request.end()) {
    const auto token = bearer(header->value());
    auto verified = token ? verify(*token, ctx_->settings.auth.secret, ctx_->clock.now())
                          : Result<Principal>(Error{ErrorCode::unauthenticated,
                                                    "expected Authorization: Bearer <token>"});
    if (!verified) {
      ctx_->metrics.count_refused("unauthenticated");
      keep_alive_ = false;
      return respond(error_answer(verified.error()));
    }
    if (verified->is_carer() != (channel == Channel::carer)) {
      ctx_->metrics.count_refused("forbidden");
      keep_alive_ = false;
      return respond(error_answer(Error{
          ErrorCode::forbidden, std::string(verified->is_carer() ? "a carer token cannot open "
                                                                 : "only a carer token opens ") +
                                    std::string(path)}));
    }
    who = std::move(*verified);
  }
  stream_.expires_never();  // the WebSocket has its own timeouts
  auto session = std::make_shared<WebSocketSession>(std::move(stream_), ctx_, channel);
  session->run(std::move(request), std::move(who));
}

void HttpSession::serve_file(const Request& request) {
  if (request.method() != http::verb::get && request.method() != http::verb::head) {
    HttpAnswer a = error_answer(Error{ErrorCode::bad_message, "use GET"});
    a.status = 405;
    a.headers.emplace_back("Allow", "GET, HEAD");
    return respond(a);
  }
  std::string path(path_of(request.target()));
  if (path == "/") path = "/index.html";
  // No way out of the dashboard directory: no "..", no backslashes, no NULs, no encoding.
  if (path.find("..") != std::string::npos || path.find('\\') != std::string::npos ||
      path.find('\0') != std::string::npos || path.find('%') != std::string::npos) {
    return respond(error_answer(Error{ErrorCode::bad_message, "bad path"}));
  }
  const std::filesystem::path file = std::filesystem::path(ctx_->settings.server.dashboard) /
                                     std::filesystem::path(path).relative_path();
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec || !std::filesystem::is_regular_file(file) || size > kMaxFileBytes) {
    HttpAnswer a;
    a.body = R"({"error":{"code":"not_found","message":)";
    append_json_string(a.body, "no such page: " + path + " (the board is served from " +
                                   ctx_->settings.server.dashboard + ")");
    a.body += R"(,"details":[]}})";
    a.status = 404;
    return respond(a);
  }
  std::ifstream in(file, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  HttpAnswer a;
  a.content_type = std::string(mime_type(path));
  a.body = std::move(content).str();
  a.headers.emplace_back("Cache-Control", "no-cache");
  respond(a);
}

void HttpSession::respond(const HttpAnswer& answer) {
  response_ = std::make_shared<http::response<http::string_body>>(
      static_cast<http::status>(answer.status), version_);
  auto& res = *response_;
  res.set(http::field::server, "visitd");
  res.set(http::field::content_type, answer.content_type);
  res.set("X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : answer.headers) res.set(name, value);
  res.keep_alive(keep_alive_ && !stopping_);
  res.body() = head_ ? std::string() : answer.body;
  res.prepare_payload();
  if (head_) res.content_length(answer.body.size());
  stream_.expires_after(ctx_->settings.server.request_timeout);
  http::async_write(
      stream_, res,
      beast::bind_front_handler(&HttpSession::on_write, shared_from_this(), res.keep_alive()));
}

void HttpSession::on_write(bool keep_alive, beast::error_code ec, std::size_t) {
  response_.reset();
  if (ec || !keep_alive || stopping_) return close();
  do_read();
}

void HttpSession::close() {
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  stream_.close();
}

}  // namespace visitd::websocket::detail
