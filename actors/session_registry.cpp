#include "actors/session_registry.hpp"

#include "actors/gather.hpp"
#include "actors/log.hpp"
#include "actors/placement.hpp"
#include "schemas/topic.hpp"

#include <algorithm>
#include <memory>

#include <nlohmann/json.hpp>

namespace switchyard {

namespace {

using self_ptr
  = session_registry_actor::stateful_pointer<session_registry_state>;

auto log() {
  static auto instance = logger("presence");
  return instance;
}

/// The `sub` of a user key (`user_key`).
std::string sub_of(const std::string& user) {
  return user.substr(user.find('.') + 1);
}

/// This node's name among the members, and its start.
std::pair<std::string, int64_t> self_node(const session_registry_state& st) {
  if (st.members.empty())
    return {st.cfg.node, 0};
  return {st.members.front().name, st.members.front().started_at};
}

/// Publishes a join or leave on the key's own topic while the key has at
/// most the presence cap of users.
void announce(self_ptr self, const presence_book::transition& t) {
  auto& st = self->state;
  auto users = t.joined ? t.users : t.users + 1;
  if (users > st.cfg.presence_max_members || !st.cfg.publisher
      || !topic::valid_topic(t.key))
    return;
  event ev;
  ev.id = st.cfg.event_ids + "-p" + std::to_string(++st.presence_events);
  ev.topic = t.key;
  ev.ts = node_context::unix_ms();
  ev.source = "switchyard";
  ev.data = nlohmann::json{
    {"action", t.joined ? "join" : "leave"},
    {"user", t.user},
    {"users",
     t.users}}.dump();
  if (!st.cfg.clustered) {
    // Alone, this node's presence is its own: nodes that only share NATS
    // would publish conflicting counts on the same topics.
    self->send(st.cfg.topics, publish_atom::value, std::move(ev));
    return;
  }
  constexpr auto timeout = std::chrono::seconds(5);
  auto deadline = node_context::unix_ms() + 5000;
  self
    ->request(st.cfg.publisher, timeout, publish_atom::value, std::move(ev),
              deadline)
    .then(
      [key = t.key](const std::string& status) {
        if (!status.empty())
          log()->warn("presence event of {} not published: {}", key, status);
      },
      [key = t.key](caf::error& err) {
        log()->warn("presence event of {} not published: {}", key,
                    to_string(err));
      });
}

/// Takes member `node`'s count of `user` on `key`; the key's owner
/// publishes the join or leave it makes.
void apply(self_ptr self, const std::string& key, const std::string& user,
           const std::string& node, int64_t started_at, int32_t sessions,
           bool announced) {
  auto& st = self->state;
  if (auto t = st.presence.set(key, user, node, started_at, sessions);
      t && announced && remote_owner(st.members, key) == nullptr)
    announce(self, *t);
}

/// Takes this node's new count of `c.user` on `c.key`, and tells every
/// other member.
void report(self_ptr self, const presence_book::change& c) {
  auto& st = self->state;
  auto [name, started_at] = self_node(st);
  apply(self, c.key, c.user, name, started_at, c.sessions, true);
  for (size_t m = 1; m < st.members.size(); ++m)
    self->send(caf::actor_cast<session_registry_actor>(st.members[m].sessions),
               presence_atom::value, c.key, c.user, name, started_at,
               c.sessions, true);
}

/// Publishes what the key owners among `ts` must.
void announce_owned(self_ptr self,
                    const std::vector<presence_book::transition>& ts) {
  for (auto& t : ts)
    if (remote_owner(self->state.members, t.key) == nullptr)
      announce(self, t);
}

/// After a view change: drops what gone members reported (the owners
/// publish those leaves) and trades snapshots with newcomers: each side
/// replaces what it held of the other with the other's snapshot.
void rebalance(self_ptr self, const member_view& before) {
  auto& st = self->state;
  auto me = self_node(st).first;
  auto left = st.presence.prune(
    [&st, &me](const std::string& node, int64_t started_at) {
      return node == me
        || std::any_of(st.members.begin(), st.members.end(),
                       [&](const node_card& m) {
                         return m.name == node && m.started_at == started_at;
                       });
    });
  announce_owned(self, left);
  auto [name, started_at] = self_node(st);
  for (size_t m = 1; m < st.members.size(); ++m) {
    auto& member = st.members[m];
    if (std::any_of(before.begin(), before.end(), [&](const node_card& x) {
          return same_incarnation(x, member) && x.sessions == member.sessions;
        }))
      continue;
    self
      ->request(caf::actor_cast<session_registry_actor>(member.sessions),
                std::chrono::seconds(10), presence_atom::value, name,
                started_at, st.presence.local())
      .then(
        [self, node = member.name,
         started = member.started_at](std::vector<presence_count>& counts) {
          announce_owned(self,
                         self->state.presence.replace(node, started, counts));
        },
        [node = member.name](caf::error& err) {
          // Gone again, or slow: the next view change trades again.
          log()->warn("no presence snapshot from {}: {}", node, to_string(err));
        });
  }
}

} // namespace

std::string user_key(const std::string& org, const std::string& sub) {
  return org + '.' + sub;
}

size_t heartbeat_buckets(milliseconds interval) {
  auto n = interval.count() / 100;
  return static_cast<size_t>(std::clamp<int64_t>(n, 1, 64));
}

session_registry_state::config registry_config(const settings& cfg) {
  session_registry_state::config out;
  out.heartbeat_interval = cfg.heartbeat_interval;
  out.heartbeat_timeout = cfg.heartbeat_timeout;
  out.max_connections_per_user = cfg.max_connections_per_user;
  out.presence_max_members = cfg.presence_max_members;
  return out;
}

session_registry_actor::behavior_type session_registry(
  session_registry_actor::stateful_pointer<session_registry_state> self,
  session_registry_state::config cfg) {
  auto& st = self->state;
  st.cfg = cfg;
  auto interval = st.cfg.heartbeat_interval;
  st.buckets.resize(heartbeat_buckets(interval));
  auto step = interval / static_cast<int64_t>(st.buckets.size());
  // Buckets between a ping and its pong check; a timeout as long as the
  // interval is checked by the session at its next tick instead.
  auto timeout = st.cfg.heartbeat_timeout;
  auto steps = std::max<int64_t>(1, step.count());
  auto lag = static_cast<size_t>(
    std::max<int64_t>(1, (timeout.count() + steps - 1) / steps));
  self->delayed_send(self, step, tick_atom::value);
  self->set_down_handler([self](const caf::down_msg& dm) {
    // Buckets drop the handle lazily, at the session's next turn.
    auto& st = self->state;
    auto i = st.sessions.find(dm.source);
    if (i == st.sessions.end())
      return;
    for (auto& c : st.presence.drop(dm.source, sub_of(i->second)))
      report(self, c);
    if (auto u = st.per_user.find(i->second); u != st.per_user.end()) {
      auto& list = u->second;
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&dm](auto& x) {
                                  return x.address() == dm.source;
                                }),
                 list.end());
      if (list.empty())
        st.per_user.erase(u);
    }
    st.sessions.erase(i);
  });
  return {
    [self](register_atom, const std::string& org, const std::string& sub,
           const session_actor& session) {
      auto& st = self->state;
      if (st.sessions.count(session.address()) != 0)
        return true;
      auto user = user_key(org, sub);
      auto& list = st.per_user[user];
      if (list.size() >= st.cfg.max_connections_per_user)
        return false;
      list.push_back(session);
      self->monitor(session);
      st.sessions.emplace(session.address(), std::move(user));
      st.buckets[st.next_bucket++ % st.buckets.size()].push_back(session);
      return true;
    },
    [self, step, lag](tick_atom) {
      auto& st = self->state;
      auto n = st.buckets.size();
      if (lag < n)
        for (auto& session : st.buckets[(st.cursor + n - lag) % n])
          self->send(session, pong_due_atom::value);
      auto& bucket = st.buckets[st.cursor];
      st.cursor = (st.cursor + 1) % n;
      for (size_t i = 0; i < bucket.size();) {
        if (st.sessions.count(bucket[i].address()) == 0) {
          bucket[i] = std::move(bucket.back());
          bucket.pop_back();
          continue;
        }
        self->send(bucket[i], tick_atom::value);
        ++i;
      }
      self->delayed_send(self, step, tick_atom::value);
    },
    [self](sessions_atom atm,
           const std::string& user) -> caf::result<std::vector<session_actor>> {
      auto& st = self->state;
      auto i = st.per_user.find(user);
      auto here = i != st.per_user.end() ? i->second
                                         : std::vector<session_actor>{};
      if (st.members.size() < 2
          || sent_by_member(self->current_sender(), st.members,
                            &node_card::sessions))
        return here;
      // Asked here: the user's sessions on every live member.
      auto all = gather<session_actor>::make(self, st.members.size() - 1);
      all->result = std::move(here);
      for (size_t m = 1; m < st.members.size(); ++m)
        self
          ->request(
            caf::actor_cast<session_registry_actor>(st.members[m].sessions),
            std::chrono::seconds(5), atm, user)
          .then(
            [all](std::vector<session_actor>& there) {
              for (auto& x : there)
                all->result.push_back(std::move(x));
              all->done();
            },
            [all](caf::error&) {
              // A member gone or slow: its sessions end with it.
              all->done();
            });
      return caf::delegated<std::vector<session_actor>>{};
    },
    [self](members_atom, member_view& members) {
      auto before = std::move(self->state.members);
      self->state.members = std::move(members);
      rebalance(self, before);
    },
    [self](join_atom, const std::string& key, const session_actor& session) {
      auto& st = self->state;
      auto i = st.sessions.find(session.address());
      if (i == st.sessions.end())
        return; // gone already
      auto user = sub_of(i->second);
      if (auto n = st.presence.join(session.address(), user, key))
        report(self, {key, user, *n});
    },
    [self](leave_atom, const std::string& key, const session_actor& session) {
      auto& st = self->state;
      auto i = st.sessions.find(session.address());
      if (i == st.sessions.end())
        return;
      auto user = sub_of(i->second);
      if (auto n = st.presence.leave(session.address(), user, key))
        report(self, {key, user, *n});
    },
    [self](presence_atom, const std::string& key, const std::string& user,
           const std::string& node, int64_t started_at, int32_t sessions,
           bool announced) {
      // Only from the members this node sees (a dropped member's late
      // updates would come back as ghosts).
      auto& st = self->state;
      if (sent_by_member(self->current_sender(), st.members,
                         &node_card::sessions))
        apply(self, key, user, node, started_at, sessions, announced);
    },
    [self](presence_atom, const std::string& node, int64_t started_at,
           const std::vector<presence_count>& counts) {
      auto& st = self->state;
      if (sent_by_member(self->current_sender(), st.members,
                         &node_card::sessions))
        announce_owned(self, st.presence.replace(node, started_at, counts));
      return st.presence.local();
    },
    [self](presence_atom, const std::string& key) {
      auto& st = self->state;
      return st.presence.info(key, st.cfg.presence_max_members);
    },
    [self](sessions_atom atm) -> caf::result<std::vector<session_info>> {
      auto& st = self->state;
      if (st.sessions.empty())
        return std::vector<session_info>{};
      auto all = gather<session_info>::make(self, st.sessions.size());
      for (auto& kvp : st.sessions) {
        auto session = caf::actor_cast<session_actor>(kvp.first);
        if (!session) {
          all->done();
          continue;
        }
        self->request(session, std::chrono::seconds(5), atm)
          .then(
            [all](session_info& info) {
              all->result.emplace_back(std::move(info));
              all->done();
            },
            [all](caf::error&) {
              all->done();
            });
      }
      return caf::delegated<std::vector<session_info>>{};
    },
  };
}

} // namespace switchyard
