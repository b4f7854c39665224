#include "websocket_session.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include "visitd/core/log.hpp"

namespace visitd::websocket::detail {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace ws = boost::beast::websocket;

namespace {

bool quiet(beast::error_code ec) {
  return ec == net::error::operation_aborted || ec == ws::error::closed || ec == net::error::eof ||
         ec == beast::error::timeout || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe;
}

}  // namespace

WebSocketSession::WebSocketSession(beast::tcp_stream&& stream, std::shared_ptr<ServerContext> ctx,
                                   Channel channel)
    : ws_(std::move(stream)),
      ctx_(std::move(ctx)),
      channel_(channel),
      parser_(channel),
      slot_(*ctx_, ConnectionRole::pending),
      auth_timer_(ws_.get_executor()),
      tokens_(double(ctx_->settings.server.rate_burst)),
      refilled_(std::chrono::steady_clock::now()) {}

WebSocketSession::~WebSocketSession() {
  if (registration_ != 0) ctx_->withdraw(registration_);
  if (present_) ctx_->host->phone_gone(who_->sub, last_heard_);
}

void WebSocketSession::run(Request request, std::optional<Principal> who) {
  registration_ = ctx_->enroll(weak_from_this());
  // Beast's server defaults: 30 s to finish the handshake, pings when idle; our idle bound.
  auto timeouts = ws::stream_base::timeout::suggested(beast::role_type::server);
  timeouts.idle_timeout = ctx_->settings.server.idle_timeout;
  ws_.set_option(timeouts);
  ws_.set_option(ws::stream_base::decorator(
      [](ws::response_type& res) { res.set(beast::http::field::server, "visitd"); }));
  ws_.read_message_max(ctx_->settings.server.max_message);  // bigger: closed with 1009
  // Pings and pongs are signs of life too: a phone idle between events is still reachable.
  ws_.control_callback([this](ws::frame_type, beast::string_view) {
    if (present_) last_heard_ = ctx_->clock.now();
  });
  who_ = std::move(who);
  ws_.async_accept(request,
                   beast::bind_front_handler(&WebSocketSession::on_accept, shared_from_this()));
}

void WebSocketSession::on_accept(beast::error_code ec) {
  if (ec) return;  // the client went away during the handshake
  if (who_) {
    authenticate(std::move(*who_));
  } else {
    auth_timer_.expires_after(kAuthTimeout);
    auth_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
      if (e || self->who_ || self->closing_) return;
      self->send_error(std::nullopt,
                       Error{ErrorCode::unauthenticated, "no auth message within 5 s: closing"});
      self->close(ws::close_code::policy_error, "authentication timeout");
    });
  }
  do_read();
}

void WebSocketSession::authenticate(Principal who) {
  auth_timer_.cancel();
  who_ = std::move(who);
  if (channel_ == Channel::carer) {
    slot_.change_role(ConnectionRole::carer);
    last_heard_ = ctx_->clock.now();
    present_ = true;
    ctx_->host->subscribe_carer(weak_from_this(), who_->sub);
  } else {
    slot_.change_role(ConnectionRole::board);
    ctx_->host->subscribe_board(weak_from_this(), *who_);
  }
}

void WebSocketSession::do_read() {
  ws_.async_read(buffer_,
                 beast::bind_front_handler(&WebSocketSession::on_read, shared_from_this()));
}

void WebSocketSession::on_read(beast::error_code ec, std::size_t) {
  if (ec) {
    if (ec == ws::error::message_too_big) {
      log::info("message_too_big", {{"channel", to_string(channel_)},
                                    {"limit", std::to_string(ctx_->settings.server.max_message)}});
    } else if (!quiet(ec)) {
      log::debug("websocket_read_failed", {{"error", ec.message()}});
    }
    return;  // Beast has closed (with 1009 for a message over read_message_max)
  }
  const auto data = buffer_.cdata();
  handle(std::string_view(static_cast<const char*>(data.data()), data.size()));
  buffer_.consume(buffer_.size());
  if (!closing_) do_read();
}

