#include "actors/room_directory.hpp"

#include <algorithm>
#include <random>

#include "actors/log.hpp"
#include "actors/placement.hpp"
#include "actors/room.hpp"
#include "schemas/messages.hpp"
#include "schemas/topic.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("rooms");
  return instance;
}

using directory_ptr
  = room_directory_actor::stateful_pointer<room_directory_state>;

/// Longest room name.
constexpr size_t max_room_name = 200;

outcome loading() {
  return outcome::fail("unavailable",
                       "rooms are loading from the store; retry");
}

std::string new_room_id() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  std::string id = "conv_";
  for (int word = 0; word < 2; ++word) {
    auto bits = gen();
    for (int i = 0; i < 12; ++i, bits >>= 4)
      id.push_back(hex[bits & 0xf]);
  }
  return id;
}

void load(directory_ptr self) {
  auto& st = self->state;
  self->request(st.store, std::chrono::seconds(30), load_all_atom::value)
    .then(
      [self](outcome& res, std::vector<room_record>& rooms) {
        auto& st = self->state;
        if (!res.ok()) {
          log()->warn("rooms not loaded ({}); retrying", res.message);
          self->delayed_send(self, room_load_retry, updated_atom::value,
                             room_record{});
          return;
        }
        for (auto& r : rooms)
          st.rooms.emplace(r.id, std::move(r));
        st.loaded = true;
        log()->info("{} rooms loaded", st.rooms.size());
      },
      [self](caf::error& err) {
        log()->warn("rooms not loaded ({}); retrying", to_string(err));
        self->delayed_send(self, room_load_retry, updated_atom::value,
                           room_record{});
      });
}

/// Whether another member's directory sent the message being handled.
bool from_peer(directory_ptr self) {
  return sent_by_member(self->current_sender(), self->state.members,
                        &node_card::rooms);
}

/// The directory of the member that owns room `id` of `org`, or null when
/// this node owns it (or runs alone).
room_directory_actor owner_directory(directory_ptr self, const std::string& org,
                                     const std::string& id) {
  auto* owner = remote_owner(self->state.members, room_key(org, id));
  return owner ? caf::actor_cast<room_directory_actor>(owner->rooms)
               : room_directory_actor{};
}

/// Passes a record change on to the other members' directories.
void share(directory_ptr self, const room_record& rec) {
  auto& members = self->state.members;
  for (size_t i = 1; i < members.size(); ++i)
    self->send(caf::actor_cast<room_directory_actor>(members[i].rooms),
               updated_atom::value, rec);
}

/// Ends the local room actors of rooms another member owns now (a member
/// joined): one room, one actor, so its messages keep one order. Their
/// replies in flight end failed, their text so far kept.
void hand_over(directory_ptr self) {
  auto& st = self->state;
  for (auto i = st.active.begin(); i != st.active.end();) {
    auto r = st.rooms.find(i->first);
    if (r != st.rooms.end() && owner_directory(self, r->second.org, i->first)) {
      log()->info("room {} moves to another member", i->first);
      self->demonitor(i->second.address());
      self->send_exit(i->second, caf::exit_reason::user_shutdown);
      i = st.active.erase(i);
    } else {
      ++i;
    }
  }
}

/// The replies streaming on this node whose topic `pattern` matches and that
/// `user` may see.
std::vector<stream_actor>
local_streams(directory_ptr self, const std::string& org,
              const std::string& user, const std::string& pattern) {
  auto& st = self->state;
  std::vector<stream_actor> wanted;
  for (auto& kvp : st.streams) {
    auto& s = kvp.second;
    if (s.org != org || !topic::matches(pattern, s.topic))
      continue;
    auto r = st.rooms.find(s.room);
    if (r == st.rooms.end()
        || (r->second.is_private && !r->second.has_user(user)))
      continue;
    wanted.push_back(s.handle);
  }
  return wanted;
}

/// Resolves room `id` on this node: its actor, spawned if need be.
std::pair<outcome, room_actor>
resolve_here(directory_ptr self, const caller& who, const std::string& id) {
  auto& st = self->state;
  auto i = st.rooms.find(id);
  // Another org's room is as good as none: ids reveal nothing.
  if (i == st.rooms.end() || i->second.org != who.org)
    return {outcome::fail("not_found", "no such room"), room_actor{}};
  auto& hdl = st.active[id];
  if (!hdl) {
    hdl = self->system().spawn(room_server, i->second, st.deps, st.store,
                               caf::actor_cast<room_directory_actor>(self));
    self->monitor(hdl);
  }
  return {outcome{}, hdl};
}

