#include "actors/bus_bridge.hpp"

#include "actors/log.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

bus_bridge_actor::behavior_type
bus_bridge(bus_bridge_actor::stateful_pointer<bus_bridge_state> self,
           std::shared_ptr<nats_port> nats) {
  self->state.nats = std::move(nats);
  return {
    [self](subscribe_atom, const std::string& pattern, topic_actor& node) {
      auto& st = self->state;
      auto& entry = st.patterns[pattern];
      if (entry.sub)
        st.nats->unsubscribe(entry.sub); // a retired actor's leftover
      entry.node = node;
      entry.sub = st.nats->subscribe(pattern, node);
      // The flush runs on the NATS worker thread; its answer goes straight
      // to the topic actor, which then confirms its pending subscribes.
      // While NATS is down the SUB waits in nats.c and is sent on connect.
      st.nats->flush_async([node](bool confirmed) {
        if (!confirmed)
          logger("bus")->debug("interest not confirmed by NATS (down?)");
        caf::anon_send(node, register_atom::value);
      });
    },
    [self](unsubscribe_atom, const std::string& pattern,
           const topic_actor& node) {
      auto& st = self->state;
      auto i = st.patterns.find(pattern);
      if (i == st.patterns.end() || i->second.node != node)
        return;
      st.nats->unsubscribe(i->second.sub);
      st.patterns.erase(i);
    },
  };
}

} // namespace switchyard
