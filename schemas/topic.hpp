// Topic grammar of protocol v1: NATS subject syntax restricted to
// `[A-Za-z0-9_-]+` tokens, with `*` (one token) and a trailing `>` (one or
// more tokens) in subscription patterns.

#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::topic {

// -- limits -------------------------------------------------------------------

/// Most tokens in a topic or pattern (protocol v1).
constexpr size_t max_tokens = 16;

/// Most bytes in a topic or pattern (protocol v1).
constexpr size_t max_bytes = 256;

// -- validation ---------------------------------------------------------------

/// Checks a published topic (no wildcards). On failure, `why` says what is
/// wrong in words a client can act on.
bool valid_topic(std::string_view topic, std::string* why = nullptr);

/// Checks a subscription pattern (`*` anywhere, `>` only last).
bool valid_pattern(std::string_view pattern, std::string* why = nullptr);

// -- matching -----------------------------------------------------------------

/// Splits at `.` without copying.
std::vector<std::string_view> split(std::string_view str);

/// Returns whether the valid `pattern` matches the valid `topic`.
bool matches(std::string_view pattern, std::string_view topic);

/// Returns whether every topic matched by `inner` is also matched by `outer`.
bool covers(std::string_view outer, std::string_view inner);

/// Returns the org of `events.{org}.…` and `presence.{org}.…` (presence
/// topics, actors/presence.hpp) or an empty view for any other topic.
std::string_view org_of(std::string_view topic_or_pattern);

} // namespace switchyard::topic
