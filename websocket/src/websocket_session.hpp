#pragma once
// One WebSocket: a carer's phone on /ws/carer or an office board on /ws/board.
//
// After the upgrade the session authenticates (the token from the upgrade's Authorization
// header, or a first `auth` message within kAuthTimeout), then reads messages one after
// another without waiting for their answers: each is parsed, rate-limited and posted to the
// engine host; answers and pushed frames come back through one bounded send queue with one
// write in flight. A board (or phone) that lets its queue fill up is disconnected: it
// reconnects and gets a fresh snapshot, and nobody else waits for it.
//
// Thread-safety: the session runs on its own strand; push() and shut_down() post to it.

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "server_context.hpp"
#include "visitd/websocket/auth.hpp"
#include "visitd/websocket/protocol.hpp"

namespace visitd::websocket::detail {

/// How long a connection may stay unauthenticated (protocol: "within 5 s").
inline constexpr std::chrono::seconds kAuthTimeout{5};
/// A client whose socket has taken nothing for this long while `board_queue` messages wait
/// is disconnected as too slow.
inline constexpr std::chrono::seconds kStalledWrite{1};
/// ... and any client with this many times `board_queue` messages waiting, however it reads.
inline constexpr std::size_t kHardQueueFactor = 16;

class WebSocketSession final : public Subscriber,
                               public Closable,
                               public std::enable_shared_from_this<WebSocketSession> {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  WebSocketSession(boost::beast::tcp_stream&& stream, std::shared_ptr<ServerContext> ctx,
                   Channel channel);
  ~WebSocketSession() override;

  /// Accepts the upgrade `request`; `who` is set when its Authorization header was valid.
  void run(Request request, std::optional<Principal> who);

  void push(Frame frame) override;
  void shut_down() override;

 private:
  void on_accept(boost::beast::error_code ec);
  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void handle(std::string_view text);
  void authenticate(Principal who);
  void submit(rota::Command command, std::optional<std::string> id);
  void send_error(const std::optional<std::string>& id, const Error& error);
  /// Sends `frame` unless the queue is full, in which case the client is disconnected.
  void send(Frame frame);
  void do_write();
  void on_write(boost::beast::error_code ec, std::size_t bytes);
  /// Sends what is queued, then closes with `code`; nothing more is queued meanwhile.
  void close(boost::beast::websocket::close_code code, std::string_view reason);
  void start_close();
  bool take_token();

  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::flat_buffer buffer_;
  std::shared_ptr<ServerContext> ctx_;  ///< shared: sessions may outlive the Server object
  Channel channel_;
  MessageParser parser_;
  ConnectionSlot slot_;
  std::uint64_t registration_ = 0;
  std::optional<Principal> who_;
  /// A carer's phone: when it was last heard (opened, a message, a ping or pong), told to
  /// the host's presence when the connection ends. `present_`: the host was told it opened.
  TimePoint last_heard_{};
  bool present_ = false;
  boost::asio::steady_timer auth_timer_;
  std::deque<Frame> queue_;
  bool writing_ = false;
  std::chrono::steady_clock::time_point last_progress_;  ///< a write last completed or started
  bool closing_ = false;                                 ///< no more frames are queued
  bool close_started_ = false;                           ///< async_close issued (or the socket cut)
  boost::beast::websocket::close_reason close_reason_;
  // Token bucket: rate_limit messages per second, up to rate_burst at once.
  double tokens_;
  std::chrono::steady_clock::time_point refilled_;
};

}  // namespace visitd::websocket::detail
