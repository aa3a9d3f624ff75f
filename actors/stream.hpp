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
  node_context_ptr ctx;
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
event room_event(node_context& ctx, std::string topic, std::string source,
                 std::string data, bool is_private,
                 const std::vector<std::string>& audience);

stream_actor::behavior_type
stream_server(stream_actor::stateful_pointer<stream_state> self,
              stream_spec spec);

} // namespace switchyard
