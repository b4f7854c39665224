#pragma once
// A hierarchical timing wheel for the engine's deadlines: hundreds of thousands pending,
// most cancelled before they fire (a check-in cancels "late"). Insert and cancel are O(1);
// popping a due deadline is O(levels) plus an occasional cascade, independent of how many
// are pending. Deadlines pop in (time, insertion order) order, each exactly once.
//
// Not thread-safe: owned by the engine, which runs on one strand.

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "visitd/core/time.hpp"

namespace visitd::rota {

class DeadlineWheel {
 public:
  /// Identifies a scheduled deadline; stale handles (fired or cancelled) are harmless.
  struct Handle {
    std::uint32_t slot = kNone;
    std::uint32_t generation = 0;
    bool valid() const { return slot != kNone; }
  };

  struct Due {
    TimePoint at;
    std::uint64_t payload;
  };

  /// `origin` is the earliest time the wheel will be asked about.
  explicit DeadlineWheel(TimePoint origin = TimePoint{}) : now_(ticks(origin)) {}

  /// Schedules `payload` at `at`. A time at or before the wheel's current time is due at
  /// the next pop.
  Handle schedule(TimePoint at, std::uint64_t payload) {
    const std::uint32_t n = allocate();
    Node& node = nodes_[n];
    node.at = ticks(at);
    node.payload = payload;
    insert(n);
    ++size_;
    return Handle{n, node.generation};
  }

  /// Cancels a pending deadline; returns false when it already fired or was cancelled.
  bool cancel(Handle h) {
    if (!pending(h)) return false;
    unlink(h.slot);
    release(h.slot);
    --size_;
    return true;
  }

  bool pending(Handle h) const {
    return h.slot < nodes_.size() && nodes_[h.slot].generation == h.generation &&
           nodes_[h.slot].level != kFree;
  }

  /// When the next pending deadline falls due: exact while it is within about 4 s (levels
  /// 0-2, whose slots hold few entries); further out it is the start of the slot holding it,
  /// never later than the deadline, so a timer set to it may wake once or twice with nothing
  /// due on the way. nullopt when nothing is pending. O(levels) plus one short slot walk.
  std::optional<TimePoint> next_deadline() const {
    for (int level = 0; level < kLevels; ++level) {
      const std::uint64_t mask = occupied_[level] & above(digit(now_, level), level == 0);
      if (mask == 0) continue;
      const int s = std::countr_zero(mask);
      if (level == 0) {
        return TimePoint(Duration(s == digit(now_, 0) ? now_ : with_digit(now_, 0, s)));
      }
      if (level > kExactLevels) return TimePoint(Duration(with_digit(now_, level, s)));
      std::int64_t earliest = std::numeric_limits<std::int64_t>::max();
      for (std::uint32_t n = heads_[level][s].first; n != kNone; n = nodes_[n].next) {
        earliest = std::min(earliest, nodes_[n].at);
      }
      return TimePoint(Duration(earliest));
    }
    return std::nullopt;
  }

  /// The wheel's current time: the latest time popped to.
  TimePoint now() const { return TimePoint(Duration(now_)); }

  /// Pops the earliest deadline due at or before `now`, advancing the wheel's time. Returns
  /// nullopt when nothing is due; the wheel's time is then `now`.
  std::optional<Due> pop_due(TimePoint now) {
    const std::int64_t target = ticks(now);
    for (;;) {
      int level = 0;
      std::uint64_t mask = 0;
      for (; level < kLevels; ++level) {
        mask = occupied_[level] & above(digit(now_, level), level == 0);
        if (mask != 0) break;
      }
      if (level == kLevels) {
        now_ = std::max(now_, target);
        return std::nullopt;
      }
      const int s = std::countr_zero(mask);
      const std::int64_t slot_start =
          level == 0 && s == digit(now_, 0) ? now_ : with_digit(now_, level, s);
      if (slot_start > target) {
        now_ = std::max(now_, target);
        return std::nullopt;
      }
      now_ = slot_start;
      if (level == 0) {
        const std::uint32_t n = heads_[0][s].first;
        const Due due{TimePoint(Duration(nodes_[n].at)), nodes_[n].payload};
        unlink(n);
        release(n);
        --size_;
        return due;
      }
      cascade(level, s);
    }
  }

