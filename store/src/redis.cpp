#include "redis.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <charconv>

#include "visitd/store/log.hpp"

namespace visitd::store::redis {
namespace net = boost::asio;

namespace {

timeval to_timeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

Reply copy(const redisReply& r) {
  Reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.kind = Reply::Kind::string;
      out.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.kind = Reply::Kind::status;
      out.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.kind = Reply::Kind::error;
      out.text.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.kind = Reply::Kind::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = Reply::Kind::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(copy(*r.element[i]));
      break;
    default:
      out.kind = Reply::Kind::nil;
      break;
  }
  return out;
}

/// hiredis wants C arrays of pointers and lengths.
struct Argv {
  explicit Argv(const std::vector<std::string_view>& args) {
    pointers.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto a : args) {
      pointers.push_back(a.data());
      lengths.push_back(a.size());
    }
  }
  int count() const { return static_cast<int>(pointers.size()); }
  std::vector<const char*> pointers;
  std::vector<std::size_t> lengths;
};

}  // namespace

std::string Endpoint::text() const {
  return host + ":" + std::to_string(port) + "/" + std::to_string(db);
}

Endpoint parse_url(std::string_view url) {
  const auto bad = [&](const std::string& why) {
    return JournalError("[store] url: " + why +
                        " (expected redis://[[user]:password@]host[:port][/db])");
  };
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) throw bad("not a redis:// URL");
  std::string_view rest = url.substr(scheme.size());
  Endpoint e;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    if (const auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      e.username = std::string(userinfo.substr(0, colon));
      e.password = std::string(userinfo.substr(colon + 1));
    } else {
      e.password = std::string(userinfo);
    }
  }
  std::string_view hostport = rest;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      const auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), e.db);
      if (ec != std::errc() || p != db.data() + db.size() || e.db < 0) {
        throw bad("the database must be a number, got \"" + std::string(db) + "\"");
      }
    }
  }
  if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    const std::string_view port = hostport.substr(colon + 1);
    const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
    if (ec != std::errc() || p != port.data() + port.size() || e.port <= 0 || e.port > 65535) {
      throw bad("the port must be 1-65535, got \"" + std::string(port) + "\"");
    }
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) throw bad("no host");
  e.host = std::string(hostport);
  return e;
}

std::string Reply::describe() const {
  switch (kind) {
    case Kind::string:
      return "string \"" + text.substr(0, 80) + "\"";
    case Kind::status:
      return "status " + text;
    case Kind::error:
      return "error: " + text;
    case Kind::integer:
      return "integer " + std::to_string(integer);
    case Kind::array:
      return "array of " + std::to_string(elements.size());
    case Kind::nil:
      return "nil";
  }
  return "?";
}

/// AUTH and SELECT as the endpoint says, in the order a new connection sends them.
static std::vector<std::vector<std::string>> setup_commands(const Endpoint& e) {
  std::vector<std::vector<std::string>> out;
  if (!e.password.empty()) {
    if (e.username.empty()) {
      out.push_back({"AUTH", e.password});
    } else {
      out.push_back({"AUTH", e.username, e.password});
    }
  }
  if (e.db != 0) out.push_back({"SELECT", std::to_string(e.db)});
  return out;
}

static std::vector<std::string_view> views(const std::vector<std::string>& args) {
  return {args.begin(), args.end()};
}

// ---- SyncConnection ------------------------------------------------------------------------

SyncConnection::SyncConnection(Endpoint endpoint, std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)), timeout_(timeout) {}

SyncConnection::~SyncConnection() { drop(); }

void SyncConnection::drop() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
}

void SyncConnection::connect() {
  drop();
  context_ = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, to_timeval(timeout_));
  if (context_ == nullptr) throw JournalError("Redis at " + endpoint_.text() + ": out of memory");
  if (context_->err != 0) {
    const std::string why = context_->errstr;
    drop();
    throw JournalError("cannot reach Redis at " + endpoint_.text() + ": " + why);
  }
  redisSetTimeout(context_, to_timeval(timeout_));
  for (const auto& args : setup_commands(endpoint_)) {
    Argv argv(views(args));
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(context_, argv.count(), argv.pointers.data(), argv.lengths.data()));
    if (r == nullptr) {
      const std::string why = context_->errstr;
      drop();
      throw JournalError("Redis at " + endpoint_.text() + ": " + args[0] + " failed: " + why);
    }
    const Reply reply = copy(*r);
    freeReplyObject(r);
    if (reply.is_error()) {
      drop();
      throw JournalError("Redis at " + endpoint_.text() + " refused " + args[0] + ": " +
                         reply.text);
    }
  }
}

