// Knows every live session of the node: enforces connections per user,
// drives heartbeats, and answers `/v1/introspect/sessions` by asking the
// sessions themselves. Sessions are monitored, so a crashed session
// disappears too.

#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/node_context.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

/// State of the session registry.
struct session_registry_state {
  node_context_ptr ctx;
  /// Session -> user key (see `user_key`).
  std::unordered_map<caf::actor_addr, std::string> sessions;
  /// Live sessions per user key.
  std::unordered_map<std::string, std::vector<caf::actor>> per_user;
  /// The heartbeat wheel: every session sits in one bucket; one bucket is
  /// ticked per step, so each session gets `(tick_atom)` once per heartbeat
  /// interval, and `(pong_due_atom)` the heartbeat timeout after it (rounded
  /// up to a step), without a timer of its own (a CAF timer costs ~0.2 KiB
  /// per session, and each wakes CAF's clock thread).
  std::vector<std::vector<caf::actor>> buckets;
  size_t cursor = 0;
  size_t next_bucket = 0;
  /// The live members of the cluster, this node first.
  member_view members;

  static inline const char* name = "session_registry";
};

/// Messages:
/// - `(register_atom, org, sub, session) -> bool`: admits a session, false
///   when the user (`sub` of `org`: the same `sub` in two orgs is two users)
///   is at the connection limit;
/// - `(sessions_atom) -> std::vector<session_info>`: asks every session;
/// - `(sessions_atom, user_key) -> std::vector<caf::actor>`: the live
///   sessions of one user (its notifier delivers to them), on every live
///   member of the cluster when asked from this node, on this one when
///   asked by another member;
/// - `(members_atom, member_view)`: from the cluster actor, the live
///   members;
/// - `(tick_atom)`: internal, one step of the heartbeat wheel: `tick` to the
///   sessions of one bucket, `pong_due` to those pinged one heartbeat
///   timeout ago.
caf::behavior
session_registry(caf::stateful_actor<session_registry_state>* self,
                 node_context_ptr ctx);

/// Returns the key of user `sub` of `org` in the registry. An org is one
/// topic token and never holds a `.`, so the key is unambiguous.
std::string user_key(const std::string& org, const std::string& sub);

/// How many buckets the heartbeat wheel has for `interval`: one step per
/// 100 ms at most, 64 buckets at most.
size_t heartbeat_buckets(milliseconds interval);

} // namespace switchyard
