// The history readers: detached actors (their JetStream calls block) that
// answer the replays of recovering subscriptions and `POST /v1/history`.
// A node runs a few, each behind a front that hands it one replay at a time
// and answers identical replays waiting meanwhile with one read: a
// reconnect storm queues in the fronts, loads JetStream and the node's
// scheduler by a bounded amount, and reads each topic's missed events once
// for all the clients that stood at the same position.

#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/history_interfaces.hpp"
#include "actors/history_port.hpp"

namespace switchyard {

/// What bounds one replay.
struct replay_limits {
  /// More matching events than this: `recovered:false`, reason `too_many`.
  size_t max_events;
  /// More bytes of payload than this: the same.
  size_t max_bytes;
};

/// A `history_actor` over `port`.
history_actor::behavior_type history_reader(history_actor::pointer self,
                                            std::shared_ptr<history_port> port,
                                            replay_limits limits);

/// State of a history front.
struct history_front_state {
  history_actor reader;
  /// Replays waiting, by `replay_key`, in arrival order of their first.
  std::map<std::string, std::vector<caf::typed_response_promise<replay_result>>>
    waiting;
  std::deque<std::pair<std::string, replay_request>> queue;
  bool busy = false;

  static inline const char* name = "history_front";
};

/// A `history_actor` before `reader` (linked: they end together). Only
/// replays that wait share a read: one that joined a read in progress could
/// miss what was stored between that read's start and its own hold.
history_actor::behavior_type
history_front(history_actor::stateful_pointer<history_front_state> self,
              history_actor reader);

/// What makes two replays the same read: pattern and position.
std::string replay_key(const replay_request& req);

} // namespace switchyard
