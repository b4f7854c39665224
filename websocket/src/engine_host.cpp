#include "visitd/websocket/engine_host.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>

#include "visitd/config/load.hpp"
#include "visitd/core/log.hpp"
#include "visitd/rota/codec.hpp"
#include "visitd/store/engine_journal.hpp"
#include "visitd/store/snapshot_child.hpp"
#include "visitd/websocket/protocol.hpp"

namespace visitd::websocket {
namespace net = boost::asio;

namespace {

constexpr std::uint8_t kNoClass = 0xff;
constexpr std::size_t kAlertStates = 3;
/// The deadline timer never sleeps longer than this, so a wall-clock step (NTP, a resumed
/// VM) delays a deadline by at most this much.
constexpr auto kMaxSleep = std::chrono::seconds(30);
/// Compaction reads the whole covered journal: at most this often.
constexpr auto kCompactionInterval = std::chrono::hours(1);

rota::Reply refusal(ErrorCode code, std::string message) {
  rota::Reply reply;
  reply.status = rota::Status::rejected;
  reply.error = Error{code, std::move(message)};
  return reply;
}

std::string to_text(std::uint64_t n) { return std::to_string(n); }

/// Puts the calling thread in SCHED_IDLE: the background thread (snapshots, compaction, the
/// close flush) then runs only on time the event path leaves free. On a daemon pinned to one
/// core, serializing a snapshot at normal priority took half the core for a few hundred ms
/// and every ack waited behind it.
void run_at_idle_priority() {
  sched_param param{};
  if (const int err = pthread_setschedparam(pthread_self(), SCHED_IDLE, &param); err != 0) {
    log::warn("background_priority", {{"error", std::strerror(err)}});
  }
}

// A duration as milliseconds with two decimals, for log lines.
std::string milliseconds_text(std::chrono::steady_clock::duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", std::chrono::duration<double, std::milli>(d).count());
  return text;
}

/// The visit or alert an office command names, when `engine` does not know it (a standby's
/// replica behind the owner); carer commands are checked by the engine against the carer.
std::optional<std::string> unseen_target(const rota::Command& command, const rota::Engine& engine) {
  return std::visit(
      [&](const auto& c) -> std::optional<std::string> {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, rota::AckAlert> || std::is_same_v<T, rota::ResolveAlert>) {
          if (!engine.find_alert(c.alert)) return "alert " + c.alert;
        } else if constexpr (std::is_same_v<T, rota::Reassign> || std::is_same_v<T, rota::Cancel>) {
          if (!engine.find_visit(c.visit)) return "visit " + c.visit;
        }
        return std::nullopt;
      },
      command);
}

/// A forwarded command's answer, from the owner to the standby holding its sender: the reply
/// (a refused import's problems too) and the record after which the replica shows what the
/// reply describes.
std::string encode_answer(const rota::Reply& r, std::uint64_t seq) {
  boost::json::object o;
  o["status"] = int(r.status);
  if (r.error) {
    o["code"] = to_string(r.error->code);
    o["message"] = r.error->message;
  }
  o["visit"] = r.visit;
  o["state"] = int(r.state);
  o["flags"] = r.flags;
  o["alert"] = r.alert;
  o["counts"] = {r.counts.imported, r.counts.updated, r.counts.unchanged, r.counts.cancelled,
                 r.counts.kept};
  o["note"] = r.note;
  if (!r.issues.empty()) {
    boost::json::array issues;
    for (const rota::ImportIssue& i : r.issues) issues.push_back({i.line, i.field, i.message});
    o["issues"] = std::move(issues);
  }
  o["seq"] = seq;
  return boost::json::serialize(o);
}

struct Answer {
  rota::Reply reply;
  std::uint64_t seq = 0;
};

std::optional<Answer> decode_answer(std::string_view text) {
  try {
    const boost::json::object o = boost::json::parse(text).as_object();
    Answer a;
    a.reply.status = rota::Status(o.at("status").to_number<int>());
    if (const auto* code = o.if_contains("code")) {
      const auto parsed = error_code_from_string(code->as_string());
      if (!parsed) return std::nullopt;
      a.reply.error = Error{*parsed, std::string(o.at("message").as_string())};
    }
    a.reply.visit = o.at("visit").to_number<rota::VisitIndex>();
    a.reply.state = rota::VisitState(o.at("state").to_number<int>());
    a.reply.flags = o.at("flags").to_number<rota::Flags>();
    a.reply.alert = o.at("alert").to_number<rota::AlertIndex>();
    const auto& counts = o.at("counts").as_array();
    a.reply.counts = {
        counts.at(0).to_number<std::uint32_t>(), counts.at(1).to_number<std::uint32_t>(),
        counts.at(2).to_number<std::uint32_t>(), counts.at(3).to_number<std::uint32_t>(),
        counts.at(4).to_number<std::uint32_t>()};
    a.reply.note = std::string(o.at("note").as_string());
    if (const auto* issues = o.if_contains("issues")) {
      for (const auto& i : issues->as_array()) {
        const auto& f = i.as_array();
        a.reply.issues.push_back({f.at(0).to_number<int>(), std::string(f.at(1).as_string()),
                                  std::string(f.at(2).as_string())});
      }
    }
    a.seq = o.at("seq").to_number<std::uint64_t>();
    return a;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

EngineHost::EngineHost(net::io_context& io, const config::Settings& settings,
                       std::unique_ptr<rota::Engine> engine, std::uint64_t snapshot_seq,
                       store::Log& journal, Metrics& metrics, const Clock& clock,
                       std::shared_ptr<Pager> pager, std::size_t snapshot_bytes)
    : strand_(net::make_strand(io)),
      settings_(settings),
      engine_(std::move(engine)),
      journal_(journal),
      metrics_(metrics),
      clock_(clock),
      alert_counts_((std::size_t(rota::AlertKind::double_up_incomplete) + 1) * kAlertStates, 0),
      notifier_(settings,
                [this](const rota::Engine& engine, rota::AlertIndex a) {
                  // Pages say "phone offline since 08:40" too: the coordinator's first
                  // question.
                  alerts::AlertText text;
                  text.summary = alert_summary(engine, engine.alert(a), &presence_);
                  append_alert(text.json, engine, a, &presence_);
                  return text;
                }),
      pager_(std::move(pager)),
      deadline_timer_(strand_),
      snapshot_timer_(strand_),
      snapshot_seq_(snapshot_seq),
      last_snapshot_bytes_(snapshot_bytes),
      last_compaction_(clock.now()) {
  for (rota::AlertIndex a = 0; a < engine_->alert_count(); ++a) track_alert(a);
  metrics_.durable_seq().Set(double(journal_.durable_seq()));
  net::post(background_, run_at_idle_priority);  // its one thread, before any job
}

EngineHost::~EngineHost() { background_.join(); }

void EngineHost::start() {
  // Commands standbys forward (Redis): decided here like any other, answered once durable.
  journal_.serve_forwarded([weak = weak_from_this()](store::Log::Forwarded forwarded) {
    auto self = weak.lock();
    if (!self) return;
    auto& strand = self->strand_;
    net::post(strand, [self = std::move(self), forwarded = std::move(forwarded)] {
      self->on_forwarded(forwarded);
    });
  });
  if (pager_) {
    pager_->on_recorded([weak = weak_from_this()](std::error_code ec) {
      if (auto self = weak.lock()) self->recorded(ec);
    });
    pager_->on_fallback([weak = weak_from_this()](std::vector<alerts::Notice> copies) {
      if (auto self = weak.lock()) {
        net::post(self->strand_, [self, copies = std::move(copies)]() mutable {
          self->send_notices(std::move(copies));
        });
      }
    });
  }
  net::post(strand_, [self = shared_from_this()] {
    self->resume_outbox();
    // Deadlines that fell due while the daemon was down fire now, before any client.
    self->effects_.clear();
    self->engine_->advance(self->clock_.now(), self->effects_);
    self->advanced(self->effects_);
    self->arm_deadline();
    self->arm_snapshot_timer();
  });
}

void EngineHost::start_standby(bool settings_recorded, std::uint64_t followed_from) {
  standby_.store(true);
  settings_recorded_ = settings_recorded;
  applied_seq_ = followed_from;
}

void EngineHost::follow(store::Record record) {
  net::post(strand_, [self = shared_from_this(), record = std::move(record)] {
    if (!self->standby_.load() || self->closing_) return;
    self->effects_.clear();
    try {
      const store::Applied applied = store::apply_record(*self->engine_, record, self->effects_);
      if (applied.settings) self->settings_recorded_ = true;
      if (applied.diverged) {
        log::warn("follow_diverged", {{"seq", to_text(record.seq)},
                                      {"why", "the replica refused a record the owner accepted"}});
      }
    } catch (const std::exception& e) {
      log::error("follow_unreadable", {{"seq", to_text(record.seq)}, {"error", e.what()}});
    }
    self->metrics_.durable_seq().Set(double(record.seq));
    self->applied_seq_ = record.seq;
    self->publish(self->effects_);
    self->answer_awaiting(record.seq);
    // What publish() held for durability: a standby appends nothing, so nothing else would
    // let it go.
    self->drain();
  });
}

void EngineHost::promote(std::function<void(std::optional<Error>)> done) {
  net::post(strand_, [self = shared_from_this(), done = std::move(done)] {
    if (self->closing_) return;
    // The log's settings were in force on the replica; this daemon's config goes in force
    // now if it differs (as at a start-up), and the log records that.
    const bool changed = config::describe_tracking(self->engine_->settings()) !=
                         config::describe_tracking(self->settings_);
    if (changed || !self->settings_recorded_) {
      self->effects_.clear();
      if (auto error =
              self->engine_->reconfigure(std::make_shared<const config::Settings>(self->settings_),
                                         self->clock_.now(), self->effects_)) {
        done(std::move(error));
        return;
      }
      store::record_settings(self->journal_, *self->engine_, self->engine_->now(),
                             [self](std::uint64_t, std::error_code ec) { self->recorded(ec); });
      self->publish(self->effects_);
    }
    self->standby_.store(false);
    // Forwarded commands the old owner answered before it died: what they describe is all
    // in the replica now.
    self->answer_awaiting(~std::uint64_t{0});
    self->start();
    done(std::nullopt);
  });
}

void EngineHost::advanced(const rota::Effects& effects) {
  if (effects.empty()) return;
  // Standbys apply records only: this one moves their engines on to the same deadlines.
  store::record_tick(
      journal_, engine_->now(),
      [self = shared_from_this()](std::uint64_t, std::error_code ec) { self->recorded(ec); });
  publish(effects);
}

void EngineHost::close(std::function<void()> done) {
  closed_.store(true);
  net::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
    self->closing_ = true;
    if (self->pager_) self->pager_->close();
    self->deadline_timer_.cancel();
    self->snapshot_timer_.cancel();
    EngineHost* host = self.get();
    self->in_background([host] { host->journal_.flush(); },
                        [host, done = std::move(done)] {
                          if (host->journal_.failed()) {
                            host->journal_failed(host->journal_.failure());
                          } else {
                            host->drain();
                          }
                          done();
                        });
  });
}

void EngineHost::in_background(std::function<void()> job, std::function<void()> then) {
  net::post(background_,
            [self = shared_from_this(), work = net::make_work_guard(strand_.get_inner_executor()),
             job = std::move(job), then = std::move(then)]() mutable {
              job();
              job = nullptr;
              // The last reference to the host must not be dropped here: its destructor joins this
              // thread. The strand's handler takes it (and runs before the work guard goes).
              auto& strand = self->strand_;
              net::post(strand, [self = std::move(self), then = std::move(then)] { then(); });
            });
}

bool EngineHost::ready() const {
  return !failed_.load() && !closed_.load() && !standby_.load() && journal_.unavailable().empty();
}

std::string EngineHost::not_ready_reason() const {
  if (failed_.load()) return journal_.failure_text();
  if (closed_.load()) return "shutting down";
  if (standby_.load()) {
    return "standby: " + journal_.standby() +
           " owns the store; this daemon follows it (its boards are live) and takes over if "
           "it stops";
  }
  if (auto outage = journal_.unavailable(); !outage.empty()) {
    return outage + ": no event is acknowledged until it is back";
  }
  return {};
}

std::string EngineHost::warning() const { return journal_.unsafe(); }

void EngineHost::refresh_metrics() {
  metrics_.store_unavailable().Set(journal_.unavailable().empty() ? 0 : 1);
  metrics_.store_unsafe_fsync().Set(journal_.unsafe().empty() ? 0 : 1);
}

// ---------------------------------------------------------------------------------------
// Commands

void EngineHost::submit(rota::Command command, Precheck precheck, Decided decided) {
  metrics_.engine_queue_depth().Set(double(queued_.fetch_add(1) + 1));
  net::post(strand_, [self = shared_from_this(), command = std::move(command),
                      precheck = std::move(precheck), decided = std::move(decided)]() mutable {
    self->metrics_.engine_queue_depth().Set(double(self->queued_.fetch_sub(1) - 1));
    self->on_submit(command, precheck, decided);
  });
}

void EngineHost::on_submit(rota::Command& command, const Precheck& precheck,
                           const Decided& decided) {
  const CommandType type = command_type(command);
  rota::Reply reply;
  if (closing_) {
    reply = refusal(ErrorCode::internal, "visitd is shutting down: send it again shortly");
  } else if (standby_.load()) {
    // Decided by the owner; authorised here, against the replica.
    if (auto refused = precheck ? precheck(*engine_) : std::nullopt) {
      reply = refusal(refused->code, refused->message);
    } else if (auto unseen = unseen_target(command, *engine_)) {
      // The owner authorises nothing: what the replica has not seen, it cannot authorise.
      reply = refusal(ErrorCode::internal, "this visitd is a standby and has not yet seen " +
                                               *unseen + ": send it again shortly");
    } else {
      forward(command, type, decided);
      return;
    }
  } else if (failed_.load()) {
    reply = refusal(ErrorCode::internal, not_ready_reason());
  } else if (auto outage = journal_.unavailable(); !outage.empty()) {
    // Nothing could be acknowledged: refused before it is decided, so that nothing is
    // decided that might never be recorded. The phone keeps the event and sends it again.
    reply = refusal(ErrorCode::internal, outage + ": send it again shortly");
  } else if (precheck) {
    if (auto refused = precheck(*engine_)) reply = refusal(refused->code, refused->message);
  }
  if (reply.status == rota::Status::rejected) {
    metrics_.count_event(type, reply.status);
    metrics_.count_error(reply.error->code);
    decided(reply, *engine_)({});
    return;
  }

  effects_.clear();
  reply = engine_->apply(command, clock_.now(), effects_);
  metrics_.count_event(type, reply.status);
  Deliver deliver = decided(reply, *engine_);
  switch (reply.status) {
    case rota::Status::accepted:
      journal_accepted(command, std::move(deliver));
      break;
    case rota::Status::rejected:
      metrics_.count_error(reply.error->code);
      deliver({});  // a refusal states nothing that could be lost
      break;
    default:
      // A duplicate or no-op reports state that earlier, maybe not yet durable, records made.
      after_durable(std::move(deliver));
  }
  publish(effects_);
  maybe_snapshot(false);
  arm_deadline();
}

void EngineHost::forward(const rota::Command& command, CommandType type, Decided decided) {
  std::string payload(1, static_cast<char>(rota::kCommandCodecVersion));
  rota::encode(command, payload);
  journal_.forward(
      std::move(payload), [weak = weak_from_this(), type, decided = std::move(decided)](
                              std::optional<std::string> answer) mutable {
        auto self = weak.lock();
        if (!self) return;
        auto& strand = self->strand_;
        net::post(strand, [self = std::move(self), type, decided = std::move(decided),
                           answer = std::move(answer)] { self->forwarded(answer, type, decided); });
      });
}

void EngineHost::forwarded(const std::optional<std::string>& text, CommandType type,
                           const Decided& decided) {
  auto answer = text ? decode_answer(*text) : std::nullopt;
  if (!answer) {
    const rota::Reply reply = refusal(
        ErrorCode::internal,
        text ? "the answer of the daemon that owns the store could not be read: send it again"
             : "no answer from the daemon that owns the store: send it again shortly");
    metrics_.count_event(type, reply.status);
    metrics_.count_error(ErrorCode::internal);
    decided(reply, *engine_)({});
    return;
  }
  metrics_.count_event(type, answer->reply.status);
  if (answer->reply.error) metrics_.count_error(answer->reply.error->code);
  if (!standby_.load() || applied_seq_ >= answer->seq) {
    decided(answer->reply, *engine_)({});
    return;
  }
  // The replica has not yet applied what the answer speaks of: once it has (follow()).
  awaiting_.emplace(answer->seq, [this, reply = std::move(answer->reply), decided] {
    decided(reply, *engine_)({});
  });
}

void EngineHost::answer_awaiting(std::uint64_t seq) {
  while (!awaiting_.empty() && awaiting_.begin()->first <= seq) {
    auto run = std::move(awaiting_.begin()->second);
    awaiting_.erase(awaiting_.begin());
    run();
  }
}

void EngineHost::on_forwarded(const store::Log::Forwarded& forwarded) {
  const std::string& payload = forwarded.payload;
  const store::Log::Answer& answer = forwarded.answer;
  if (std::chrono::steady_clock::now() > forwarded.apply_by) {
    // Its sender has (or is about to have) told its user to send it again: applying it now
    // could undo what the user did since. Nobody reads this answer.
    metrics_.count_error(ErrorCode::internal);
    answer(encode_answer(
        refusal(ErrorCode::internal, "it reached the owner too late: send it again"), 0));
    return;
  }
  auto command = payload.empty() ? Result<rota::Command>(Error{ErrorCode::bad_message, "empty"})
                                 : rota::decode(std::string_view(payload).substr(1),
                                                static_cast<std::uint8_t>(payload[0]));
  if (!command) {
    answer(encode_answer(refusal(ErrorCode::bad_message, "a forwarded command could not be read: " +
                                                             command.error().message),
                         journal_.last_seq()));
    return;
  }
  on_submit(
      *command, nullptr, [this, answer](const rota::Reply& reply, const rota::Engine&) -> Deliver {
        // Once durable, every record up to last_seq() is: the command's own among them,
        // whatever else (the pager's records) was appended meanwhile.
        return [this, answer, reply](std::error_code ec) {
          if (ec) {
            answer(encode_answer(refusal(ErrorCode::internal,
                                         "the change could not be made durable: " + ec.message()),
                                 0));
          } else {
            answer(encode_answer(reply, journal_.last_seq()));
          }
        };
      });
}

void EngineHost::journal_accepted(const rota::Command& command, Deliver deliver) {
  store::record(
      journal_, command, engine_->now(),
      [self = shared_from_this(), deliver = std::move(deliver)](std::uint64_t, std::error_code ec) {
        deliver(ec);
        self->recorded(ec);
      });
}

void EngineHost::after_durable(std::function<void(std::error_code)> run, bool view) {
  const std::uint64_t seq = journal_.last_seq();
  if (failed_.load()) {
    run(journal_.failure());
  } else if (pending_.empty() && journal_.durable_seq() >= seq) {
    run({});
  } else if (view && !journal_.unavailable().empty()) {
    release_views();
    run({});
  } else {
    pending_.push_back({seq, std::move(run), view});
  }
}

void EngineHost::release_views() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->view) {
      auto run = std::move(it->run);
      it = pending_.erase(it);
      run({});
    } else {
      ++it;
    }
  }
}

