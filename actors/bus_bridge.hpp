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
#include "actors/node_context.hpp"

namespace switchyard {

/// State of the bus bridge.
struct bus_bridge_state {
  struct interest {
    caf::actor node;
    nats_port::subscription_ptr sub;
  };

  node_context_ptr ctx;
  std::shared_ptr<nats_port> nats;
  std::unordered_map<std::string, interest> patterns;

  static inline const char* name = "bus_bridge";
};

/// Messages:
/// - `(subscribe_atom, pattern, node)`: a topic actor for `pattern` came to
///   life; subscribe on NATS and, once the server confirmed the SUB, send
///   `(register_atom)` to the topic actor so it answers its subscribers;
/// - `(unsubscribe_atom, pattern, node)`: the topic actor retired.
caf::behavior bus_bridge(caf::stateful_actor<bus_bridge_state>* self,
                         node_context_ptr ctx, std::shared_ptr<nats_port> nats);

} // namespace switchyard
