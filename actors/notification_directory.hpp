// The notifications of a node: the rules (stored, with one rule actor per
// enabled rule), users' contact points, one notifier per user with
// something to deliver, and the inbox. A notification a rule actor makes is
// created in the store first: its id is the same on every node that sees
// the event, so it is created, and delivered, once.

#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include <caf/all.hpp>

#include "actors/metrics.hpp"
#include "actors/node_interfaces.hpp"
#include "actors/notification_channels.hpp"

namespace switchyard {

/// What the directory and the actors it spawns talk to.
struct notification_deps {
  notify_settings cfg;
  notification_store_actor store;
  /// The topic tree's root (rule actors subscribe through it).
  topic_router_actor topics;
  /// The session registry (notifiers ask it for a user's sessions).
  session_registry_actor sessions;
  room_directory_actor rooms;
  std::shared_ptr<delivery_channels> channels;
  /// The node's counters (outlive every actor of the node).
  metrics* stats = nullptr;
  /// Whether the node is a cluster member: its pending deliveries then wait
  /// for the first view of the members, so that it resumes only the users
  /// it owns.
  bool clustered = false;
};

/// State of the notification directory.
struct notification_directory_state {
  notification_deps deps;
  /// False until the rules and pending notifications are loaded.
  bool loaded = false;
  /// "<org>.<id>" -> rule, and the actor of each enabled one.
  std::map<std::string, notification_rule> rules;
  std::map<std::string, rule_actor> rule_actors;
  /// user_key -> the user's notifier, and how many messages the directory
  /// sent it (see `idle_atom`).
  struct notifier_entry {
    notifier_actor hdl;
    uint64_t sent = 0;
  };
  std::unordered_map<std::string, notifier_entry> notifiers;
  /// The live members of the cluster, this node first (just this node
  /// when it runs alone): a user's notifier lives on the user's owner.
  member_view members;

  static inline const char* name = "notification_directory";
};

notification_directory_actor::behavior_type notification_directory(
  notification_directory_actor::stateful_pointer<notification_directory_state>
    self,
  notification_deps deps);

} // namespace switchyard
