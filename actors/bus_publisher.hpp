// Publishing from clients: the checks and the event that POST /v1/publish
// and the WebSocket `publish` frame share, and the bus-publisher actor that
// makes the one call into the bus that can block.
//
// nats.c's natsConnection_Publish appends to the connection's 32 KiB write
// buffer under the connection's mutex; a full buffer is written to the
// (blocking, no write deadline) socket right there, and the mutex is also
// held by nats.c's flusher while it writes. So a publish can wait as long as
// the NATS server or the network stalls. The bus publisher runs detached, on
// a thread of its own, so sessions only ever wait for its reply
// asynchronously and the scheduler's threads never block.

#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <caf/all.hpp>

#include "actors/node_context.hpp"
#include "schemas/messages.hpp"
#include "schemas/token.hpp"

namespace switchyard {

/// How long a session waits for the bus to take a client's event before it
/// answers `unavailable`: a bus that takes longer is as good as down to a
/// client waiting for its `ok`, and the session reads no other frame
/// meanwhile. Well under the heartbeat timeout, so pings are not held up
/// into a 4408.
constexpr std::chrono::milliseconds publish_timeout{5'000};

/// Why a client may not publish: an error code of protocol v1 and a message.
struct publish_refusal {
  const char* code;
  std::string message;
};

/// Checks that token `c` may publish to `topic`: the topic grammar
/// (`bad_topic`, with the validator's reason), then the org fence and
/// `pub_allow` of `may_publish` (`forbidden`). Nothing when it may.
std::optional<publish_refusal> check_publish(const claims& c,
                                             const std::string& topic);

/// The event a client with token `c` publishes to `topic` (see
/// `check_publish`): `id` if it chose one (already checked with
/// `valid_event_id`), else a node-assigned one; `ts` now, `source` the
/// token's `sub`, `data` the payload as JSON text.
event client_event(id_source& ids, const claims& c, std::string topic,
                   std::string id, std::string data);

/// State of the bus publisher.
struct bus_publisher_state {
  std::shared_ptr<bus_port> bus;

  static inline const char* name = "bus_publisher";
};

/// A `bus_publisher_actor` over `bus`: an event still waiting at its
/// deadline (its session has answered `unavailable` by then) is dropped
/// unpublished. Spawn it `caf::detached` outside of unit tests.
bus_publisher_actor::behavior_type
bus_publisher(bus_publisher_actor::stateful_pointer<bus_publisher_state> self,
              std::shared_ptr<bus_port> bus);

} // namespace switchyard
