// Placement of keyed actors (rooms, notifiers) on the members of a cluster
// by rendezvous hashing: every node computes the same owner from the same
// member list, and when a member leaves only the keys it owned move.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "actors/cluster_interfaces.hpp"

namespace switchyard {

/// The score of `member` for `key`: a 64-bit FNV-1a hash of both, mixed by
/// SplitMix64's finalizer. Fixed, so that every node, whatever its build,
/// computes the same scores.
uint64_t rendezvous_score(std::string_view member, std::string_view key);

/// The member of `members` that owns `key` (the highest score; ties, which
/// need two equal names, go to the first), or null when `members` is empty.
const node_card* owner_of(const member_view& members, std::string_view key);

/// The owner of `key` when that is another member than the first of
/// `members` (this node), or null: this node owns it, or runs alone.
const node_card* remote_owner(const member_view& members, std::string_view key);

/// Whether `sender` is the actor that `field` holds on a member of `members`
/// other than the first (this node): what one member asks all others (the
/// catch-up of streams, a user's sessions, a changed room record) is
/// answered locally and not asked around again.
bool sent_by_member(const caf::strong_actor_ptr& sender,
                    const member_view& members,
                    caf::strong_actor_ptr node_card::*field);

/// Whether `x` and `y` are one incarnation of one member: same name, same
/// start.
bool same_incarnation(const node_card& x, const node_card& y);

/// Whether `now` holds a member incarnation that `before` does not (a
/// member joined, rejoined or restarted).
bool has_newcomer(const member_view& before, const member_view& now);

/// The placement key of room `room` of `org`.
std::string room_key(std::string_view org, std::string_view room);

} // namespace switchyard
