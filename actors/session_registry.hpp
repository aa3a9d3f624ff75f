// Knows every live session of the node: enforces connections per user,
// drives heartbeats, answers `/v1/introspect/sessions` by asking the
// sessions themselves, and keeps presence (actors/presence.hpp). Sessions
// are monitored, so a crashed or timed-out session disappears, and leaves
// every presence key, too. A user's sessions (what the notifier delivers
// to) and presence are one source: this registry.

#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/node_context.hpp"
#include "actors/presence.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

/// State of the session registry.
struct session_registry_state {
  /// What it needs of the node's settings.
  struct config {
    milliseconds heartbeat_interval;
    milliseconds heartbeat_timeout;
    uint32_t max_connections_per_user;
    uint32_t presence_max_members;
    /// This node's name in presence answers when it runs alone (in a
    /// cluster, its member name).
    std::string node;
    /// Prefix of the ids of the presence events this node publishes.
    std::string event_ids;
    /// Where presence events go in a cluster (the bus, to every member);
    /// none: they are not published.
    bus_publisher_actor publisher;
    /// Where they go when this node runs alone (its own clients only).
    topic_router_actor topics;
    bool clustered = false;
  };

  config cfg;
  /// Session -> user key (see `user_key`).
  std::unordered_map<caf::actor_addr, std::string> sessions;
  /// Live sessions per user key.
  std::unordered_map<std::string, std::vector<session_actor>> per_user;
  /// The heartbeat wheel: every session sits in one bucket; one bucket is
  /// ticked per step, so each session gets `(tick_atom)` once per heartbeat
  /// interval, and `(pong_due_atom)` the heartbeat timeout after it (rounded
  /// up to a step), without a timer of its own (a CAF timer costs ~0.2 KiB
  /// per session, and each wakes CAF's clock thread).
  std::vector<std::vector<session_actor>> buckets;
  size_t cursor = 0;
  size_t next_bucket = 0;
  /// The live members of the cluster, this node first.
  member_view members;
  presence_book presence;
  /// Presence events published, for their ids.
  uint64_t presence_events = 0;

  static inline const char* name = "session_registry";
};

/// A `session_registry_actor`. The heartbeat wheel sends each session
/// `tick` once per heartbeat interval and `pong_due` the heartbeat timeout
/// after it (rounded up to a step).
session_registry_actor::behavior_type session_registry(
  session_registry_actor::stateful_pointer<session_registry_state> self,
  session_registry_state::config cfg);

/// The registry's part of the node's settings; `node`, `event_ids` and
/// `publisher` are the caller's to fill in.
session_registry_state::config registry_config(const settings& cfg);

/// Returns the key of user `sub` of `org` in the registry. An org is one
/// topic token and never holds a `.`, so the key is unambiguous.
std::string user_key(const std::string& org, const std::string& sub);

/// How many buckets the heartbeat wheel has for `interval`: one step per
/// 100 ms at most, 64 buckets at most.
size_t heartbeat_buckets(milliseconds interval);

} // namespace switchyard
