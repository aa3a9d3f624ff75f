#include "net/http_router.hpp"

#include <algorithm>

#include <boost/beast/core/string.hpp>
#include <nlohmann/json.hpp>

#include "actors/bus_publisher.hpp"
#include "actors/log.hpp"
#include "actors/log_limiter.hpp"
#include "actors/placement.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"
#include "schemas/token.hpp"

namespace switchyard::net {

namespace {

auto& log() {
  static auto instance = logger("http");
  return instance;
}

/// Limits the log lines about refused input of this kind.
log_limiter& rejection_log() {
  static log_limiter instance;
  return instance;
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/// How long a browser may cache a preflight answer (Chrome caps it at 2 h).
constexpr auto cors_max_age = "600";

/// Webhooks: `POST /v1/ingest/{source}`.
constexpr std::string_view ingest_path = "/v1/ingest/";

/// `s` cut to 64 bytes, for a log line or a message about request bytes.
std::string clipped(std::string_view s) {
  constexpr size_t most = 64;
  return s.size() <= most ? std::string{s}
                          : std::string{s.substr(0, most)} + "...";
}

} // namespace

bool origin_allowed(const settings& cfg, std::string_view origin) {
  for (auto& allowed : cfg.allowed_origins)
    if (allowed == "*"
        || boost::beast::iequals(allowed, {origin.data(), origin.size()}))
      return true;
  return false;
}

std::string bearer_token(const http_request& req) {
  auto i = req.find(http::field::authorization);
  if (i == req.end())
    return {};
  auto value = std::string_view{i->value().data(), i->value().size()};
  constexpr std::string_view prefix = "Bearer ";
  if (value.substr(0, prefix.size()) != prefix)
    return {};
  return std::string{value.substr(prefix.size())};
}

std::string url_decode(std::string_view raw) {
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%' && i + 2 < raw.size() && hex_value(raw[i + 1]) >= 0
        && hex_value(raw[i + 2]) >= 0) {
      out.push_back(
        static_cast<char>(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2])));
      i += 2;
    } else {
      out.push_back(raw[i] == '+' ? ' ' : raw[i]);
    }
  }
  return out;
}

std::string query_param(std::string_view target, std::string_view key) {
  auto q = target.find('?');
  if (q == std::string_view::npos)
    return {};
  auto query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == key && eq != std::string_view::npos)
      return url_decode(pair.substr(eq + 1));
    if (amp == std::string_view::npos)
      break;
    query = query.substr(amp + 1);
  }
  return {};
}

http_router::http_router(caf::actor_system& sys, node_context_ptr ctx)
  : sys_(sys), ctx_(std::move(ctx)) {
  for (size_t i = 0; i < ctx_->cfg.ingest_sources.size(); ++i)
    ingest_logs_.push_back(std::make_unique<log_limiter>());
}

