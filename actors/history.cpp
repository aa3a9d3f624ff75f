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

} // namespace switchyard
