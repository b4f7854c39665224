#pragma once
// An id as a hash map key, with ids of up to 36 characters held inside the key itself.
//
// Every carer event looks its visit up by id. With std::string keys, an id longer than 15
// characters lives in a heap block of its own, and the map's final comparison of the key
// reads that block: one more cache miss per event on a large rota, 5 to 6% of apply's time
// (perf, engine_bench's 100,000-visit day with ids of 24 characters). Ids up to
// kInline characters (a UUID without dashes, a rostering system's number, "V-B01-...") are
// compared inside the map's slot; longer ones still work, from the heap. Check-in and
// check-out records keep their event ids (UUIDs, 36 characters) the same way: no heap block
// per record.

#include <cstdint>
#include <cstring>
#include <functional>
#include <string_view>
#include <utility>

namespace visitd::rota {

class IdKey {
 public:
  static constexpr std::size_t kInline = 36;

  IdKey() = default;
  explicit IdKey(std::string_view id) : size_(std::uint32_t(id.size())) {
    char* to = bytes_;
    if (!is_small()) {
      to = new char[id.size()];
      set_heap(to);
    }
    if (!id.empty()) std::memcpy(to, id.data(), id.size());
  }
  IdKey(const IdKey& other) : IdKey(other.view()) {}
  IdKey(IdKey&& other) noexcept : size_(other.size_) {
    std::memcpy(bytes_, other.bytes_, sizeof bytes_);  // the characters, or the heap pointer
    other.size_ = 0;
  }
  IdKey& operator=(IdKey other) noexcept {
    std::swap(size_, other.size_);
    char tmp[sizeof bytes_];
    std::memcpy(tmp, bytes_, sizeof bytes_);
    std::memcpy(bytes_, other.bytes_, sizeof bytes_);
    std::memcpy(other.bytes_, tmp, sizeof bytes_);
    return *this;
  }
  ~IdKey() {
    if (!is_small()) delete[] heap();
  }

  std::string_view view() const { return {is_small() ? bytes_ : heap(), size_}; }
  friend bool operator==(const IdKey& a, const IdKey& b) { return a.view() == b.view(); }
  friend bool operator==(const IdKey& a, std::string_view b) { return a.view() == b; }

 private:
  bool is_small() const { return size_ <= kInline; }
  /// A longer id's heap block, its pointer kept in bytes_ (4-byte aligned: read by memcpy).
  char* heap() const {
    char* p = nullptr;
    std::memcpy(&p, bytes_, sizeof p);
    return p;
  }
  void set_heap(char* p) { std::memcpy(bytes_, &p, sizeof p); }

  std::uint32_t size_ = 0;
  char bytes_[kInline] = {};
};
static_assert(sizeof(IdKey) == 40);

/// Hash and equality for maps keyed by IdKey that are searched with a std::string_view.
struct IdKeyHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  std::size_t operator()(const IdKey& k) const { return (*this)(k.view()); }
};
struct IdKeyEqual {
  using is_transparent = void;
  static std::string_view view(std::string_view s) { return s; }
  static std::string_view view(const IdKey& k) { return k.view(); }
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return view(a) == view(b);
  }
};

}  // namespace visitd::rota
