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
  /// Most bytes held for one recovering subscription (the outbound queue
  /// limit): past it, its session closes as a slow consumer.
  size_t hold_limit = settings::default_outbound_queue_limit;
};

using topic_deps_ptr = std::shared_ptr<const topic_deps>;

/// The topic tree's part of `ctx` (its bridge spawned already, if any).
topic_deps_ptr topic_deps_of(const node_context_ptr& ctx);

/// State of a topic actor.
struct topic_node_state {
  /// An event held for a recovering subscription: its frame for a local
  /// socket queue, else the message for the subscriber.
  struct held_event {
    uint64_t seq;
    frames::frame_ptr frame;
    caf::message msg;
  };

  /// The events of a recovering subscription, until it is released.
  struct hold {
    std::vector<held_event> events;
    size_t bytes = 0;
    /// Passed `hold_limit`: its session was told, and holds nothing more.
    bool overflowed = false;
  };

  struct subscriber {
    subscriber_actor session;
    /// The local socket queue, or null for a session on another node (it
    /// then gets the event as a `publish_atom` message and encodes it).
    std::shared_ptr<frame_sink> sink;
    /// The subprotocol of `sink`.
    frames::wire_format format = frames::wire_format::json;
    /// Non-null while the subscription recovers (`recover_atom`).
    std::unique_ptr<hold> held;
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
/// queue, or held for a recovering subscriber until it releases it. Monitors
/// each subscriber; a dead one is removed. Reports
/// `(count_atom, pattern, subscribers, received)` to its router on change.
topic_actor::behavior_type
topic_node(topic_actor::stateful_pointer<topic_node_state> self,
           std::string pattern, topic_router_actor router, topic_deps_ptr deps,
           bool armed);

} // namespace switchyard
