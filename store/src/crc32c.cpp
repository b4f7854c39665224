#include "visitd/store/crc32c.hpp"

#include <array>
#include <bit>
#include <cstring>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define VISITD_CRC32C_X86 1
#endif

namespace visitd::store {
namespace {

constexpr std::uint32_t kPolynomial = 0x82F63B78;  // Castagnoli, bit-reversed

using Tables = std::array<std::array<std::uint32_t, 256>, 8>;

// tables[k][b] is the CRC of byte b followed by k zero bytes, so that eight bytes can be
// folded in with eight independent lookups (slicing-by-8).
constexpr Tables make_tables() {
  Tables t{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t crc = b;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
    t[0][b] = crc;
  }
  for (std::size_t k = 1; k < 8; ++k) {
    for (std::size_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
  }
  return t;
}

constexpr Tables kTables = make_tables();

inline std::uint32_t load_le32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

// `crc` here is the running (inverted) register, not a finished CRC.
std::uint32_t update_portable(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  while (n >= 8) {
    const std::uint32_t lo = crc ^ load_le32(p);
    const std::uint32_t hi = load_le32(p + 4);
    crc = kTables[7][lo & 0xff] ^ kTables[6][(lo >> 8) & 0xff] ^ kTables[5][(lo >> 16) & 0xff] ^
          kTables[4][lo >> 24] ^ kTables[3][hi & 0xff] ^ kTables[2][(hi >> 8) & 0xff] ^
          kTables[1][(hi >> 16) & 0xff] ^ kTables[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = kTables[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#ifdef VISITD_CRC32C_X86
__attribute__((target("sse4.2"))) std::uint32_t update_sse42(std::uint32_t crc,
                                                             const unsigned char* p,
                                                             std::size_t n) {
#if defined(__x86_64__)
  std::uint64_t c = crc;
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, sizeof word);
    c = _mm_crc32_u64(c, word);
    p += 8;
    n -= 8;
  }
  crc = static_cast<std::uint32_t>(c);
#endif
  while (n >= 4) {
    std::uint32_t word;
    std::memcpy(&word, p, sizeof word);
    crc = _mm_crc32_u32(crc, word);
    p += 4;
    n -= 4;
  }
  while (n-- > 0) crc = _mm_crc32_u8(crc, *p++);
  return crc;
}
#endif

using Update = std::uint32_t (*)(std::uint32_t, const unsigned char*, std::size_t);

Update pick_update() {
#ifdef VISITD_CRC32C_X86
#ifdef __SSE4_2__
  return update_sse42;
#else
  __builtin_cpu_init();  // may run before the CPU model's own constructor
  if (__builtin_cpu_supports("sse4.2")) return update_sse42;
#endif
#endif
  return update_portable;
}

// A function-local static: safe to call from other translation units' static initializers.
Update update() {
  static const Update chosen = pick_update();
  return chosen;
}

}  // namespace

std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc) noexcept {
  return ~update()(~crc, static_cast<const unsigned char*>(data), size);
}

namespace detail {

std::uint32_t crc32c_portable(const void* data, std::size_t size, std::uint32_t crc) noexcept {
  return ~update_portable(~crc, static_cast<const unsigned char*>(data), size);
}

bool crc32c_hardware() noexcept { return update() != update_portable; }

}  // namespace detail
}  // namespace visitd::store
