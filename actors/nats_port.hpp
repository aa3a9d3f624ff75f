// NATS as the node's actors use it: interest subscriptions for the topic
// actors (the bus bridge) and plain subjects (the agent gateway).
// net/nats_client.hpp implements it over nats.c; actors see only this
// interface, so they depend on neither nats.c nor the network layer.

#pragma once

#include <functional>
#include <memory>
#include <string>

#include <caf/all.hpp>

#include "actors/node_context.hpp"
#include "actors/node_interfaces.hpp"

namespace switchyard {

class nats_port : public bus_port {
public:
  /// One subscription, opaque to callers; ends with `unsubscribe`.
  class subscription {
  public:
    virtual ~subscription() = default;
  };

  using subscription_ptr = std::shared_ptr<subscription>;

  /// A message as received: subject, reply subject (may be empty), payload.
  using raw_handler = std::function<void(std::string subject, std::string reply,
                                         std::string data)>;

  /// Subscribes `pattern`; its events go to topic actor `node` as
  /// `(publish_atom, event)`. Does not block (the SUB is buffered).
  virtual subscription_ptr
  subscribe(const std::string& pattern, topic_actor node)
    = 0;

  /// Drops a subscription of `subscribe` or `subscribe_raw`.
  virtual void unsubscribe(const subscription_ptr& sub) = 0;

  /// Subscribes `subject` (in queue group `queue` unless empty); each
  /// message goes to `handler` on a NATS thread, which must not block.
  /// Messages larger than `max_bytes` are dropped and counted as malformed.
  virtual subscription_ptr subscribe_raw(const std::string& subject,
                                         const std::string& queue,
                                         size_t max_bytes, raw_handler handler)
    = 0;

  /// Publishes `data` to `subject` as is. Returns an empty string on
  /// success. May block like `publish`.
  virtual std::string
  publish_raw(const std::string& subject, const std::string& data)
    = 0;

  /// Calls `done(confirmed)` from a NATS thread once the server has
  /// processed everything sent so far (one round trip), or at once with
  /// false while disconnected.
  virtual void flush_async(std::function<void(bool)> done) = 0;
};

} // namespace switchyard