http_response http_router::json(http::status status, std::string body,
                                unsigned version, bool keep_alive) {
  http_response res{status, version};
  res.set(http::field::content_type, "application/json");
  res.set(http::field::server, "switchyard");
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

http_response http_router::error(http::status status, const char* code,
                                 const std::string& message, unsigned version,
                                 bool keep_alive) {
  nlohmann::json body{{"code", code}, {"message", message}};
  // A message may quote a request's bytes (a path segment, say): never let
  // invalid UTF-8 in it throw.
  return json(
    status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
    version, keep_alive);
}

void http_router::handle(const http_request& req,
                         std::function<void(http_response)> done) {
  ctx_->stats.http_requests.fetch_add(1, std::memory_order_relaxed);
  auto path = path_of({req.target().data(), req.target().size()});
  auto v = req.version();
  auto ka = req.keep_alive();
  // CORS for /v1/*: an allowed browser origin gets its preflight answered
  // and may read every response; any other gets no CORS header, so the
  // browser withholds the response from the page.
  auto origin_hdr = req.find(http::field::origin);
  if (origin_hdr != req.end() && path.substr(0, 4) == "/v1/") {
    auto origin = std::string{origin_hdr->value()};
    bool allowed = origin_allowed(ctx_->cfg, origin);
    if (req.method() == http::verb::options) {
      if (!allowed) {
        ctx_->stats.origin_rejected.fetch_add(1, std::memory_order_relaxed);
        auto res = error(http::status::forbidden, "forbidden",
                         "origin not allowed", v, ka);
        res.set(http::field::vary, "Origin");
        done(std::move(res));
        return;
      }
      http_response res{http::status::no_content, v};
      res.set(http::field::server, "switchyard");
      res.set(http::field::access_control_allow_origin, origin);
      res.set(http::field::access_control_allow_methods, "GET, POST, DELETE");
      res.set(http::field::access_control_allow_headers,
              "Authorization, Content-Type");
      res.set(http::field::access_control_max_age, cors_max_age);
      res.set(http::field::vary, "Origin");
      res.keep_alive(ka);
      res.prepare_payload();
      done(std::move(res));
      return;
    }
    done = [done = std::move(done), origin = std::move(origin),
            allowed](http_response res) {
      if (allowed)
        res.set(http::field::access_control_allow_origin, origin);
      res.set(http::field::vary, "Origin");
      done(std::move(res));
    };
  }
  auto method_is = [&](http::verb verb) {
    if (req.method() == verb)
      return true;
    done(error(http::status::method_not_allowed, "bad_request",
               "method not allowed", v, ka));
    return false;
  };
  if (path == "/healthz") {
    if (!method_is(http::verb::get))
      return;
    // The node serves its WebSocket clients without the bus, so it stays
    // 200; "degraded" tells operators that publishing and NATS delivery are
    // off.
    auto bus = ctx_->bus_status();
    nlohmann::json body{{"status", bus == "down" ? "degraded" : "ok"},
                        {"node", ctx_->ids.node_id()},
                        {"bus", bus},
                        {"connections", ctx_->stats.connections.load()}};
    done(json(http::status::ok, body.dump(), v, ka));
  } else if (path == "/metrics") {
    if (!method_is(http::verb::get))
      return;
    http_response res{http::status::ok, v};
    res.set(http::field::content_type, "text/plain; version=0.0.4");
    res.keep_alive(ka);
    res.body() = render_metrics(*ctx_);
    res.prepare_payload();
    done(std::move(res));
  } else if (path == "/v1/publish") {
    if (method_is(http::verb::post))
      publish(req, done);
  } else if (path == "/v1/history") {
    if (method_is(http::verb::post))
      history(req, done);
  } else if (path == "/v1/presence") {
    if (method_is(http::verb::get))
      presence(req, done);
  } else if (path == "/v1/introspect/sessions"
             || path == "/v1/introspect/topics") {
    if (method_is(http::verb::get))
      introspect(req, path == "/v1/introspect/sessions", done);
  } else if (path == "/v1/cluster") {
    if (method_is(http::verb::get))
      cluster(req, done);
  } else if (path == "/v1/rooms" || path.substr(0, 10) == "/v1/rooms/") {
    rooms(req, path, done);
  } else if (path == "/v1/notification-rules"
             || path.substr(0, 23) == "/v1/notification-rules/"
             || path == "/v1/notifications"
             || path.substr(0, 18) == "/v1/notifications/"
             || path.substr(0, 10) == "/v1/users/") {
    notifications(req, path, done);
  } else if (path.substr(0, ingest_path.size()) == ingest_path) {
    ingest(req, path.substr(ingest_path.size()), done);
  } else if (path == "/v1/ws") {
    done(error(http::status::upgrade_required, "bad_request",
               "GET /v1/ws expects a WebSocket upgrade", v, ka));
  } else {
    done(
      error(http::status::not_found, "not_found", "no such endpoint", v, ka));
  }
}

verified http_router::check_bearer(const http_request& req) {
  auto token = bearer_token(req);
  auto now = node_context::unix_ms() / 1000;
  {
    std::lock_guard<std::mutex> guard{cache_mtx_};
    auto i = token_cache_.find(token);
    if (i != token_cache_.end()) {
      if (i->second.exp > now)
        return verified{i->second, {}};
      token_cache_.erase(i);
    }
  }
  auto result = verify_token(token, ctx_->cfg.jwt_keys, now,
                             ctx_->cfg.jwt_leeway);
  if (result.value) {
    std::lock_guard<std::mutex> guard{cache_mtx_};
    if (token_cache_.size() >= token_cache_size)
      token_cache_.clear();
    token_cache_.emplace(std::move(token), *result.value);
  }
  return result;
}

void http_router::publish(const http_request& req,
                          std::function<void(http_response)>& done) {
  auto v = req.version();
  auto ka = req.keep_alive();
  auto checked = check_bearer(req);
  if (!checked.value) {
    done(
      error(http::status::unauthorized, "unauthorized", checked.error, v, ka));
    return;
  }
  auto parsed = json_limits::parse_json(req.body(), ctx_->cfg.max_json_depth);
  auto& body = parsed.value;
  if (parsed.error != json_limits::failure::none || !body.is_object()) {
    auto too_deep = parsed.error == json_limits::failure::too_deep;
    ctx_->stats.count_rejected(input_source::http, too_deep);
    if (uint64_t held = 0; rejection_log().admit(held))
      log()->warn("refused a {}-byte publish body ({}); {} more refused since "
                  "the last such line",
                  req.body().size(), too_deep ? "too deep" : "malformed", held);
    auto why = too_deep
      ? "body has " + json_limits::too_deep_message(ctx_->cfg.max_json_depth)
      : std::string{"body must be a JSON object"};
    done(error(http::status::bad_request, "bad_request", why, v, ka));
    return;
  }
  auto t = body.find("topic");
  if (t == body.end() || !t->is_string()) {
    done(error(http::status::bad_request, "bad_request",
               "body needs a string field 'topic'", v, ka));
    return;
  }
  auto topic = t->get<std::string>();
  if (auto refusal = check_publish(*checked.value, topic)) {
    auto status = std::string_view{refusal->code} == "forbidden"
      ? http::status::forbidden
      : http::status::bad_request;
    done(error(status, refusal->code, refusal->message, v, ka));
    return;
  }
  std::string chosen_id;
  if (auto id = body.find("id"); id != body.end()) {
    if (!id->is_string()
        || !valid_event_id(id->get_ref<const std::string&>())) {
      done(error(http::status::bad_request, "bad_request",
                 "id must be a string of 1 to 128 bytes", v, ka));
      return;
    }
    chosen_id = id->get<std::string>();
  }
  auto ev = client_event(ctx_->ids, *checked.value, std::move(topic),
                         std::move(chosen_id),
                         json_limits::field_text(body, "data"));
  auto id = ev.id;
  auto status = ctx_->publish(std::move(ev));
  if (!status.empty()) {
    done(
      error(http::status::service_unavailable, "unavailable", status, v, ka));
    return;
  }
  nlohmann::json res{{"id", id}};
  done(json(http::status::accepted, res.dump(), v, ka));
}

std::optional<size_t> http_router::ingest_index(std::string_view name) const {
  auto& sources = ctx_->cfg.ingest_sources;
  for (size_t i = 0; i < sources.size(); ++i)
    if (sources[i].name == name)
      return i;
  return std::nullopt;
}

size_t http_router::body_limit(std::string_view target) const {
  auto path = path_of(target);
  if (path.substr(0, ingest_path.size()) == ingest_path
      && ingest_index(path.substr(ingest_path.size())))
    return ctx_->cfg.max_ingest_body;
  return ctx_->cfg.max_frame_size;
}

size_t http_router::largest_body_limit() const {
  auto& cfg = ctx_->cfg;
  return cfg.ingest_sources.empty()
    ? cfg.max_frame_size
    : std::max(cfg.max_frame_size, cfg.max_ingest_body);
}

http_response http_router::too_large(std::string_view target,
                                     unsigned version) {
  auto path = path_of(target);
  if (path.substr(0, ingest_path.size()) == ingest_path)
    if (auto index = ingest_index(path.substr(ingest_path.size())))
      return refuse_webhook(*index, ingest::outcome::too_large,
                            "body larger than max-ingest-body ("
                              + std::to_string(ctx_->cfg.max_ingest_body)
                              + " bytes)",
                            0, version, false);
  return error(http::status::payload_too_large, "bad_request",
               "body larger than max-frame-size", version, false);
}

http_response http_router::refuse_webhook(size_t index, ingest::outcome x,
                                          const std::string& why,
                                          size_t body_size, unsigned version,
                                          bool keep_alive) {
  ctx_->stats.count_ingest(index, x);
  auto& name = ctx_->cfg.ingest_sources[index].name;
  if (uint64_t held = 0; ingest_logs_[index]->admit(held))
    log()->warn("ingest source {}: refused a webhook{} ({}: {}); {} more "
                "refused since the last such line",
                name,
                body_size == 0 ? std::string{}
                               : " of " + std::to_string(body_size) + " bytes",
                ingest::outcome_names[static_cast<size_t>(x)], why, held);
  return error(static_cast<http::status>(ingest::http_status(x)),
               ingest::error_code(x), why, version, keep_alive);
}

void http_router::ingest(const http_request& req, std::string_view name,
                         std::function<void(http_response)>& done) {
  auto v = req.version();
  auto ka = req.keep_alive();
  auto index = ingest_index(name);
  if (!index) {
    ctx_->stats.ingest_unknown_source.fetch_add(1, std::memory_order_relaxed);
    if (uint64_t held = 0; unknown_source_log_.admit(held))
      log()->warn("refused a webhook for unknown source '{}'; {} more "
                  "refused since the last such line",
                  clipped(name), held);
    done(error(http::status::not_found, "not_found",
               "no webhook source '" + clipped(name) + "' on this node", v,
               ka));
    return;
  }
  auto& src = ctx_->cfg.ingest_sources[*index];
  auto size = req.body().size();
  if (req.method() != http::verb::post) {
    done(refuse_webhook(*index, ingest::outcome::method_not_allowed,
                        "method not allowed; webhooks are POST", size, v, ka));
    return;
  }
  auto headers = [&req](std::string_view field) {
    auto i = req.find(boost::beast::string_view{field.data(), field.size()});
    return i == req.end()
      ? std::optional<std::string_view>{}
      : std::string_view{i->value().data(), i->value().size()};
  };
  auto now = node_context::unix_ms();
  auto verdict = ingest::handle(src, req.body(), headers, now,
                                ctx_->cfg.max_json_depth);
  if (verdict.result != ingest::outcome::accepted) {
    done(refuse_webhook(*index, verdict.result, verdict.message, size, v, ka));
    return;
  }
  auto& mapped = verdict.event;
  event ev;
  ev.id = mapped.id.empty() ? ctx_->next_event_id() : std::move(mapped.id);
  ev.topic = std::move(mapped.topic);
  ev.ts = now;
  ev.source = std::string{ingest::event_source_prefix} + src.name;
  ev.data = std::move(mapped.data);
  ev.headers = std::move(mapped.headers);
  nlohmann::json res{{"id", ev.id}, {"topic", ev.topic}};
  // The same call as POST /v1/publish: over NATS to every node, or to this
  // node's subscribers on the in-process bus.
  auto status = ctx_->publish(std::move(ev));
  if (!status.empty()) {
    done(refuse_webhook(*index, ingest::outcome::unavailable, status, size, v,
                        ka));
    return;
  }
  ctx_->stats.count_ingest(*index, ingest::outcome::accepted);
  done(json(http::status::accepted,
            res.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
            v, ka));
}

std::optional<claims>
http_router::check_user(const http_request& req,
                        std::function<void(http_response)>& done) {
  auto checked = check_bearer(req);
  if (!checked.value)
    done(error(http::status::unauthorized, "unauthorized", checked.error,
               req.version(), req.keep_alive()));
  return checked.value;
}

std::optional<claims>
http_router::check_admin(const http_request& req, bool node_admin,
                         std::function<void(http_response)>& done) {
  auto v = req.version();
  auto ka = req.keep_alive();
  auto checked = check_bearer(req);
  if (!checked.value) {
    done(
      error(http::status::unauthorized, "unauthorized", checked.error, v, ka));
    return std::nullopt;
  }
  if (!(node_admin ? checked.value->node_admin : checked.value->admin)) {
    done(
      error(http::status::forbidden, "forbidden",
            node_admin ? "node_admin token required" : "admin token required",
            v, ka));
    return std::nullopt;
  }
  return checked.value;
}

void http_router::introspect(const http_request& req, bool sessions,
                             std::function<void(http_response)>& done) {
  auto v = req.version();
  auto ka = req.keep_alive();
  auto checked = check_admin(req, false, done);
  if (!checked)
    return;
  // An org's admin sees its own org; only a node admin sees every org.
  auto all_orgs = checked->node_admin;
  auto org = checked->org;
  auto org_prefix = "events." + org + ".";
  auto sessions_hdl = ctx_->sessions;
  auto topics_hdl = ctx_->topics;
  auto on_error = [done, v, ka](caf::error& err) {
    log()->warn("introspection failed: {}", to_string(err));
    done(error(http::status::service_unavailable, "unavailable",
               "introspection timed out", v, ka));
  };
  // A one-shot actor asks and completes the HTTP response; the I/O thread
  // never waits for an actor.
  if (sessions) {
    sys_.spawn([=](caf::event_based_actor* self) {
      self->request(sessions_hdl, std::chrono::seconds(5), sessions_atom::value)
        .then(
          [=](std::vector<session_info>& xs) {
            auto arr = nlohmann::json::array();
            for (auto& x : xs)
              if (all_orgs || x.org == org)
                arr.push_back({{"session", x.session},
                               {"user", x.user},
                               {"org", x.org},
                               {"subscriptions", x.subscriptions}});
            done(json(http::status::ok,
                      nlohmann::json{{"sessions", arr}}.dump(), v, ka));
          },
          on_error);
    });
  } else {
    sys_.spawn([=](caf::event_based_actor* self) {
      self->request(topics_hdl, std::chrono::seconds(5), topics_atom::value)
        .then(
          [=](std::vector<topic_info>& xs) {
            auto arr = nlohmann::json::array();
            for (auto& x : xs)
              if (all_orgs || x.pattern.rfind(org_prefix, 0) == 0)
                arr.push_back(
                  {{"pattern", x.pattern}, {"subscribers", x.subscribers}});
            done(json(http::status::ok, nlohmann::json{{"topics", arr}}.dump(),
                      v, ka));
          },
          on_error);
    });
  }
}

void http_router::cluster(const http_request& req,
                          std::function<void(http_response)>& done) {
  auto v = req.version();
  auto ka = req.keep_alive();
  auto checked = check_admin(req, true, done);
  if (!checked)
    return;
  if (!ctx_->cluster) {
    done(error(http::status::not_found, "not_found",
               "this node runs alone (no --cluster-port)", v, ka));
    return;
  }
  auto room = query_param(
    std::string_view{req.target().data(), req.target().size()}, "room");
  auto org = checked->org;
  auto target = ctx_->cluster;
  sys_.spawn([=](caf::event_based_actor* self) {
    self->request(target, std::chrono::seconds(5), members_atom::value)
      .then(
        [=](std::vector<member_status>& xs) {
          auto arr = nlohmann::json::array();
          member_view alive;
          for (auto& x : xs) {
            if (x.state != "down")
              alive.push_back(x.card);
            arr.push_back({{"name", x.card.name},
                           {"address", x.card.address},
                           {"state", x.state},
                           {"started_at", x.card.started_at},
                           {"last_seen", x.last_seen},
                           {"connections", x.load.connections},
                           {"topic_actors", x.load.topic_actors},
                           {"rooms_active", x.load.rooms_active},
                           {"streams_active", x.load.streams_active},
                           {"notifiers", x.load.notifiers},
                           {"rule_actors", x.load.rule_actors}});
          }
          nlohmann::json body{{"node", xs.front().card.name}, {"members", arr}};
          if (!room.empty())
            body["room_owner"] = owner_of(alive, room_key(org, room))->name;
          done(json(http::status::ok, body.dump(), v, ka));
        },
        [=](caf::error& err) {
          log()->warn("cluster members not answered: {}", to_string(err));
          done(error(http::status::service_unavailable, "unavailable",
                     "cluster actor did not answer", v, ka));
        });
  });
}

} // namespace switchyard::net
