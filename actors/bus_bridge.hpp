// The bus-bridge actor: one per node with --nats. It keeps one NATS
// subscription per pattern that has local subscribers (interest), wired to
// that pattern's topic actor, so a node receives only what its clients want
// and overlapping patterns never deliver twice to one subscription.

#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/nats_port.hpp"
#include "actors/node_interfaces.hpp"

namespace switchyard {

/// State of the bus bridge.
struct bus_bridge_state {
  struct interest {
    topic_actor node;
    nats_port::subscription_ptr sub;
  };

  std::shared_ptr<nats_port> nats;
  std::unordered_map<std::string, interest> patterns;

  static inline const char* name = "bus_bridge";
};

/// A `bus_bridge_actor`: a topic actor's `register` comes once the server
/// confirmed its SUB (while NATS is down, once it is back).
bus_bridge_actor::behavior_type
bus_bridge(bus_bridge_actor::stateful_pointer<bus_bridge_state> self,
           std::shared_ptr<nats_port> nats);

} // namespace switchyard
