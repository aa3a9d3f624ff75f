// Every message that travels between Switchyard actors. Each type has an
// `inspect` overload and a place in the `switchyard` type-ID block, so any
// actor may later live on another node of a cluster (caf::io middleman).

#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <caf/all.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "actors/cluster_interfaces.hpp"
#include "actors/errors.hpp"
#include "actors/history_interfaces.hpp"
#include "actors/node_interfaces.hpp"
#include "actors/notification_interfaces.hpp"
#include "actors/room_interfaces.hpp"

namespace switchyard {

// -- event --------------------------------------------------------------------

/// One event on its way from a publisher to subscribers. `data` holds the
/// payload as JSON text, validated once where the event entered the node, so
/// the hot path never parses it again.
struct event {
  /// Unique event id (publisher-chosen or assigned by the node).
  std::string id;
  /// Concrete topic, no wildcards.
  std::string topic;
  /// Unix time in milliseconds when the event entered the platform.
  int64_t ts = 0;
  /// The publishing service or user (`sub` of its token).
  std::string source;
  /// Payload as JSON text.
  std::string data;
  /// Free-form headers (room for tracing ids and the like).
  std::map<std::string, std::string> headers;
  /// Position in the history stream (its sequence), 0 without history.
  uint64_t seq = 0;
  /// The history stream's epoch at `seq` (see `history_port::epoch`).
  std::string epoch;
};

/// Longest event id a publisher may choose (POST /v1/publish, the publish
/// frame, NATS envelopes): room for a UUID with a prefix, small enough that
/// ids cost little in every delivery.
constexpr size_t max_event_id_size = 128;

/// Whether `id` may be a publisher-chosen event id: 1 to 128 bytes.
inline bool valid_event_id(std::string_view id) {
  return !id.empty() && id.size() <= max_event_id_size;
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, event& x) {
  return f(caf::meta::type_name("switchyard::event"), x.id, x.topic, x.ts,
           x.source, x.data, x.headers, x.seq, x.epoch);
}

// -- history ------------------------------------------------------------------

/// Where a recovering subscription resumes: after stream sequence `since`
/// of `epoch`, or (with `by_time`) at unix time `since_ts` in milliseconds.
struct replay_request {
  std::string pattern;
  uint64_t since = 0;
  std::string epoch;
  int64_t since_ts = 0;
  bool by_time = false;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, replay_request& x) {
  return f(caf::meta::type_name("switchyard::replay_request"), x.pattern,
           x.since, x.epoch, x.since_ts, x.by_time);
}

/// What a replay found: the missed events in order, and whether they are
/// all that was missed.
struct replay_result {
  std::vector<event> events;
  /// Every live event of the subscription up to this sequence is in
  /// `events` or was delivered before the client left: the switch to live
  /// delivery drops those and passes the rest.
  uint64_t last_seq = 0;
  std::string epoch;
  bool complete = false;
  /// Why not complete: `retention`, `epoch`, `too_many` or `unavailable`.
  std::string reason;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, replay_result& x) {
  return f(caf::meta::type_name("switchyard::replay_result"), x.events,
           x.last_seq, x.epoch, x.complete, x.reason);
}

/// A page of past events for `POST /v1/history`, oldest first.
struct history_page {
  std::vector<event> events;
  std::string epoch;
  /// Empty on success, else why the stream could not be read.
  std::string error;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, history_page& x) {
  return f(caf::meta::type_name("switchyard::history_page"), x.events, x.epoch,
           x.error);
}

// -- presence -----------------------------------------------------------------

/// One user present on a presence key: their sessions that count for it,
/// on the members that hold them.
struct presence_member {
  std::string user;
  int32_t sessions = 0;
  /// Names of the members holding those sessions, sorted.
  std::vector<std::string> nodes;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, presence_member& x) {
  return f(caf::meta::type_name("switchyard::presence_member"), x.user,
           x.sessions, x.nodes);
}

/// One member's count of one user's sessions on one presence key.
struct presence_count {
  std::string key;
  std::string user;
  int32_t sessions = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, presence_count& x) {
  return f(caf::meta::type_name("switchyard::presence_count"), x.key, x.user,
           x.sessions);
}

/// Who is present on one presence key (`presence.<org>.<topic>` or
/// `presence.<org>.room.<room id>`), counted once per user across the
/// cluster.
struct presence_info {
  std::string key;
  uint32_t users = 0;
  uint32_t sessions = 0;
  /// More users than the presence cap: `members` is left empty.
  bool capped = false;
  /// Sorted by user.
  std::vector<presence_member> members;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, presence_info& x) {
  return f(caf::meta::type_name("switchyard::presence_info"), x.key, x.users,
           x.sessions, x.capped, x.members);
}

// -- introspection ------------------------------------------------------------

/// What `/v1/introspect/topics` shows for one topic actor.
struct topic_info {
  std::string pattern;
  uint64_t subscribers = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, topic_info& x) {
  return f(caf::meta::type_name("switchyard::topic_info"), x.pattern,
           x.subscribers);
}

/// What `/v1/introspect/sessions` shows for one session actor.
struct session_info {
  std::string session;
  std::string user;
  std::string org;
  std::vector<std::string> subscriptions;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, session_info& x) {
  return f(caf::meta::type_name("switchyard::session_info"), x.session, x.user,
           x.org, x.subscriptions);
}

} // namespace switchyard

