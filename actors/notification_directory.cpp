#include "actors/notification_directory.hpp"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "actors/log.hpp"
#include "actors/notifier.hpp"
#include "actors/placement.hpp"
#include "actors/rule.hpp"
#include "actors/session_registry.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("notify");
  return instance;
}

using self_ptr = notification_directory_actor::stateful_pointer<
  notification_directory_state>;

/// A failed start-up load, a notification the store could not take, and a
/// crashed rule actor are tried again after this long.
constexpr std::chrono::seconds retry_delay{1};

/// How often the rules are read again: a rule changed through another node
/// takes effect here within this time.
constexpr std::chrono::seconds rules_refresh{10};

/// Bound of every request to the store.
constexpr std::chrono::seconds store_timeout{30};

outcome loading() {
  return outcome::fail("unavailable",
                       "notifications are loading; try again shortly");
}

outcome admins_only() {
  return outcome::fail("forbidden", "notification rules need an admin token");
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string rule_key(const std::string& org, const std::string& id) {
  return org + '.' + id;
}

/// The directory of the member that owns user `user` of `org` (and so the
/// user's notifier), or null when this node does (or runs alone).
notification_directory_actor owner_directory(self_ptr self,
                                             const std::string& org,
                                             const std::string& user) {
  auto* owner = remote_owner(self->state.members,
                             "user/" + user_key(org, user));
  return owner
    ? caf::actor_cast<notification_directory_actor>(owner->notifications)
    : notification_directory_actor{};
}

/// Sets the gauges of rule actors and notifiers.
void gauges(self_ptr self) {
  auto& st = self->state;
  if (auto* stats = st.deps.stats) {
    stats->rule_actors.store(static_cast<int64_t>(st.rule_actors.size()),
                             std::memory_order_relaxed);
    stats->notifiers.store(static_cast<int64_t>(st.notifiers.size()),
                           std::memory_order_relaxed);
  }
}

/// Gives the user's notifier, if any, its new contact points.
void tell_contact(self_ptr self, const contact& x) {
  auto& st = self->state;
  if (auto i = st.notifiers.find(user_key(x.org, x.user));
      i != st.notifiers.end()) {
    ++i->second.sent;
    self->send(i->second.hdl, contact_atom::value, x);
  }
}

/// The notifier of a user, spawned if need be, for one message more.
notifier_actor notifier_of(self_ptr self, const std::string& org,
                           const std::string& user) {
  auto& st = self->state;
  auto& entry = st.notifiers[user_key(org, user)];
  if (!entry.hdl) {
    auto& d = st.deps;
    entry.hdl = self->system().spawn(notifier, org, user, d.cfg, d.store,
                                     d.sessions, d.channels, d.stats);
    self->monitor(entry.hdl);
    gauges(self);
  }
  ++entry.sent;
  return entry.hdl;
}

/// Ends the notifiers of users another member owns now: their deliveries
/// stay in the store, and the owner resumes them.
void retire_foreign(self_ptr self) {
  auto& st = self->state;
  for (auto i = st.notifiers.begin(); i != st.notifiers.end();) {
    if (!remote_owner(st.members, "user/" + i->first)) {
      ++i;
      continue;
    }
    auto hdl = i->second.hdl;
    i = st.notifiers.erase(i);
    self->demonitor(hdl.address());
    self->send_exit(hdl, caf::exit_reason::user_shutdown);
  }
  gauges(self);
}

/// Hands stored notification `x` to its user's notifier: here, or on the
/// owner (by this node's view, see room_directory.cpp's resolve).
void deliver(self_ptr self, notification x) {
  if (auto owner = owner_directory(self, x.org, x.user))
    self->send(owner, deliver_atom::value, std::move(x));
  else
    self->send(notifier_of(self, x.org, x.user), notify_atom::value,
               std::move(x));
}

/// Starts, restarts or stops the actor of `r` to match it.
void apply_rule(self_ptr self, const notification_rule& r) {
  auto& st = self->state;
  auto key = rule_key(r.org, r.id);
  auto i = st.rule_actors.find(key);
  if (!r.enabled) {
    if (i != st.rule_actors.end()) {
      self->demonitor(i->second.address());
      self->send_exit(i->second, caf::exit_reason::user_shutdown);
      st.rule_actors.erase(i);
      gauges(self);
    }
    return;
  }
  if (i != st.rule_actors.end()) {
    self->send(i->second, rule_atom::value, r);
    return;
  }
  auto hdl = self->system().spawn(
    rule, r, st.deps.topics,
    caf::actor_cast<notification_directory_actor>(self), st.deps.rooms);
  self->monitor(hdl);
  st.rule_actors.emplace(key, std::move(hdl));
  gauges(self);
}

void drop_rule(self_ptr self, const std::string& key) {
  auto& st = self->state;
  if (auto i = st.rule_actors.find(key); i != st.rule_actors.end()) {
    self->demonitor(i->second.address());
    self->send_exit(i->second, caf::exit_reason::user_shutdown);
    st.rule_actors.erase(i);
  }
  st.rules.erase(key);
  gauges(self);
}

void load(self_ptr self) {
  auto& st = self->state;
  auto retry = [self](const std::string& why) {
    log()->warn("loading notification rules: {}; retrying", why);
    self->delayed_send(self, retry_delay, load_all_atom::value);
  };
  self
    ->request(st.deps.store, store_timeout, load_all_atom::value,
              rule_atom::value)
    .then(
      [self, retry](const outcome& res, std::vector<notification_rule>& rules) {
        if (!res.ok()) {
          retry(res.message);
          return;
        }
        auto& st = self->state;
        for (auto& r : rules) {
          auto key = rule_key(r.org, r.id);
          apply_rule(self, r);
          st.rules[key] = std::move(r);
        }
        self
          ->request(st.deps.store, store_timeout, load_all_atom::value,
                    notify_atom::value)
          .then(
            [self, retry](const outcome& res, std::vector<notification>& xs) {
              if (!res.ok()) {
                retry(res.message);
                return;
              }
              auto& st = self->state;
              if (!st.loaded)
                self->delayed_send(self, rules_refresh, rule_atom::value);
              st.loaded = true;
              log()->info("notifications: {} rules, {} actors, {} pending "
                          "deliveries resumed",
                          st.rules.size(), st.rule_actors.size(), xs.size());
              // Each member resumes the users it owns; a member without a
              // view yet does once it has one.
              if (!st.deps.clustered || !st.members.empty())
                for (auto& x : xs)
                  if (!owner_directory(self, x.org, x.user))
                    self->send(notifier_of(self, x.org, x.user),
                               notify_atom::value, std::move(x));
            },
            [retry](const caf::error& err) {
              retry(to_string(err));
            });
      },
      [retry](const caf::error& err) {
        retry(to_string(err));
      });
}

/// Makes the rules and their actors match what the store holds.
void refresh_rules(self_ptr self) {
  auto& st = self->state;
  self
    ->request(st.deps.store, store_timeout, load_all_atom::value,
              rule_atom::value)
    .then(
      [self](const outcome& res, std::vector<notification_rule>& rules) {
        self->delayed_send(self, rules_refresh, rule_atom::value);
        if (!res.ok()) {
          log()->debug("reading the rules again: {}", res.message);
          return;
        }
        auto& st = self->state;
        std::map<std::string, notification_rule> now;
        for (auto& r : rules)
          now.emplace(rule_key(r.org, r.id), std::move(r));
        std::vector<std::string> gone;
        for (auto& kvp : st.rules)
          if (now.count(kvp.first) == 0)
            gone.push_back(kvp.first);
        for (auto& key : gone)
          drop_rule(self, key);
        for (auto& [key, r] : now) {
          auto i = st.rules.find(key);
          if (i != st.rules.end() && i->second.updated_at == r.updated_at)
            continue;
          apply_rule(self, r);
          st.rules[key] = std::move(r);
        }
      },
      [self](const caf::error&) {
        self->delayed_send(self, rules_refresh, rule_atom::value);
      });
}

bool may_manage_contact(const caller& who, const std::string& user) {
  return who.admin || who.user == user;
}

} // namespace

