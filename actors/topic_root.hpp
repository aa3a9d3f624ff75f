// The root of the topic tree: one per node. It routes by the org token of
// `events.{org}.…` to that org's router (spawned on first subscription,
// retired when its last pattern goes) and does O(1) work per publish.

#pragma once

#include <string>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/node_interfaces.hpp"
#include "actors/topic_node.hpp"

namespace switchyard {

/// State of the topic root.
struct topic_root_state {
  struct entry {
    topic_router_actor router;
    uint64_t forwarded = 0;
  };

  topic_deps_ptr deps;
  std::unordered_map<std::string, entry> orgs;

  static inline const char* name = "topic_root";
};

/// The `topic_router_actor` a node's subscribers and buses talk to: it
/// passes subscribes and publishes to the router of the pattern's or
/// topic's org; `topics` gathers every router's topic actors.
topic_router_actor::behavior_type
topic_root(topic_router_actor::stateful_pointer<topic_root_state> self,
           topic_deps_ptr deps);

} // namespace switchyard
