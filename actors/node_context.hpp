// What every actor of a node shares: settings, counters, the handles of the
// node-level actors and the registry that lets a topic actor reach a local
// session's socket queue without an actor message per event.

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/connection_port.hpp"
#include "actors/http_port.hpp"
#include "actors/metrics.hpp"
#include "actors/node_interfaces.hpp"
#include "actors/notification_channels.hpp"
#include "actors/notification_interfaces.hpp"
#include "actors/room_interfaces.hpp"
#include "schemas/ingest.hpp"
#include "schemas/token.hpp"

namespace switchyard {

using std::chrono::milliseconds;

/// The history stream (`--history*`): the events of `events.>` kept in
/// JetStream so that clients recover what they missed.
struct history_settings {
  /// A day: a phone off overnight still recovers.
  static constexpr milliseconds default_max_age{86'400'000};
  /// Stream limits by count and size; the first one reached drops the
  /// oldest events.
  static constexpr int64_t default_max_msgs = 10'000'000;
  static constexpr int64_t default_max_bytes = int64_t{1} << 30;
  /// Most events one subscribe replays: a client that missed more should
  /// load the current state instead (`recovered:false`, `too_many`).
  static constexpr size_t default_replay_max = 1000;
  /// Most payload bytes one replay carries, for the same reason.
  static constexpr size_t default_replay_max_bytes = 8 * 1024 * 1024;
  /// Replays and history pages read at once: each reader blocks on one
  /// JetStream call at a time.
  static constexpr int default_readers = 4;

  bool enabled = false;
  milliseconds max_age = default_max_age;
  int64_t max_msgs = default_max_msgs;
  int64_t max_bytes = default_max_bytes;
  size_t replay_max = default_replay_max;
  size_t replay_max_bytes = default_replay_max_bytes;
  int readers = default_readers;
};

/// Tunables of one node, with the defaults `switchyard --help` shows.
struct settings {
  // -- defaults, each with its reason ---------------------------------------

