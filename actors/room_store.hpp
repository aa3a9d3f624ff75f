// Where rooms, participants and message histories persist: a small store
// interface, its in-memory version (unit tests, and nodes without --nats)
// and the actor that serves it. The JetStream version is
// net/jetstream_store.hpp.

#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/room_interfaces.hpp"

namespace switchyard {

/// Synchronous storage of rooms; called from the store actor's thread only.
class room_store {
public:
  virtual ~room_store() = default;

  /// "memory" or "jetstream", for the start-up log line and /healthz.
  virtual const char* kind() const = 0;

  /// Creates or replaces the record of `room`.
  virtual outcome put_room(const room_record& room) = 0;

  /// Appends one record of a message to the history of `room` of `org`.
  virtual outcome append_message(const std::string& org,
                                 const std::string& room,
                                 const room_message& msg)
    = 0;

  /// The history of `room` of `org`, oldest first, one entry per message id
  /// (the last record of each id, at the place of its first).
  virtual outcome load_messages(const std::string& org, const std::string& room,
                                std::vector<room_message>& out)
    = 0;

  /// Every room of every org.
  virtual outcome load_rooms(std::vector<room_record>& out) = 0;
};

/// Keeps everything in memory: gone with the process.
class memory_room_store : public room_store {
public:
  const char* kind() const override {
    return "memory";
  }

  outcome put_room(const room_record& room) override;

  outcome append_message(const std::string& org, const std::string& room,
                         const room_message& msg) override;

  outcome load_messages(const std::string& org, const std::string& room,
                        std::vector<room_message>& out) override;

  outcome load_rooms(std::vector<room_record>& out) override;

private:
  std::mutex mtx_;
  /// "<org>.<room>" -> record.
  std::map<std::string, room_record> rooms_;
  /// "<org>.<room>" -> records in append order.
  std::map<std::string, std::vector<room_message>> messages_;
};

/// Folds a room's history records (in append order) into one entry per
/// message id, as `room_store::load_messages` returns them.
std::vector<room_message> fold_history(std::vector<room_message> records);

/// State of the store actor.
struct room_store_state {
  std::shared_ptr<room_store> store;

  static inline const char* name = "room_store";
};

/// Serves `store` (see room_store_actor). Spawn it `caf::detached` when the
/// store blocks (JetStream).
room_store_actor::behavior_type
room_store_server(room_store_actor::stateful_pointer<room_store_state> self,
                  std::shared_ptr<room_store> store);

} // namespace switchyard
