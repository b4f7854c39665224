#include "visitd/alerts/dispatcher.hpp"

#include <algorithm>
#include <cstdio>

namespace visitd::alerts {

namespace {

/// FNV-1a, 64 bits: a stable digest of a group's notice ids for its idempotency key.
std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (const char c : s) {
    h ^= std::uint8_t(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

bool retryable(int status) { return status == 0 || status == 429 || status >= 500; }

}  // namespace

Dispatcher::Dispatcher(const config::Settings& settings, std::uint64_t seed) : random_(seed) {
  reconfigure(settings);
}

void Dispatcher::reconfigure(const config::Settings& settings) {
  receivers_ = settings.receivers;
  policy_ = settings.escalation;
}

const config::Receiver* Dispatcher::find_receiver(std::string_view name) const {
  const auto it = std::find_if(receivers_.begin(), receivers_.end(),
                               [&](const config::Receiver& r) { return r.name == name; });
  return it == receivers_.end() ? nullptr : &*it;
}

void Dispatcher::add(Notice notice, TimePoint now) {
  if (notice.page() && policy_.group_wait.count() > 0) {
    const GroupKey key = group_of(notice);
    if (const auto open = open_groups_.find(key); open != open_groups_.end()) {
      batches_[open->second].notices.push_back(std::move(notice));
      return;
    }
    const std::uint64_t id = next_id_++;
    Batch& b = batches_[id];
    b.receiver = notice.receiver;
    b.due = now + policy_.group_wait;
    b.first_queued = now;
    b.open = true;
    b.notices.push_back(std::move(notice));
    open_groups_.emplace(key, id);
    return;
  }
  Batch& b = batches_[next_id_++];
  b.receiver = notice.receiver;
  b.due = now;
  b.first_queued = now;
  b.notices.push_back(std::move(notice));
}

std::optional<TimePoint> Dispatcher::next_due() const {
  std::optional<TimePoint> next;
  for (const auto& [id, b] : batches_) {
    if (!b.in_flight && (!next || b.due < *next)) next = b.due;
  }
  return next;
}

std::vector<Delivery> Dispatcher::take(TimePoint now, std::size_t limit) {
  std::vector<Delivery> out;
  for (auto& [id, b] : batches_) {
    if (out.size() >= limit) break;
    if (b.in_flight || b.due > now) continue;
    if (b.open) {
      open_groups_.erase(group_of(b.notices.front()));
      b.open = false;
    }
    b.in_flight = true;
    ++b.attempts;
    ++in_flight_;
    Delivery d;
    d.id = id;
    if (const auto* r = find_receiver(b.receiver)) {
      d.receiver = *r;
    } else {
      d.receiver.name = b.receiver;  // type left empty: the caller refuses it
    }
    d.notices = b.notices;
    d.attempt = b.attempts;
    d.idempotency_key = idempotency_key(b);
    d.first_queued = b.first_queued;
    out.push_back(std::move(d));
  }
  return out;
}

std::string Dispatcher::idempotency_key(const Batch& b) const {
  if (b.notices.size() == 1) return b.notices.front().id();
  std::vector<std::string> ids;
  ids.reserve(b.notices.size());
  for (const auto& n : b.notices) ids.push_back(n.id());
  std::sort(ids.begin(), ids.end());
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& id : ids) h = fnv1a(id + '\n', h);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return "group/" + std::string(hex) + "/" + b.receiver;
}

Duration Dispatcher::backoff(unsigned attempt) {
  Duration delay = policy_.retry_initial;
  for (unsigned i = 1; i < attempt && delay < policy_.retry_max; ++i) delay *= 2;
  delay = std::min(delay, policy_.retry_max);
  // "Equal jitter": at least half the delay, so retries still back off.
  std::uniform_int_distribution<Duration::rep> jitter(delay.count() / 2, delay.count());
  return Duration(jitter(random_));
}

Settled Dispatcher::finish(std::uint64_t id, const Attempt& attempt, TimePoint now) {
  Settled out;
  const auto it = batches_.find(id);
  if (it == batches_.end() || !it->second.in_flight) return out;
  Batch& b = it->second;
  b.in_flight = false;
  --in_flight_;

  const bool configured = find_receiver(b.receiver) != nullptr;
  DeliveryRecord& rec = out.record;
  rec.receiver = b.receiver;
  for (const auto& n : b.notices) rec.notices.push_back(n.id());
  rec.status = attempt.status;
  rec.attempt = b.attempts;
  rec.detail = configured ? attempt.detail : "no receiver named " + b.receiver + " any more";
  if (configured && attempt.status >= 200 && attempt.status < 300) {
    rec.result = DeliveryResult::delivered;
  } else if (configured && retryable(attempt.status)) {
    rec.result = DeliveryResult::failed;
  } else {
    rec.result = DeliveryResult::refused;
  }

  if (rec.result != DeliveryResult::delivered && !b.fell_back &&
      (rec.result == DeliveryResult::refused || b.attempts >= policy_.fallback_after)) {
    const config::Receiver* r = find_receiver(b.receiver);
    if (r != nullptr && !r->fallback.empty()) {
      b.fell_back = true;
      for (const auto& n : b.notices) {
        Notice copy = n;
        copy.receiver = r->fallback;
        out.fallback.push_back(std::move(copy));
      }
    }
  }

  if (rec.result == DeliveryResult::failed) {
    Duration wait = backoff(b.attempts);
    if (attempt.retry_after) wait = std::max(wait, *attempt.retry_after);
    b.due = now + wait;
  } else {
    out.done = true;
    batches_.erase(it);
  }
  return out;
}

}  // namespace visitd::alerts
