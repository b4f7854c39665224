#pragma once
// The decided-event table: 128-bit event keys to a small decision, in one flat array with
// linear probing. Carer events are 70% location pings that are remembered for days and then
// forgotten, so inserts and erases must not allocate per entry (a node-based map did, and
// was the engine's largest cost per event).
//
// Not thread-safe: owned by the engine.

#include <bit>
#include <cstdint>
#include <vector>

namespace visitd::rota {

/// `Key` is an aggregate {std::uint64_t hi, lo} of well-mixed hash bits, with ==.
template <class Key, class Value>
class EventTable {
 public:
  /// The value stored under `key`, or nullptr.
  const Value* find(Key key) const {
    if (slots_.empty()) return nullptr;
    key = normal(key);
    for (std::size_t i = home(key);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (empty(s)) return nullptr;
    }
  }

  /// Inserts when absent; returns false (and changes nothing) when present.
  bool insert(Key key, const Value& value) {
    if ((size_ + 1) * 8 > slots_.size() * 7) grow();  // keep the load under 7/8
    key = normal(key);
    for (std::size_t i = home(key);; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == key) return false;
      if (empty(s)) {
        s.key = key;
        s.value = value;
        ++size_;
        return true;
      }
    }
  }

  /// Removes `key` if present, closing the gap by shifting later entries back (no
  /// tombstones, so lookups stay short however many pings come and go).
  bool erase(Key key) {
    if (slots_.empty()) return false;
    key = normal(key);
    std::size_t i = home(key);
    for (;; i = (i + 1) & mask_) {
      if (slots_[i].key == key) break;
      if (empty(slots_[i])) return false;
    }
    for (std::size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      if (empty(slots_[j])) break;
      const std::size_t h = home(slots_[j].key);
      // Move j back into the hole at i unless its home lies cyclically in (i, j].
      if (((j - h) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    --size_;
    return true;
  }

  std::size_t size() const { return size_; }
  std::size_t memory_bytes() const { return slots_.capacity() * sizeof(Slot); }

  /// Visits every entry (in no particular order).
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (!empty(s)) f(s.key, s.value);
    }
  }

  void reserve(std::size_t n) {
    while (n * 8 > slots_.size() * 7) grow();
  }

  /// The slot count an empty table reserve(n)s: to fill a table with n entries in
  /// ascending home_slot(key, capacity_for(n)) order is to write it front to back.
  static std::size_t capacity_for(std::size_t n) {
    std::size_t capacity = 1024;
    while (n * 8 > capacity * 7) capacity *= 2;
    return capacity;
  }
  /// Where `key` starts its probe in a table of `capacity` slots.
  static std::size_t home_slot(Key key, std::size_t capacity) {
    const Key k = normal(key);
    return std::size_t(k.lo ^ (k.hi >> 7)) & (capacity - 1);
  }

 private:
  struct Slot {
    Key key;
    Value value{};
  };
  // {0,0} marks an empty slot; a real key that is all zeros is stored as {0,1} (keys are
  // hashes: the collision this adds is as unlikely as any other 128-bit one).
  static Key normal(Key k) { return k == Key{} ? Key{0, 1} : k; }
  static bool empty(const Slot& s) { return s.key == Key{}; }
  std::size_t home(const Key& k) const { return std::size_t(k.lo ^ (k.hi >> 7)) & mask_; }
  // grow() doubles from 1024 as capacity_for() does.

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    const std::size_t capacity = old.empty() ? 1024 : old.size() * 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    size_ = 0;
    for (const Slot& s : old) {
      if (!empty(s)) insert(s.key, s.value);
    }
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace visitd::rota
