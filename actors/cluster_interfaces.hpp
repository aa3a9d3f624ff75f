// The typed interface of a node's cluster actor (actors/cluster.hpp) and the
// cards members exchange. A card carries the handles of a node's directories
// and session registry, so that any member reaches them through CAF's
// middleman as if they were local. The handles are untyped here (the
// directories' interfaces take member views, so they cannot be named in a
// card); each receiver casts them to the interface it talks to.

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>

CAF_ADD_ATOM(switchyard, switchyard, start_atom, "start")

CAF_ADD_ATOM(switchyard, switchyard, hello_atom, "hello")
CAF_ADD_ATOM(switchyard, switchyard, members_atom, "members")
CAF_ADD_ATOM(switchyard, switchyard, ping_atom, "ping")

namespace switchyard {

/// What a node tells its peers about itself.
struct node_card {
  /// Unique and stable across restarts (`--node-name`): placement hashes it.
  std::string name;
  /// `host:port` of its cluster listener, where peers connect.
  std::string address;
  /// Unix ms of its start: a restarted node is a new incarnation.
  int64_t started_at = 0;
  /// Its cluster actor (a `cluster_actor`).
  caf::strong_actor_ptr member;
  /// Its room directory (a `room_directory_actor`).
  caf::strong_actor_ptr rooms;
  /// Its notification directory (a `notification_directory_actor`).
  caf::strong_actor_ptr notifications;
  /// Its session registry (actors/session_registry.hpp).
  caf::strong_actor_ptr sessions;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_card& x) {
  return f(caf::meta::type_name("switchyard::node_card"), x.name, x.address,
           x.started_at, x.member, x.rooms, x.notifications, x.sessions);
}

/// A node's load, as `GET /v1/cluster` shows it.
struct node_load {
  int64_t connections = 0;
  int64_t topic_actors = 0;
  int64_t rooms_active = 0;
  int64_t streams_active = 0;
  int64_t notifiers = 0;
  int64_t rule_actors = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_load& x) {
  return f(caf::meta::type_name("switchyard::node_load"), x.connections,
           x.topic_actors, x.rooms_active, x.streams_active, x.notifiers,
           x.rule_actors);
}

/// One member as a node sees it.
struct member_status {
  node_card card;
  /// "self", "alive" or "down".
  std::string state;
  /// Unix ms of its last answer (its state change for "down").
  int64_t last_seen = 0;
  node_load load;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_status& x) {
  return f(caf::meta::type_name("switchyard::member_status"), x.card, x.state,
           x.last_seen, x.load);
}

/// A node's cluster actor: finds its peers from the seed list, pings them,
/// and tells the node's directories which members are alive.
using cluster_actor = caf::typed_actor<
  // From the node, once its directories run: its own card. Until then the
  // actor neither greets nor answers greetings.
  caf::reacts_to<start_atom, node_card>,
  // A peer introduces itself with what it knows; the answer is this node's
  // card and load, and the members it knows alive.
  caf::replies_to<hello_atom, node_card, std::vector<node_card>>::with<
    node_card, node_load, std::vector<node_card>>,
  // Every member known, this node first (`GET /v1/cluster`).
  caf::replies_to<members_atom>::with<std::vector<member_status>>,
  // Its own timer: connect to seeds and down members, ping the others.
  caf::reacts_to<ping_atom>>;

/// What the directories and the session registry get whenever the set of
/// live members changes: every live member's card, this node's included.
using member_view = std::vector<node_card>;

} // namespace switchyard
