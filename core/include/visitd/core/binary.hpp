#pragma once
// Little-endian binary encoding for journal payloads and snapshots: a Writer that appends to
// a string and a bounds-checked Reader that never reads past its input and reports the
// first fault instead of throwing. Integers are LEB128 varints (zigzag for signed).

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "visitd/core/time.hpp"

namespace visitd {

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  void u8(std::uint8_t v) { out_.push_back(char(v)); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(char((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(char(v));
  }
  void svarint(std::int64_t v) { varint((std::uint64_t(v) << 1) ^ std::uint64_t(v >> 63)); }
  void f64(double v) {
    const auto bits = std::bit_cast<std::uint64_t>(v);
    for (int i = 0; i < 8; ++i) out_.push_back(char((bits >> (8 * i)) & 0xff));
  }
  void str(std::string_view s) {
    varint(s.size());
    out_.append(s);
  }
  void time(TimePoint t) { svarint(t.time_since_epoch().count()); }
  void duration(Duration d) { svarint(d.count()); }

 private:
  std::string& out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  /// False once any read ran past the end or met a malformed value; reads then return 0.
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == in_.size(); }
  std::size_t remaining() const { return in_.size() - pos_; }
  /// Marks the input bad (e.g. an enum value out of range).
  void fail() { ok_ = false; }

  std::uint8_t u8() {
    if (!ok_ || pos_ >= in_.size()) return fail_zero();
    return std::uint8_t(in_[pos_++]);
  }
  bool boolean() {
    const auto v = u8();
    if (v > 1) fail();
    return v == 1;
  }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!ok_ || pos_ >= in_.size()) return fail_zero();
      const auto b = std::uint8_t(in_[pos_++]);
      v |= std::uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    return fail_zero();
  }
  std::int64_t svarint() {
    const auto v = varint();
    return std::int64_t(v >> 1) ^ -std::int64_t(v & 1);
  }
  double f64() {
    if (!ok_ || remaining() < 8) return double(fail_zero());
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits |= std::uint64_t(std::uint8_t(in_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return std::bit_cast<double>(bits);
  }
  std::string str() {
    const auto n = varint();
    if (!ok_ || n > remaining()) return fail_zero(), std::string();
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  TimePoint time() { return TimePoint(Duration(svarint())); }
  Duration duration() { return Duration(svarint()); }
  /// A count of items that each take at least `min_bytes`: refused when the input cannot
  /// hold that many, so garbage never makes us allocate.
  std::size_t count(std::size_t min_bytes = 1) {
    const auto n = varint();
    if (!ok_ || n > remaining() / (min_bytes == 0 ? 1 : min_bytes)) return fail_zero();
    return std::size_t(n);
  }

 private:
  std::uint8_t fail_zero() {
    ok_ = false;
    return 0;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace visitd