/// Answers `rp` with the room's actor from its owner (or from this node,
/// should the current view make it the owner). The forward stays on record
/// until answered: when its member leaves the view first, it goes to the
/// next owner at once rather than waiting out the request's timeout.
void forward_resolve(directory_ptr self, const caller& who,
                     const std::string& id,
                     caf::typed_response_promise<outcome, room_actor> rp) {
  auto& st = self->state;
  auto* owner = remote_owner(st.members, room_key(who.org, id));
  if (!owner) {
    auto [res, hdl] = resolve_here(self, who, id);
    rp.deliver(std::move(res), std::move(hdl));
    return;
  }
  auto key = ++st.last_forward;
  st.forwards.emplace(key,
                      room_directory_state::forward{who, id, rp, owner->name});
  self
    ->request(caf::actor_cast<room_directory_actor>(owner->rooms),
              std::chrono::seconds(30), resolve_atom::value, who, id)
    .then(
      [self, key](outcome& res, room_actor& hdl) {
        auto& fw = self->state.forwards;
        if (auto i = fw.find(key); i != fw.end()) {
          i->second.rp.deliver(std::move(res), std::move(hdl));
          fw.erase(i);
        }
      },
      [self, key](caf::error& err) {
        auto& fw = self->state.forwards;
        if (auto i = fw.find(key); i != fw.end()) {
          i->second.rp.deliver(
            outcome::fail("unavailable",
                          "the room's node did not answer: " + to_string(err)),
            room_actor{});
          fw.erase(i);
        }
      });
}

/// Sends the forwards whose member left the view to the rooms' next owners.
void reroute_forwards(directory_ptr self) {
  auto& st = self->state;
  std::vector<room_directory_state::forward> orphans;
  for (auto i = st.forwards.begin(); i != st.forwards.end();) {
    auto alive = std::any_of(st.members.begin(), st.members.end(),
                             [&](auto& m) {
                               return m.name == i->second.owner;
                             });
    if (alive) {
      ++i;
    } else {
      orphans.push_back(std::move(i->second));
      i = st.forwards.erase(i);
    }
  }
  for (auto& x : orphans)
    forward_resolve(self, x.who, x.id, std::move(x.rp));
}

} // namespace