void EngineHost::recorded(std::error_code ec) {
  if (ec) {
    net::post(strand_, [self = shared_from_this(), ec] { self->journal_failed(ec); });
  } else {
    notify_durable();
  }
}

void EngineHost::notify_durable() {
  if (!drain_posted_.exchange(true)) {
    net::post(strand_, [self = shared_from_this()] {
      self->drain_posted_.store(false);
      self->drain();
    });
  }
}

void EngineHost::drain() {
  const std::uint64_t durable = journal_.durable_seq();
  metrics_.durable_seq().Set(double(durable));
  while (!pending_.empty() && pending_.front().after_seq <= durable) {
    auto run = std::move(pending_.front().run);
    pending_.pop_front();
    run({});
  }
}

void EngineHost::journal_failed(std::error_code error) {
  if (!failed_.exchange(true)) {
    metrics_.journal_failed().Set(1);
    log::error("journal_failed", {{"error", error.message()},
                                  {"durable_seq", to_text(journal_.durable_seq())},
                                  {"action", "refusing every event until restarted"}});
  }
  // What waits for durability now never gets it: answers become errors, deltas are dropped.
  while (!pending_.empty()) {
    auto run = std::move(pending_.front().run);
    pending_.pop_front();
    run(error);
  }
}

// ---------------------------------------------------------------------------------------
// Effects → boards and phones

