#pragma once
// The decided-event table: 128-bit event keys to a small decision, in one flat array with
// linear probing. Carer events are 70% location pings that are remembered for days and then
// forgotten, so inserts and erases must not allocate per entry (a node-based map did, and
// was the engine's largest cost per event).
//
// Growing never stops the engine for a rehash: when the table must double, the old array is
// kept beside the new one and moved over a few slots per insert or erase (a doubling at
// 900,000 entries took 62 ms at once, and 140 ms at 1.8 million: every ack waited). Lookups
// meanwhile look in both. The new array comes from calloc, whose fresh pages the kernel
// hands out already zeroed, so allocating it does not touch them either.
//
// Not thread-safe: owned by the engine.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace visitd::rota {

/// `Key` is an aggregate {std::uint64_t hi, lo} of well-mixed hash bits, with ==; `Value` is
/// trivially copyable, and all-zero bytes are a valid (unused) value.
template <class Key, class Value>
class EventTable {
 public:
  /// The value stored under `key`, or nullptr.
  const Value* find(Key key) const {
    key = normal(key);
    if (const Slot* s = find_in(slots_, key)) return &s->value;
    if (const Slot* s = find_in(old_, key)) return &s->value;
    return nullptr;
  }

  /// Inserts when absent; returns false (and changes nothing) when present.
  bool insert(Key key, const Value& value) {
    key = normal(key);
    migrate_some();
    if (find_in(old_, key) != nullptr) return false;
    if ((size() + 1) * 8 > slots_.size * 7) {  // keep the load under 7/8
      start_growth();
      if (find_in(old_, key) != nullptr) return false;
    }
    for (std::size_t i = home(key, slots_.size);; i = (i + 1) & (slots_.size - 1)) {
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

  /// Removes `key` if present. In the current array the gap is closed by shifting later
  /// entries back (no tombstones, so lookups stay short however many pings come and go); in
  /// the array being moved out of, the slot is marked gone (it is read only until then).
  bool erase(Key key) {
    key = normal(key);
    migrate_some();
    if (Slot* s = const_cast<Slot*>(find_in(old_, key))) {
      s->key = kGone;
      --old_size_;
      return true;
    }
    if (slots_.size == 0) return false;
    const std::size_t mask = slots_.size - 1;
    std::size_t i = home(key, slots_.size);
    for (;; i = (i + 1) & mask) {
      if (slots_[i].key == key) break;
      if (empty(slots_[i])) return false;
    }
    for (std::size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
      if (empty(slots_[j])) break;
      const std::size_t h = home(slots_[j].key, slots_.size);
      // Move j back into the hole at i unless its home lies cyclically in (i, j].
      if (((j - h) & mask) >= ((j - i) & mask)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    --size_;
    return true;
  }

  std::size_t size() const { return size_ + old_size_; }
  std::size_t memory_bytes() const { return (slots_.size + old_.size) * sizeof(Slot); }

  /// Visits every entry (in no particular order).
  template <class F>
  void for_each(F&& f) const {
    for (const SlotArray* a : {&old_, &slots_}) {
      for (std::size_t i = 0; i < a->size; ++i) {
        const Slot& s = (*a)[i];
        if (!empty(s) && !(s.key == kGone)) f(s.key, s.value);
      }
    }
  }

  /// Makes room for `n` entries at once (a restore filling an empty table).
  void reserve(std::size_t n) {
    finish_growth();
    std::size_t capacity = slots_.size == 0 ? 1024 : slots_.size;
    while (n * 8 > capacity * 7) capacity *= 2;
    if (capacity == slots_.size) return;
    SlotArray old = std::move(slots_);
    slots_ = SlotArray(capacity);
    size_ = 0;
    for (std::size_t i = 0; i < old.size; ++i) {
      if (!empty(old[i])) place(old[i]);
    }
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
    return home(normal(key), capacity);
  }

 private:
  struct Slot {
    Key key;
    Value value{};
  };
  static_assert(std::is_trivially_copyable_v<Slot>, "slots are copied and zeroed as bytes");

  /// A zeroed array of slots from calloc: all-zero bytes are an empty slot.
  struct SlotArray {
    Slot* data = nullptr;
    std::size_t size = 0;

    SlotArray() = default;
    explicit SlotArray(std::size_t n)
        : data(static_cast<Slot*>(std::calloc(n, sizeof(Slot)))), size(n) {
      if (data == nullptr) throw std::bad_alloc();
    }
    SlotArray(const SlotArray& other) : size(other.size) {
      if (size == 0) return;
      data = static_cast<Slot*>(std::malloc(size * sizeof(Slot)));
      if (data == nullptr) throw std::bad_alloc();
      std::memcpy(static_cast<void*>(data), other.data, size * sizeof(Slot));
    }
    SlotArray(SlotArray&& other) noexcept
        : data(std::exchange(other.data, nullptr)), size(std::exchange(other.size, 0)) {}
    SlotArray& operator=(SlotArray other) noexcept {
      std::swap(data, other.data);
      std::swap(size, other.size);
      return *this;
    }
    ~SlotArray() { std::free(data); }

    Slot& operator[](std::size_t i) { return data[i]; }
    const Slot& operator[](std::size_t i) const { return data[i]; }
  };

  /// Slots of the old array moved per insert or erase: it is empty well before the new one
  /// is 7/8 full (the new one has twice its slots and starts under half full).
  static constexpr std::size_t kMovesPerStep = 64;

  // {0,0} marks an empty slot and kGone one erased from the old array; a real key equal to
  // either is stored as another (keys are hashes: the collision this adds is as unlikely as
  // any other 128-bit one).
  static constexpr Key kGone{~std::uint64_t{0}, ~std::uint64_t{0}};
  static Key normal(Key k) {
    if (k == Key{}) return Key{0, 1};
    if (k == kGone) return Key{~std::uint64_t{0}, ~std::uint64_t{0} - 1};
    return k;
  }
  static bool empty(const Slot& s) { return s.key == Key{}; }
  static std::size_t home(const Key& k, std::size_t capacity) {
    return std::size_t(k.lo ^ (k.hi >> 7)) & (capacity - 1);
  }

  static const Slot* find_in(const SlotArray& a, const Key& key) {
    if (a.size == 0) return nullptr;
    for (std::size_t i = home(key, a.size);; i = (i + 1) & (a.size - 1)) {
      const Slot& s = a[i];
      if (s.key == key) return &s;
      if (empty(s)) return nullptr;
    }
  }

  /// Puts an entry known to be absent into the current array.
  void place(const Slot& entry) {
    for (std::size_t i = home(entry.key, slots_.size);; i = (i + 1) & (slots_.size - 1)) {
      if (empty(slots_[i])) {
        slots_[i] = entry;
        ++size_;
        return;
      }
    }
  }

  void start_growth() {
    finish_growth();
    old_ = std::move(slots_);
    old_size_ = size_;
    moved_ = 0;
    slots_ = SlotArray(old_.size == 0 ? 1024 : old_.size * 2);
    size_ = 0;
    if (old_size_ == 0) old_ = SlotArray();
  }

  void migrate_some() {
    if (old_.size == 0) return;
    const std::size_t end = std::min(old_.size, moved_ + kMovesPerStep);
    for (; moved_ < end; ++moved_) {
      Slot& s = old_[moved_];
      if (!empty(s) && !(s.key == kGone)) {
        place(s);
        --old_size_;
        s.key = kGone;  // moved: a lookup in old_ must pass it by, not find a stale copy
      }
    }
    if (moved_ == old_.size) old_ = SlotArray();  // every entry moved: old_size_ is 0
  }

  void finish_growth() {
    while (old_.size != 0) migrate_some();
  }

  SlotArray slots_;
  std::size_t size_ = 0;      ///< entries in slots_
  SlotArray old_;             ///< the array being moved out of, while growing
  std::size_t old_size_ = 0;  ///< entries still in old_
  std::size_t moved_ = 0;     ///< old_'s slots before this have been moved
};

}  // namespace visitd::rota
