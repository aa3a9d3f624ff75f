#include "actors/topic_root.hpp"

#include <chrono>

#include "actors/gather.hpp"
#include "actors/topic_router.hpp"
#include "schemas/messages.hpp"
#include "schemas/topic.hpp"

namespace switchyard {

namespace {

using self_ptr = topic_router_actor::stateful_pointer<topic_root_state>;

/// The router of the org of `pattern` (spawned on first use), counting one
/// more subscribe forwarded to it; null for a pattern outside
/// `events.<org>.`.
topic_router_actor router_of(self_ptr self, const std::string& pattern) {
  auto org = std::string{topic::org_of(pattern)};
  if (org.empty())
    return {};
  auto& st = self->state;
  auto i = st.orgs.find(org);
  if (i == st.orgs.end()) {
    auto router = self->spawn(
      topic_router, org, caf::actor_cast<topic_router_actor>(self), st.deps);
    self->monitor(router);
    i = st.orgs.emplace(org, topic_root_state::entry{router}).first;
  }
  ++i->second.forwarded;
  return i->second.router;
}

/// Hands a subscribe (`subscribe_atom` or `recover_atom`) to the router of
/// its org.
template<class Atom>
caf::result<subscription_actor> forward(self_ptr self, Atom atm,
                                        std::string& pattern,
                                        subscriber_actor& session) {
  auto router = router_of(self, pattern);
  if (!router)
    return caf::make_error(error_code::bad_pattern,
                           "pattern outside events.<org>.");
  return self->delegate(router, atm, std::move(pattern), std::move(session));
}

} // namespace

topic_router_actor::behavior_type
topic_root(topic_router_actor::stateful_pointer<topic_root_state> self,
           topic_deps_ptr deps) {
  self->state.deps = std::move(deps);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& orgs = self->state.orgs;
    for (auto i = orgs.begin(); i != orgs.end(); ++i)
      if (i->second.router.address() == dm.source) {
        orgs.erase(i);
        return;
      }
  });
  // Routers are monitored, not linked: a stopping root stops them itself.
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    for (auto& kvp : self->state.orgs)
      self->send_exit(kvp.second.router, msg.reason);
    self->quit(msg.reason);
  });
  return {
    [self](subscribe_atom atm, std::string& pattern,
           subscriber_actor& session) -> caf::result<subscription_actor> {
      return forward(self, atm, pattern, session);
    },
    [self](recover_atom atm, std::string& pattern,
           subscriber_actor& session) -> caf::result<subscription_actor> {
      return forward(self, atm, pattern, session);
    },
    [self](publish_atom atm, event& ev) {
      auto org = topic::org_of(ev.topic);
      auto& orgs = self->state.orgs;
      auto i = orgs.find(std::string{org});
      if (i != orgs.end())
        self->send(i->second.router, atm, std::move(ev));
    },
    [self](count_atom, const std::string& org, uint64_t patterns,
           uint64_t received) {
      auto& orgs = self->state.orgs;
      auto i = orgs.find(org);
      if (i == orgs.end() || patterns != 0 || received != i->second.forwarded)
        return;
      self->demonitor(i->second.router.address());
      self->send_exit(i->second.router, caf::exit_reason::user_shutdown);
      orgs.erase(i);
    },
    [self](topics_atom atm) -> caf::result<std::vector<topic_info>> {
      auto& orgs = self->state.orgs;
      if (orgs.empty())
        return std::vector<topic_info>{};
      auto all = gather<topic_info>::make(self, orgs.size());
      for (auto& kvp : orgs)
        self->request(kvp.second.router, std::chrono::seconds(5), atm)
          .then(
            [all](std::vector<topic_info>& part) {
              for (auto& x : part)
                all->result.emplace_back(std::move(x));
              all->done();
            },
            [all](caf::error&) {
              all->done();
            });
      return caf::delegated<std::vector<topic_info>>{};
    },
  };
}

} // namespace switchyard