void EngineHost::publish(const rota::Effects& effects) {
  if (effects.empty()) return;
  const bool boards = !boards_.empty() || boards_joining_ > 0;
  // One frame per object per command, however many effects named it.
  auto& visits = touched_visits_;
  auto& alerts = touched_alerts_;
  auto& carers = touched_carers_;
  visits.clear();
  alerts.clear();
  carers.clear();
  for (const rota::Effect& e : effects) {
    switch (e.kind) {
      case rota::Effect::Kind::visit_changed:
        visits.push_back(e.index);
        break;
      case rota::Effect::Kind::alert_changed:
        alerts.push_back(e.index);
        break;
      case rota::Effect::Kind::rota_changed:
        carers.push_back(e.index);
        break;
    }
  }
  const auto unique = [](std::vector<std::uint32_t>& v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  };
  unique(visits);
  unique(alerts);
  unique(carers);

  for (const rota::AlertIndex a : alerts) track_alert(a);
  std::vector<alerts::Notice> notices;
  // A standby's replica decides nothing (the owner pages; its outbox records arrive here),
  // and a notifier that saw its effects would think it had paged.
  for (const rota::Effect& e : effects) {
    if (e.kind != rota::Effect::Kind::alert_changed || standby_.load()) continue;
    if (e.transition == rota::AlertTransition::acknowledged) {
      const rota::Alert& alert = engine_->alert(e.index);
      if (alert.acked_at) {
        metrics_.observe_time_to_ack(
            std::chrono::duration<double>(*alert.acked_at - alert.raised_at).count());
      }
    }
    for (auto& n : notifier_.on_effect(*engine_, e)) notices.push_back(std::move(n));
  }
  if (!notices.empty()) send_notices(std::move(notices));
  if (boards) {
    for (const rota::VisitIndex v : visits) {
      auto frame = std::make_shared<std::string>();
      append_visit_message(*frame, *engine_, v, &presence_);
      const rota::BranchIndex branch = engine_->visit(v).branch;
      after_durable(
          [this, branch, frame = Frame(std::move(frame))](std::error_code ec) {
            if (!ec) fan_out_board(branch, frame);
          },
          /*view=*/true);
    }
    for (const rota::AlertIndex a : alerts) {
      auto frame = std::make_shared<std::string>();
      append_alert_message(*frame, *engine_, a, &presence_);
      const rota::BranchIndex branch = engine_->visit(engine_->alert(a).visit).branch;
      after_durable(
          [this, branch, frame = Frame(std::move(frame))](std::error_code ec) {
            if (!ec) fan_out_board(branch, frame);
          },
          /*view=*/true);
    }
  }
  for (const rota::CarerIndex c : carers) push_rota(c);
}