  /// Every pending deadline in the order pop_due would return them; scheduling them again
  /// in this order into a fresh wheel reproduces this one's behaviour exactly.
  std::vector<Due> pending_in_order() const {
    std::vector<std::pair<std::int64_t, std::uint64_t>> all;
    all.reserve(size_);
    // Equal times always share one slot, kept in insertion order, so a stable sort by time
    // of the slots' lists yields pop order.
    for (int level = 0; level < kLevels; ++level) {
      for (int s = 0; s < kSlots; ++s) {
        for (std::uint32_t n = heads_[level][s].first; n != kNone; n = nodes_[n].next) {
          all.emplace_back(std::max(nodes_[n].at, now_), n);
        }
      }
    }
    std::stable_sort(all.begin(), all.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Due> out;
    out.reserve(all.size());
    for (const auto& [at, n] : all)
      out.push_back(Due{TimePoint(Duration(nodes_[n].at)), nodes_[n].payload});
    return out;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  /// Bytes held (node pool capacity), for memory reports.
  std::size_t memory_bytes() const { return nodes_.capacity() * sizeof(Node) + sizeof(*this); }

 private:
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  static constexpr int kBits = 6;  // 64 slots per level: one 64-bit occupancy word
  static constexpr int kSlots = 1 << kBits;
  static constexpr int kLevels = 8;  // 48 bits of milliseconds: ~8900 years
  static constexpr std::uint8_t kFree = 0xff;
  static constexpr int kExactLevels = 2;  // next_deadline() walks slots up to this level
  static constexpr std::int64_t kMaxTick = (std::int64_t{1} << (kBits * kLevels)) - 1;

  struct Node {
    std::int64_t at = 0;
    std::uint64_t payload = 0;
    std::uint32_t prev = kNone;
    std::uint32_t next = kNone;
    std::uint32_t generation = 0;
    std::uint8_t level = kFree;
    std::uint8_t slot = 0;
  };
  struct List {
    std::uint32_t first = kNone;
    std::uint32_t last = kNone;
  };

  static std::int64_t ticks(TimePoint t) {
    return std::clamp<std::int64_t>(t.time_since_epoch().count(), 0, kMaxTick);
  }
  static int digit(std::int64_t t, int level) { return int((t >> (kBits * level)) & (kSlots - 1)); }
  /// Slots at or after d (level 0, where "now" itself may be due) or strictly after d.
  static std::uint64_t above(int d, bool inclusive) {
    const int from = inclusive ? d : d + 1;
    return from >= kSlots ? 0 : ~std::uint64_t{0} << from;
  }
  /// The first tick of slot s at `level` in the block that contains t.
  static std::int64_t with_digit(std::int64_t t, int level, int s) {
    const int shift = kBits * (level + 1);
    const std::int64_t block = shift >= 63 ? 0 : (t >> shift) << shift;
    return block | (std::int64_t(s) << (kBits * level));
  }

  std::uint32_t allocate() {
    if (free_ != kNone) {
      const std::uint32_t n = free_;
      free_ = nodes_[n].next;
      return n;
    }
    nodes_.emplace_back();
    return std::uint32_t(nodes_.size() - 1);
  }
  void release(std::uint32_t n) {
    Node& node = nodes_[n];
    node.level = kFree;
    ++node.generation;
    node.next = free_;
    free_ = n;
  }

  /// Puts node n on the lowest level whose block (one level up) also holds now_.
  void insert(std::uint32_t n) {
    Node& node = nodes_[n];
    const std::int64_t at = std::max(node.at, now_);
    int level = 0;
    while (level < kLevels - 1 &&
           (at >> (kBits * (level + 1))) != (now_ >> (kBits * (level + 1)))) {
      ++level;
    }
    const int s = digit(at, level);
    node.level = std::uint8_t(level);
    node.slot = std::uint8_t(s);
    List& list = heads_[level][s];
    node.prev = list.last;
    node.next = kNone;
    if (list.last != kNone) {
      nodes_[list.last].next = n;
    } else {
      list.first = n;
    }
    list.last = n;
    occupied_[level] |= std::uint64_t{1} << s;
  }

  void unlink(std::uint32_t n) {
    Node& node = nodes_[n];
    List& list = heads_[node.level][node.slot];
    if (node.prev != kNone) {
      nodes_[node.prev].next = node.next;
    } else {
      list.first = node.next;
    }
    if (node.next != kNone) {
      nodes_[node.next].prev = node.prev;
    } else {
      list.last = node.prev;
    }
    if (list.first == kNone) occupied_[node.level] &= ~(std::uint64_t{1} << node.slot);
  }

  /// now_ has entered slot s of `level`: spread its nodes over the lower levels, in order,
  /// so that insertion order is kept among equal times.
  void cascade(int level, int s) {
    List list = heads_[level][s];
    heads_[level][s] = List{};
    occupied_[level] &= ~(std::uint64_t{1} << s);
    for (std::uint32_t n = list.first; n != kNone;) {
      const std::uint32_t next = nodes_[n].next;
      insert(n);
      n = next;
    }
  }

  std::int64_t now_;
  std::vector<Node> nodes_;
  std::uint32_t free_ = kNone;
  std::size_t size_ = 0;
  std::array<std::uint64_t, kLevels> occupied_{};
  std::array<std::array<List, kSlots>, kLevels> heads_{};
};

}  // namespace visitd::rota