Reply SyncConnection::command(const std::vector<std::string_view>& args) {
  Argv argv(args);
  for (int attempt = 0;; ++attempt) {
    if (context_ == nullptr || context_->err != 0) connect();
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(context_, argv.count(), argv.pointers.data(), argv.lengths.data()));
    if (r != nullptr) {
      Reply reply = copy(*r);
      freeReplyObject(r);
      return reply;
    }
    const std::string why = context_->errstr;
    drop();
    if (attempt > 0) {
      throw JournalError("Redis at " + endpoint_.text() + ": " + std::string(args.at(0)) +
                         " failed: " + why);
    }
  }
}

std::vector<Reply> SyncConnection::pipeline(const std::vector<std::vector<std::string>>& commands) {
  if (context_ == nullptr || context_->err != 0) connect();
  for (const auto& command : commands) {
    const std::vector<std::string_view> views(command.begin(), command.end());
    Argv argv(views);
    if (redisAppendCommandArgv(context_, argv.count(), argv.pointers.data(), argv.lengths.data()) !=
        REDIS_OK) {
      const std::string why = context_->errstr;
      drop();
      throw JournalError("Redis at " + endpoint_.text() + ": a pipeline failed: " + why);
    }
  }
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    void* r = nullptr;
    if (redisGetReply(context_, &r) != REDIS_OK || r == nullptr) {
      const std::string why = context_->errstr;
      drop();
      throw JournalError("Redis at " + endpoint_.text() + ": a pipeline failed: " + why);
    }
    replies.push_back(copy(*static_cast<redisReply*>(r)));
    freeReplyObject(r);
  }
  return replies;
}

// ---- AsyncConnection -----------------------------------------------------------------------

/// What hiredis' event hooks act on. Pending waits hold it, so it outlives the connection;
/// `context` is null once hiredis has cleaned up (then nothing more is done).
struct AsyncConnection::Watch : std::enable_shared_from_this<Watch> {
  Watch(net::io_context& io, int fd, AsyncConnection* owner) : descriptor(io, fd), owner(owner) {}

  net::posix::stream_descriptor descriptor;
  AsyncConnection* owner;
  redisAsyncContext* context = nullptr;
  bool want_read = false, want_write = false, read_armed = false, write_armed = false;

  void arm_read() {
    if (read_armed || !want_read || context == nullptr) return;
    read_armed = true;
    descriptor.async_wait(net::posix::stream_descriptor::wait_read,
                          [self = shared_from_this()](const boost::system::error_code& ec) {
                            self->read_armed = false;
                            if (ec || self->context == nullptr || !self->want_read) return;
                            redisAsyncHandleRead(self->context);
                            self->arm_read();
                          });
  }
  void arm_write() {
    if (write_armed || !want_write || context == nullptr) return;
    write_armed = true;
    descriptor.async_wait(net::posix::stream_descriptor::wait_write,
                          [self = shared_from_this()](const boost::system::error_code& ec) {
                            self->write_armed = false;
                            if (ec || self->context == nullptr || !self->want_write) return;
                            redisAsyncHandleWrite(self->context);
                            self->arm_write();
                          });
  }

  static void add_read(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->want_read = true;
    w->arm_read();
  }
  static void del_read(void* p) { static_cast<Watch*>(p)->want_read = false; }
  static void add_write(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->want_write = true;
    w->arm_write();
  }
  static void del_write(void* p) { static_cast<Watch*>(p)->want_write = false; }
  /// hiredis is about to free the context (and close the socket): stop watching, hand the
  /// descriptor back without closing it, and tell the owner the connection is gone.
  static void cleanup(void* p) {
    auto* w = static_cast<Watch*>(p);
    std::string reason;
    if (w->context != nullptr && w->context->err != 0 && w->context->errstr != nullptr) {
      reason = w->context->errstr;
    }
    w->want_read = w->want_write = false;
    w->context = nullptr;
    w->descriptor.release();
    if (w->owner != nullptr) w->owner->lost(std::move(reason));
  }
};

AsyncConnection::AsyncConnection(net::io_context& io, Endpoint endpoint)
    : io_(io), endpoint_(std::move(endpoint)) {}

AsyncConnection::~AsyncConnection() {
  on_down_ = nullptr;
  if (context_ != nullptr) redisAsyncFree(context_);  // unanswered callbacks get null
  if (watch_) watch_->owner = nullptr;
}