void EngineHost::send_notices(std::vector<alerts::Notice> notices) {
  for (const auto& n : notices) {
    if (const auto alert = engine_->find_alert(n.alert)) {
      engine_->note_notified(*alert, alerts::notified(n));
    }
    store::record_notice(
        journal_, n, engine_->now(),
        [self = shared_from_this()](std::uint64_t, std::error_code ec) { self->recorded(ec); });
  }
  if (!pager_) return;
  after_durable([pager = pager_, notices = std::move(notices)](std::error_code ec) mutable {
    if (!ec) pager->enqueue(std::move(notices));
  });
}

void EngineHost::reconfigure_paging(const std::shared_ptr<const config::Settings>& next) {
  // The full settings: the engine's own are what the journal records, routing keys redacted.
  notifier_.reconfigure(*next);
  if (pager_) pager_->reconfigure(next);
}

void EngineHost::resume_outbox() {
  std::vector<alerts::Notice> owed;
  try {
    owed = store::read_outbox(journal_, [&](const alerts::Notice& n) { notifier_.remember(n); });
  } catch (const std::exception& e) {
    // The engine's state is whole; only the paging history could not be read. Say so loudly
    // and carry on: the alerts are on the boards, and new pages still go out.
    log::error("outbox_unreadable", {{"error", e.what()}});
  }
  auto lost = notifier_.missing(*engine_);
  if (!owed.empty() || !lost.empty()) {
    log::info("outbox_resumed", {{"owed", to_text(owed.size())}, {"remade", to_text(lost.size())}});
  }
  if (pager_ && !owed.empty()) pager_->enqueue(std::move(owed));
  if (!lost.empty()) send_notices(std::move(lost));
}

