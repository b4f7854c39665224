#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of iSCSI, ext4 and
// SCTP, used for every journal record and snapshot. Uses the SSE4.2 crc32 instruction when
// the CPU has it (checked once at run time), otherwise a portable slicing-by-8 table.
//
// Thread-safety: pure functions.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace visitd::store {

/// The CRC-32C of `size` bytes at `data`, continuing from `crc` (the result of an earlier
/// call, or 0 to start): crc32c(b, crc32c(a)) == crc32c(a followed by b).
/// crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

inline std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0) noexcept {
  return crc32c(bytes.data(), bytes.size(), crc);
}

namespace detail {
/// The table-driven path, always available; exposed so that tests can compare both paths.
std::uint32_t crc32c_portable(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;
/// True when crc32c() uses the CPU's crc32 instruction.
bool crc32c_hardware() noexcept;
}  // namespace detail

}  // namespace visitd::store
