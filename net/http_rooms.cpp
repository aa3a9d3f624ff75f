// The rooms API of the HTTP router: /v1/rooms and below. Every handler asks
// the room directory (and then the room actor) from a one-shot actor, so
// the I/O thread never waits.

#include <charconv>

#include <nlohmann/json.hpp>

#include "actors/room.hpp"
#include "actors/room_directory.hpp"
#include "net/http_router.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"

namespace switchyard::net {

namespace {

using reply_fn = std::function<void(http_response)>;

/// How long a request may wait for the directory and the room.
constexpr auto room_timeout = std::chrono::seconds(10);

/// Reads a decimal query parameter; `fallback` when absent, nothing when
/// it is not a number.
std::optional<uint64_t> number_param(std::string_view target,
                                     std::string_view key, uint64_t fallback) {
  auto text = query_param(target, key);
  if (text.empty())
    return fallback;
  uint64_t value = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(),
                                    value);
  if (err != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

nlohmann::json messages_json(const std::vector<room_message>& xs) {
  auto arr = nlohmann::json::array();
  for (auto& x : xs)
    arr.push_back(to_json(x));
  return arr;
}

} // namespace

http::status status_of(const std::string& code) {
  if (code == "not_found")
    return http::status::not_found;
  if (code == "forbidden")
    return http::status::forbidden;
  if (code == "bad_request")
    return http::status::bad_request;
  if (code == "conflict")
    return http::status::conflict;
  return http::status::service_unavailable;
}

/// `/v1/rooms/a/b` -> {"a", "b"}, each segment percent-decoded.
std::vector<std::string> segments_after(std::string_view path,
                                        std::string_view prefix) {
  std::vector<std::string> out;
  auto rest = path.substr(prefix.size());
  while (!rest.empty()) {
    if (rest.front() == '/') {
      rest.remove_prefix(1);
      continue;
    }
    auto slash = rest.find('/');
    out.push_back(url_decode(rest.substr(0, slash)));
    if (slash == std::string_view::npos)
      break;
    rest.remove_prefix(slash);
  }
  return out;
}

void http_router::rooms(const http_request& req, std::string_view path,
                        reply_fn& done) {
  auto v = req.version();
  auto ka = req.keep_alive();
  auto fail = [v, ka](const reply_fn& done, http::status status,
                      const char* code, const std::string& message) {
    done(error(status, code, message, v, ka));
  };
  auto checked = check_bearer(req);
  if (!checked.value) {
    fail(done, http::status::unauthorized, "unauthorized", checked.error);
    return;
  }
  caller who{checked.value->sub, checked.value->org, checked.value->admin};
  auto segs = segments_after(path, "/v1/rooms");
  auto method = req.method();
  auto target = std::string_view{req.target().data(), req.target().size()};
  // A JSON object body, for the POSTs that take one.
  std::optional<nlohmann::json> body;
  auto read_body = [&]() -> bool {
    auto parsed = json_limits::parse_json(req.body(), ctx_->cfg.max_json_depth);
    if (parsed.error != json_limits::failure::none
        || !parsed.value.is_object()) {
      ctx_->stats.count_rejected(
        input_source::http, parsed.error == json_limits::failure::too_deep);
      fail(done, http::status::bad_request, "bad_request",
           "body must be a JSON object");
      return false;
    }
    body = std::move(parsed.value);
    return true;
  };
  auto on_outcome = [v, ka, done](const outcome& res) {
    done(error(status_of(res.code), res.code.c_str(), res.message, v, ka));
  };
  auto on_error = [v, ka, done](caf::error& err) {
    done(error(http::status::service_unavailable, "unavailable",
               "rooms did not answer: " + to_string(err), v, ka));
  };
  auto dir = ctx_->rooms;
  // Resolves room `id` and runs `then(self, room)` in the one-shot actor.
  using room_step = std::function<void(caf::event_based_actor*, room_actor)>;
  auto with_room = [this, dir, who, on_outcome, on_error](std::string id,
                                                          room_step then) {
    sys_.spawn([=](caf::event_based_actor* self) {
      self->request(dir, room_timeout, resolve_atom::value, who, id)
        .then(
          [=](outcome& res, room_actor& room) {
            if (!res.ok())
              on_outcome(res);
            else
              then(self, std::move(room));
          },
          on_error);
    });
  };
  auto string_field = [&](const char* key, std::string& out) {
    auto i = body->find(key);
    if (i == body->end())
      return true;
    if (!i->is_string()) {
      fail(done, http::status::bad_request, "bad_request",
           std::string{key} + " must be a string");
      return false;
    }
    out = i->get<std::string>();
    return true;
  };
  if (segs.empty()) {
    if (method == http::verb::post) { // create
      if (!read_body())
        return;
      std::string name;
      if (!string_field("name", name))
        return;
      bool is_private = true;
      if (auto p = body->find("private"); p != body->end()) {
        if (!p->is_boolean()) {
          fail(done, http::status::bad_request, "bad_request",
               "private must be true or false");
          return;
        }
        is_private = p->get<bool>();
      }
      sys_.spawn([=](caf::event_based_actor* self) {
        self
          ->request(dir, room_timeout, create_atom::value, who, name,
                    is_private)
          .then(
            [=](outcome& res, room_record& room) {
              if (!res.ok())
                on_outcome(res);
              else
                done(json(http::status::created, to_json(room).dump(), v, ka));
            },
            on_error);
      });
    } else if (method == http::verb::get) { // the caller's rooms
      auto after = query_param(target, "after");
      auto limit = number_param(target, "limit", default_room_page);
      if (!limit || *limit == 0 || *limit > max_room_page) {
        fail(done, http::status::bad_request, "bad_request",
             "limit must be a number from 1 to "
               + std::to_string(max_room_page));
        return;
      }
      auto n = static_cast<uint32_t>(*limit);
      sys_.spawn([=](caf::event_based_actor* self) {
        self->request(dir, room_timeout, list_atom::value, who, after, n)
          .then(
            [=](outcome& res, std::vector<room_record>& rooms) {
              if (!res.ok()) {
                on_outcome(res);
                return;
              }
              auto arr = nlohmann::json::array();
              for (auto& r : rooms)
                arr.push_back(to_json(r));
              // A full page may have more after it.
              nlohmann::json next = nullptr;
              if (!rooms.empty() && rooms.size() == n)
                next = rooms.back().id;
              done(json(http::status::ok,
                        nlohmann::json{{"rooms", arr}, {"next", next}}.dump(),
                        v, ka));
            },
            on_error);
      });
    } else {
      fail(done, http::status::method_not_allowed, "bad_request",
           "method not allowed");
    }
    return;
  }
  auto id = segs[0];
  if (segs.size() == 1) {
    if (method != http::verb::get) {
      fail(done, http::status::method_not_allowed, "bad_request",
           "method not allowed");
      return;
    }
    with_room(id, [=](caf::event_based_actor* self, room_actor room) {
      self->request(room, room_timeout, get_atom::value, who)
        .then(
          [=](outcome& res, room_record& rec) {
            if (!res.ok())
              on_outcome(res);
            else
              done(json(http::status::ok, to_json(rec).dump(), v, ka));
          },
          on_error);
    });
    return;
  }
  if (segs[1] == "participants" && segs.size() == 2
      && method == http::verb::post) {
    if (!read_body())
      return;
    participant p;
    if (!string_field("id", p.id) || !string_field("kind", p.kind)
        || !string_field("behavior", p.behavior)
        || !string_field("auto_respond", p.auto_respond))
      return;
    if (auto c = body->find("config"); c != body->end()) {
      if (!c->is_object()) {
        fail(done, http::status::bad_request, "bad_request",
             "config must be a JSON object");
        return;
      }
      p.config = c->dump();
    }
    if (p.kind == "agent" && p.behavior.empty()) {
      fail(done, http::status::bad_request, "bad_request",
           "an agent needs a behavior");
      return;
    }
    with_room(id, [=](caf::event_based_actor* self, room_actor room) {
      self->request(room, room_timeout, join_atom::value, who, p)
        .then(
          [=](outcome& res, room_record& rec) {
            if (!res.ok())
              on_outcome(res);
            else
              done(json(http::status::created, to_json(rec).dump(), v, ka));
          },
          on_error);
    });
    return;
  }
  if (segs[1] == "participants" && segs.size() == 3
      && method == http::verb::delete_) {
    auto pid = segs[2];
    with_room(id, [=](caf::event_based_actor* self, room_actor room) {
      self->request(room, room_timeout, leave_atom::value, who, pid)
        .then(
          [=](outcome& res) {
            if (!res.ok()) {
              on_outcome(res);
              return;
            }
            http_response res204{http::status::no_content, v};
            res204.set(http::field::server, "switchyard");
            res204.keep_alive(ka);
            res204.prepare_payload();
            done(std::move(res204));
          },
          on_error);
    });
    return;
  }
  if (segs[1] == "messages" && segs.size() == 2 && method == http::verb::post) {
    if (!read_body())
      return;
    auto t = body->find("text");
    if (t == body->end() || !t->is_string()) {
      fail(done, http::status::bad_request, "bad_request",
           "body needs a string field 'text'");
      return;
    }
    auto text = t->get<std::string>();
    with_room(id, [=](caf::event_based_actor* self, room_actor room) {
      self->request(room, room_timeout, post_atom::value, who, text)
        .then(
          [=](outcome& res, room_message& msg) {
            if (!res.ok())
              on_outcome(res);
            else
              done(json(http::status::accepted,
                        nlohmann::json{{"message_id", msg.message_id},
                                       {"seq", msg.seq}}
                          .dump(),
                        v, ka));
          },
          on_error);
    });
    return;
  }
  if (segs[1] == "messages" && segs.size() == 2 && method == http::verb::get) {
    auto after = number_param(target, "after", 0);
    auto limit = number_param(target, "limit", default_history_page);
    if (!after || !limit || *limit == 0 || *limit > max_history_page) {
      fail(done, http::status::bad_request, "bad_request",
           "after must be a number, limit a number from 1 to "
             + std::to_string(max_history_page));
      return;
    }
    auto n = static_cast<uint32_t>(*limit);
    auto a = *after;
    with_room(id, [=](caf::event_based_actor* self, room_actor room) {
      self->request(room, room_timeout, history_atom::value, who, a, n)
        .then(
          [=](outcome& res, std::vector<room_message>& msgs) {
            if (!res.ok())
              on_outcome(res);
            else
              done(
                json(http::status::ok,
                     nlohmann::json{{"messages", messages_json(msgs)}}.dump(),
                     v, ka));
          },
          on_error);
    });
    return;
  }
  if (segs[1] == "messages" && segs.size() == 4 && segs[3] == "cancel"
      && method == http::verb::post) {
    auto mid = segs[2];
    with_room(id, [=](caf::event_based_actor* self, room_actor room) {
      self->request(room, room_timeout, cancel_atom::value, who, mid)
        .then(
          [=](outcome& res) {
            if (!res.ok())
              on_outcome(res);
            else
              done(json(http::status::accepted, "{}", v, ka));
          },
          on_error);
    });
    return;
  }
  fail(done, http::status::not_found, "not_found", "no such endpoint");
}

} // namespace switchyard::net