room_directory_actor::behavior_type
room_directory(directory_ptr self, room_deps_ptr deps, room_store_actor store) {
  auto& st = self->state;
  st.deps = std::move(deps);
  st.store = std::move(store);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    if (st.streams.erase(dm.source) != 0)
      return;
    for (auto i = st.active.begin(); i != st.active.end(); ++i)
      if (i->second.address() == dm.source) {
        st.active.erase(i);
        return;
      }
  });
  // The rooms and their replies end with the directory (node shutdown).
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& kvp : self->state.active)
      self->send_exit(kvp.second, msg.reason);
    for (auto& kvp : self->state.streams)
      self->send_exit(kvp.second.handle, msg.reason);
    self->quit(msg.reason);
  });
  load(self);
  return {
    [self](create_atom, const caller& who, std::string& name,
           bool is_private) -> caf::result<outcome, room_record> {
      auto& st = self->state;
      if (!st.loaded)
        return {loading(), room_record{}};
      if (name.empty() || name.size() > max_room_name)
        return {outcome::fail("bad_request",
                              "name must be 1 to "
                                + std::to_string(max_room_name) + " bytes"),
                room_record{}};
      room_record rec;
      do
        rec.id = new_room_id();
      while (st.rooms.count(rec.id) != 0);
      rec.org = who.org;
      rec.name = std::move(name);
      rec.is_private = is_private;
      rec.created_by = who.user;
      rec.created_at = node_context::unix_ms();
      rec.participants.push_back(
        participant{who.user, "user", {}, {}, {}, rec.created_at});
      auto rp = self->make_response_promise<outcome, room_record>();
      self->request(st.store, std::chrono::seconds(30), put_atom::value, rec)
        .then(
          [self, rp, rec](const outcome& res) mutable {
            if (res.ok()) {
              self->state.rooms.emplace(rec.id, rec);
              share(self, rec);
            }
            rp.deliver(res, res.ok() ? rec : room_record{});
          },
          [rp](caf::error& err) mutable {
            rp.deliver(outcome::fail("unavailable", to_string(err)),
                       room_record{});
          });
      return rp;
    },
    [self](list_atom, const caller& who, const std::string& after,
           uint32_t limit) -> caf::result<outcome, std::vector<room_record>> {
      auto& st = self->state;
      if (!st.loaded)
        return {loading(), std::vector<room_record>{}};
      if (limit == 0)
        limit = default_room_page;
      limit = std::min(limit, max_room_page);
      std::vector<room_record> out;
      for (auto i = st.rooms.upper_bound(after);
           i != st.rooms.end() && out.size() < limit; ++i)
        if (i->second.org == who.org && i->second.has_user(who.user))
          out.push_back(i->second);
      return {outcome{}, std::move(out)};
    },
    [self](resolve_atom, const caller& who,
           const std::string& id) -> caf::result<outcome, room_actor> {
      auto& st = self->state;
      if (!st.loaded)
        return {loading(), room_actor{}};
      // Passed on by this node's own view, also when another member passed
      // it here: each hop goes to a member that scores higher for the room
      // than the one before (the best of a view that holds both), so a
      // request never circles, and a node that handed a room over never
      // serves it again for a member that has not seen the change.
      if (owner_directory(self, who.org, id)) {
        auto rp = self->make_response_promise<outcome, room_actor>();
        forward_resolve(self, who, id, rp);
        return rp;
      }
      auto [res, hdl] = resolve_here(self, who, id);
      return {std::move(res), std::move(hdl)};
    },
    [self](get_atom, const caller& who,
           const std::string& id) -> caf::result<outcome, room_record> {
      auto& st = self->state;
      if (!st.loaded)
        return {loading(), room_record{}};
      auto i = st.rooms.find(id);
      if (i == st.rooms.end() || i->second.org != who.org)
        return {outcome::fail("not_found", "no such room"), room_record{}};
      if (!i->second.visible_to(who))
        return {outcome::fail("forbidden",
                              "not a participant of this private room"),
                room_record{}};
      return {outcome{}, i->second};
    },
    [self](access_atom, const std::string& org, const std::string& user,
           const std::string& id) {
      auto& st = self->state;
      auto i = st.rooms.find(id);
      if (i == st.rooms.end() || i->second.org != org)
        return true;
      return !i->second.is_private || i->second.has_user(user);
    },
    [self](
      catch_up_atom, const std::string& org, const std::string& user,
      const std::string& pattern) -> caf::result<std::vector<stream_snapshot>> {
      auto wanted = local_streams(self, org, user, pattern);
      auto& members = self->state.members;
      auto ask_peers = !from_peer(self) && members.size() > 1;
      if (wanted.empty() && !ask_peers)
        return std::vector<stream_snapshot>{};
      struct gather {
        caf::typed_response_promise<std::vector<stream_snapshot>> rp;
        std::vector<stream_snapshot> got;
        size_t left;
      };
      auto g = std::make_shared<gather>(
        gather{self->make_response_promise<std::vector<stream_snapshot>>(),
               {},
               wanted.size() + (ask_peers ? members.size() - 1 : 0)});
      auto one_done = [g] {
        if (--g->left == 0)
          g->rp.deliver(std::move(g->got));
      };
      // The other members' replies: a room streams on its owner's node.
      if (ask_peers)
        for (size_t i = 1; i < members.size(); ++i)
          self
            ->request(caf::actor_cast<room_directory_actor>(members[i].rooms),
                      std::chrono::seconds(5), catch_up_atom::value, org, user,
                      pattern)
            .then(
              [g, one_done](std::vector<stream_snapshot>& snaps) {
                for (auto& snap : snaps)
                  g->got.push_back(std::move(snap));
                one_done();
              },
              [one_done](caf::error&) {
                // A member gone or slow: its replies go on live.
                one_done();
              });
      for (auto& hdl : wanted)
        self->request(hdl, std::chrono::seconds(5), snapshot_atom::value)
          .then(
            [g, one_done](stream_snapshot& snap) {
              // A reply with no token yet has nothing to catch up on.
              if (snap.index >= 0)
                g->got.push_back(std::move(snap));
              one_done();
            },
            [one_done](caf::error&) {
              // Ended meanwhile: its last events are on their way live.
              one_done();
            });
      return g->rp;
    },
    [self](updated_atom, room_record& rec) {
      if (rec.id.empty()) { // the retry timer of the first load
        if (!self->state.loaded)
          load(self);
        return;
      }
      if (!from_peer(self))
        share(self, rec);
      self->state.rooms[rec.id] = std::move(rec);
    },
    [self](members_atom, member_view& members) {
      auto& st = self->state;
      auto joined = has_newcomer(st.members, members);
      st.members = std::move(members);
      hand_over(self);
      reroute_forwards(self);
      // A member that joins or rejoins after a partition may have made rooms
      // this node never heard of: read the records again (those held here
      // stay as they are).
      if (joined && st.loaded)
        load(self);
    },
    [self](stream_open_atom, std::string& org, std::string& room,
           std::string& topic, stream_actor& handle) {
      self->monitor(handle);
      self->state.streams.emplace(
        handle.address(),
        room_directory_state::open_stream{std::move(org), std::move(room),
                                          std::move(topic), handle});
    },
  };
}

} // namespace switchyard
