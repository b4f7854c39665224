#include "visitd/store/engine_journal.hpp"

#include "visitd/rota/codec.hpp"

namespace visitd::store {

Recovered recover(const config::Settings& settings, const Journal& journal, TimePoint origin) {
  Recovered out;
  if (auto snap = journal.latest_snapshot()) {
    auto engine = rota::Engine::restore(settings, snap->bytes);
    if (!engine) {
      throw JournalError("snapshot " + std::to_string(snap->seq) +
                         " cannot be used: " + engine.error().message);
    }
    out.engine = std::move(*engine);
    out.snapshot_seq = snap->seq;
  }

  rota::Effects effects;
  journal.replay(out.snapshot_seq + 1, [&](const Record& r) {
    // Without a snapshot the engine starts at the first record's time: time never runs
    // backwards in the engine, so starting it at `origin` (now) would stamp every replayed
    // decision with the restart's time.
    if (!out.engine) out.engine = std::make_unique<rota::Engine>(settings, r.time);
    auto command = rota::decode(r.payload, r.version);
    if (!command) {
      throw JournalError("record " + std::to_string(r.seq) + ": " + command.error().message);
    }
    effects.clear();
    const auto reply = out.engine->apply(*command, r.time, effects);
    if (reply.status == rota::Status::rejected) ++out.diverged;
    ++out.replayed;
    out.last_seq = r.seq;
  });
  if (!out.engine) out.engine = std::make_unique<rota::Engine>(settings, origin);
  out.last_seq = std::max({out.last_seq, out.snapshot_seq, journal.last_seq()});
  return out;
}

std::uint64_t record(Journal& journal, const rota::Command& command, TimePoint now,
                     Journal::Durable on_durable) {
  // One buffer per thread: the per-event path allocates nothing once warm.
  thread_local std::string payload;
  payload.clear();
  rota::encode(command, payload);
  const auto type = rota::is_location(command) ? RecordType::location : RecordType::command;
  return journal.append(type, rota::kCommandCodecVersion, now, payload, std::move(on_durable));
}

std::uint64_t snapshot(Journal& journal, const rota::Engine& engine) {
  const std::uint64_t seq = journal.last_seq();
  journal.flush();
  if (journal.failed() || journal.durable_seq() < seq) return 0;
  journal.write_snapshot(seq, engine.snapshot());
  return seq;
}

}  // namespace visitd::store
