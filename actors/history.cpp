#include "actors/history.hpp"

#include "schemas/messages.hpp"

namespace switchyard {

history_actor::behavior_type history_reader(history_actor::pointer,
                                            std::shared_ptr<history_port> port,
                                            replay_limits limits) {
  return {
    [port, limits](replay_atom, const replay_request& req) {
      return port->replay(req, limits.max_events, limits.max_bytes);
    },
    [port](history_atom, const std::string& pattern, uint32_t limit,
           uint64_t before) {
      return port->page(pattern, limit, before);
    },
  };
}

std::string replay_key(const replay_request& req) {
  auto key = req.pattern + '\n';
  if (req.by_time)
    key += "t" + std::to_string(req.since_ts);
  else
    key += std::to_string(req.since) + '\n' + req.epoch;
  return key;
}

namespace {

using front_ptr = history_actor::stateful_pointer<history_front_state>;

/// Hands the reader the oldest waiting replay, for all its waiters.
void next_replay(front_ptr self) {
  auto& st = self->state;
  if (st.busy || st.queue.empty())
    return;
  st.busy = true;
  auto [key, req] = std::move(st.queue.front());
  st.queue.pop_front();
  // From now on an identical replay waits for a read of its own.
  auto i = st.waiting.find(key);
  auto waiters
    = std::make_shared<std::vector<caf::typed_response_promise<replay_result>>>(
      std::move(i->second));
  st.waiting.erase(i);
  auto finish = [self, waiters](auto&& answer) {
    for (auto& rp : *waiters)
      rp.deliver(answer);
    self->state.busy = false;
    next_replay(self);
  };
  self->request(st.reader, caf::infinite, replay_atom::value, std::move(req))
    .then(
      [finish](replay_result& res) mutable {
        finish(res);
      },
      [finish](caf::error& err) mutable {
        finish(err);
      });
}

} // namespace

history_actor::behavior_type
history_front(history_actor::stateful_pointer<history_front_state> self,
              history_actor reader) {
  self->link_to(reader);
  self->state.reader = std::move(reader);
  return {
    [self](replay_atom, replay_request& req) -> caf::result<replay_result> {
      auto& st = self->state;
      auto key = replay_key(req);
      auto rp = self->make_response_promise<replay_result>();
      auto& list = st.waiting[key];
      list.push_back(rp);
      if (list.size() == 1)
        st.queue.emplace_back(std::move(key), std::move(req));
      next_replay(self);
      return rp;
    },
    [self](history_atom atm, const std::string& pattern, uint32_t limit,
           uint64_t before) {
      return self->delegate(self->state.reader, atm, pattern, limit, before);
    },
  };
}

} // namespace switchyard
