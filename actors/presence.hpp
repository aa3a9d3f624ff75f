// Presence: who is subscribed to an exact topic or a room. A session
// counts for presence key `presence.<org>.<topic>` while it holds a
// subscription to exactly `<topic>`, and for `presence.<org>.room.<room id>`
// while it holds one that names the room (rooms::room_of_pattern). The key
// is also the topic of the key's join and leave events.
//
// The session registry of each node keeps a `presence_book`: the local side
// counts its own sessions per key and user, and every change is sent to all
// members, so that each node's cluster side sums every member's counts (a
// user is counted once however many sessions and nodes they have) and
// answers queries itself. One member owns each key (placement.hpp) and
// alone publishes its joins and leaves; when a member goes, each node drops
// what it reported, and the owner (a new one, if the old owner went)
// publishes the leaves that follow.

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "schemas/messages.hpp"
#include "schemas/token.hpp"

namespace switchyard {

/// What a presence pattern or query names: an exact topic or a room.
struct presence_target {
  /// `presence.<org>.<topic>` or `presence.<org>.room.<room>`.
  std::string key;
  std::string org;
  /// The exact topic, or empty for a room.
  std::string topic;
  /// The room id, or empty for a topic.
  std::string room;
};

/// Reads `presence.<org>.<exact topic>` or `presence.<org>.room.<room id>`;
/// on failure, `why` says what is wrong.
std::optional<presence_target> parse_presence_key(std::string_view key,
                                                  std::string* why);

/// The presence keys a subscription to the valid `pattern` of `org` counts
/// for: its own topic when it has no wildcard, and its room when it names
/// one; presence patterns count for none.
std::vector<std::string> presence_keys_of(std::string_view org,
                                          std::string_view pattern);

/// The key of exact topic `topic` of `org`.
std::string presence_topic_key(std::string_view org, std::string_view topic);

/// The key of room `room` of `org`.
std::string presence_room_key(std::string_view org, std::string_view room);

/// Whether `pattern` is a presence pattern (`presence.…`).
bool is_presence_pattern(std::string_view pattern);

/// Whether `c` may see presence `t`: of the token's org, and for a topic
/// what subscribing to it needs, for a room what subscribing to all of its
/// topics needs (the private-room check is the session's, as for those).
bool may_see_presence(const claims& c, const presence_target& t);

/// The room of `t`: its own, or that of its topic when that is a room's.
std::string room_of(const presence_target& t);

/// Whether a room directory's `get` answer refuses the user for good (no
/// such room, or one they may not read), rather than not yet (loading).
bool refuses_room(const outcome& res);

/// Whether `user` may be named in a presence query: 1 to 256 bytes of
/// valid UTF-8 (ids in tokens are; a query string may hold anything).
bool valid_presence_user(std::string_view user);

/// The presence state of one node. Not an actor: the session registry
/// owns it and sends what it returns.
class presence_book {
public:
  /// A user whose count changed: `sessions` is the new count.
  using change = presence_count;

  /// A user who appeared on or left a key.
  struct transition {
    std::string key;
    std::string user;
    bool joined;
    /// Users on the key after the change.
    size_t users;
  };

  // -- local side: this node's sessions ---------------------------------------

  /// `session` of `user` counts once more for `key`; returns the user's new
  /// number of sessions on `key` on this node when it changed (a session
  /// counts once per key, however many of its subscriptions count for it).
  std::optional<int32_t> join(const caf::actor_addr& session,
                              const std::string& user, const std::string& key);

  /// `session` counts once less for `key`; as `join`.
  std::optional<int32_t> leave(const caf::actor_addr& session,
                               const std::string& user, const std::string& key);

  /// Forgets `session` of `user`; returns the counts that changed.
  std::vector<change> drop(const caf::actor_addr& session,
                           const std::string& user);

  /// Every key and user this node's sessions count for, with their counts.
  std::vector<change> local() const;

  /// The keys this node's sessions count for.
  size_t local_keys() const {
    return local_.size();
  }

  // -- cluster side: every member's counts -----------------------------------

  /// Member `node` (started at `started_at`) holds `sessions` sessions of
  /// `user` on `key`. Returns the join or leave of the user, if any.
  std::optional<transition> set(const std::string& key, const std::string& user,
                                const std::string& node, int64_t started_at,
                                int32_t sessions);

  /// Replaces what member `node` reported with `counts` (its snapshot);
  /// returns the joins and leaves that makes.
  std::vector<transition> replace(const std::string& node, int64_t started_at,
                                  const std::vector<presence_count>& counts);

  /// Forgets what members that `alive` says are gone reported; returns the
  /// users that left with them.
  std::vector<transition>
  prune(const std::function<bool(const std::string& node, int64_t started_at)>&
          alive);

  /// Who is present on `key`, listing members up to `cap` users.
  presence_info info(const std::string& key, size_t cap) const;

  /// The keys someone in the cluster counts for.
  size_t cluster_keys() const {
    return cluster_.size();
  }

private:
  struct holder {
    std::string node;
    int64_t started_at;
    int32_t sessions;
  };

  /// Key -> user -> sessions of this node.
  std::unordered_map<std::string, std::unordered_map<std::string, int32_t>>
    local_;
  /// Session -> the keys it counts for, once per counting subscription.
  std::unordered_map<caf::actor_addr, std::vector<std::string>> keys_of_;
  /// Key -> user -> the members holding their sessions.
  std::unordered_map<std::string, std::map<std::string, std::vector<holder>>>
    cluster_;

  int32_t add(const std::string& key, const std::string& user, int32_t delta);
};

} // namespace switchyard
