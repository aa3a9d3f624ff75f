// The notifications API of the HTTP router: rules, contact points and the
// inbox. Every handler asks the notification directory from a one-shot
// actor, so the I/O thread never waits.

#include <nlohmann/json.hpp>

#include "net/http_router.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"

namespace switchyard::net {

namespace {

using reply_fn = std::function<void(http_response)>;

/// How long a request may wait for the directory (and its store).
constexpr auto notify_timeout = std::chrono::seconds(35);

} // namespace

void http_router::notifications(const http_request& req, std::string_view path,
                                reply_fn& done) {
  auto v = req.version();
  auto ka = req.keep_alive();
  auto fail = [v, ka, &done](http::status status, const char* code,
                             const std::string& message) {
    done(error(status, code, message, v, ka));
  };
  auto checked = check_user(req, done);
  if (!checked)
    return;
  caller who{checked->sub, checked->org, checked->admin};
  auto method = req.method();
  auto target = std::string_view{req.target().data(), req.target().size()};
  auto dir = ctx_->notifications;
  auto on_outcome = [v, ka, done](const outcome& res) {
    done(error(status_of(res.code), res.code.c_str(), res.message, v, ka));
  };
  auto on_error = [v, ka, done](caf::error& err) {
    done(error(http::status::service_unavailable, "unavailable",
               "notifications did not answer: " + to_string(err), v, ka));
  };
  auto read_body = [&](nlohmann::json& out) -> bool {
    auto parsed = json_limits::parse_json(req.body(), ctx_->cfg.max_json_depth);
    if (parsed.error != json_limits::failure::none
        || !parsed.value.is_object()) {
      ctx_->stats.count_rejected(
        input_source::http, parsed.error == json_limits::failure::too_deep);
      fail(http::status::bad_request, "bad_request",
           "body must be a JSON object");
      return false;
    }
    out = std::move(parsed.value);
    return true;
  };
  auto bad_method = [&] {
    fail(http::status::method_not_allowed, "bad_request",
         "method not allowed here");
  };
  // Answers a rule, or the outcome when it failed.
  auto rule_reply = [v, ka, done, on_outcome](http::status status) {
    return [=](outcome& res, notification_rule& r) {
      if (!res.ok())
        on_outcome(res);
      else
        done(json(status, to_json(r).dump(), v, ka));
    };
  };
  if (path == "/v1/notification-rules"
      || path.substr(0, 23) == "/v1/notification-rules/") {
    auto segs = segments_after(path, "/v1/notification-rules");
    if (segs.size() > 1) {
      fail(http::status::not_found, "not_found", "no such endpoint");
      return;
    }
    std::string id = segs.empty() ? "" : segs[0];
    if (method == http::verb::post && segs.empty()) {
      nlohmann::json body;
      if (!read_body(body))
        return;
      std::string why;
      auto r = parse_rule(body, who.org, "", why);
      if (!r) {
        fail(http::status::bad_request, "bad_request", why);
        return;
      }
      sys_.spawn([=, r = std::move(*r)](caf::event_based_actor* self) {
        self->request(dir, notify_timeout, put_atom::value, who, r, true)
          .then(rule_reply(http::status::created), on_error);
      });
    } else if (method == http::verb::put && !segs.empty()) {
      nlohmann::json body;
      if (!read_body(body))
        return;
      std::string why;
      auto r = parse_rule(body, who.org, id, why);
      if (!r) {
        fail(http::status::bad_request, "bad_request", why);
        return;
      }
      sys_.spawn([=, r = std::move(*r)](caf::event_based_actor* self) {
        self->request(dir, notify_timeout, put_atom::value, who, r, false)
          .then(rule_reply(http::status::ok), on_error);
      });
    } else if (method == http::verb::get && !segs.empty()) {
      sys_.spawn([=](caf::event_based_actor* self) {
        self->request(dir, notify_timeout, get_atom::value, who, id)
          .then(rule_reply(http::status::ok), on_error);
      });
    } else if (method == http::verb::get) {
      sys_.spawn([=](caf::event_based_actor* self) {
        self->request(dir, notify_timeout, list_atom::value, who)
          .then(
            [=](outcome& res, std::vector<notification_rule>& rules) {
              if (!res.ok()) {
                on_outcome(res);
                return;
              }
              auto arr = nlohmann::json::array();
              for (auto& r : rules)
                arr.push_back(to_json(r));
              done(json(http::status::ok,
                        nlohmann::json{{"rules", std::move(arr)}}.dump(), v,
                        ka));
            },
            on_error);
      });
    } else if (method == http::verb::delete_ && !segs.empty()) {
      sys_.spawn([=](caf::event_based_actor* self) {
        self->request(dir, notify_timeout, remove_atom::value, who, id)
          .then(
            [=](outcome& res) {
              if (!res.ok())
                on_outcome(res);
              else
                done(json(http::status::ok, R"({"deleted":true})", v, ka));
            },
            on_error);
      });
    } else {
      bad_method();
    }
    return;
  }
  if (path.substr(0, 10) == "/v1/users/") {
    auto segs = segments_after(path, "/v1/users");
    if (segs.size() != 2 || segs[1] != "contact") {
      fail(http::status::not_found, "not_found", "no such endpoint");
      return;
    }
    auto user = segs[0];
    if (method == http::verb::put) {
      nlohmann::json body;
      if (!read_body(body))
        return;
      std::string why;
      auto x = parse_contact(body, who.org, user, why);
      if (!x) {
        fail(http::status::bad_request, "bad_request", why);
        return;
      }
      sys_.spawn([=, x = std::move(*x)](caf::event_based_actor* self) {
        self->request(dir, notify_timeout, put_atom::value, who, x)
          .then(
            [=](outcome& res) {
              if (!res.ok())
                on_outcome(res);
              else
                done(json(http::status::ok, to_json(x).dump(), v, ka));
            },
            on_error);
      });
    } else if (method == http::verb::get) {
      sys_.spawn([=](caf::event_based_actor* self) {
        self
          ->request(dir, notify_timeout, get_atom::value, who,
                    contact_atom::value, user)
          .then(
            [=](outcome& res, contact& x) {
              if (!res.ok())
                on_outcome(res);
              else if (x.user.empty())
                done(error(http::status::not_found, "not_found",
                           "no contact points for this user", v, ka));
              else
                done(json(http::status::ok, to_json(x).dump(), v, ka));
            },
            on_error);
      });
    } else {
      bad_method();
    }
    return;
  }
  // /v1/notifications[/{id}/read]
  auto segs = segments_after(path, "/v1/notifications");
  if (segs.empty() && method == http::verb::get) {
    auto unread = query_param(target, "unread");
    bool unread_only = unread == "1" || unread == "true";
    sys_.spawn([=](caf::event_based_actor* self) {
      self->request(dir, notify_timeout, inbox_atom::value, who, unread_only)
        .then(
          [=](outcome& res, std::vector<notification>& xs) {
            if (!res.ok()) {
              on_outcome(res);
              return;
            }
            auto arr = nlohmann::json::array();
            for (auto& x : xs)
              arr.push_back(to_json(x));
            done(
              json(http::status::ok,
                   nlohmann::json{{"notifications", std::move(arr)}}.dump(
                     -1, ' ', false, nlohmann::json::error_handler_t::replace),
                   v, ka));
          },
          on_error);
    });
  } else if (segs.size() == 2 && segs[1] == "read"
             && method == http::verb::post) {
    auto id = segs[0];
    sys_.spawn([=](caf::event_based_actor* self) {
      self->request(dir, notify_timeout, read_atom::value, who, id)
        .then(
          [=](outcome& res) {
            if (!res.ok())
              on_outcome(res);
            else
              done(json(http::status::ok, R"({"read":true})", v, ka));
          },
          on_error);
    });
  } else if (segs.empty() || (segs.size() == 2 && segs[1] == "read")) {
    bad_method();
  } else {
    fail(http::status::not_found, "not_found", "no such endpoint");
  }
}

} // namespace switchyard::net
