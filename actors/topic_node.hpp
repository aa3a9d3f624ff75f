// A topic actor: one per distinct subscription pattern on this node. It
// holds the pattern's subscribers, encodes each event once, and hands the
// same bytes to every subscriber's socket queue.

#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/node_context.hpp"

namespace switchyard {

/// What the actors of the topic tree need of their node, shared by all of
/// them: its counters, the local sessions' socket queues, and its NATS
/// interest (null on the in-process bus).
struct topic_deps {
  std::shared_ptr<metrics> stats;
  std::shared_ptr<const sink_registry> sinks;
  bus_bridge_actor bridge;
};

using topic_deps_ptr = std::shared_ptr<const topic_deps>;

/// The topic tree's part of `ctx` (its bridge spawned already, if any).
topic_deps_ptr topic_deps_of(const node_context_ptr& ctx);

/// State of a topic actor.
struct topic_node_state {
  struct subscriber {
    subscriber_actor session;
    /// The local socket queue, or null for a session on another node (it
    /// then gets the event as a `publish_atom` message and encodes it).
    std::shared_ptr<frame_sink> sink;
    /// The subprotocol of `sink`.
    frames::wire_format format = frames::wire_format::json;
  };

  std::string pattern;
  topic_router_actor router;
  topic_deps_ptr deps;
  std::vector<subscriber> subscribers;
  std::unordered_map<caf::actor_addr, size_t> index;
  /// Subscribe messages received so far; the router compares it with what it
  /// forwarded before it retires this actor, so no subscribe is ever lost.
  uint64_t received = 0;
  /// False until the bus bridge confirmed the NATS interest for `pattern`;
  /// subscribes wait for it, so an `ok` means events published from then on
  /// reach the client.
  bool armed = true;
  std::vector<caf::response_promise> waiting;
  /// The local subscribers by thread and subprotocol, in chunks: one
  /// hand-off per chunk and event. Rebuilt at the first publish after a
  /// change of subscribers (so an idle topic holds none).
  struct chunk {
    frames::wire_format format;
    std::shared_ptr<const sink_list> sinks;
  };
  std::vector<chunk> chunks;
  bool chunks_stale = true;

  static inline const char* name = "topic_node";
};

/// A `topic_actor`: subscribes are idempotent; an event is encoded once
/// per subprotocol in use and handed to every local subscriber's socket
/// queue. Monitors each subscriber; a dead one is removed. Reports
/// `(count_atom, pattern, subscribers, received)` to its router on change.
topic_actor::behavior_type
topic_node(topic_actor::stateful_pointer<topic_node_state> self,
           std::string pattern, topic_router_actor router, topic_deps_ptr deps,
           bool armed);

} // namespace switchyard
