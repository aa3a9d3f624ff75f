#include "actors/session_registry.hpp"

#include "actors/gather.hpp"
#include "actors/placement.hpp"

#include <algorithm>
#include <memory>

namespace switchyard {

std::string user_key(const std::string& org, const std::string& sub) {
  return org + '.' + sub;
}

size_t heartbeat_buckets(milliseconds interval) {
  auto n = interval.count() / 100;
  return static_cast<size_t>(std::clamp<int64_t>(n, 1, 64));
}

session_registry_state::config registry_config(const settings& cfg) {
  return {cfg.heartbeat_interval, cfg.heartbeat_timeout,
          cfg.max_connections_per_user};
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
      self->state.members = std::move(members);
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