// -- type-ID block ------------------------------------------------------------

CAF_BEGIN_TYPE_ID_BLOCK(switchyard, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(switchyard, (switchyard::event))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::topic_info))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::session_info))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::topic_info>))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::session_info>))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::presence_member))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::presence_info))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::presence_count))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::presence_count>))

  // History (actors/history_interfaces.hpp).
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::event>))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::replay_request))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::replay_result))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::history_page))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::history_actor))

  // Rooms, streams and agents (actors/room_interfaces.hpp).
  CAF_ADD_TYPE_ID(switchyard, (switchyard::outcome))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::caller))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::participant))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::room_record))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::room_message))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::stream_snapshot))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::agent_request))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<std::string>))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::room_record>))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::room_message>))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::stream_snapshot>))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::room_store_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::stream_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::agent_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::room_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::room_directory_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::agent_gateway_actor))

  // Notifications (actors/notification_interfaces.hpp).
  CAF_ADD_TYPE_ID(switchyard, (switchyard::notification_rule))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::contact))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::notification))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::notification_rule>))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::notification>))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::notification_store_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::notifier_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::rule_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::notification_directory_actor))

  // The cluster (actors/cluster_interfaces.hpp).
  CAF_ADD_TYPE_ID(switchyard, (switchyard::node_card))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::node_load))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::member_status))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::node_card>))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::member_status>))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::cluster_actor))

  // Sessions, the topic tree, the registry and the bus
  // (actors/node_interfaces.hpp).
  CAF_ADD_TYPE_ID(switchyard, (switchyard::subscriber_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::subscription_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::topic_router_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::topic_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::session_actor))
  CAF_ADD_TYPE_ID(switchyard, (std::vector<switchyard::session_actor>))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::session_registry_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::bus_bridge_actor))
  CAF_ADD_TYPE_ID(switchyard, (switchyard::bus_publisher_actor))

CAF_END_TYPE_ID_BLOCK(switchyard)

namespace switchyard {

/// Makes `cfg` know Switchyard's message types and error codes; every
/// actor system of a node, a test or a benchmark is configured with it.
inline void add_switchyard_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::switchyard>();
  cfg.add_error_category(
    error_category,
    [](uint8_t code, caf::atom_value, const caf::message& context) {
      auto out = "switchyard: " + to_string(static_cast<error_code>(code));
      if (!context.empty())
        out += ' ' + to_string(context);
      return out;
    });
}

} // namespace switchyard
