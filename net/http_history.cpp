// `POST /v1/history`: past events of a topic or pattern, read from the
// history stream by a history reader (actors/history.hpp) that a one-shot
// actor asks, so the I/O thread never waits.

#include <nlohmann/json.hpp>

#include "actors/history_port.hpp"
#include "net/http_router.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"
#include "schemas/rooms.hpp"
#include "schemas/token.hpp"
#include "schemas/topic.hpp"

namespace switchyard::net {

namespace {

/// Most events one page holds, and how many when the request names none.
constexpr uint64_t max_history_limit = 1000;
constexpr uint64_t default_history_limit = 100;

/// A page waits this long for its reader, behind replays.
constexpr auto history_timeout = std::chrono::seconds(30);

} // namespace

void http_router::history(const http_request& req,
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
  if (ctx_->history.empty()) {
    fail(http::status::not_implemented, "not_enabled",
         "this node keeps no history (start it with --history)");
    return;
  }
  auto parsed = json_limits::parse_json(req.body(), ctx_->cfg.max_json_depth);
  auto& body = parsed.value;
  if (parsed.error != json_limits::failure::none || !body.is_object()) {
    ctx_->stats.count_rejected(input_source::http,
                               parsed.error == json_limits::failure::too_deep);
    fail(http::status::bad_request, "bad_request",
         "body must be a JSON object");
    return;
  }
  auto t = body.find("topic");
  if (t == body.end() || !t->is_string()) {
    fail(http::status::bad_request, "bad_request",
         "body needs a string field 'topic' (a topic or pattern)");
    return;
  }
  auto pattern = t->get<std::string>();
  std::string why;
  if (!topic::valid_pattern(pattern, &why)) {
    fail(http::status::bad_request, "bad_topic", why);
    return;
  }
  // The same authorization as subscribing.
  if (!may_subscribe(*checked, pattern)) {
    fail(http::status::forbidden, "forbidden",
         "token may not subscribe to " + pattern);
    return;
  }
  auto number = [&](const char* key, uint64_t fallback, uint64_t lo,
                    uint64_t hi, uint64_t& out) {
    auto i = body.find(key);
    if (i == body.end()) {
      out = fallback;
      return true;
    }
    if (!i->is_number_unsigned() || i->get<uint64_t>() < lo
        || i->get<uint64_t>() > hi) {
      fail(http::status::bad_request, "bad_request",
           std::string{"'"} + key + "' must be an integer from "
             + std::to_string(lo) + " to " + std::to_string(hi));
      return false;
    }
    out = i->get<uint64_t>();
    return true;
  };
  uint64_t limit = 0;
  uint64_t before = 0;
  if (!number("limit", default_history_limit, 1, max_history_limit, limit)
      || !number("before", 0, 1, UINT64_MAX, before))
    return;
  auto& reader
    = ctx_->history[std::hash<std::string>{}(pattern) % ctx_->history.size()];
  auto user = checked->sub;
  sys_.spawn([=](caf::event_based_actor* self) {
    self
      ->request(reader, history_timeout, history_atom::value, pattern,
                static_cast<uint32_t>(limit), before)
      .then(
        [=](history_page& page) {
          if (!page.error.empty()) {
            done(error(http::status::service_unavailable, "unavailable",
                       page.error, v, ka));
            return;
          }
          auto events = nlohmann::json::array();
          for (auto& ev : page.events) {
            // What a subscriber would have been shown: a room's events to
            // its audience, and replies whole rather than token by token.
            if (rooms::is_room_topic(ev.topic)
                && (!rooms::in_audience(ev, user)
                    || rooms::event_of(ev.topic) == "message_stream"))
              continue;
            // `data` was checked where the event entered the platform.
            auto data = nlohmann::json::parse(ev.data, nullptr, false);
            if (data.is_discarded())
              data = nullptr;
            events.push_back(nlohmann::json{{"topic", ev.topic},
                                            {"id", ev.id},
                                            {"ts", ev.ts},
                                            {"seq", ev.seq},
                                            {"data", std::move(data)}});
          }
          nlohmann::json res{{"epoch", page.epoch},
                             {"events", std::move(events)}};
          done(json(http::status::ok,
                    res.dump(-1, ' ', false,
                             nlohmann::json::error_handler_t::replace),
                    v, ka));
        },
        [=](caf::error& err) {
          done(error(http::status::service_unavailable, "unavailable",
                     "history did not answer: " + to_string(err), v, ka));
        });
  });
}

} // namespace switchyard::net
