#include "schemas/duration.hpp"

#include <cctype>
#include <cstdint>

namespace switchyard {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view str) {
  size_t i = 0;
  int64_t value = 0;
  while (i < str.size() && std::isdigit(static_cast<unsigned char>(str[i]))) {
    if (value > 1'000'000'000'000)
      return std::nullopt;
    value = value * 10 + (str[i] - '0');
    ++i;
  }
  if (i == 0)
    return std::nullopt;
  auto unit = str.substr(i);
  if (unit == "ms")
    return std::chrono::milliseconds{value};
  if (unit == "s")
    return std::chrono::milliseconds{value * 1000};
  if (unit == "m" || unit == "min")
    return std::chrono::milliseconds{value * 60'000};
  if (unit == "h")
    return std::chrono::milliseconds{value * 3'600'000};
  return std::nullopt;
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0)
    return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0)
    return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

} // namespace switchyard