void WebSocketSession::handle(std::string_view text) {
  const TimePoint now = ctx_->clock.now();
  if (present_) last_heard_ = now;
  if (who_ && who_->expires <= now) {
    send_error(std::nullopt, Error{ErrorCode::unauthenticated,
                                   "the token has expired: reconnect with a new one"});
    close(ws::close_code::policy_error, "token expired");
    return;
  }
  Parsed parsed = parser_.parse(text, who_ ? who_->sub : std::string_view());
  if (!take_token()) {
    // The id is echoed so that the phone knows which event to resend later.
    send_error(parsed.id, Error{ErrorCode::rate_limited,
                                "more than " + std::to_string(ctx_->settings.server.rate_burst) +
                                    " messages at once: slow down and resend"});
    return;
  }
  if (!parsed.ok()) {
    send_error(parsed.id, parsed.message.error());
    return;
  }
  auto& message = *parsed.message;
  if (auto* auth = std::get_if<AuthMessage>(&message)) {
    if (who_) {
      send_error(parsed.id, Error{ErrorCode::bad_message, "already authenticated"});
      return;
    }
    auto verified = verify(auth->token, ctx_->settings.auth.secret, now);
    if (!verified) {
      ctx_->metrics.count_refused("unauthenticated");
      send_error(parsed.id, verified.error());
      close(ws::close_code::policy_error, "authentication failed");
      return;
    }
    const bool carer = verified->is_carer();
    if (carer != (channel_ == Channel::carer)) {
      ctx_->metrics.count_refused("forbidden");
      send_error(parsed.id,
                 Error{ErrorCode::forbidden, std::string(carer ? "a carer token cannot open "
                                                               : "only a carer token opens ") +
                                                 std::string(to_string(channel_))});
      close(ws::close_code::policy_error, "wrong role for this socket");
      return;
    }
    authenticate(std::move(*verified));
    return;
  }
  if (!who_) {
    send_error(parsed.id,
               Error{ErrorCode::unauthenticated,
                     R"(authenticate first: send {"type":"auth","token":"..."} within 5 s)"});
    return;
  }
  // The command was parsed with the authenticated user's id, never one the message names.
  submit(std::move(std::get<rota::Command>(message)), std::move(parsed.id));
}

void WebSocketSession::submit(rota::Command command, std::optional<std::string> id) {
  const auto received = std::chrono::steady_clock::now();
  EngineHost::Precheck precheck;
  if (channel_ == Channel::board) {
    std::string alert_id;
    if (const auto* ack = std::get_if<rota::AckAlert>(&command)) alert_id = ack->alert;
    if (const auto* resolve = std::get_if<rota::ResolveAlert>(&command)) alert_id = resolve->alert;
    // Boards act on alerts only in branches the user manages; an alert of a branch the user
    // cannot even see is "unknown", so that ids do not leak across branches.
    precheck = [who = *who_, alert_id = std::move(alert_id)](
                   const rota::Engine& engine) -> std::optional<Error> {
      const auto alert = engine.find_alert(alert_id);
      if (!alert) return std::nullopt;  // the engine answers unknown_alert
      const std::string& branch = engine.branch(engine.visit(engine.alert(*alert).visit).branch).id;
      if (!may_view_branch(who, branch)) {
        return Error{ErrorCode::unknown_alert, "alert " + alert_id + " is unknown"};
      }
      if (!may_manage(who, branch)) {
        return Error{ErrorCode::forbidden,
                     "alert " + alert_id + " is in branch " + branch + ", which you do not manage"};
      }
      return std::nullopt;
    };
  }
  const bool carer = channel_ == Channel::carer;
  ctx_->host->submit(
      std::move(command), std::move(precheck),
      [self = shared_from_this(), id = std::move(id), received, carer](
          const rota::Reply& reply, const rota::Engine& engine) -> EngineHost::Deliver {
        auto frame = std::make_shared<std::string>();
        const bool ok = reply.status != rota::Status::rejected;
        if (!ok) {
          append_error(*frame, id, *reply.error);
        } else if (carer) {
          append_ack(*frame, id.value_or(""), reply, engine);
        } else {
          append_ok(*frame, reply.alert != rota::kNoIndex ? engine.alert(reply.alert).id() : "",
                    id ? std::optional<std::string_view>(*id) : std::nullopt);
        }
        return [self, frame = Frame(std::move(frame)), id, received, ok](std::error_code ec) {
          Frame out = frame;
          if (ec) {
            auto failed = std::make_shared<std::string>();
            append_error(*failed, id,
                         Error{ErrorCode::internal, "not recorded: " + ec.message() +
                                                        "; keep the event and resend it later"});
            out = std::move(failed);
          } else if (ok) {
            self->ctx_->metrics.observe_ack_latency(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - received).count());
          }
          net::post(self->ws_.get_executor(),
                    [self, out = std::move(out)]() mutable { self->send(std::move(out)); });
        };
      });
}