void EngineHost::track_alert(rota::AlertIndex a) {
  const rota::Alert& alert = engine_->alert(a);
  if (a >= alert_open_severity_.size()) alert_open_severity_.resize(std::size_t(a) + 1, kNoClass);
  const std::uint8_t severity = alert.open() ? std::uint8_t(alert.severity) : kNoClass;
  if (alert_open_severity_[a] != severity) {
    if (alert_open_severity_[a] != kNoClass) {
      const auto was = rota::Severity(alert_open_severity_[a]);
      metrics_.open_alerts(was).Set(--open_by_severity_[std::size_t(was)]);
    }
    if (severity != kNoClass) {
      metrics_.open_alerts(alert.severity).Set(++open_by_severity_[severity]);
    }
    alert_open_severity_[a] = severity;
  }
  if (a >= alert_class_.size()) alert_class_.resize(std::size_t(a) + 1, kNoClass);
  const auto cls =
      static_cast<std::uint8_t>(std::size_t(alert.kind) * kAlertStates + std::size_t(alert.state));
  const std::uint8_t before = alert_class_[a];
  if (before != cls) {
    if (before != kNoClass) {
      alert_counts_[before] -= 1;
      metrics_.set_alert(static_cast<rota::AlertKind>(before / kAlertStates),
                         static_cast<rota::AlertState>(before % kAlertStates),
                         alert_counts_[before]);
    }
    alert_counts_[cls] += 1;
    metrics_.set_alert(alert.kind, alert.state, alert_counts_[cls]);
    alert_class_[a] = cls;
  }
}