notification_directory_actor::behavior_type notification_directory(
  notification_directory_actor::stateful_pointer<notification_directory_state>
    self,
  notification_deps deps) {
  auto& st = self->state;
  st.deps = std::move(deps);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    for (auto i = st.notifiers.begin(); i != st.notifiers.end(); ++i)
      if (i->second.hdl.address() == dm.source) {
        // Its notifications stay in the store: reload what is pending.
        auto org_user = i->first;
        st.notifiers.erase(i);
        gauges(self);
        if (dm.reason == caf::exit_reason::normal)
          return;
        log()->error("notifier of {} ended: {}; resuming its deliveries",
                     org_user, to_string(dm.reason));
        self->delayed_send(self, retry_delay, load_all_atom::value);
        return;
      }
    for (auto i = st.rule_actors.begin(); i != st.rule_actors.end(); ++i)
      if (i->second.address() == dm.source) {
        auto key = i->first;
        st.rule_actors.erase(i);
        gauges(self);
        log()->error("rule actor {} ended: {}; restarting it", key,
                     to_string(dm.reason));
        if (auto r = st.rules.find(key); r != st.rules.end())
          apply_rule(self, r->second);
        return;
      }
  });
  // Rules and notifiers end with the directory (node shutdown).
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& kvp : self->state.rule_actors)
      self->send_exit(kvp.second, msg.reason);
    for (auto& kvp : self->state.notifiers)
      self->send_exit(kvp.second.hdl, msg.reason);
    self->quit(msg.reason);
  });
  load(self);
  self->delayed_send(self, st.deps.cfg.notifier_idle, tick_atom::value);
  return {
    [self](put_atom, const caller& who, notification_rule& r,
           bool create) -> caf::result<outcome, notification_rule> {
      auto& st = self->state;
      if (!who.admin)
        return {admins_only(), notification_rule{}};
      if (!st.loaded)
        return {loading(), notification_rule{}};
      r.org = who.org;
      auto key = rule_key(r.org, r.id);
      auto i = st.rules.find(key);
      if (create && i != st.rules.end())
        return {outcome::fail("conflict", "rule " + r.id + " exists"),
                notification_rule{}};
      if (!create && i == st.rules.end())
        return {outcome::fail("not_found", "no rule " + r.id),
                notification_rule{}};
      auto now = unix_now();
      r.created_at = i == st.rules.end() ? now : i->second.created_at;
      r.updated_at = now;
      auto rp = self->make_response_promise<outcome, notification_rule>();
      self->request(st.deps.store, store_timeout, put_atom::value, r)
        .then(
          [self, rp, r, key](const outcome& res) mutable {
            if (!res.ok()) {
              rp.deliver(res, notification_rule{});
              return;
            }
            apply_rule(self, r);
            self->state.rules[key] = r;
            rp.deliver(outcome{}, std::move(r));
          },
          [rp](const caf::error& err) mutable {
            rp.deliver(outcome::fail("unavailable", to_string(err)),
                       notification_rule{});
          });
      return rp;
    },
    [self](get_atom, const caller& who,
           const std::string& id) -> caf::result<outcome, notification_rule> {
      auto& st = self->state;
      if (!who.admin)
        return {admins_only(), notification_rule{}};
      if (!st.loaded)
        return {loading(), notification_rule{}};
      auto i = st.rules.find(rule_key(who.org, id));
      if (i == st.rules.end())
        return {outcome::fail("not_found", "no rule " + id),
                notification_rule{}};
      return {outcome{}, i->second};
    },
    [self](list_atom, const caller& who)
      -> caf::result<outcome, std::vector<notification_rule>> {
      auto& st = self->state;
      std::vector<notification_rule> out;
      if (!who.admin)
        return {admins_only(), out};
      if (!st.loaded)
        return {loading(), out};
      // Keys are "<org>.<id>" and an org holds no '.': one org is one range.
      auto prefix = who.org + '.';
      for (auto i = st.rules.lower_bound(prefix); i != st.rules.end()
           && i->first.compare(0, prefix.size(), prefix) == 0;
           ++i)
        out.push_back(i->second);
      return {outcome{}, std::move(out)};
    },
    [self](remove_atom, const caller& who,
           const std::string& id) -> caf::result<outcome> {
      auto& st = self->state;
      if (!who.admin)
        return admins_only();
      if (!st.loaded)
        return loading();
      auto key = rule_key(who.org, id);
      if (st.rules.count(key) == 0)
        return outcome::fail("not_found", "no rule " + id);
      auto rp = self->make_response_promise<outcome>();
      self
        ->request(st.deps.store, store_timeout, remove_atom::value, who.org, id)
        .then(
          [self, rp, key](const outcome& res) mutable {
            if (res.ok())
              drop_rule(self, key);
            rp.deliver(res);
          },
          [rp](const caf::error& err) mutable {
            rp.deliver(outcome::fail("unavailable", to_string(err)));
          });
      return rp;
    },
    [self](put_atom, const caller& who, contact& x) -> caf::result<outcome> {
      auto& st = self->state;
      if (x.org != who.org || !may_manage_contact(who, x.user))
        return outcome::fail("forbidden",
                             "only the user or an admin of the org may set "
                             "contact points");
      x.updated_at = unix_now();
      auto rp = self->make_response_promise<outcome>();
      self->request(st.deps.store, store_timeout, put_atom::value, x)
        .then(
          [self, rp, x](const outcome& res) mutable {
            if (res.ok()) {
              if (auto owner = owner_directory(self, x.org, x.user))
                self->send(owner, contact_atom::value, x);
              else
                tell_contact(self, x);
            }
            rp.deliver(res);
          },
          [rp](const caf::error& err) mutable {
            rp.deliver(outcome::fail("unavailable", to_string(err)));
          });
      return rp;
    },
    [self](get_atom, const caller& who, contact_atom,
           const std::string& user) -> caf::result<outcome, contact> {
      auto& st = self->state;
      if (!may_manage_contact(who, user))
        return {outcome::fail("forbidden",
                              "only the user or an admin of the org may read "
                              "contact points"),
                contact{}};
      return self->delegate(st.deps.store, get_atom::value, contact_atom::value,
                            who.org, user);
    },
    [self](inbox_atom, const caller& who, bool unread_only)
      -> caf::result<outcome, std::vector<notification>> {
      auto& st = self->state;
      auto rp
        = self->make_response_promise<outcome, std::vector<notification>>();
      self
        ->request(st.deps.store, store_timeout, load_atom::value, who.org,
                  who.user)
        .then(
          [rp, unread_only](const outcome& res,
                            std::vector<notification>& xs) mutable {
            if (unread_only)
              xs.erase(std::remove_if(xs.begin(), xs.end(),
                                      [](auto& x) {
                                        return x.read;
                                      }),
                       xs.end());
            std::reverse(xs.begin(), xs.end());
            rp.deliver(res, std::move(xs));
          },
          [rp](const caf::error& err) mutable {
            rp.deliver(outcome::fail("unavailable", to_string(err)),
                       std::vector<notification>{});
          });
      return rp;
    },
    [self](read_atom, const caller& who,
           const std::string& id) -> caf::result<outcome> {
      if (auto owner = owner_directory(self, who.org, who.user)) {
        auto rp = self->make_response_promise<outcome>();
        self->request(owner, store_timeout, read_atom::value, who, id)
          .then(
            [rp](outcome& res) mutable {
              rp.deliver(std::move(res));
            },
            [rp](caf::error& err) mutable {
              rp.deliver(outcome::fail("unavailable", to_string(err)));
            });
        return rp;
      }
      return self->delegate(notifier_of(self, who.org, who.user),
                            ack_atom::value, id, true);
    },
    [self](ack_atom, const std::string& org, const std::string& user,
           const std::string& id) {
      if (auto owner = owner_directory(self, org, user)) {
        self->send(owner, ack_atom::value, org, user, id);
        return;
      }
      // The answer matters to the API only (`read_atom`).
      caf::anon_send(notifier_of(self, org, user), ack_atom::value, id, false);
    },
    [self](contact_atom, const contact& x) {
      tell_contact(self, x);
    },
    [self](members_atom, member_view& members) {
      auto& st = self->state;
      auto changed = members.size() != st.members.size()
        || !std::equal(members.begin(), members.end(), st.members.begin(),
                       same_incarnation);
      st.members = std::move(members);
      if (!changed)
        return;
      retire_foreign(self);
      // The users this node owns now (a member left or joined, or this is
      // the first view) resume here from the store.
      if (st.loaded)
        load(self);
    },
    [self](notify_atom, notification& x) {
      // Stored before it travels: a notification whose owner dies before
      // delivering it is in the store, and the members resume pending
      // deliveries when a member leaves.
      self
        ->request(self->state.deps.store, store_timeout, create_atom::value, x)
        .then(
          [self, x](const outcome& res) mutable {
            auto* stats = self->state.deps.stats;
            if (res.code == "conflict") {
              if (stats)
                stats->notifications_duplicate.fetch_add(
                  1, std::memory_order_relaxed);
              log()->debug("notification {} exists (made here or on another "
                           "node): not delivered again",
                           x.id);
              return;
            }
            if (!res.ok()) {
              log()->warn("notification {} for user {} of org {} not stored "
                          "({}); retrying",
                          x.id, x.user, x.org, res.message);
              self->delayed_send(self, retry_delay, notify_atom::value, x);
              return;
            }
            if (stats)
              stats->notifications_created.fetch_add(1,
                                                     std::memory_order_relaxed);
            deliver(self, std::move(x));
          },
          [self, x](const caf::error& err) {
            log()->warn("notification {} not stored ({}); retrying", x.id,
                        to_string(err));
            self->delayed_send(self, retry_delay, notify_atom::value, x);
          });
    },
    [self](deliver_atom, notification& x) {
      deliver(self, std::move(x));
    },
    [self](tick_atom) {
      auto& st = self->state;
      for (auto& kvp : st.notifiers) {
        auto key = kvp.first;
        auto hdl = kvp.second.hdl;
        self->request(hdl, std::chrono::seconds(10), idle_atom::value)
          .then([self, key, hdl](bool idle, uint64_t received) {
            auto& st = self->state;
            auto i = st.notifiers.find(key);
            if (!idle || i == st.notifiers.end() || i->second.hdl != hdl
                || i->second.sent != received)
              return;
            st.notifiers.erase(i);
            gauges(self);
            self->demonitor(hdl.address());
            self->send_exit(hdl, caf::exit_reason::user_shutdown);
          });
      }
      self->delayed_send(self, st.deps.cfg.notifier_idle, tick_atom::value);
    },
    [self](rule_atom) {
      refresh_rules(self);
    },
    [self](load_all_atom) {
      // Loads again after a failure; a notifier that crashed resumes from
      // the store (others ignore what they hold already: same ids).
      load(self);
    },
  };
}

} // namespace switchyard
