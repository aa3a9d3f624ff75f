// Where notification rules, contact points and notifications persist: a
// store interface, its in-memory version (unit tests, and nodes without
// --nats) and the actor that serves it. The JetStream version is
// net/notification_kv_store.hpp.

#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/notification_interfaces.hpp"

namespace switchyard {

/// Synchronous storage; called from the store actor's thread only.
class notification_store {
public:
  virtual ~notification_store() = default;

  /// "memory" or "jetstream", for the start-up log line.
  virtual const char* kind() const = 0;

  virtual outcome put_rule(const notification_rule& rule) = 0;

  virtual outcome remove_rule(const std::string& org, const std::string& id)
    = 0;

  virtual outcome load_rules(std::vector<notification_rule>& out) = 0;

  virtual outcome put_contact(const contact& x) = 0;

  /// Leaves `out` as it is when the user has none.
  virtual outcome
  get_contact(const std::string& org, const std::string& user, contact& out)
    = 0;

  /// Fails with `conflict` when a notification with this id exists.
  virtual outcome create_notification(const notification& x) = 0;

  virtual outcome put_notification(const notification& x) = 0;

  /// A user's notifications, oldest first.
  virtual outcome load_notifications(const std::string& org,
                                     const std::string& user,
                                     std::vector<notification>& out)
    = 0;

  /// Every notification not `settled`.
  virtual outcome load_pending(std::vector<notification>& out) = 0;
};

/// Keeps everything in memory: gone with the process.
class memory_notification_store : public notification_store {
public:
  const char* kind() const override {
    return "memory";
  }

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
  std::mutex mtx_;
  /// "<org>.<id>" -> rule.
  std::map<std::string, notification_rule> rules_;
  /// user_key -> contact.
  std::map<std::string, contact> contacts_;
  /// user_key -> (id -> notification), and the ids in creation order.
  struct inbox {
    std::map<std::string, notification> by_id;
    std::vector<std::string> order;
  };
  std::map<std::string, inbox> inboxes_;
};

/// State of the store actor.
struct notification_store_state {
  std::shared_ptr<notification_store> store;

  static inline const char* name = "notification_store";
};

/// Serves `store` (see notification_store_actor). Spawn it `caf::detached`
/// when the store blocks (JetStream).
notification_store_actor::behavior_type notification_store_server(
  notification_store_actor::stateful_pointer<notification_store_state> self,
  std::shared_ptr<notification_store> store);

} // namespace switchyard
