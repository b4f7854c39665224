#pragma once
// Phone presence: whether each carer's phone is connected, and since when it has been silent.
// A phone is online while any of its WebSocket connections is open (Beast pings an idle one
// and closes it when the pongs stop, so a connection that lost signal closes within
// `[server] idle_timeout`); once the last one closes, it is offline since the moment that
// connection was last heard (opened, a message, a ping or pong). This lets the office tell
// "the phone has been silent since 08:40" from "the carer did not come".
//
// Not persisted: after a restart every phone is unknown until it reconnects.
// Thread-safety: none; the engine host keeps one on its strand.

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "visitd/core/time.hpp"

namespace visitd::websocket {

class Presence {
 public:
  /// A connection of the carer's phone opened (authenticated) at `at`.
  void connected(std::string_view carer, TimePoint at);
  /// A connection of the carer's phone closed; it was last heard at `last_heard`.
  void disconnected(std::string_view carer, TimePoint last_heard);
  /// When the carer's phone went silent; nullopt while connected, or never seen since start.
  std::optional<TimePoint> offline_since(std::string_view carer) const;
  /// Phones with at least one open connection.
  std::size_t online() const { return online_; }

 private:
  struct Phone {
    int connections = 0;
    TimePoint last_heard;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Phone, Hash, std::equal_to<>> phones_;
  std::size_t online_ = 0;
};

}  // namespace visitd::websocket
