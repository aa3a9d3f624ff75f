// Client text frames (schemas/client_frame.hpp) on arbitrary text, and the
// error frame a session would answer with: it must be valid JSON whatever
// bytes the client sent.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "actors/node_context.hpp"
#include "schemas/client_frame.hpp"
#include "schemas/frames.hpp"

using namespace switchyard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto frame = decode_client_frame(text, settings::default_max_json_depth);
  if (frame.error_code == nullptr) {
    if (frame.type == client_frame_type::none)
      __builtin_trap(); // a usable frame always has a type
    return 0;
  }
  auto reply = frames::error_json(frame.id, frame.error_code, frame.error);
  if (!nlohmann::json::accept(reply))
    __builtin_trap();
  return 0;
}
