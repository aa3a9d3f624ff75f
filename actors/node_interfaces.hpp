// The typed interfaces of the actors every node runs for its clients: the
// sessions, the topic tree (root, org routers, topic actors), the session
// registry, the bus bridge and the bus publisher. With the interfaces of
// actors/room_interfaces.hpp, actors/notification_interfaces.hpp and
// actors/cluster_interfaces.hpp, gathered by schemas/messages.hpp with the
// type-ID block, these are every actor interface of Switchyard.

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/history_interfaces.hpp"
#include "actors/notification_interfaces.hpp"

// Subscriptions and publishing.
CAF_ADD_ATOM(switchyard, switchyard, count_atom, "count")
// Recovery: a subscription whose events are held until released.
CAF_ADD_ATOM(switchyard, switchyard, recover_atom, "recover")
CAF_ADD_ATOM(switchyard, switchyard, release_atom, "release")
CAF_ADD_ATOM(switchyard, switchyard, overflow_atom, "overflow")
// Connection I/O to session actor.
CAF_ADD_ATOM(switchyard, switchyard, text_atom, "text")
CAF_ADD_ATOM(switchyard, switchyard, binary_atom, "binary")
CAF_ADD_ATOM(switchyard, switchyard, pong_atom, "pong")
CAF_ADD_ATOM(switchyard, switchyard, closed_atom, "closed")
// Session timers (and tick_atom, in actors/room_interfaces.hpp).
CAF_ADD_ATOM(switchyard, switchyard, pong_due_atom, "pong_due")
CAF_ADD_ATOM(switchyard, switchyard, auth_due_atom, "auth_due")
CAF_ADD_ATOM(switchyard, switchyard, expire_atom, "expire")
// Registries and introspection.
CAF_ADD_ATOM(switchyard, switchyard, register_atom, "register")
CAF_ADD_ATOM(switchyard, switchyard, topics_atom, "topics")
CAF_ADD_ATOM(switchyard, switchyard, sessions_atom, "sessions")
// Presence (actors/presence.hpp).
CAF_ADD_ATOM(switchyard, switchyard, presence_atom, "presence")