void AsyncConnection::connect(std::function<void()> up, std::function<void(std::string)> down) {
  on_up_ = std::move(up);
  on_down_ = std::move(down);
  abort_reason_.clear();
  up_ = false;
  redisAsyncContext* c = redisAsyncConnect(endpoint_.host.c_str(), endpoint_.port);
  if (c == nullptr || c->err != 0) {
    const std::string why = c == nullptr ? "out of memory" : c->errstr;
    if (c != nullptr) redisAsyncFree(c);
    lost(why);
    return;
  }
  context_ = c;
  c->data = this;
  watch_ = std::make_shared<Watch>(io_, c->c.fd, this);
  watch_->context = c;
  c->ev.data = watch_.get();
  c->ev.addRead = &Watch::add_read;
  c->ev.delRead = &Watch::del_read;
  c->ev.addWrite = &Watch::add_write;
  c->ev.delWrite = &Watch::del_write;
  c->ev.cleanup = &Watch::cleanup;

  // The handshake is pipelined: hiredis queues it until the socket connects.
  auto self = weak_from_this();
  for (const auto& args : setup_commands(endpoint_)) {
    Argv argv(views(args));
    auto* callback = new Callback([self, name = args[0]](const Reply* r, std::string_view) {
      const auto me = self.lock();
      if (me && r != nullptr && r->is_error()) me->abort(name + " refused: " + r->text);
    });
    redisAsyncCommandArgv(c, &AsyncConnection::on_reply, callback, argv.count(),
                          argv.pointers.data(), argv.lengths.data());
  }
  auto* ping = new Callback([self](const Reply* r, std::string_view) {
    const auto me = self.lock();
    if (!me || r == nullptr) return;
    if (r->kind != Reply::Kind::status || r->text != "PONG") {
      me->abort("unexpected answer to PING: " + r->describe());
      return;
    }
    me->up_ = true;
    if (me->on_up_) me->on_up_();
  });
  const char* argv_ping[] = {"PING"};
  const std::size_t len_ping[] = {4};
  redisAsyncCommandArgv(c, &AsyncConnection::on_reply, ping, 1, argv_ping, len_ping);
}

void AsyncConnection::command(const std::vector<std::string_view>& args, Callback callback) {
  if (!up_ || context_ == nullptr) {
    callback(nullptr, "not connected");
    return;
  }
  Argv argv(args);
  auto* owned = new Callback(std::move(callback));
  if (redisAsyncCommandArgv(context_, &AsyncConnection::on_reply, owned, argv.count(),
                            argv.pointers.data(), argv.lengths.data()) != REDIS_OK) {
    std::unique_ptr<Callback> cb(owned);
    (*cb)(nullptr, "the connection is closing");
  }
}

void AsyncConnection::abort(const std::string& reason) {
  if (context_ == nullptr) return;
  if (abort_reason_.empty()) abort_reason_ = reason;
  up_ = false;
  // Freed outside any hiredis callback we may be in; unanswered commands then get null.
  net::post(io_, [self = weak_from_this(), c = context_] {
    const auto me = self.lock();
    if (me && me->context_ == c) redisAsyncFree(c);
  });
}

void AsyncConnection::on_reply(redisAsyncContext* context, void* reply, void* privdata) {
  const std::unique_ptr<Callback> callback(static_cast<Callback*>(privdata));
  if (reply == nullptr) {
    std::string why = "connection lost";
    if (const auto* me = static_cast<AsyncConnection*>(context->data);
        me != nullptr && !me->abort_reason_.empty()) {
      why = me->abort_reason_;
    } else if (context->err != 0 && context->errstr != nullptr) {
      why = context->errstr;
    }
    (*callback)(nullptr, why);
    return;
  }
  const Reply copied = copy(*static_cast<redisReply*>(reply));
  (*callback)(&copied, {});
}

void AsyncConnection::lost(std::string reason) {
  if (!abort_reason_.empty()) reason = abort_reason_;
  if (reason.empty()) reason = "the server closed the connection";
  up_ = false;
  context_ = nullptr;
  if (watch_) watch_->owner = nullptr;
  watch_.reset();
  // Reported from a fresh handler: the owner may reconnect at once, which must not happen
  // inside hiredis' own clean-up.
  net::post(io_, [self = weak_from_this(), reason = std::move(reason)] {
    const auto me = self.lock();
    if (me && me->on_down_) me->on_down_(reason);
  });
}

}  // namespace visitd::store::redis
