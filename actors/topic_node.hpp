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

/// State of a topic actor.
struct topic_node_state {
  struct subscriber {
    caf::actor session;
    /// The local socket queue, or null for a session on another node (it
    /// then gets the event as a `publish_atom` message and encodes it).
    std::shared_ptr<frame_sink> sink;
    /// The subprotocol of `sink`.
    frames::wire_format format = frames::wire_format::json;
  };

  std::string pattern;
  caf::actor router;
  node_context_ptr ctx;
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

/// Messages:
/// - `(subscribe_atom, pattern, session) -> actor`: adds (idempotent), replies
///   with this actor's handle for later unsubscribes;
/// - `(unsubscribe_atom, session)`: removes;
/// - `(publish_atom, event)`: delivers the event to every subscriber, encoded
///   once per subprotocol in use;
/// - `(register_atom)`: from the bus bridge, the NATS interest is in place.
/// Monitors each subscriber; a dead one is removed. Reports
/// `(count_atom, pattern, subscribers, received)` to its router on change.
caf::behavior topic_node(caf::stateful_actor<topic_node_state>* self,
                         std::string pattern, caf::actor router,
                         node_context_ptr ctx, bool armed);

} // namespace switchyard
