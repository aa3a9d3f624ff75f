// The event envelope on NATS: a msgpack map (or, with the NATS header
// `Content-Type: application/json`, a JSON object) with `id`, `topic`, `ts`,
// `source`, `data` and optional `headers`. Any language can produce it.

#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "schemas/messages.hpp"

namespace switchyard::envelope {

/// Outcome of decoding: an event, or why the payload was refused.
struct decoded {
  std::optional<event> value;
  std::string error;
  /// Whether the payload was refused for nesting deeper than the limit.
  bool too_deep = false;
};

/// Encodes `ev` as a msgpack map (`data` converted from its JSON text).
std::string to_msgpack(const event& ev);

/// Decodes a msgpack envelope received on NATS `subject`, refusing one that
/// nests more than `max_depth` maps and arrays (the envelope map counts).
decoded from_msgpack(std::string_view subject, std::string_view payload,
                     size_t max_depth);

/// Decodes a JSON envelope received on NATS `subject`, with the same limit.
decoded from_json(std::string_view subject, std::string_view payload,
                  size_t max_depth);

} // namespace switchyard::envelope
