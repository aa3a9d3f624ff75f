// RAII wrapper of one nats.c connection, and the node's bus_port when the
// node runs with --nats. nats.c calls our handlers on its own threads; each
// handler decodes, hands the event to a topic actor with anon_send and
// returns. Blocking nats.c calls (flush) run on this wrapper's own worker
// thread, never on an actor's or an I/O thread.

#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <nats/nats.h>

#include "actors/history_port.hpp"
#include "actors/log_limiter.hpp"
#include "actors/nats_port.hpp"
#include "actors/node_context.hpp"
#include "schemas/envelope.hpp"
#include "schemas/messages.hpp"

namespace switchyard::net {

/// Connection settings, from the --nats* flags.
struct nats_settings {
  /// Reconnect delay after the first failed attempt; doubles up to the max.
  static constexpr std::chrono::milliseconds default_reconnect_wait{250};
  static constexpr std::chrono::milliseconds default_reconnect_wait_max{5000};
  /// nats.c's own defaults (65536 messages, 64 MiB) per subscription.
  static constexpr int default_pending_msgs = 65536;
  static constexpr int64_t default_pending_bytes = 64 * 1024 * 1024;

  std::vector<std::string> servers;
  std::string user;
  std::string password;
  std::string token;
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::chrono::milliseconds reconnect_wait = default_reconnect_wait;
  std::chrono::milliseconds reconnect_wait_max = default_reconnect_wait_max;
  int pending_msgs = default_pending_msgs;
  int64_t pending_bytes = default_pending_bytes;
  int delivery_threads = 1;
  /// Copies JetStream keeps of the buckets and stream the node creates
  /// (`--nats-replicas`; at most the NATS cluster's size).
  int replicas = 1;
};

/// Applies the connection part of `cfg` to `opts`: servers, credentials,
/// TLS, and endless reconnects with the backoff of `cfg`. Every connection of
/// a node (the bus, the room store) connects the same way. nats.c reads
/// `cfg` from its reconnect thread until the connection is closed, so `cfg`
/// must outlive the connection. Returns false and sets `error`, naming the
/// flag, when a setting is unusable (bad URL, unreadable TLS files).
bool apply_nats_settings(natsOptions* opts, const nats_settings& cfg,
                         std::string& error);

/// Whether `msg` holds a JSON envelope (its `Content-Type` header says
/// `application/json`); else it is msgpack.
bool json_envelope(natsMsg* msg);

/// One NATS connection of a node.
class nats_client : public nats_port {
public:
  // -- constructors -----------------------------------------------------------

  /// Creates the client and starts connecting in the background (the node
  /// starts even when NATS is down). Returns null and sets `error` when the
  /// settings are unusable (bad URL, unreadable TLS files).
  static std::shared_ptr<nats_client>
  make(nats_settings cfg, node_context_ptr ctx, std::string& error);

  ~nats_client() override;

  nats_client(const nats_client&) = delete;
  nats_client& operator=(const nats_client&) = delete;

  // -- bus_port ---------------------------------------------------------------

  std::string publish(event ev) override;

  std::string status() const override;

  void render_metrics(std::string& out) const override;

  // -- nats_port --------------------------------------------------------------

  subscription_ptr subscribe(const std::string& pattern,
                             topic_actor node) override;

  void unsubscribe(const subscription_ptr& sub) override;

  subscription_ptr subscribe_raw(const std::string& subject,
                                 const std::string& queue, size_t max_bytes,
                                 raw_handler handler) override;

  std::string publish_raw(const std::string& subject,
                          const std::string& data) override;

  void flush_async(std::function<void(bool)> done) override;

  // -- history ----------------------------------------------------------------

  /// Takes live events from the history stream's republished copies,
  /// `<prefix>.<subject>`, numbered by their stream sequence of the epoch
  /// `history` reports (net/jetstream_history.hpp). Called before the
  /// first `subscribe`.
  void use_history(std::string_view prefix,
                   std::shared_ptr<const history_port> history);

  // -- lifetime ---------------------------------------------------------------

  /// Closes the connection and stops the worker.
  void close();

private:
  struct nats_subscription;

  explicit nats_client(nats_settings cfg, node_context_ptr ctx);

  // -- nats.c callbacks (nats.c threads) --------------------------------------

  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg,
                         void* closure);
  static void on_raw_message(natsConnection*, natsSubscription*, natsMsg* msg,
                             void* closure);
  static void on_connected(natsConnection*, void* closure);
  static void on_disconnected(natsConnection*, void* closure);
  static void on_reconnected(natsConnection*, void* closure);
  static void on_closed(natsConnection*, void* closure);
  static void on_error(natsConnection*, natsSubscription*, natsStatus err,
                       void* closure);

  void count_malformed(node_context& ctx, std::string_view subject,
                       const envelope::decoded& result);

  /// Decodes a message received on subscription `sub`. NATS hands a message
  /// to each matching subscription of the connection, back to back; a copy
  /// of a recent message (same subject and payload, a subscription that has
  /// not seen it yet) reuses the first decoding: the same event, with the
  /// same node-assigned id, so clients can de-duplicate; a malformed one is
  /// counted once. A message of the history stream (`seq` not 0) is told
  /// from its copies by its sequence, and an id-less one gets an id made of
  /// its position. Returns nothing for a malformed envelope.
  std::optional<event> decode(node_context& ctx, std::string_view subject,
                              std::string_view payload, bool is_json,
                              uint64_t seq, const void* sub);
  void run_worker();

  // -- member variables -------------------------------------------------------

  nats_settings cfg_;
  /// Weak: the context holds this client as its bus.
  std::weak_ptr<node_context> ctx_;
  natsOptions* opts_ = nullptr;
  natsConnection* conn_ = nullptr;
  /// `<prefix>.` of the history stream's live copies; empty without
  /// --history.
  std::string live_prefix_;
  std::shared_ptr<const history_port> history_;

  std::atomic<bool> up_{false};
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> publish_failures_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> slow_consumer_{0};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<int64_t> interest_{0};

  // Malformed-envelope log limiters: one line per source per interval.
  std::mutex log_mtx_;
  std::map<std::string, log_limiter, std::less<>> malformed_logs_;
  /// Slow-consumer errors: one line per interval.
  log_limiter slow_log_;

  // Recent id-less messages: (subject, payload hash) -> id and the
  // subscriptions that got a copy. Guarded by ids_mtx_.
  struct id_group {
    std::string subject;
    uint64_t seq;
    size_t hash;
    std::string payload;
    std::optional<event> ev; // nothing: the envelope was malformed
    std::vector<const void*> seen_by;
  };
  std::mutex ids_mtx_;
  std::deque<id_group> recent_ids_;

  // Worker thread for blocking calls.
  std::mutex work_mtx_;
  std::condition_variable work_cv_;
  std::vector<std::function<void(bool)>> flush_waiters_;
  bool stopping_ = false;
  /// Set by nats.c's closed callback, its last call into this object.
  bool closed_ = false;
  std::thread worker_;
};

} // namespace switchyard::net