void WebSocketSession::send_error(const std::optional<std::string>& id, const Error& error) {
  ctx_->metrics.count_error(error.code);
  auto frame = std::make_shared<std::string>();
  append_error(*frame, id, error);
  send(std::move(frame));
}

bool WebSocketSession::take_token() {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - refilled_).count();
  refilled_ = now;
  tokens_ = std::min(double(ctx_->settings.server.rate_burst),
                     tokens_ + elapsed * ctx_->settings.server.rate_limit);
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

// ---------------------------------------------------------------------------------------
// Sending

void WebSocketSession::push(Frame frame) {
  net::post(ws_.get_executor(), [self = shared_from_this(), frame = std::move(frame)]() mutable {
    self->send(std::move(frame));
  });
}

void WebSocketSession::send(Frame frame) {
  if (closing_) return;
  // A client is cut off when it does not take what it is sent, not when one change sends it
  // many messages at once (a rota import, a branch's visits turning late together): only a
  // backlog over board_queue behind a write that has made no progress for kStalledWrite, or
  // one so large (kHardQueueFactor times board_queue) that it must not be held in memory.
  const std::size_t limit = ctx_->settings.server.board_queue;
  const bool stalled =
      writing_ && std::chrono::steady_clock::now() - last_progress_ > kStalledWrite;
  if ((queue_.size() >= limit && stalled) || queue_.size() >= limit * kHardQueueFactor) {
    // It reconnects and starts again from a fresh snapshot or rota; nobody waits for it.
    if (channel_ == Channel::board) ctx_->metrics.boards_dropped().Increment();
    log::warn("slow_client_dropped", {{"channel", to_string(channel_)},
                                      {"user", who_ ? who_->sub : std::string("-")},
                                      {"queued", std::to_string(queue_.size())}});
    closing_ = true;
    close_started_ = true;
    queue_.clear();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).close();
    return;
  }
  queue_.push_back(std::move(frame));
  if (!writing_) do_write();
}

void WebSocketSession::do_write() {
  if (!writing_) last_progress_ = std::chrono::steady_clock::now();
  writing_ = true;
  ws_.text(true);
  ws_.async_write(net::buffer(*queue_.front()),
                  beast::bind_front_handler(&WebSocketSession::on_write, shared_from_this()));
}

void WebSocketSession::on_write(beast::error_code ec, std::size_t) {
  writing_ = false;
  last_progress_ = std::chrono::steady_clock::now();
  if (ec) {
    queue_.clear();
    return;
  }
  if (!queue_.empty()) queue_.pop_front();
  if (!queue_.empty()) {
    do_write();
  } else if (closing_) {
    start_close();
  }
}

void WebSocketSession::close(ws::close_code code, std::string_view reason) {
  if (closing_) return;
  closing_ = true;
  close_reason_ = ws::close_reason(code, reason);
  auth_timer_.cancel();
  if (!writing_) start_close();  // else on_write closes once what is queued is sent
}

void WebSocketSession::start_close() {
  if (close_started_) return;
  close_started_ = true;
  ws_.async_close(close_reason_, [self = shared_from_this()](beast::error_code) {});
}

void WebSocketSession::shut_down() {
  net::post(ws_.get_executor(), [self = shared_from_this()] {
    self->close(ws::close_code::going_away, "visitd is shutting down");
  });
}

}  // namespace visitd::websocket::detail
