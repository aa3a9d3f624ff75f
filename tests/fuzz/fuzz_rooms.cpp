// The room records a JetStream store hands back (schemas/rooms.hpp): any
// bytes, read as JSON with the node's depth limit, go through
// room_from_json and message_from_json; what they accept must survive a
// round trip through to_json unchanged. The input, read as a subscription
// pattern, also goes through the room rules of a session's subscribe.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "schemas/json_limits.hpp"
#include "schemas/rooms.hpp"
#include "schemas/topic.hpp"

using namespace switchyard;

namespace {

void check(bool condition) {
  if (!condition)
    __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto parsed = json_limits::parse_json(in, 64);
  if (parsed.error == json_limits::failure::none) {
    if (auto room = room_from_json(parsed.value)) {
      auto again = room_from_json(to_json(*room));
      check(again.has_value());
      check(again->id == room->id && again->org == room->org
            && again->name == room->name
            && again->participants.size() == room->participants.size());
      for (size_t i = 0; i < room->participants.size(); ++i) {
        check(again->participants[i].id == room->participants[i].id);
        check(again->participants[i].behavior
              == room->participants[i].behavior);
      }
      (void)room->audience();
    }
    if (auto msg = message_from_json(parsed.value)) {
      auto again = message_from_json(to_json(*msg));
      check(again.has_value());
      check(again->message_id == msg->message_id && again->seq == msg->seq
            && again->text == msg->text && again->state == msg->state);
    }
  }
  if (topic::valid_pattern(in)) {
    auto room = rooms::room_of_pattern(in);
    check(room.empty() || topic::valid_topic(room));
    (void)rooms::may_match_streams(in, "org_1");
  }
  if (topic::valid_topic(in) && rooms::is_room_topic(in)) {
    check(!rooms::event_of(in).empty());
    check(!rooms::room_of(in).empty());
  }
  return 0;
}
