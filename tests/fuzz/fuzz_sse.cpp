// The event-stream parser (net/sse.hpp) on arbitrary bytes. The first three
// input bytes choose where the rest is cut into four chunks, as a response
// body arrives from a socket; the chunked parse must agree with the parse of
// the whole input, event for event and error for error, and no event may
// exceed the limits.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "net/sse.hpp"

using namespace switchyard;

namespace {

/// Small enough that the fuzzer reaches both limits quickly.
constexpr size_t max_line = 256;
constexpr size_t max_event = 1024;

void check_limits(const std::vector<net::sse_event>& events) {
  for (auto& ev : events)
    if (ev.data.size() >= max_event || ev.type.size() > max_line
        || ev.id.size() > max_line)
      __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t cut_bytes = 3;
  if (size < cut_bytes)
    return 0;
  std::string_view input{reinterpret_cast<const char*>(data + cut_bytes),
                         size - cut_bytes};
  auto n = input.size();
  std::array<size_t, cut_bytes + 2> cuts{};
  for (size_t i = 0; i < cut_bytes; ++i)
    cuts[i + 1] = n * data[i] / 255;
  cuts.back() = n;
  std::sort(cuts.begin(), cuts.end());

  net::sse_parser whole{max_line, max_event};
  std::vector<net::sse_event> expected;
  bool whole_ok = whole.feed(input, expected);
  if (whole_ok != whole.error().empty())
    __builtin_trap();
  check_limits(expected);

  net::sse_parser chunked{max_line, max_event};
  std::vector<net::sse_event> events;
  bool ok = true;
  for (size_t i = 0; i + 1 < cuts.size() && ok; ++i)
    ok = chunked.feed(input.substr(cuts[i], cuts[i + 1] - cuts[i]), events);
  if (ok != whole_ok || chunked.error() != whole.error())
    __builtin_trap();
  // A spent parser refuses everything after its error.
  if (!ok && chunked.feed("data: x\n\n", events))
    __builtin_trap();
  if (events.size() != expected.size())
    __builtin_trap();
  for (size_t i = 0; i < events.size(); ++i)
    if (events[i].type != expected[i].type || events[i].data != expected[i].data
        || events[i].id != expected[i].id)
      __builtin_trap();
  return 0;
}
