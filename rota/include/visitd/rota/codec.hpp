#pragma once
// The journal's payload format for engine commands: a compact, versioned binary encoding.
// A newer visitd reads every older version; decoding garbage yields an Error, never a crash.

#include <cstdint>
#include <string>
#include <string_view>

#include "visitd/core/error.hpp"
#include "visitd/rota/engine.hpp"

namespace visitd::rota {

/// The version encode() writes.
inline constexpr std::uint8_t kCommandCodecVersion = 1;

/// Appends the encoding of `command` to `out`.
void encode(const Command& command, std::string& out);

/// Decodes a payload written by encode() at `version`.
Result<Command> decode(std::string_view payload, std::uint8_t version);

/// True for commands whose records are raw location fixes (kept only for the retention).
inline bool is_location(const Command& command) {
  return std::holds_alternative<LocationPing>(command);
}

}  // namespace visitd::rota
