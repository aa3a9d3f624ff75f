// `GET /v1/presence`: who is present on an exact topic or a room, and
// whether a user is online, from the session registry (the one source of
// both, actors/session_registry.hpp), asked by a one-shot actor so that the
// I/O thread never waits.

#include <nlohmann/json.hpp>

#include "actors/presence.hpp"
#include "actors/session_registry.hpp"
#include "net/http_router.hpp"
#include "schemas/frames.hpp"
#include "schemas/rooms.hpp"
#include "schemas/token.hpp"
#include "schemas/topic.hpp"

namespace switchyard::net {

namespace {

constexpr auto presence_timeout = std::chrono::seconds(10);

} // namespace

void http_router::presence(const http_request& req,
                           std::function<void(http_response)>& done) {
  auto v = req.version();
  auto ka = req.keep_alive();
  auto fail = [&](http::status status, const char* code,
                  const std::string& message) {
    done(error(status, code, message, v, ka));
  };
  auto checked = check_user(req, done);
  if (!checked)
    return;
  auto c = *checked;
  auto url = std::string_view{req.target().data(), req.target().size()};
  auto topic = query_param(url, "topic");
  auto room = query_param(url, "room");
  auto user = query_param(url, "user");
  if (!topic.empty() + !room.empty() + !user.empty() != 1) {
    fail(http::status::bad_request, "bad_request",
         "give one of ?topic=<exact topic>, ?room=<room id>, ?user=<user id>");
    return;
  }
  auto registry = ctx_->sessions;
  if (!user.empty()) {
    if (!valid_presence_user(user)) {
      fail(http::status::bad_request, "bad_request",
           "user must be 1 to 256 bytes of UTF-8");
      return;
    }
    if (user != c.sub && !c.admin) {
      fail(http::status::forbidden, "forbidden",
           "only the user themself or an org admin may ask whether a user is "
           "online");
      return;
    }
    sys_.spawn([=](caf::event_based_actor* self) {
      self
        ->request(registry, presence_timeout, sessions_atom::value,
                  user_key(c.org, user))
        .then(
          [=](const std::vector<session_actor>& sessions) {
            nlohmann::json body{{"user", user},
                                {"online", !sessions.empty()},
                                {"sessions", sessions.size()}};
            done(json(http::status::ok, body.dump(), v, ka));
          },
          [=](caf::error&) {
            done(error(http::status::service_unavailable, "unavailable",
                       "the session registry did not answer, retry", v, ka));
          });
    });
    return;
  }
  presence_target target;
  target.org = c.org;
  if (!room.empty()) {
    if (!rooms::valid_room_id(room)) {
      fail(http::status::bad_request, "bad_request",
           "room must be a room id (conv_ and 24 hex digits)");
      return;
    }
    target.room = room;
    target.key = presence_room_key(c.org, room);
  } else {
    std::string why;
    if (!topic::valid_topic(topic, &why)) {
      fail(http::status::bad_request, "bad_topic", why);
      return;
    }
    target.topic = topic;
    target.key = presence_topic_key(c.org, topic);
  }
  // What subscribing to the topic (or to all of the room's topics) needs.
  if (!may_see_presence(c, target)) {
    fail(http::status::forbidden, "forbidden",
         "token may not see who is on " + (room.empty() ? topic : room));
    return;
  }
  auto key = target.key;
  auto check_room = room_of(target);
  auto directory = ctx_->rooms;
  sys_.spawn([=](caf::event_based_actor* self) {
    auto ask = [=] {
      self->request(registry, presence_timeout, presence_atom::value, key)
        .then(
          [=](const presence_info& info) {
            done(json(http::status::ok, frames::presence_object(info).dump(), v,
                      ka));
          },
          [=](caf::error&) {
            done(error(http::status::service_unavailable, "unavailable",
                       "presence did not answer, retry", v, ka));
          });
    };
    if (check_room.empty()) {
      ask();
      return;
    }
    if (!directory) {
      done(error(http::status::forbidden, "forbidden", "this node has no rooms",
                 v, ka));
      return;
    }
    // Who is in a room is the room's data: the room must exist and be
    // readable by the caller.
    self
      ->request(directory, presence_timeout, get_atom::value,
                caller{c.sub, c.org, c.admin}, check_room)
      .then(
        [=](const outcome& res, const room_record&) {
          if (res.ok())
            ask();
          else if (refuses_room(res))
            done(error(http::status::forbidden, "forbidden",
                       "may not see room " + check_room, v, ka));
          else
            done(error(http::status::service_unavailable, "unavailable",
                       "rooms are not ready, retry", v, ka));
        },
        [=](caf::error&) {
          done(error(http::status::service_unavailable, "unavailable",
                     "rooms did not answer, retry", v, ka));
        });
  });
}

} // namespace switchyard::net
