// The room directory: one per node. It knows every room's record (loaded
// from the store at start, kept current by the room actors), creates rooms,
// activates a room actor on first use, and answers the sessions: may this
// user subscribe to that room, and what is streaming now (catch-up). In a
// cluster it owns the rooms that rendezvous hashing places on this node,
// passes the others' `resolve` to their owners, hands its rooms over when a
// new member takes them, and shares every record change with the other
// members' directories.

#pragma once

#include <map>
#include <string>
#include <vector>

#include "actors/room_interfaces.hpp"
#include "actors/stream.hpp"

namespace switchyard {

/// State of the room directory.
struct room_directory_state {
  room_deps_ptr deps;
  room_store_actor store;
  /// False until the store answered the first load.
  bool loaded = false;
  /// Every room, by id.
  std::map<std::string, room_record> rooms;
  /// Active room actors, by room id.
  std::map<std::string, room_actor> active;

  struct open_stream {
    std::string org;
    std::string room;
    std::string topic;
    stream_actor handle;
  };
  /// Replies streaming now, by stream actor.
  std::map<caf::actor_addr, open_stream> streams;
  /// The live members of the cluster, this node first (just this node
  /// when it runs alone).
  member_view members;
  /// `resolve` requests passed to another member and not answered yet.
  struct forward {
    caller who;
    std::string id;
    caf::typed_response_promise<outcome, room_actor> rp;
    /// The member it went to.
    std::string owner;
  };
  std::map<uint64_t, forward> forwards;
  uint64_t last_forward = 0;

  static inline const char* name = "room_directory";
};

/// How long the directory waits before it asks the store again after a
/// failed first load (NATS down at start).
constexpr std::chrono::milliseconds room_load_retry{250};

/// Most rooms one list request returns, and the default.
constexpr uint32_t max_room_page = 200;
constexpr uint32_t default_room_page = 50;

room_directory_actor::behavior_type room_directory(
  room_directory_actor::stateful_pointer<room_directory_state> self,
  room_deps_ptr deps, room_store_actor store);

} // namespace switchyard
