// Parsing JSON and msgpack with a nesting-depth limit. Both of nlohmann's
// readers and `dump()` recurse once per nesting level, so unbounded input
// could exhaust the stack of whichever thread parses it. One SAX handler
// counts the depth for both formats and stops the reader at the limit,
// before it descends any further.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace switchyard::json_limits {

/// Whether `str` is valid UTF-8.
bool valid_utf8(std::string_view str);

/// Why a parse failed.
enum class failure : uint8_t {
  /// The value parsed.
  none,
  /// Not valid JSON (or msgpack), or trailing bytes after the value.
  malformed,
  /// More arrays and objects nested inside each other than the limit.
  too_deep,
  /// A msgpack string or map key that is not valid UTF-8 (JSON's reader
  /// refuses those itself, as `malformed`).
  not_utf8,
};

/// Outcome of a bounded parse.
struct result {
  /// The parsed value; discarded (`is_discarded()`) on failure.
  nlohmann::json value;
  failure error = failure::none;
};

/// Parses one JSON value nesting at most `max_depth` arrays and objects
/// (`[]` and `{}` are depth 1, `[[]]` depth 2, a scalar depth 0).
result parse_json(std::string_view text, size_t max_depth);

/// Parses one msgpack value with the same depth rule as `parse_json`. Its
/// strings must be UTF-8, as JSON's are: two distinct invalid keys would
/// otherwise print as the same key once converted to JSON.
result parse_msgpack(std::string_view bytes, size_t max_depth);

/// "nesting deeper than N", for error messages.
std::string too_deep_message(size_t max_depth);

/// The JSON text of `object[key]`, or `null` when the object has no such
/// field: how an event's `data` travels inside the node.
std::string field_text(const nlohmann::json& object, const char* key);

} // namespace switchyard::json_limits
