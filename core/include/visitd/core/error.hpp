#pragma once
// Errors that cross the public interface. ErrorCode maps 1:1 to the protocol's error codes
// (../shared/protocol.md); ConfigError is thrown at start-up with the file and line.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace visitd {

enum class ErrorCode : std::uint8_t {
  bad_json,
  bad_message,
  unknown_type,
  unauthenticated,
  forbidden,
  not_assigned,
  unknown_visit,
  outside_visit_window,
  already_checked_in,
  not_checked_in,
  visit_cancelled,
  off_shift,
  too_old,
  rate_limited,
  internal,
  // Extensions for office commands (protocol.md allows extending):
  unknown_alert,  ///< an alert id that does not exist
  conflict,       ///< the object's state does not allow the command (e.g. cancel a completed visit)
  bad_rota,       ///< a rota import was refused; details list every line at fault
};

/// The protocol's spelling of a code, e.g. "not_assigned".
std::string_view to_string(ErrorCode code);
/// The inverse of to_string; nullopt for an unknown spelling.
std::optional<ErrorCode> error_code_from_string(std::string_view text);

/// A typed, expected failure with a message a person can act on.
struct Error {
  ErrorCode code;
  std::string message;
};

/// A value or an Error. Deliberately small: what the engine and parsers return for
/// expected failures; exceptions are kept for start-up and the impossible.
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

/// A configuration error: which file, which line (0 when unknown), which key, and why.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, std::string key, const std::string& why);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
};

}  // namespace visitd