void EngineHost::fan_out_board(rota::BranchIndex branch, const Frame& frame) {
  const std::string& id = engine_->branch(branch).id;
  std::erase_if(boards_, [&](const Board& board) {
    auto session = board.session.lock();
    if (!session) return true;
    if (may_view_branch(board.who, id)) session->push(frame);
    return false;
  });
}

Frame EngineHost::rota_frame(std::string_view carer) const {
  auto frame = std::make_shared<std::string>();
  std::vector<rota::VisitIndex> visits;
  if (auto c = engine_->find_carer(carer)) {
    const TimePoint now = engine_->now();
    visits = carer_rota(*engine_, *c, now - kRotaBehind, now + kRotaAhead);
  }
  append_rota(*frame, *engine_, visits);
  return frame;
}

void EngineHost::push_rota(rota::CarerIndex carer) {
  const std::string& id = engine_->carer(carer).id;
  if (phones_.find(id) == phones_.end()) return;
  after_durable([this, id, frame = rota_frame(id)](std::error_code ec) {
    if (ec) return;
    const auto it = phones_.find(id);
    if (it == phones_.end()) return;
    std::erase_if(it->second, [&](const std::weak_ptr<Subscriber>& w) {
      auto phone = w.lock();
      if (!phone) return true;
      phone->push(frame);
      return false;
    });
    if (it->second.empty()) phones_.erase(it);
  });
}

std::size_t EngineHost::message_carer(const CarerMessage& message) {
  const auto it = phones_.find(message.carer);
  if (it == phones_.end()) return 0;
  auto frame = std::make_shared<std::string>();
  append_carer_message(*frame, message.from, message.text);
  const Frame shared = std::move(frame);
  std::size_t delivered = 0;
  for (const auto& w : it->second) {
    if (auto phone = w.lock()) {
      phone->push(shared);
      ++delivered;
    }
  }
  return delivered;
}

void EngineHost::subscribe_board(std::weak_ptr<Subscriber> board, Principal who) {
  net::post(strand_,
            [self = shared_from_this(), board = std::move(board), who = std::move(who)]() mutable {
              auto frame = std::make_shared<std::string>();
              self->snapshot_frames(who, *frame);
              ++self->boards_joining_;
              // Joins the fan-out when its snapshot goes out: deltas queued before are in it.
              self->after_durable(
                  [self, board = std::move(board), who = std::move(who),
                   frame = Frame(std::move(frame))](std::error_code ec) mutable {
                    --self->boards_joining_;
                    if (ec) return;
                    if (auto session = board.lock()) {
                      session->push(frame);
                      self->boards_.push_back({std::move(board), std::move(who)});
                    }
                  },
                  /*view=*/true);
            });
}

void EngineHost::snapshot_frames(const Principal& who, std::string& out) const {
  std::vector<rota::VisitIndex> visits;
  std::vector<bool> visible(engine_->branch_count(), false);
  const TimePoint now = engine_->now();
  for (rota::BranchIndex b = 0; b < engine_->branch_count(); ++b) {
    const rota::BranchInfo& branch = engine_->branch(b);
    if (!may_view_branch(who, branch.id)) continue;
    visible[b] = true;
    const auto today = engine_->visits_on(b, branch.zone.local_day(now));
    visits.insert(visits.end(), today.begin(), today.end());
  }
  std::vector<rota::AlertIndex> alerts;
  for (const rota::AlertIndex a : engine_->open_alerts()) {
    if (visible[engine_->visit(engine_->alert(a).visit).branch]) alerts.push_back(a);
  }
  append_snapshot(out, *engine_, clock_.now(), visits, alerts, clock_.rate(), &presence_);
}

