#include "actors/bus_publisher.hpp"

#include "schemas/rooms.hpp"

#include "schemas/topic.hpp"

namespace switchyard {

std::optional<publish_refusal> check_publish(const claims& c,
                                             const std::string& topic) {
  std::string why;
  if (!topic::valid_topic(topic, &why))
    return publish_refusal{"bad_topic", std::move(why)};
  if (!may_publish(c, topic))
    return publish_refusal{"forbidden", "token may not publish to " + topic};
  if (rooms::is_room_topic(topic))
    return publish_refusal{"forbidden",
                           "room events come from the rooms API only"};
  return std::nullopt;
}

event client_event(id_source& ids, const claims& c, std::string topic,
                   std::string id, std::string data) {
  event ev;
  ev.id = id.empty() ? ids.next() : std::move(id);
  ev.topic = std::move(topic);
  ev.ts = node_context::unix_ms();
  ev.source = c.sub;
  ev.data = std::move(data);
  return ev;
}

bus_publisher_actor::behavior_type
bus_publisher(bus_publisher_actor::stateful_pointer<bus_publisher_state> self,
              std::shared_ptr<bus_port> bus) {
  self->state.bus = std::move(bus);
  return {
    [self](publish_atom, event& ev, int64_t deadline) -> std::string {
      if (node_context::unix_ms() > deadline)
        return "event bus too slow; retry";
      return self->state.bus->publish(std::move(ev));
    },
  };
}

} // namespace switchyard
