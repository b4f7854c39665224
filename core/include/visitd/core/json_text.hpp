#pragma once
// Writing JSON text by hand, for the few places that build it without a JSON library (the
// protocol's messages, log lines): strings escaped by the JSON rules, always valid UTF-8.
//
// Thread-safety: pure functions.

#include <cstddef>
#include <string>
#include <string_view>

namespace visitd {

/// The length of the well-formed UTF-8 sequence at the start of `s` (1 to 4), or 0 when the
/// bytes there are not one (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF).
/// `s` must not be empty.
std::size_t utf8_sequence(std::string_view s);

/// Appends `s` as a JSON string, quotes included; bytes that are not UTF-8 become U+FFFD,
/// so the result is always valid JSON and valid UTF-8.
void append_json_string(std::string& out, std::string_view s);

}  // namespace visitd