void EngineHost::subscribe_carer(std::weak_ptr<Subscriber> phone, std::string carer) {
  net::post(strand_, [self = shared_from_this(), phone = std::move(phone),
                      carer = std::move(carer)]() mutable {
    const bool was_offline = self->presence_.offline_since(carer).has_value();
    self->presence_.connected(carer, self->clock_.now());
    if (was_offline) self->republish_carer(carer);
    Frame frame = self->rota_frame(carer);
    self->after_durable([self, phone = std::move(phone), carer = std::move(carer),
                         frame = std::move(frame)](std::error_code ec) mutable {
      if (ec) return;
      if (auto session = phone.lock()) {
        session->push(frame);
        self->phones_[carer].push_back(std::move(phone));
      }
    });
  });
}

void EngineHost::phone_gone(std::string carer, TimePoint last_heard) {
  net::post(strand_, [self = shared_from_this(), carer = std::move(carer), last_heard] {
    self->presence_.disconnected(carer, last_heard);
    if (self->presence_.offline_since(carer)) self->republish_carer(carer);
  });
}

void EngineHost::republish_carer(std::string_view carer) {
  if (boards_.empty() && boards_joining_ == 0) return;
  const auto c = engine_->find_carer(carer);
  if (!c) return;
  // The visits around now: the ones an arrival alert or the board's day can be about.
  const TimePoint now = engine_->now();
  for (const rota::VisitIndex v : carer_rota(*engine_, *c, now - kRotaBehind, now + kRotaAhead)) {
    const rota::Visit& visit = engine_->visit(v);
    if (visit.checked_in(*c)) continue;
    const auto send = [&](auto append, std::uint32_t index) {
      auto frame = std::make_shared<std::string>();
      append(*frame, *engine_, index, &presence_);
      after_durable(
          [this, branch = visit.branch, frame = Frame(std::move(frame))](std::error_code ec) {
            if (!ec) fan_out_board(branch, frame);
          },
          /*view=*/true);
    };
    send(append_visit_message, v);
    for (const rota::AlertIndex a : visit.alerts) {
      if (a != rota::kNoIndex && engine_->alert(a).open() && engine_->alert(a).carer == *c) {
        send(append_alert_message, a);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// HTTP API

void EngineHost::http(std::shared_ptr<const OwnedHttpRequest> request, Principal who,
                      std::function<void(HttpAnswer)> done) {
  net::post(strand_, [self = shared_from_this(), request = std::move(request), who = std::move(who),
                      done = std::move(done)] { self->on_http(*request, who, done); });
}

void EngineHost::on_http(const OwnedHttpRequest& request, const Principal& who,
                         const std::function<void(HttpAnswer)>& done) {
  Decision decision = decide(request.view(), who, *engine_, clock_.now(), {}, &presence_);
  if (decision.answer) {
    done(std::move(*decision.answer));
    return;
  }
  if (decision.message) {
    const std::size_t n = message_carer(*decision.message);
    HttpAnswer ok;
    ok.body = "{\"delivered\":" + std::to_string(n) + "}";
    done(std::move(ok));
    return;
  }
  if (!decision.command) {
    done(error_answer(Error{ErrorCode::internal, "the request was not understood"}));
    return;
  }
  const ApiWrite route = decision.route;
  on_submit(
      *decision.command, nullptr,
      [this, done, route](const rota::Reply& reply, const rota::Engine& engine) -> Deliver {
        auto answer_now = std::make_shared<HttpAnswer>(answer(route, reply, engine, &presence_));
        return [done, answer_now](std::error_code ec) {
          if (ec) {
            done(error_answer(Error{ErrorCode::internal,
                                    "the change could not be made durable: " + ec.message()}));
          } else {
            done(std::move(*answer_now));
          }
        };
      });
}

// ---------------------------------------------------------------------------------------
// Config reload

void EngineHost::reload(std::shared_ptr<const config::Settings> next,
                        std::function<void(ReloadOutcome)> done) {
  net::post(strand_, [self = shared_from_this(), next = std::move(next),
                      done = std::move(done)]() mutable {
    ReloadOutcome outcome;
    if (self->closing_ || self->failed_.load()) {
      outcome.error = Error{ErrorCode::internal, "not now: " + self->not_ready_reason()};
    } else if (self->standby_.load()) {
      // Its engine is the owner's, record for record; the config's settings go in force when
      // it becomes the owner (promote()).
      outcome.error = Error{ErrorCode::internal,
                            "a standby keeps the owner's settings: reload the owner (this "
                            "daemon puts the file's settings in force when it takes over)"};
    } else if (config::describe_tracking(*next) ==
               config::describe_tracking(self->engine_->settings())) {
      outcome.unchanged = true;
      self->reconfigure_paging(next);  // a routing key is redacted from what the engine keeps
    } else {
      self->effects_.clear();
      outcome.error = self->engine_->reconfigure(next, self->clock_.now(), self->effects_);
      if (!outcome.error) self->reconfigure_paging(next);
      if (!outcome.error) {
        // Recorded like a command, so that a replay reconfigures at the same point.
        store::record_settings(self->journal_, *self->engine_, self->engine_->now(),
                               [self](std::uint64_t, std::error_code ec) { self->recorded(ec); });
        self->publish(self->effects_);
        self->arm_deadline();
      }
    }
    done(std::move(outcome));
  });
}

// ---------------------------------------------------------------------------------------
// Timers

void EngineHost::arm_deadline() {
  const auto next = engine_->next_deadline();
  if (!next) {
    if (armed_for_) deadline_timer_.cancel();
    armed_for_.reset();
    return;
  }
  if (armed_for_ == next) return;
  armed_for_ = next;
  // A demo clock runs faster than the timer: a deadline 15 demo minutes away at rate 60
  // is 15 real seconds away.
  const auto wait =
      std::clamp<Duration>(real_wait(clock_, *next - clock_.now()), Duration::zero(), kMaxSleep);
  deadline_timer_.expires_after(wait);
  deadline_timer_.async_wait(net::bind_executor(
      strand_,
      [self = shared_from_this()](boost::system::error_code ec) { self->on_deadline(ec); }));
}

void EngineHost::on_deadline(boost::system::error_code ec) {
  if (ec || closing_) return;  // re-armed or cancelled
  armed_for_.reset();
  effects_.clear();
  engine_->advance(clock_.now(), effects_);
  advanced(effects_);
  arm_deadline();
}

void EngineHost::arm_snapshot_timer() {
  snapshot_timer_.expires_after(settings_.store.snapshot_interval);
  snapshot_timer_.async_wait(
      net::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec) {
        if (ec || self->closing_) return;
        self->maybe_snapshot(true);
        self->arm_snapshot_timer();
      }));
}

void EngineHost::maybe_snapshot(bool timer) {
  if (snapshot_running_ || closing_ || failed_.load()) return;
  const std::uint64_t last = journal_.last_seq();
  if (last == snapshot_seq_) return;
  if (!timer && last - snapshot_seq_ < settings_.store.snapshot_every) return;

  // The engine's snapshot is taken right after advance(now), as it requires.
  const TimePoint now = clock_.now();
  effects_.clear();
  engine_->advance(now, effects_);
  advanced(effects_);
  const std::uint64_t seq = journal_.last_seq();
  // The state as of `seq` is serialized off the strand, from a copy made here or by a forked
  // child that sees the engine copy-on-write. The strand waits for the copy, or for the fork
  // (page tables); the fork makes the parent pay for each page it writes first while the child
  // runs (1.4x per event, engine_bench --snapshot-hold). So: a copy while the state is small,
  // a fork once copying it would hold every event up for longer than an ack should wait.
  const auto hold_start = std::chrono::steady_clock::now();
  std::shared_ptr<store::SnapshotChild> child;
  std::shared_ptr<const rota::Engine> copy;
  if (last_snapshot_bytes_ >= settings_.store.snapshot_fork_above) {
    if (auto started = store::SnapshotChild::start(*engine_)) {
      child = std::make_shared<store::SnapshotChild>(std::move(*started));
    } else {
      log::warn("snapshot_fork_failed", {{"error", std::strerror(errno)}, {"instead", "copy"}});
    }
  }
  if (!child) copy = engine_->clone();
  const auto held = std::chrono::steady_clock::now() - hold_start;
  auto bytes_written = std::make_shared<std::size_t>(0);
  snapshot_running_ = true;
  snapshot_seq_ = seq;
  const bool compact = now - last_compaction_ >= kCompactionInterval;
  if (compact) last_compaction_ = now;
  const TimePoint drop_before = now - settings_.store.location_retention;
  in_background(
      [this, seq, child = std::move(child), copy = std::move(copy), held, bytes_written, compact,
       drop_before]() mutable {
        try {
          const auto serialize_start = std::chrono::steady_clock::now();
          const std::string bytes = child ? child->finish() : store::snapshot_bytes(*copy);
          const bool forked = child != nullptr;
          child.reset();
          copy.reset();
          *bytes_written = bytes.size();
          const auto write_start = std::chrono::steady_clock::now();
          journal_.flush();
          if (!journal_.failed() && journal_.durable_seq() >= seq) {
            journal_.write_snapshot(seq, bytes);
            const auto done = std::chrono::steady_clock::now();
            metrics_.snapshots(forked).Increment();
            // held_ms is what every event waited (the fork, or the copy); the rest ran off
            // the strand.
            log::info("snapshot",
                      {{"seq", to_text(seq)},
                       {"bytes", to_text(bytes.size())},
                       {"held_ms", milliseconds_text(held)},
                       {"by", forked ? "fork" : "copy"},
                       {"serialize_ms", milliseconds_text(write_start - serialize_start)},
                       {"write_ms", milliseconds_text(done - write_start)}});
            if (compact) {
              const std::uint64_t dropped = journal_.compact(drop_before);
              log::info("compacted", {{"dropped_location_fixes", to_text(dropped)},
                                      {"older_than", format_rfc3339(drop_before)}});
            }
          }
        } catch (const std::exception& e) {
          // The journal still holds every record: a missed snapshot only lengthens the next
          // start.
          log::error("snapshot_failed", {{"seq", to_text(seq)}, {"error", e.what()}});
        }
      },
      [this, bytes_written] {
        snapshot_running_ = false;
        if (*bytes_written > 0) last_snapshot_bytes_ = *bytes_written;
      });
}

}  // namespace visitd::websocket
