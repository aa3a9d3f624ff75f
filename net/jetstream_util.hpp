// What the node's JetStream clients share: ownership of nats.c objects, and
// a connection of their own with a JetStream context (their calls block, so
// none of them shares the event bus's connection).

#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nats/nats.h>

#include "net/nats_client.hpp"

namespace switchyard::net {

/// Destroys what a unique_ptr holds with nats.c's `Destroy` function.
template<auto Destroy>
struct destroy_with {
  template<class T>
  void operator()(T* x) const {
    Destroy(x);
  }
};

template<class T, auto Destroy>
using owned = std::unique_ptr<T, destroy_with<Destroy>>;

/// Unsubscribes, which deletes an ephemeral consumer at once (nats.c's
/// Destroy alone leaves it on the server until it times out), then frees.
void drop_subscription(natsSubscription* sub);

using js_subscription_ptr = owned<natsSubscription, drop_subscription>;

/// Connects to `cfg`'s servers as `name`, returning at once while NATS is
/// down (nats.c keeps trying in the background), and opens a JetStream
/// context whose calls wait at most `timeout_ms`. On failure, sets `error`
/// and leaves `conn` and `js` as they were; `component` names the client in
/// the log.
bool open_jetstream(const nats_settings& cfg, const char* name,
                    const char* component, int64_t timeout_ms,
                    natsConnection*& conn, jsCtx*& js, std::string& error);

} // namespace switchyard::net
