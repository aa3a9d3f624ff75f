#include "actors/rule.hpp"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/log.hpp"
#include "schemas/messages.hpp"
#include "schemas/rooms.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("rules");
  return instance;
}

using self_ptr = rule_actor::stateful_pointer<rule_state>;

/// A subscribe the topic tree refused (it is starting, or the org's router
/// is busy) is tried again after this long.
constexpr std::chrono::seconds resubscribe_delay{1};

void subscribe(self_ptr self) {
  auto& st = self->state;
  self
    ->request(st.topics, std::chrono::seconds(10), subscribe_atom::value,
              st.rule.topic, caf::actor_cast<subscriber_actor>(self))
    .then(
      [self, pattern = st.rule.topic](const subscription_actor& node) {
        auto& st = self->state;
        if (pattern != st.rule.topic) {
          // Changed while subscribing: this subscription is stale.
          caf::anon_send(node, unsubscribe_atom::value,
                         caf::actor_cast<subscriber_actor>(self));
          return;
        }
        st.node = node;
      },
      [self](const caf::error& err) {
        log()->warn("rule {} of org {}: subscribing to {} failed ({}); "
                    "retrying",
                    self->state.rule.id, self->state.rule.org,
                    self->state.rule.topic, to_string(err));
        self->delayed_send(self, resubscribe_delay, subscribe_atom::value);
      });
}

notification make_notification(const notification_rule& r, const event& ev,
                               const nlohmann::json& data, std::string user,
                               int64_t now) {
  notification x;
  x.id = notification_id(r.id, ev.id, user);
  x.org = r.org;
  x.user = std::move(user);
  x.rule_id = r.id;
  x.event_id = ev.id;
  x.topic = ev.topic;
  x.title = render(r.title, ev, data, false, max_title_size);
  x.body = render(r.body, ev, data, false, max_body_size);
  x.html_body = render(r.body, ev, data, true, max_body_size);
  x.priority = r.priority;
  x.data = ev.data;
  x.ts = now;
  x.channels = r.channels;
  return x;
}

void notify_all(self_ptr self, const event& ev, const nlohmann::json& data,
                const std::vector<std::string>& users) {
  auto& st = self->state;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  for (auto& user : users) {
    ++st.notified;
    self->send(st.directory, notify_atom::value,
               make_notification(st.rule, ev, data, user, now));
  }
}

/// The user participants of the event's room, except the author of the
/// message the event is about.
void notify_room(self_ptr self, const event& ev, nlohmann::json data,
                 std::vector<std::string> users) {
  auto& st = self->state;
  caller system{"", st.rule.org, true};
  std::string room{rooms::room_of(ev.topic)};
  self
    ->request(st.rooms, std::chrono::seconds(10), get_atom::value, system, room)
    .then(
      [self, ev, data, users](const outcome& res,
                              const room_record& rec) mutable {
        if (!res.ok()) {
          log()->debug("rule {}: room {} of event {}: {}", self->state.rule.id,
                       rooms::room_of(ev.topic), ev.id, res.message);
        } else {
          std::string author;
          if (auto a = data.find("author"); a != data.end() && a->is_string())
            author = a->get<std::string>();
          for (auto& p : rec.participants)
            if (!p.is_agent() && p.id != author
                && std::find(users.begin(), users.end(), p.id) == users.end())
              users.push_back(p.id);
        }
        notify_all(self, ev, data, users);
      },
      [self, ev, data, users](const caf::error& err) {
        log()->warn("rule {}: no answer about the room of event {} ({})",
                    self->state.rule.id, ev.id, to_string(err));
        notify_all(self, ev, data, users);
      });
}

} // namespace

rule_actor::behavior_type rule(rule_actor::stateful_pointer<rule_state> self,
                               notification_rule x, topic_router_actor topics,
                               notification_directory_actor directory,
                               room_directory_actor rooms) {
  auto& st = self->state;
  st.rule = std::move(x);
  st.topics = std::move(topics);
  st.directory = std::move(directory);
  st.rooms = std::move(rooms);
  subscribe(self);
  return {
    [self](publish_atom, const std::string&, const event& ev) {
      auto& st = self->state;
      ++st.seen;
      // The node validated the payload where it entered, so it parses.
      auto data = nlohmann::json::parse(ev.data, nullptr, false);
      if (data.is_discarded())
        data = nullptr;
      if (!matches(st.rule, ev, data))
        return;
      ++st.matched;
      auto users = direct_recipients(st.rule, ev, data);
      // A room event notifies only who may see it, as a subscription would
      // deliver it: nobody learns of a private room by rule.
      if (rooms::is_room_topic(ev.topic))
        users.erase(std::remove_if(users.begin(), users.end(),
                                   [&ev](const std::string& user) {
                                     return !rooms::in_audience(ev, user);
                                   }),
                    users.end());
      if (st.rule.recipients.room_participants
          && rooms::is_room_topic(ev.topic))
        notify_room(self, ev, std::move(data), std::move(users));
      else
        notify_all(self, ev, data, users);
    },
    [self](rule_atom, notification_rule& x) {
      auto& st = self->state;
      bool moved = x.topic != st.rule.topic;
      st.rule = std::move(x);
      if (!moved)
        return;
      if (st.node) {
        caf::anon_send(st.node, unsubscribe_atom::value,
                       caf::actor_cast<subscriber_actor>(self));
        st.node = nullptr;
      }
      subscribe(self);
    },
    [self](subscribe_atom) {
      subscribe(self);
    },
  };
}

} // namespace switchyard
