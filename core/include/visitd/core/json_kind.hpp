#pragma once
// How error messages name a JSON value's type ("expected a string, got a number").
// Header-only over Boost.JSON's value type, shared by every module that reads JSON input.

#include <boost/json/value.hpp>
#include <string_view>

namespace visitd {

/// The type of `v` as a person would say it: "null", "a boolean", "a number", "a string",
/// "an array", "an object".
inline std::string_view json_kind(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_:
      return "a number";
    case boost::json::kind::string:
      return "a string";
    case boost::json::kind::array:
      return "an array";
    case boost::json::kind::object:
      return "an object";
  }
  return "a value";
}

}  // namespace visitd
