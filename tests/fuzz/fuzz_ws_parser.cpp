// The client-frame parser (net/ws_codec.hpp) on arbitrary bytes. The first
// three input bytes choose where the rest is cut into four chunks, so headers,
// masking keys and payloads arrive split at every offset as from a socket.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "net/ws_codec.hpp"

using namespace switchyard;

namespace {

/// Small enough that the fuzzer reaches the size limit (1009) quickly.
constexpr size_t max_message_size = 4096;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t cut_bytes = 3;
  if (size < cut_bytes)
    return 0;
  auto* bytes = reinterpret_cast<const char*>(data + cut_bytes);
  auto n = size - cut_bytes;
  std::array<size_t, cut_bytes + 2> cuts{};
  for (size_t i = 0; i < cut_bytes; ++i)
    cuts[i + 1] = n * data[i] / 255;
  cuts.back() = n;
  std::sort(cuts.begin(), cuts.end());
  net::ws_parser parser{max_message_size};
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    // An odd first byte makes the parser skip data from the second chunk
    // on, as a closing connection does.
    if (i == 1 && (data[0] & 1) != 0)
      parser.skip_data();
    parser.feed(bytes + cuts[i], cuts[i + 1] - cuts[i]);
    for (;;) {
      auto st = parser.next();
      if (st == net::ws_parser::status::need_more)
        break;
      if (st == net::ws_parser::status::error) {
        // The connection closes with this code; nothing is parsed after it.
        if (parser.close_code() == 0)
          __builtin_trap();
        return 0;
      }
      auto& msg = parser.message();
      if (msg.payload.size() > max_message_size)
        __builtin_trap(); // the limit holds for reassembled messages too
      if (msg.op == frames::opcode::close)
        net::close_code_of(msg.payload);
    }
  }
  return 0;
}