namespace switchyard {

struct event;
struct topic_info;
struct session_info;
struct presence_info;
struct presence_count;

/// Whatever subscribes to the topic tree: a session, a rule actor.
using subscriber_actor = caf::typed_actor<
  // An event of subscription `pattern` (room events, and events of a topic
  // actor on another node; local sessions get the others' frames in their
  // socket queue).
  caf::reacts_to<publish_atom, std::string /*pattern*/, event>>;

/// What a subscriber keeps of its topic actor.
using subscription_actor = caf::typed_actor<
  // Ends the subscription of `subscriber`.
  caf::reacts_to<unsubscribe_atom, subscriber_actor>,
  // Ends the hold of a subscription made with `recover_atom`: its held
  // events after stream sequence `after` go to the subscriber in order,
  // and live events from then on.
  caf::reacts_to<release_atom, subscriber_actor, uint64_t /*after*/>>;

/// The messages that enter the topic tree at its root, and that the root
/// passes to an org's router: the root and routers share this interface.
using topic_router_actor = caf::typed_actor<
  // Subscribes `subscriber` to `pattern` (checked against the grammar and
  // the subscriber's token already); answers once events published from
  // then on reach it, with the handle to unsubscribe from.
  caf::replies_to<subscribe_atom, std::string /*pattern*/,
                  subscriber_actor>::with<subscription_actor>,
  // Subscribes as `subscribe_atom` does, but holds the subscription's
  // events until the subscriber sends `release_atom`: a recovering
  // subscription replays what its client missed first.
  caf::replies_to<recover_atom, std::string /*pattern*/,
                  subscriber_actor>::with<subscription_actor>,
  // Delivers an event to every matching subscription of this node.
  caf::reacts_to<publish_atom, event>,
  // From a router to the root (org, patterns, subscribes received) or a
  // topic actor to its router (pattern, subscribers, subscribes received):
  // an empty child that has handled every subscribe sent to it retires.
  caf::reacts_to<count_atom, std::string, uint64_t, uint64_t>,
  // Every topic actor, for `/v1/introspect/topics`.
  caf::replies_to<topics_atom>::with<std::vector<topic_info>>>;

/// One topic actor (actors/topic_node.hpp): one per distinct pattern.
using topic_actor = subscription_actor::extend<
  caf::replies_to<subscribe_atom, std::string /*pattern*/,
                  subscriber_actor>::with<subscription_actor>,
  caf::replies_to<recover_atom, std::string /*pattern*/,
                  subscriber_actor>::with<subscription_actor>,
  caf::reacts_to<publish_atom, event>,
  // From the bus bridge: the NATS interest for the pattern is in place.
  caf::reacts_to<register_atom>>;

/// One WebSocket connection (actors/session.hpp).
using session_actor = subscriber_actor::extend<
  // From its connection (net/ws_connection.cpp): a text or binary frame,
  // a pong, the socket closed (with the close code).
  caf::reacts_to<text_atom, std::string>,
  caf::reacts_to<binary_atom, std::string>, caf::reacts_to<pong_atom>,
  caf::reacts_to<closed_atom, uint16_t>,
  // A notification frame for its user, from the user's notifier.
  caf::reacts_to<frame_atom, std::string>,
  // From a topic actor: the events held for recovering subscription
  // `pattern` passed the outbound queue limit.
  caf::reacts_to<overflow_atom, std::string /*pattern*/>,
  // Its own timer: go on pushing the replay of subscription `pattern`.
  caf::reacts_to<replay_atom, std::string /*pattern*/>,
  // From the session registry's heartbeat wheel: ping now; the pong of the
  // last ping is due.
  caf::reacts_to<tick_atom>, caf::reacts_to<pong_due_atom>,
  // What `/v1/introspect/sessions` shows of it.
  caf::replies_to<sessions_atom>::with<session_info>,
  // Its own timers: the auth deadline, the expiry of the token of auth
  // generation n, and coalesced reply tokens to flush.
  caf::reacts_to<auth_due_atom>, caf::reacts_to<expire_atom, uint64_t>,
  caf::reacts_to<flush_atom>>;

/// Every live session of a node (actors/session_registry.hpp).
using session_registry_actor = caf::typed_actor<
  // Admits a session of user `sub` of `org`; false at the connection limit
  // of the user.
  caf::replies_to<register_atom, std::string /*org*/, std::string /*sub*/,
                  session_actor>::with<bool>,
  // Every session's summary, asked of the sessions themselves.
  caf::replies_to<sessions_atom>::with<std::vector<session_info>>,
  // The live sessions of one user (see `user_key`): on every live member
  // when asked from this node, on this one when asked by another member.
  caf::replies_to<sessions_atom,
                  std::string /*user key*/>::with<std::vector<session_actor>>,
  // From the cluster actor: the live members.
  caf::reacts_to<members_atom, std::vector<node_card>>,
  // Its own timer: one step of the heartbeat wheel.
  caf::reacts_to<tick_atom>,
  // From a session: it subscribed to a pattern that counts for presence
  // key `key` (see actors/presence.hpp), or unsubscribed from one.
  caf::reacts_to<join_atom, std::string /*key*/, session_actor>,
  caf::reacts_to<leave_atom, std::string /*key*/, session_actor>,
  // From a member's registry to every other: member `node` (started at
  // unix ms `started_at`) holds `sessions` sessions of `user` on `key`, 0
  // for none; with `announce`, the key's owner publishes the join or leave
  // this makes.
  caf::reacts_to<presence_atom, std::string /*key*/, std::string /*user*/,
                 std::string /*node*/, int64_t /*started_at*/,
                 int32_t /*sessions*/, bool /*announce*/>,
  // From a member's registry that sees this one as new: its snapshot of
  // its own counts (replacing what this one held of it); answered with
  // this one's.
  caf::replies_to<
    presence_atom, std::string /*node*/, int64_t /*started_at*/,
    std::vector<presence_count>>::with<std::vector<presence_count>>,
  // Who is present on `key`, cluster-wide, as this node's registry knows.
  caf::replies_to<presence_atom, std::string /*key*/>::with<presence_info>>;

/// The NATS interest of a node (actors/bus_bridge.hpp).
using bus_bridge_actor = caf::typed_actor<
  // A topic actor for `pattern` came to life: subscribe, and tell it
  // `register` once NATS confirmed.
  caf::reacts_to<subscribe_atom, std::string /*pattern*/, topic_actor>,
  // The topic actor retired.
  caf::reacts_to<unsubscribe_atom, std::string /*pattern*/, topic_actor>>;

/// Publishes through the bus off the scheduler's threads
/// (actors/bus_publisher.hpp).
using bus_publisher_actor = caf::typed_actor<
  // Publishes `event` unless `deadline` (unix ms) has passed; answers the
  // bus's status (empty: accepted).
  caf::replies_to<publish_atom, event,
                  int64_t /*deadline*/>::with<std::string>>;

} // namespace switchyard
