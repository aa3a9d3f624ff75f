// The history readers: detached actors (their JetStream calls block) that
// answer the replays of recovering subscriptions and `POST /v1/history`.
// A node runs a few; a reconnect storm queues in their mailboxes, so it
// loads JetStream and the node's scheduler by a bounded amount.

#pragma once

#include <memory>

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

} // namespace switchyard
