#include "visitd/websocket/presence.hpp"

#include <algorithm>

namespace visitd::websocket {

void Presence::connected(std::string_view carer, TimePoint at) {
  auto it = phones_.find(carer);
  if (it == phones_.end()) it = phones_.emplace(std::string(carer), Phone{}).first;
  if (it->second.connections++ == 0) ++online_;
  it->second.last_heard = std::max(it->second.last_heard, at);
}

void Presence::disconnected(std::string_view carer, TimePoint last_heard) {
  const auto it = phones_.find(carer);
  // A close without an open (the session ended before it subscribed) changes nothing.
  if (it == phones_.end() || it->second.connections == 0) return;
  it->second.last_heard = std::max(it->second.last_heard, last_heard);
  if (--it->second.connections == 0) --online_;
}

std::optional<TimePoint> Presence::offline_since(std::string_view carer) const {
  const auto it = phones_.find(carer);
  if (it == phones_.end() || it->second.connections > 0) return std::nullopt;
  return it->second.last_heard;
}

}  // namespace visitd::websocket
