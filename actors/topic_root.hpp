// The root of the topic tree: one per node. It routes by the org token of
// `events.{org}.…` to that org's router (spawned on first subscription,
// retired when its last pattern goes) and does O(1) work per publish.

#pragma once

#include <string>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/node_context.hpp"

namespace switchyard {

/// State of the topic root.
struct topic_root_state {
  struct entry {
    caf::actor router;
    uint64_t forwarded = 0;
  };

  node_context_ptr ctx;
  std::unordered_map<std::string, entry> orgs;

  static inline const char* name = "topic_root";
};

/// Messages:
/// - `(subscribe_atom, pattern, session) -> actor` (pattern already checked
///   against the grammar and the session's token);
/// - `(publish_atom, event)`: delivers to local subscribers;
/// - `(count_atom, org, patterns, received)`: from a router;
/// - `(topics_atom) -> std::vector<topic_info>`: every topic actor.
caf::behavior topic_root(caf::stateful_actor<topic_root_state>* self,
                         node_context_ptr ctx);

} // namespace switchyard
