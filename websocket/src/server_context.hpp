#pragma once
// What every session of one server shares: settings, the engine host, metrics, the clock,
// the connection count, and the registry of live sessions that shutdown closes.
//
// Thread-safety: the registry and counters are safe from any thread; the rest is read-only.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "visitd/config/settings.hpp"
#include "visitd/core/clock.hpp"
#include "visitd/websocket/engine_host.hpp"
#include "visitd/websocket/metrics.hpp"

namespace visitd::websocket::detail {

/// A session that shutdown can close.
class Closable {
 public:
  virtual ~Closable() = default;
  /// Closes the connection politely (a WebSocket with 1001 going away); any thread.
  virtual void shut_down() = 0;
};

struct ServerContext {
  ServerContext(const config::Settings& s, std::shared_ptr<EngineHost> h, Metrics& m,
                const Clock& c)
      : settings(s), host(std::move(h)), metrics(m), clock(c) {}

  const config::Settings& settings;
  std::shared_ptr<EngineHost> host;
  Metrics& metrics;
  const Clock& clock;
  std::atomic<std::size_t> connections{0};
  std::atomic<bool> stopping{false};

  std::uint64_t enroll(std::weak_ptr<Closable> session) {
    std::lock_guard lock(mu_);
    const std::uint64_t id = ++next_id_;
    sessions_.emplace(id, std::move(session));
    return id;
  }
  void withdraw(std::uint64_t id) {
    std::lock_guard lock(mu_);
    sessions_.erase(id);
  }
  /// Asks every live session to close.
  void shut_down_all() {
    std::vector<std::shared_ptr<Closable>> live;
    {
      std::lock_guard lock(mu_);
      for (auto& [id, weak] : sessions_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) s->shut_down();
  }
  std::size_t live_sessions() {
    std::lock_guard lock(mu_);
    return sessions_.size();
  }

 private:
  std::mutex mu_;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, std::weak_ptr<Closable>> sessions_;
};

/// Counts one open connection in a role for as long as it lives.
class ConnectionSlot {
 public:
  ConnectionSlot(ServerContext& ctx, ConnectionRole role) : ctx_(&ctx), role_(role) {
    ctx_->connections.fetch_add(1);
    ctx_->metrics.connections(role_).Increment();
  }
  ~ConnectionSlot() {
    ctx_->metrics.connections(role_).Decrement();
    ctx_->connections.fetch_sub(1);
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  void change_role(ConnectionRole role) {
    ctx_->metrics.connections(role_).Decrement();
    role_ = role;
    ctx_->metrics.connections(role_).Increment();
  }

 private:
  ServerContext* ctx_;
  ConnectionRole role_;
};

}  // namespace visitd::websocket::detail
