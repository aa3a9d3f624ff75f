// Knows every live session of the node: enforces connections per user and
// answers `/v1/introspect/sessions`. Sessions report their subscriptions
// here as they change (rare next to events), and are monitored, so a crashed
// session disappears too.

#pragma once

#include <string>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/node_context.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

/// State of the session registry.
struct session_registry_state {
  node_context_ptr ctx;
  std::unordered_map<caf::actor_addr, session_info> sessions;
  std::unordered_map<std::string, uint32_t> per_user;

  static inline const char* name = "session_registry";
};

/// Messages:
/// - `(register_atom, session_info, session) -> bool`: adds or updates;
///   false when the user is at the connection limit (first registration);
/// - `(sessions_atom) -> std::vector<session_info>`.
caf::behavior
session_registry(caf::stateful_actor<session_registry_state>* self,
                 node_context_ptr ctx);

} // namespace switchyard
