// The room and notification store of nodes run with --nats: room records,
// notification rules, contact points and notifications in JetStream KV
// buckets, message histories in a JetStream stream. Its calls block (a few
// seconds at most), so it has a NATS connection of its own rather than
// sharing the event bus's, and the store actors that call it run detached
// (one for rooms, one for notifications; a mutex takes their calls in
// turn).

#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "actors/notification_store.hpp"
#include "actors/room_store.hpp"
#include "net/nats_client.hpp"

namespace switchyard::net {

/// Rooms in the KV bucket `switchyard_rooms` (key `<org>.<room>`, value the
/// JSON of the room_record); message records in the stream
/// `SWITCHYARD_ROOM_MESSAGES`, one per NATS message on
/// `switchyard.rooms.<org>.<room>`. Rules in `switchyard_notification_rules`
/// (key `<org>.<id>`), contact points in `switchyard_contacts` (key
/// `<org>.<hex of the user id>`), notifications in
/// `switchyard_notifications` (key `<org>.<hex of the user id>.<id>`, kept
/// 30 days). Creates the buckets and the stream when missing, on the first
/// call that finds NATS up. While NATS is down, every call answers
/// `unavailable` at once.
class jetstream_store : public room_store, public notification_store {
public:
  // -- constructors -----------------------------------------------------------

  /// Creates the store and starts connecting in the background (the node
  /// starts even when NATS is down). Returns null and sets `error` when the
  /// settings are unusable (no server, bad URL, unreadable TLS files).
  static std::shared_ptr<jetstream_store> make(const nats_settings& cfg,
                                               std::string& error);

  ~jetstream_store() override;

  jetstream_store(const jetstream_store&) = delete;
  jetstream_store& operator=(const jetstream_store&) = delete;

  // -- room_store -------------------------------------------------------------

  const char* kind() const override {
    return "jetstream";
  }

  outcome put_room(const room_record& room) override;

  outcome append_message(const std::string& org, const std::string& room,
                         const room_message& msg) override;

  /// Reads at most the first 100,000 records of the room.
  outcome load_messages(const std::string& org, const std::string& room,
                        std::vector<room_message>& out) override;

  outcome load_rooms(std::vector<room_record>& out) override;

  // -- notification_store -----------------------------------------------------

  outcome put_rule(const notification_rule& rule) override;

  outcome remove_rule(const std::string& org, const std::string& id) override;

  outcome load_rules(std::vector<notification_rule>& out) override;

  outcome put_contact(const contact& x) override;

  outcome get_contact(const std::string& org, const std::string& user,
                      contact& out) override;

  outcome create_notification(const notification& x) override;

  outcome put_notification(const notification& x) override;

  outcome load_notifications(const std::string& org, const std::string& user,
                             std::vector<notification>& out) override;

  outcome load_pending(std::vector<notification>& out) override;

private:
  /// The notification buckets, opened (or created) on first use.
  struct buckets {
    kvStore* rules = nullptr;
    kvStore* contacts = nullptr;
    kvStore* notifications = nullptr;
  };

  /// Succeeds once connected with the notification buckets in place.
  outcome notifications_ready();

  /// Reads every value of `kv` under the key filter `keys` into `out`.
  outcome watch_values(kvStore* kv, const std::string& keys,
                       std::vector<std::string>& out);
  explicit jetstream_store(const nats_settings& cfg);

  /// Succeeds once connected, with the bucket and the stream in place.
  outcome ready();

  /// The answer to a failed call on the bucket or the stream. Either may be
  /// gone (a NATS whose storage was wiped): the next call checks both again
  /// and creates what is missing.
  outcome failed(const std::string& what, natsStatus s);

  /// Read by nats.c's reconnect thread until the connection is closed.
  nats_settings cfg_;
  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
  /// Null until a call found NATS up and opened (or created) the bucket.
  kvStore* kv_ = nullptr;
  bool stream_ready_ = false;
  buckets notify_;
  /// Held by every call: the room and the notification store actors call
  /// from their own threads.
  std::mutex mtx_;
};

} // namespace switchyard::net
