// The typed interfaces of the notification actors: the directory, the rule
// actors, the per-user notifiers and the store. Every message they exchange
// is made of the types of schemas/notifications.hpp and schemas/rooms.hpp,
// atoms and these handles, all in the `switchyard` type-ID block, so any of
// these actors can live on another node.

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/room_interfaces.hpp"
#include "schemas/notifications.hpp"

// The topic tree's, here because rule actors subscribe to it.
CAF_ADD_ATOM(switchyard, switchyard, subscribe_atom, "subscribe")
CAF_ADD_ATOM(switchyard, switchyard, unsubscribe_atom, "unsubscrib")
CAF_ADD_ATOM(switchyard, switchyard, publish_atom, "publish")
CAF_ADD_ATOM(switchyard, switchyard, notify_atom, "notify")
CAF_ADD_ATOM(switchyard, switchyard, deliver_atom, "deliver")
CAF_ADD_ATOM(switchyard, switchyard, ack_atom, "ack")
CAF_ADD_ATOM(switchyard, switchyard, read_atom, "read")
CAF_ADD_ATOM(switchyard, switchyard, remove_atom, "remove")
CAF_ADD_ATOM(switchyard, switchyard, contact_atom, "contact")
CAF_ADD_ATOM(switchyard, switchyard, inbox_atom, "inbox")
CAF_ADD_ATOM(switchyard, switchyard, rule_atom, "rule")
CAF_ADD_ATOM(switchyard, switchyard, sent_atom, "sent")
CAF_ADD_ATOM(switchyard, switchyard, wake_atom, "wake")
CAF_ADD_ATOM(switchyard, switchyard, frame_atom, "frame")

namespace switchyard {

/// Persistence of rules, contact points and notifications
/// (actors/notification_store.hpp). Spawned detached: the JetStream store
/// makes blocking nats.c calls.
using notification_store_actor = caf::typed_actor<
  // Creates or replaces a rule.
  caf::replies_to<put_atom, notification_rule>::with<outcome>,
  // Deletes rule `id` of `org`.
  caf::replies_to<remove_atom, std::string /*org*/,
                  std::string /*id*/>::with<outcome>,
  // Every rule of every org.
  caf::replies_to<load_all_atom,
                  rule_atom>::with<outcome, std::vector<notification_rule>>,
  // Creates or replaces a user's contact points.
  caf::replies_to<put_atom, contact>::with<outcome>,
  // A user's contact points; an empty `user` when there are none.
  caf::replies_to<get_atom, contact_atom, std::string /*org*/,
                  std::string /*user*/>::with<outcome, contact>,
  // Creates a notification; `conflict` when its id exists (made before,
  // here or by another node).
  caf::replies_to<create_atom, notification>::with<outcome>,
  // Replaces a notification's record (its delivery state changed).
  caf::replies_to<put_atom, notification>::with<outcome>,
  // A user's notifications, oldest first.
  caf::replies_to<load_atom, std::string /*org*/, std::string /*user*/>::with<
    outcome, std::vector<notification>>,
  // Every notification with something left to do (`settled` false).
  caf::replies_to<load_all_atom, notify_atom>::with<outcome,
                                                    std::vector<notification>>>;

/// The notifier of one user (actors/notifier.hpp).
using notifier_actor = caf::typed_actor<
  // A new notification (stored already).
  caf::reacts_to<notify_atom, notification>,
  // The user acknowledged on a session (`read` false) or read it through
  // the API (`read` true); `not_found` when the user has no such
  // notification.
  caf::replies_to<ack_atom, std::string /*id*/, bool /*read*/>::with<outcome>,
  // The user's contact points changed.
  caf::reacts_to<contact_atom, contact>,
  // A push (`channel` "push") or an email ("email"; "digest" for a digest
  // of `ids`) finished: `error` empty on success, `permanent` when a retry
  // cannot help.
  caf::reacts_to<sent_atom, std::string /*channel*/,
                 std::vector<std::string> /*ids*/, std::string /*error*/,
                 bool /*permanent*/>,
  // Its own timer, with the generation that armed it.
  caf::reacts_to<wake_atom, uint64_t>,
  // Whether it has nothing left to do, and how many messages of the
  // directory (notify, ack, contact) it has handled: the directory retires
  // an idle one that has handled every message the directory sent it.
  caf::replies_to<idle_atom>::with<bool, uint64_t>>;

/// One enabled rule (actors/rule.hpp): subscribed to its topic pattern
/// through the topic tree, as a session is.
using rule_actor = caf::typed_actor<
  // An event of its pattern, from a topic actor.
  caf::reacts_to<publish_atom, std::string /*pattern*/, event>,
  // The rule changed (same id; the pattern may differ).
  caf::reacts_to<rule_atom, notification_rule>,
  // Its own retry of a subscribe the topic tree refused.
  caf::reacts_to<subscribe_atom>>;

/// The notifications of a node (actors/notification_directory.hpp): rules
/// and their actors, contact points, the per-user notifiers, the inbox.
using notification_directory_actor = caf::typed_actor<
  // Creates (`create` true: `conflict` when the id exists) or replaces
  // (`create` false: `not_found` unless it exists) a rule of the caller's
  // org; admins only.
  caf::replies_to<put_atom, caller, notification_rule,
                  bool /*create*/>::with<outcome, notification_rule>,
  caf::replies_to<get_atom, caller,
                  std::string /*id*/>::with<outcome, notification_rule>,
  caf::replies_to<list_atom, caller>::with<outcome,
                                           std::vector<notification_rule>>,
  caf::replies_to<remove_atom, caller, std::string /*id*/>::with<outcome>,
  // Replaces a user's contact points (the user or an admin of the org).
  caf::replies_to<put_atom, caller, contact>::with<outcome>,
  caf::replies_to<get_atom, caller, contact_atom,
                  std::string /*user*/>::with<outcome, contact>,
  // The caller's notifications, newest first; unread only if asked.
  caf::replies_to<inbox_atom, caller, bool /*unread_only*/>::with<
    outcome, std::vector<notification>>,
  // Marks one of the caller's notifications read (an ack too).
  caf::replies_to<read_atom, caller, std::string /*id*/>::with<outcome>,
  // From a session: its user acknowledged a notification frame.
  caf::reacts_to<ack_atom, std::string /*org*/, std::string /*user*/,
                 std::string /*id*/>,
  // From a rule actor: a notification to create and deliver. It is stored
  // here, then delivered by the notifier on the user's owner node.
  caf::reacts_to<notify_atom, notification>,
  // From another member's directory: a stored notification to deliver
  // (passed on again if this node does not own its user by its own view).
  caf::reacts_to<deliver_atom, notification>,
  // From another member's directory: a user's contact points changed.
  caf::reacts_to<contact_atom, contact>,
  // From the cluster actor: the live members.
  caf::reacts_to<members_atom, member_view>,
  // Its own timers: retire idle notifiers; retry the start-up load; read
  // the rules again (other nodes may have changed them).
  caf::reacts_to<tick_atom>, caf::reacts_to<load_all_atom>,
  caf::reacts_to<rule_atom>>;

} // namespace switchyard
