#include "actors/session_registry.hpp"

namespace switchyard {

caf::behavior
session_registry(caf::stateful_actor<session_registry_state>* self,
                 node_context_ptr ctx) {
  self->state.ctx = std::move(ctx);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    auto i = st.sessions.find(dm.source);
    if (i == st.sessions.end())
      return;
    auto u = st.per_user.find(i->second.user);
    if (u != st.per_user.end() && --u->second == 0)
      st.per_user.erase(u);
    st.sessions.erase(i);
  });
  return {
    [self](register_atom, session_info& info, const caf::actor& session) {
      auto& st = self->state;
      auto i = st.sessions.find(session.address());
      if (i != st.sessions.end()) {
        i->second = std::move(info);
        return true;
      }
      auto& count = st.per_user[info.user];
      if (count >= st.ctx->cfg.max_connections_per_user)
        return false;
      ++count;
      self->monitor(session);
      st.sessions.emplace(session.address(), std::move(info));
      return true;
    },
    [self](sessions_atom) {
      std::vector<session_info> result;
      result.reserve(self->state.sessions.size());
      for (auto& kvp : self->state.sessions)
        result.emplace_back(kvp.second);
      return result;
    },
  };
}

} // namespace switchyard
