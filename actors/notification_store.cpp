#include "actors/notification_store.hpp"

#include "actors/session_registry.hpp"

namespace switchyard {

// -- memory_notification_store ------------------------------------------------

outcome memory_notification_store::put_rule(const notification_rule& rule) {
  std::lock_guard<std::mutex> guard{mtx_};
  rules_[rule.org + "." + rule.id] = rule;
  return {};
}

outcome memory_notification_store::remove_rule(const std::string& org,
                                               const std::string& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  rules_.erase(org + "." + id);
  return {};
}

outcome
memory_notification_store::load_rules(std::vector<notification_rule>& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  out.clear();
  for (auto& kvp : rules_)
    out.push_back(kvp.second);
  return {};
}

outcome memory_notification_store::put_contact(const contact& x) {
  std::lock_guard<std::mutex> guard{mtx_};
  contacts_[user_key(x.org, x.user)] = x;
  return {};
}

outcome memory_notification_store::get_contact(const std::string& org,
                                               const std::string& user,
                                               contact& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = contacts_.find(user_key(org, user)); i != contacts_.end())
    out = i->second;
  return {};
}

outcome memory_notification_store::create_notification(const notification& x) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& box = inboxes_[user_key(x.org, x.user)];
  if (!box.by_id.emplace(x.id, x).second)
    return outcome::fail("conflict", "notification " + x.id + " exists");
  box.order.push_back(x.id);
  return {};
}

outcome memory_notification_store::put_notification(const notification& x) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& box = inboxes_[user_key(x.org, x.user)];
  if (box.by_id.count(x.id) == 0)
    box.order.push_back(x.id);
  box.by_id[x.id] = x;
  return {};
}

outcome
memory_notification_store::load_notifications(const std::string& org,
                                              const std::string& user,
                                              std::vector<notification>& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  out.clear();
  if (auto i = inboxes_.find(user_key(org, user)); i != inboxes_.end())
    for (auto& id : i->second.order)
      out.push_back(i->second.by_id[id]);
  return {};
}

outcome
memory_notification_store::load_pending(std::vector<notification>& out) {
  std::lock_guard<std::mutex> guard{mtx_};
  out.clear();
  for (auto& [key, box] : inboxes_)
    for (auto& id : box.order)
      if (auto& x = box.by_id[id]; !settled(x))
        out.push_back(x);
  return {};
}

// -- the store actor ----------------------------------------------------------

notification_store_actor::behavior_type notification_store_server(
  notification_store_actor::stateful_pointer<notification_store_state> self,
  std::shared_ptr<notification_store> store) {
  self->state.store = std::move(store);
  return {
    [self](put_atom, const notification_rule& rule) {
      return self->state.store->put_rule(rule);
    },
    [self](remove_atom, const std::string& org, const std::string& id) {
      return self->state.store->remove_rule(org, id);
    },
    [self](load_all_atom,
           rule_atom) -> caf::result<outcome, std::vector<notification_rule>> {
      std::vector<notification_rule> out;
      auto res = self->state.store->load_rules(out);
      return {std::move(res), std::move(out)};
    },
    [self](put_atom, const contact& x) {
      return self->state.store->put_contact(x);
    },
    [self](get_atom, contact_atom, const std::string& org,
           const std::string& user) -> caf::result<outcome, contact> {
      contact out;
      auto res = self->state.store->get_contact(org, user, out);
      return {std::move(res), std::move(out)};
    },
    [self](create_atom, const notification& x) {
      return self->state.store->create_notification(x);
    },
    [self](put_atom, const notification& x) {
      return self->state.store->put_notification(x);
    },
    [self](load_atom, const std::string& org, const std::string& user)
      -> caf::result<outcome, std::vector<notification>> {
      std::vector<notification> out;
      auto res = self->state.store->load_notifications(org, user, out);
      return {std::move(res), std::move(out)};
    },
    [self](load_all_atom,
           notify_atom) -> caf::result<outcome, std::vector<notification>> {
      std::vector<notification> out;
      auto res = self->state.store->load_pending(out);
      return {std::move(res), std::move(out)};
    },
  };
}

} // namespace switchyard
