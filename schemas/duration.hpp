// Durations written like `250ms`, `25s`, `5m`, `1h` in flags and config.

#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace switchyard {

/// Parses `<integer><unit>` with unit one of ms, s, m, h. Returns nothing on
/// any other input.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view str);

/// Renders a duration in the largest unit that keeps it whole.
std::string format_duration(std::chrono::milliseconds d);

} // namespace switchyard
