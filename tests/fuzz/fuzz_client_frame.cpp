// Client text frames (schemas/client_frame.hpp) on arbitrary text, and the
// frames a session would answer with: they must be valid JSON whatever
// bytes the client sent. A usable publish frame must make an event the
// node can deliver once its topic passed the grammar: data that is JSON
// within the depth limit, an event id of the allowed size.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "actors/node_context.hpp"
#include "schemas/client_frame.hpp"
#include "schemas/frames.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"
#include "schemas/topic.hpp"

using namespace switchyard;

namespace {

void check_event(const client_frame& frame) {
  if (!frame.event_id.empty() && !valid_event_id(frame.event_id))
    __builtin_trap();
  // The session refuses a topic outside the grammar (bad_topic) before it
  // builds an event; event_json relies on that.
  if (!topic::valid_topic(frame.topic))
    return;
  auto data = json_limits::parse_json(frame.data,
                                      settings::default_max_json_depth);
  if (data.error != json_limits::failure::none)
    __builtin_trap(); // subscribers and the NATS envelope need valid data
  event ev;
  ev.id = frame.event_id.empty() ? "fuzz-1" : frame.event_id;
  ev.topic = frame.topic;
  ev.data = frame.data;
  if (!nlohmann::json::accept(frames::event_json(frame.topic, ev))
      || !nlohmann::json::accept(frames::published_json(frame.id, ev.id)))
    __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  auto frame = decode_client_frame(text, settings::default_max_json_depth);
  if (frame.error_code == nullptr) {
    if (frame.type == client_frame_type::none)
      __builtin_trap(); // a usable frame always has a type
    if (frame.type == client_frame_type::publish)
      check_event(frame);
    else if (!frame.event_id.empty() || !frame.data.empty())
      __builtin_trap(); // only publish frames carry an event
    if (!nlohmann::json::accept(frames::ok_json(frame.id)))
      __builtin_trap();
    return 0;
  }
  auto reply = frames::error_json(frame.id, frame.error_code, frame.error);
  if (!nlohmann::json::accept(reply))
    __builtin_trap();
  return 0;
}
