// Rooms, their participants and messages, and agent replies being streamed:
// the values that travel between the room, stream, agent and store actors.
// Each has an `inspect` overload and a place in the `switchyard` type-ID
// block (schemas/messages.hpp), so any of those actors may live on another
// node; each has a JSON form for the HTTP API, the store and the events.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <nlohmann/json_fwd.hpp>

namespace switchyard {

struct event;

/// The answer of a room operation: an empty `code` on success, else a
/// protocol error code (`not_found`, `forbidden`, `bad_request`,
/// `conflict`, `unavailable`) and a message a client can act on.
struct outcome {
  std::string code;
  std::string message;

  bool ok() const {
    return code.empty();
  }

  static outcome fail(std::string code, std::string message) {
    return outcome{std::move(code), std::move(message)};
  }
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, outcome& x) {
  return f(caf::meta::type_name("switchyard::outcome"), x.code, x.message);
}

/// Who asks: the verified token's user and org.
struct caller {
  std::string user;
  std::string org;
  /// An admin of the org may read and manage every room of it.
  bool admin = false;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, caller& x) {
  return f(caf::meta::type_name("switchyard::caller"), x.user, x.org, x.admin);
}

/// A user or an agent in a room.
struct participant {
  std::string id;
  /// "user" or "agent".
  std::string kind;
  /// Agents only: the registered behavior's name.
  std::string behavior;
  /// Agents only: "always", "mention" or "never".
  std::string auto_respond;
  /// Agents only: the behavior's configuration, as JSON text.
  std::string config;
  int64_t joined_at = 0;

  bool is_agent() const {
    return kind == "agent";
  }
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, participant& x) {
  return f(caf::meta::type_name("switchyard::participant"), x.id, x.kind,
           x.behavior, x.auto_respond, x.config, x.joined_at);
}

/// A room: what the store keeps and `GET /v1/rooms/{id}` shows.
struct room_record {
  std::string id;
  std::string org;
  std::string name;
  bool is_private = true;
  std::string created_by;
  int64_t created_at = 0;
  std::vector<participant> participants;

  /// The participant `id`, or null.
  const participant* find(std::string_view id) const;

  /// Whether user `user` is a participant.
  bool has_user(std::string_view user) const;

  /// Whether `who` may read the room: participants, admins of its org and,
  /// for a room that is not private, everyone of its org.
  bool visible_to(const caller& who) const;

  /// The user participants: who may see a private room's events.
  std::vector<std::string> audience() const;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, room_record& x) {
  return f(caf::meta::type_name("switchyard::room_record"), x.id, x.org, x.name,
           x.is_private, x.created_by, x.created_at, x.participants);
}

/// One message of a room's history.
struct room_message {
  std::string message_id;
  uint64_t seq = 0;
  std::string author;
  /// "user" or "agent".
  std::string author_kind;
  std::string text;
  int64_t ts = 0;
  /// Agent replies: "streaming" while generated, then "complete",
  /// "cancelled" or "failed". Empty for messages posted whole.
  std::string state;
  /// Why a reply failed; empty otherwise.
  std::string reason;
  /// Agent replies: the message that prompted it.
  std::string reply_to;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, room_message& x) {
  return f(caf::meta::type_name("switchyard::room_message"), x.message_id,
           x.seq, x.author, x.author_kind, x.text, x.ts, x.state, x.reason,
           x.reply_to);
}

/// What a watcher joining mid-reply gets first: the text so far.
struct stream_snapshot {
  /// The reply's `message_stream` topic.
  std::string topic;
  std::string message_id;
  uint64_t seq = 0;
  /// The last token included in `text`; -1 before the first token.
  int64_t index = -1;
  std::string text;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, stream_snapshot& x) {
  return f(caf::meta::type_name("switchyard::stream_snapshot"), x.topic,
           x.message_id, x.seq, x.index, x.text);
}

// -- JSON forms ---------------------------------------------------------------

nlohmann::json to_json(const participant& x);
nlohmann::json to_json(const room_record& x);
nlohmann::json to_json(const room_message& x);

/// Reads what `to_json` wrote (the store's records); nothing when a field
/// is missing or of the wrong type.
std::optional<room_record> room_from_json(const nlohmann::json& j);
std::optional<room_message> message_from_json(const nlohmann::json& j);

// -- topics -------------------------------------------------------------------

namespace rooms {

/// `events.<org>.conversations.conversation.<event>.<room>`.
std::string topic(std::string_view org, std::string_view event,
                  std::string_view room);

/// Whether `topic` (concrete) is a room event: its delivery depends on the
/// watcher (private rooms, catch-up, coalescing), see the session actor.
bool is_room_topic(std::string_view topic);

/// The `<event>` and `<room>` tokens of a room topic.
std::string_view event_of(std::string_view room_topic);
std::string_view room_of(std::string_view room_topic);

/// The room a subscription pattern names (its last token, when the pattern
/// can match room topics and that token is no wildcard), else empty.
std::string_view room_of_pattern(std::string_view pattern);

/// Whether `pattern` can match a `message_stream` topic of org `org`.
bool may_match_streams(std::string_view pattern, std::string_view org);

/// Event headers of room events (never shown to clients): who may see the
/// event, the user ids of a private room as a JSON array or `*` for a room
/// that is not private (an event without it is none of a room's); and the
/// stream
/// fields a watcher's session reads without parsing the payload.
constexpr std::string_view audience_header = "audience";

/// Whether `user` may see the room event `ev`: its audience header is `*`
/// (a room that is not private) or lists the user. An event without the
/// header is not of a room's making and is for nobody.
bool in_audience(const event& ev, const std::string& user);
constexpr std::string_view message_header = "message_id";
constexpr std::string_view index_header = "index";
constexpr std::string_view done_header = "done";

/// Room ids: `conv_` and 24 hex digits (chosen by the node).
bool valid_room_id(std::string_view id);

/// Participant ids: users as their tokens' `sub` (1 to 128 bytes, no
/// control characters); agents 1 to 64 of `[A-Za-z0-9_-]`, so that
/// `@<agent id>` mentions them unambiguously.
bool valid_participant_id(std::string_view id, bool agent);

} // namespace rooms

} // namespace switchyard