  /// Well under the 30-60 s idle timeouts of common proxies and NATs.
  static constexpr milliseconds default_heartbeat_interval{25'000};
  /// A pong over 10 s late means the path is dead for practical purposes.
  static constexpr milliseconds default_heartbeat_timeout{10'000};
  /// Time a client has to send its `auth` frame after the upgrade.
  static constexpr milliseconds default_auth_timeout{10'000};
  /// How long a closing handshake may take before the socket is cut.
  static constexpr milliseconds default_close_timeout{2'000};
  /// Largest inbound message; client frames are small control requests.
  static constexpr size_t default_max_frame_size = 64 * 1024;
  /// Distinct patterns per connection.
  static constexpr size_t default_max_subscriptions = 256;
  /// Bytes queued for one socket before it counts as a slow consumer: room
  /// for ~3000 typical 300-byte events, about a second of a busy stream.
  static constexpr size_t default_outbound_queue_limit = 1024 * 1024;
  /// Largest frame the batched subprotocols pack messages into: ~200
  /// typical events, so a busy stream costs its client few frames while
  /// one frame stays far below any client's message limit.
  static constexpr size_t default_batch_frame_size = 64 * 1024;
  /// How long a socket written to within this time waits to gather more
  /// before its next write: under load, fewer and larger writes (and, with
  /// the batched subprotocols, frames); an idle socket is written at once.
  static constexpr std::chrono::microseconds default_write_gather{500};
  /// A socket with this many bytes queued is written without waiting.
  static constexpr size_t default_write_gather_bytes = 32 * 1024;
  /// Inbound frames per second per connection (burst of the same size).
  static constexpr uint32_t default_max_inbound_rate = 100;
  /// Concurrent connections one user may hold on one node.
  static constexpr uint32_t default_max_connections_per_user = 32;
  /// Users of one presence key whose joins and leaves are published and
  /// listed; above, only the counts are (actors/presence.hpp).
  static constexpr uint32_t default_presence_max_members = 1000;
  /// How far `nbf` and `iat` may be ahead of the node's clock: NTP keeps
  /// clocks within a second or two, identity providers' within a few more.
  static constexpr milliseconds default_jwt_leeway{30'000};
  /// Deepest nesting in client frames, HTTP bodies and NATS envelopes: real
  /// documents nest a handful of levels, and 64 bounds the recursion of
  /// parsing and dumping to a few KiB of stack.
  static constexpr size_t default_max_json_depth = 64;
  /// An agent that sends no token for this long has stalled: its reply
  /// ends as failed and the room goes on.
  static constexpr milliseconds default_agent_stall_timeout{30'000};
  /// A room without requests for this long leaves memory (its actor and
  /// history); the next request loads it from the store again.
  static constexpr milliseconds default_room_idle_timeout{600'000};
  /// Longest text of a posted message: a chat message, not a document.
  static constexpr size_t default_max_message_text = 16 * 1024;
  /// Longest agent reply; a longer one ends as failed.
  static constexpr size_t default_max_reply_text = 256 * 1024;
  /// A client with this many bytes still to write gets the tokens of a
  /// reply coalesced rather than one event each.
  static constexpr size_t default_stream_coalesce_bytes = 64 * 1024;

  // -- values ---------------------------------------------------------------

  milliseconds heartbeat_interval = default_heartbeat_interval;
  milliseconds heartbeat_timeout = default_heartbeat_timeout;
  milliseconds auth_timeout = default_auth_timeout;
  milliseconds close_timeout = default_close_timeout;
  size_t max_frame_size = default_max_frame_size;
  size_t max_subscriptions = default_max_subscriptions;
  size_t outbound_queue_limit = default_outbound_queue_limit;
  size_t batch_frame_size = default_batch_frame_size;
  std::chrono::microseconds write_gather = default_write_gather;
  size_t write_gather_bytes = default_write_gather_bytes;
  uint32_t max_inbound_rate = default_max_inbound_rate;
  uint32_t max_connections_per_user = default_max_connections_per_user;
  uint32_t presence_max_members = default_presence_max_members;
  milliseconds jwt_leeway = default_jwt_leeway;
  /// The HS256 secret and the identity providers' public keys.
  key_set jwt_keys;
  /// Browser origins (`scheme://host[:port]`, lower case) that may open a
  /// WebSocket and call `/v1/*` cross-origin; `*` allows any. Empty: none.
  /// Requests without an `Origin` header (not from a browser) pass.
  std::vector<std::string> allowed_origins;
  size_t max_json_depth = default_max_json_depth;
  milliseconds agent_stall_timeout = default_agent_stall_timeout;
  milliseconds room_idle_timeout = default_room_idle_timeout;
  size_t max_message_text = default_max_message_text;
  size_t max_reply_text = default_max_reply_text;
  size_t stream_coalesce_bytes = default_stream_coalesce_bytes;
  notify_settings notify;
  /// Largest body of `POST /v1/ingest/{source}` (other requests keep
  /// `max_frame_size`).
  size_t max_ingest_body = ingest::default_max_body;
  /// Webhook sources (`[ingest.<source>]` sections of the config file).
  std::vector<ingest::source> ingest_sources;
  history_settings history;
};

/// Maps local session actors to their connection: topic actors find a
/// session's frame queue here, and shutdown closes every connection.
class sink_registry {
public:
  void add(caf::actor_id id, std::shared_ptr<connection_port> conn);

  void remove(caf::actor_id id);

  /// Returns the connection of a live local session, or null.
  std::shared_ptr<connection_port> find(caf::actor_id id) const;

  /// Starts the closing handshake of every registered connection.
  void close_all(uint16_t code, const std::string& reason);

private:
  mutable std::mutex mtx_;
  std::unordered_map<caf::actor_id, std::weak_ptr<connection_port>> sinks_;
};

struct event;
class agent_registry;

/// Node-unique ids: a random node id, new at every start (so ids never
/// repeat across restarts), and a sequence.
class id_source {
public:
  id_source();

  /// Returns `<node id>-<sequence>`.
  std::string next();

  const std::string& node_id() const {
    return node_id_;
  }

private:
  std::string node_id_;
  std::atomic<uint64_t> seq_{0};
};

/// Where events enter the node: the in-process bus, or the NATS bridge.
class bus_port {
public:
  virtual ~bus_port() = default;

  /// Publishes `ev` to every node's subscribers. Returns an empty string on
  /// success, else why the event was not accepted (HTTP 503). May block
  /// (nats.c writes a full buffer to the socket in the caller's thread), so
  /// actors publish through the bus_publisher actor.
  virtual std::string publish(event ev) = 0;

  /// "in-process", "up" or "down".
  virtual std::string status() const = 0;

  /// Appends bus metrics in Prometheus text format.
  virtual void render_metrics(std::string& out) const = 0;
};

/// Shared state of one node.
struct node_context {
  explicit node_context(settings cfg);

  /// Returns a node-unique event id: `<node id>-<sequence>`.
  std::string next_event_id() {
    return ids.next();
  }

  /// Unix time in milliseconds.
  static int64_t unix_ms();

  /// Publishes through the bus; see bus_port::publish.
  std::string publish(event ev);

  /// The bus state for /healthz.
  std::string bus_status() const;

  /// Appends the bus metrics.
  void extra_metrics(std::string& out) const;

  settings cfg;
  metrics stats;
  sink_registry sinks;
  id_source ids;
  /// Root of the topic tree (topic_root actor).
  topic_router_actor topics;
  /// Where publishes go.
  std::shared_ptr<bus_port> bus;
  /// Live sessions by user (session_registry actor).
  session_registry_actor sessions;
  /// The bus bridge (NATS interest), or null on the in-process bus.
  bus_bridge_actor bridge;
  /// Publishes clients' events through `bus` off the scheduler's threads
  /// (bus_publisher actor).
  bus_publisher_actor publisher;
  /// The history readers (actors/history.hpp); none without --history.
  std::vector<history_actor> history;
  /// The rooms (room_directory actor).
  room_directory_actor rooms;
  /// Rules, contact points and notifiers (notification_directory actor).
  notification_directory_actor notifications;
  /// The node's cluster actor, or null when the node runs alone.
  cluster_actor cluster;
  /// The agent behaviors rooms may use.
  std::shared_ptr<const agent_registry> agents;
  /// Streamed HTTP requests for agents (net::make_http_port).
  std::shared_ptr<http_port> http;
};

using node_context_ptr = std::shared_ptr<node_context>;

} // namespace switchyard
