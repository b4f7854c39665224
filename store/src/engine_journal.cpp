#include "visitd/store/engine_journal.hpp"

#include <cstring>
#include <map>
#include <unordered_map>

#include "visitd/config/load.hpp"
#include "visitd/rota/codec.hpp"

namespace visitd::store {
namespace {

/// A snapshot's bytes: this prefix, the settings text's length (8 bytes, little-endian), the
/// text, then the engine's snapshot. Older snapshots are the engine's bytes alone.
constexpr std::string_view kSettingsPrefix = "visitd-settings\n";

struct SnapshotParts {
  std::string_view settings;  ///< empty for an older snapshot
  std::string_view engine;
};

SnapshotParts split(std::string_view bytes, std::uint64_t seq) {
  if (bytes.substr(0, kSettingsPrefix.size()) != kSettingsPrefix) return {{}, bytes};
  bytes.remove_prefix(kSettingsPrefix.size());
  if (bytes.size() < 8) throw JournalError("snapshot " + std::to_string(seq) + " is truncated");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[std::size_t(i)]);
  bytes.remove_prefix(8);
  if (n > bytes.size()) throw JournalError("snapshot " + std::to_string(seq) + " is truncated");
  return {bytes.substr(0, n), bytes.substr(n)};
}

std::shared_ptr<const config::Settings> read_settings(std::string_view text,
                                                      const std::string& where) {
  try {
    return std::make_shared<const config::Settings>(config::load_string(std::string(text), where));
  } catch (const ConfigError& e) {
    throw JournalError(where + ": the recorded settings cannot be read: " + e.what());
  }
}

}  // namespace

RestoredSnapshot restore_snapshot(const config::Settings& settings, std::string_view bytes,
                                  std::uint64_t seq) {
  const SnapshotParts parts = split(bytes, seq);
  const std::string where = "snapshot " + std::to_string(seq);
  auto engine = parts.settings.empty()
                    ? rota::Engine::restore(settings, parts.engine)
                    : rota::Engine::restore(read_settings(parts.settings, where), parts.engine);
  if (!engine) throw JournalError(where + " cannot be used: " + engine.error().message);
  return {std::move(*engine), !parts.settings.empty()};
}

Recovered recover(const config::Settings& settings, const Log& journal, TimePoint origin) {
  Recovered out;
  if (auto snap = journal.latest_snapshot()) {
    auto restored = restore_snapshot(settings, snap->bytes, snap->seq);
    out.engine = std::move(restored.engine);
    out.snapshot_seq = snap->seq;
    out.snapshot_bytes = snap->bytes.size();
    out.settings_recorded = restored.settings_recorded;
  }

  rota::Effects effects;
  journal.replay(out.snapshot_seq + 1, [&](const Record& r) {
    // Without a snapshot the engine starts at the first record's time: time never runs
    // backwards in the engine, so starting it at `origin` (now) would stamp every replayed
    // decision with the restart's time.
    if (!out.engine) out.engine = std::make_unique<rota::Engine>(settings, r.time);
    effects.clear();
    const Applied applied = apply_record(*out.engine, r, effects);
    if (applied.diverged) ++out.diverged;
    if (applied.settings) out.settings_recorded = true;
    ++out.replayed;
    out.last_seq = r.seq;
  });
  if (!out.engine) out.engine = std::make_unique<rota::Engine>(settings, origin);
  out.last_seq = std::max({out.last_seq, out.snapshot_seq, journal.last_seq()});
  return out;
}

Applied apply_record(rota::Engine& engine, const Record& r, rota::Effects& effects) {
  Applied out;
  const auto where = [&] { return "record " + std::to_string(r.seq); };
  switch (r.type) {
    case RecordType::settings:
      if (auto error =
              engine.reconfigure(read_settings(r.payload, "journal " + where()), r.time, effects)) {
        throw JournalError("journal " + where() +
                           ": the recorded settings were refused: " + error->message);
      }
      out.settings = true;
      break;
    case RecordType::outbox: {
      // Who was told what: part of the alert (its `notified` list).
      auto notice = alerts::decode_notice(r.payload);
      if (!notice) throw JournalError(where() + ": " + notice.error().message);
      if (const auto a = engine.find_alert(notice->alert)) {
        engine.note_notified(*a, alerts::notified(*notice));
      }
      break;
    }
    case RecordType::delivery:
      // How a delivery went: the audit trail, read by read_outbox(); not engine state.
      break;
    case RecordType::tick:
      engine.advance(r.time, effects);
      break;
    case RecordType::command:
    case RecordType::location: {
      auto command = rota::decode(r.payload, r.version);
      if (!command) throw JournalError(where() + ": " + command.error().message);
      out.diverged = engine.apply(*command, r.time, effects).status == rota::Status::rejected;
      break;
    }
    default:
      throw JournalError(where() + " has type " + std::to_string(unsigned(r.type)) +
                         ", which this visitd does not know: is it older than the one that "
                         "wrote it?");
  }
  return out;
}

