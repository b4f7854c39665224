#pragma once
// hiredis, kept inside store/: a blocking connection for start-up, replay and snapshots, and
// an asynchronous one on Asio for the append pipeline. No redisReply* leaves this file's
// implementation: replies are copied into Reply, and every reply is checked by its caller.
//
// The asynchronous connection follows hiredis' own event-library adapters (adapters/libuv.h):
// hiredis owns the socket; Asio only watches it, through a posix::stream_descriptor that is
// released, never closed, when hiredis cleans up. hiredis 0.14 has no timers, so command
// timeouts are the owner's: it calls abort() when the oldest command has waited too long.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;
struct redisAsyncContext;

namespace visitd::store::redis {

/// Where the server is: parsed from `redis://[[user]:password@]host[:port][/db]`.
struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  int db = 0;
  std::string username;      ///< empty: AUTH with the password alone (Redis < 6 style)
  std::string password;      ///< empty: no AUTH
  std::string text() const;  ///< host:port/db, without credentials, for messages
};

/// Parses a redis:// URL; throws JournalError naming what is wrong.
Endpoint parse_url(std::string_view url);

/// A reply, copied out of hiredis.
struct Reply {
  enum class Kind { string, status, integer, nil, array, error };
  Kind kind = Kind::nil;
  std::string text;  ///< string, status and error replies
  long long integer = 0;
  std::vector<Reply> elements;

  bool is_error() const { return kind == Kind::error; }
  /// A one-line description for error messages ("error: WRONGTYPE ...", "integer 3").
  std::string describe() const;
};

/// A blocking connection with connect and command timeouts. Not thread-safe.
class SyncConnection {
 public:
  SyncConnection(Endpoint endpoint, std::chrono::milliseconds timeout);
  ~SyncConnection();
  SyncConnection(const SyncConnection&) = delete;
  SyncConnection& operator=(const SyncConnection&) = delete;

  /// Runs one command (connecting first, and once more if the connection was lost); throws
  /// JournalError when the server cannot be reached or the connection fails mid-command.
  /// An error reply is returned, not thrown: the caller checks every reply.
  Reply command(const std::vector<std::string_view>& args);
  /// Sends `commands` pipelined (one round trip, and one fsync on a server with
  /// appendfsync always) and returns their replies in order; throws JournalError as
  /// command() does, without retrying: some may have run.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);

 private:
  void connect();
  void drop();
  Endpoint endpoint_;
  std::chrono::milliseconds timeout_;
  redisContext* context_ = nullptr;
};

/// An asynchronous connection driven by an io_context. Every member must be called on the
/// thread running that io_context; callbacks run there too. Create with std::make_shared.
class AsyncConnection : public std::enable_shared_from_this<AsyncConnection> {
 public:
  /// `reply` is null when the connection was lost before the answer came (then `error` says
  /// why); an error reply arrives as a Reply of kind error.
  using Callback = std::function<void(const Reply* reply, std::string_view error)>;

  AsyncConnection(boost::asio::io_context& io, Endpoint endpoint);
  ~AsyncConnection();
  AsyncConnection(const AsyncConnection&) = delete;
  AsyncConnection& operator=(const AsyncConnection&) = delete;

  /// Starts connecting (AUTH and SELECT as the endpoint says, then PING). `up` runs once the
  /// PING is answered; `down(reason)` runs once if connecting fails or, later, when the
  /// connection is lost or aborted. After `down`, call connect() again to retry.
  void connect(std::function<void()> up, std::function<void(std::string reason)> down);
  bool connected() const { return up_; }
  bool connecting() const { return context_ != nullptr && !up_; }

  /// Sends a command (hiredis copies the arguments at once). Without a connection the
  /// callback gets null and an error at once.
  void command(const std::vector<std::string_view>& args, Callback callback);

  /// Drops the connection now: unanswered commands get null replies, then `down(reason)`.
  void abort(const std::string& reason);

 private:
  struct Watch;
  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  static void on_reply(redisAsyncContext* context, void* reply, void* privdata);
  void lost(std::string reason);

  boost::asio::io_context& io_;
  Endpoint endpoint_;
  redisAsyncContext* context_ = nullptr;
  std::shared_ptr<Watch> watch_;
  bool up_ = false;
  std::string abort_reason_;
  std::function<void()> on_up_;
  std::function<void(std::string)> on_down_;
};

}  // namespace visitd::store::redis
