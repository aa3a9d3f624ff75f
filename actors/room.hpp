// The room actor: one per active room, the single ordering point of its
// messages. It numbers every message, persists it through the store actor
// before it is announced, runs the room's agent participants (restarted with
// backoff after a crash) and the stream actors of their replies.

#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/agents/registry.hpp"
#include "actors/room_interfaces.hpp"
#include "actors/stream.hpp"

namespace switchyard {

/// State of a room actor.
struct room_state {
  room_record record;
  /// The history, by seq; replies being generated have state "streaming".
  std::vector<room_message> history;
  uint64_t next_seq = 1;
  room_deps_ptr deps;
  room_store_actor store;
  room_directory_actor directory;

  struct agent_slot {
    agent_actor actor;
    /// Crashes in a row; the restart backoff doubles with each.
    uint32_t crashes = 0;
  };
  /// The running agent participants, by participant id.
  std::map<std::string, agent_slot> agents;

  struct reply {
    stream_actor stream;
    std::string agent;
  };
  /// Replies being generated, by message id.
  std::map<std::string, reply> streams;
  /// When the latest request came, for the idle timer.
  caf::actor_clock::time_point last_activity;
  bool idle_armed = false;

  static inline const char* name = "room";
};

/// Messages of the room before a reply that agents get as context.
constexpr size_t agent_context_messages = 20;

/// Most messages one history request returns, and the default.
constexpr uint32_t max_history_page = 1000;
constexpr uint32_t default_history_page = 100;

/// Most participants in one room: a private room's events carry its user
/// ids (the audience), so this bounds every such event to ~32 KiB.
constexpr size_t max_participants = 256;

/// Most agents in one room, and replies streaming at once in one room: one
/// post starts at most that many replies.
constexpr size_t max_agents = 16;
constexpr size_t max_streams_per_room = 32;

/// Serves room `record`: loads its history from `store` first (requests
/// wait meanwhile) and ends when it failed to.
room_actor::behavior_type
room_server(room_actor::stateful_pointer<room_state> self, room_record record,
            room_deps_ptr deps, room_store_actor store,
            room_directory_actor directory);

} // namespace switchyard
