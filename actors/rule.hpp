// A rule actor: one per enabled notification rule. It subscribes to the
// rule's pattern through the topic tree, as a session does, so it sees the
// same events by the same path; for each event its conditions accept it
// makes one notification per recipient and hands them to the notification
// directory.

#pragma once

#include <cstdint>
#include <string>

#include <caf/all.hpp>

#include "actors/node_interfaces.hpp"

namespace switchyard {

/// State of a rule actor.
struct rule_state {
  notification_rule rule;
  /// The topic tree's root, and the topic actor of the pattern (null until
  /// the subscribe is answered).
  topic_router_actor topics;
  subscription_actor node;
  notification_directory_actor directory;
  room_directory_actor rooms;
  /// Events seen, events whose conditions held, notifications made.
  uint64_t seen = 0;
  uint64_t matched = 0;
  uint64_t notified = 0;

  static inline const char* name = "rule";
};

rule_actor::behavior_type rule(rule_actor::stateful_pointer<rule_state> self,
                               notification_rule x, topic_router_actor topics,
                               notification_directory_actor directory,
                               room_directory_actor rooms);

} // namespace switchyard