std::uint64_t record_tick(Log& journal, TimePoint now, Log::Durable on_durable) {
  return journal.append(RecordType::tick, 1, now, {}, std::move(on_durable));
}

std::uint64_t record(Log& journal, const rota::Command& command, TimePoint now,
                     Log::Durable on_durable) {
  // One buffer per thread: the per-event path allocates nothing once warm.
  thread_local std::string payload;
  payload.clear();
  rota::encode(command, payload);
  const auto type = rota::is_location(command) ? RecordType::location : RecordType::command;
  return journal.append(type, rota::kCommandCodecVersion, now, payload, std::move(on_durable));
}

std::uint64_t record_settings(Log& journal, const rota::Engine& engine, TimePoint now,
                              Log::Durable on_durable) {
  return journal.append(RecordType::settings, 1, now, config::describe_tracking(engine.settings()),
                        std::move(on_durable));
}

std::uint64_t snapshot(Log& journal, const rota::Engine& engine) {
  const std::uint64_t seq = journal.last_seq();
  journal.flush();
  if (journal.failed() || journal.durable_seq() < seq) return 0;
  journal.write_snapshot(seq, snapshot_bytes(engine));
  return seq;
}

std::string snapshot_bytes(const rota::Engine& engine) {
  const std::string settings = config::describe_tracking(engine.settings());
  std::string out(kSettingsPrefix);
  for (int i = 0; i < 8; ++i) out += static_cast<char>((settings.size() >> (8 * i)) & 0xff);
  out += settings;
  out += engine.snapshot();
  return out;
}

}  // namespace visitd::store

namespace visitd::store {

std::uint64_t record_notice(Log& journal, const alerts::Notice& notice, TimePoint now,
                            Log::Durable on_durable) {
  return journal.append(RecordType::outbox, 1, now, alerts::encode(notice), std::move(on_durable));
}

std::uint64_t record_delivery(Log& journal, const alerts::DeliveryRecord& delivery, TimePoint now,
                              Log::Durable on_durable) {
  return journal.append(RecordType::delivery, 1, now, alerts::encode(delivery),
                        std::move(on_durable));
}

std::vector<alerts::Notice> read_outbox(const Log& journal,
                                        const std::function<void(const alerts::Notice&)>& decided) {
  std::map<std::uint64_t, alerts::Notice> owed;  // by seq: the order they were decided
  std::unordered_map<std::string, std::uint64_t> owed_ids;
  journal.replay(1, [&](const Record& r) {
    if (r.type == RecordType::outbox) {
      auto notice = alerts::decode_notice(r.payload);
      if (!notice) {
        throw JournalError("record " + std::to_string(r.seq) + ": " + notice.error().message);
      }
      decided(*notice);
      owed_ids[notice->id()] = r.seq;
      owed.emplace(r.seq, std::move(*notice));
    } else if (r.type == RecordType::delivery) {
      auto delivery = alerts::decode_delivery(r.payload);
      if (!delivery) {
        throw JournalError("record " + std::to_string(r.seq) + ": " + delivery.error().message);
      }
      if (delivery->result == alerts::DeliveryResult::failed) return;
      for (const auto& id : delivery->notices) {
        if (const auto it = owed_ids.find(id); it != owed_ids.end()) {
          owed.erase(it->second);
          owed_ids.erase(it);
        }
      }
    }
  });
  std::vector<alerts::Notice> out;
  out.reserve(owed.size());
  for (auto& [seq, notice] : owed) out.push_back(std::move(notice));
  return out;
}

}  // namespace visitd::store
