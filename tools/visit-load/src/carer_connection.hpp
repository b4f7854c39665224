#pragma once
// One carer's WebSocket connection to /ws/carer: opens and authenticates it, sends the
// carer's events (flat out with a window of unacked events, or on a fixed schedule), and
// matches the server's acks and errors to them by `id`.
//
// Thread-safety: all work runs on the connection's own strand; the public functions other
// than the constructor may be called from any thread (they post to it).

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "rota_import.hpp"
#include "run_stats.hpp"

namespace visitd::load {

struct ConnectionSetup {
  boost::asio::ip::tcp::endpoint endpoint;
  std::string host;  ///< the Host header
  std::string token;
  CarerPlan carer;
  std::string id_prefix;          ///< event ids are id_prefix + sequence number
  bool visits_from_rota = false;  ///< take the visits from the server's first `rota` push
  bool paced = false;             ///< events come from send_due(); otherwise flat out
  unsigned inflight = 1;          ///< flat out: unacked events kept outstanding
};

class CarerConnection : public std::enable_shared_from_this<CarerConnection> {
 public:
  /// Called once, on the connection's strand, when it is open (true) or failed to open.
  using OpenHandler = std::function<void(bool)>;

  CarerConnection(boost::asio::io_context& io, RunStats& stats, ConnectionSetup setup);

  void open(OpenHandler done);
  /// Starts sending: flat out, fills the window of unacked events; paced, accepts send_due().
  void start_sending();
  /// Paced: sends one event, stamped as sent at `due` (its place in the schedule), unless
  /// the connection is so far behind that it would only grow a backlog (then skipped).
  void send_due(SteadyClock::time_point due);
  /// Sends nothing more; answers to what was sent are still read.
  void stop_sending();
  /// The WebSocket closing handshake (normal closure).
  void close();

 private:
  struct Pending {
    std::string id;
    SteadyClock::time_point sent;
  };

  void on_connect(boost::beast::error_code ec);
  void on_handshake(boost::beast::error_code ec);
  void finish_open(bool ok, std::string_view why);

  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void handle_message(std::string_view text);
  void resolve(std::string_view id, SteadyClock::time_point now, bool acked);

  void top_up(SteadyClock::time_point now);
  void send_event(SteadyClock::time_point sent);
  std::string compose(std::uint64_t n, const std::string& id) const;
  void do_write();
  void on_write(boost::beast::error_code ec, std::size_t bytes);

  void do_close();
  void on_close(boost::beast::error_code ec);
  void connection_ended(std::string_view why);

  RunStats& stats_;
  ConnectionSetup setup_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  boost::beast::websocket::response_type upgrade_response_;
  boost::beast::flat_buffer buffer_;
  OpenHandler on_open_;

  std::deque<std::string> outbox_;
  std::deque<Pending> pending_;
  std::uint64_t seq_ = 0;
  bool writing_ = false;
  bool open_ = false;
  bool sending_ = false;
  bool closing_ = false;
  bool rota_seen_ = false;
};

}  // namespace visitd::load
