// The stream actor: one per agent reply being generated. Its agent writes
// tokens into it; it publishes one `message_stream` event per token, keeps
// the text so far for watchers that join mid-reply, and ends the reply
// (complete, cancelled, or failed by a stall, an error or a crash of the
// agent) by handing its last state to the room.

#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "actors/node_context.hpp"
#include "actors/room_interfaces.hpp"

namespace switchyard {

class agent_registry;

/// What the room actors (the directory, rooms, streams) need of their
/// node, shared by all of them.
struct room_deps {
  /// Room limits: texts, idle and stall timeouts, JSON depth.
  std::shared_ptr<const settings> cfg;
  std::shared_ptr<metrics> stats;
  /// Event and message ids.
  std::shared_ptr<id_source> ids;
  bus_publisher_actor publisher;
  /// The agent behaviors rooms may use.
  std::shared_ptr<const agent_registry> agents;
  /// Streamed HTTP requests for agents.
  std::shared_ptr<http_port> http;
};

using room_deps_ptr = std::shared_ptr<const room_deps>;

/// The room actors' part of `ctx` (its publisher, agents and http set).
room_deps_ptr room_deps_of(const node_context_ptr& ctx);

/// What a stream actor is spawned with.
struct stream_spec {
  std::string org;
  std::string room;
  bool is_private = true;
  /// The room's user participants (private rooms: who sees the events).
  std::vector<std::string> audience;
  /// The reply as the room registered it (`state` "streaming").
  room_message reply;
  /// The room, told when the reply ends.
  room_actor owner;
  /// The agent writing the reply (null for an external agent): a crash of
  /// it fails the reply.
  agent_actor agent;
  room_deps_ptr deps;
};

/// State of a stream actor.
struct stream_state {
  stream_spec spec;
  std::string topic;
  /// Index of the last token; -1 before the first.
  int64_t index = -1;
  bool ended = false;
  /// When the agent last sent a non-empty token (or the reply started).
  caf::actor_clock::time_point last_progress;
  /// Events handed to the bus publisher and not yet answered.
  size_t publishing = 0;

  static inline const char* name = "stream";
};

/// Builds the event a room publishes on `topic`: `data` the payload, the
/// audience header for private rooms (see rooms::audience_header).
event room_event(id_source& ids, std::string topic, std::string source,
                 std::string data, bool is_private,
                 const std::vector<std::string>& audience);

stream_actor::behavior_type
stream_server(stream_actor::stateful_pointer<stream_state> self,
              stream_spec spec);

} // namespace switchyard
