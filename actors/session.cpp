#include "actors/session.hpp"

#include <nlohmann/json.hpp>

#include "actors/bus_publisher.hpp"
#include "actors/log.hpp"
#include "actors/log_limiter.hpp"
#include "actors/presence.hpp"
#include "schemas/client_frame.hpp"
#include "schemas/frames.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"
#include "schemas/rooms.hpp"
#include "schemas/topic.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("session");
  return instance;
}

/// Limits the log lines about refused input of this kind.
log_limiter& rejection_log() {
  static log_limiter instance;
  return instance;
}

/// How long a replay waits for its history reader: behind a reconnect
/// storm, readers take replays in turn.
constexpr auto replay_timeout = std::chrono::seconds(60);

/// How long a replay waits while its client reads what is queued.
constexpr auto replay_pause = std::chrono::milliseconds(10);

/// Limits the log lines about publishes the bus did not answer in time.
log_limiter& publish_log() {
  static log_limiter instance;
  return instance;
}

} // namespace

session_deps_ptr session_deps_of(const node_context_ptr& ctx) {
  // Aliasing pointers: each keeps the context alive, and names only its part.
  return std::make_shared<const session_deps>(session_deps{
    std::shared_ptr<const settings>(ctx, &ctx->cfg),
    std::shared_ptr<metrics>(ctx, &ctx->stats),
    std::shared_ptr<sink_registry>(ctx, &ctx->sinks),
    std::shared_ptr<id_source>(ctx, &ctx->ids), ctx->topics, ctx->sessions,
    ctx->publisher, ctx->rooms, ctx->notifications, ctx->history});
}

session_server::session_server(caf::actor_config& cfg,
                               std::shared_ptr<connection_port> conn,
                               session_deps_ptr deps, std::string token)
  : session_actor::base(cfg),
    conn_(std::move(conn)),
    deps_(std::move(deps)),
    initial_token_(std::move(token)) {}

session_actor::behavior_type session_server::make_behavior() {
  deps_->sinks->add(id(), conn_);
  if (!initial_token_.empty()) {
    auto token = std::move(initial_token_);
    on_auth("", token);
  } else {
    delayed_send(this, deps_->cfg->auth_timeout, auth_due_atom::value);
  }
  return {
    [this](text_atom, const std::string& text) {
      if (on_text(text))
        conn_->consumed(text.capacity());
    },
    [this](binary_atom, const std::string& bytes) {
      if (conn_->format() != frames::wire_format::msgpack)
        reply_error("", "bad_request",
                    "binary frames are client frames of switchyard.v1.msgpack "
                    "only");
      else if (!on_msgpack(bytes))
        return;
      conn_->consumed(bytes.capacity());
    },
    [this](pong_atom) {
      ping_unanswered_ = false;
    },
    [this](closed_atom, uint16_t) {
      phase_ = phase::closed;
      quit();
    },
    [this](frame_atom, const std::string& frame) {
      // A notification of this session's user.
      if (phase_ == phase::open)
        conn_->send_text(frame);
    },
    [this](publish_atom, const std::string& subscription, const event& ev) {
      // A room event, or an event from a topic actor on another node.
      if (phase_ != phase::open)
        return;
      if (rooms::is_room_topic(ev.topic))
        on_room_event(subscription, ev);
      else
        conn_->push(frames::encode_event(conn_->format(), subscription, ev));
    },
    [this](flush_atom) {
      flush_armed_ = false;
      flush_streams(false);
    },
    [this](replay_atom, const std::string& pattern) {
      continue_replay(pattern);
    },
    [this](overflow_atom, const std::string&) {
      // Live events piled up behind a replay the client reads too slowly.
      close(frames::close_code::slow_consumer, "slow consumer");
    },
    [this](auth_due_atom) {
      if (phase_ == phase::awaiting_auth) {
        reply_error("", "unauthorized",
                    "no auth frame within the auth timeout");
        close(frames::close_code::unauthorized, "auth timeout");
      }
    },
    [this](expire_atom, uint64_t gen) {
      if (phase_ == phase::open && gen == auth_gen_) {
        reply_error("", "unauthorized", "token expired");
        close(frames::close_code::unauthorized, "token expired");
      }
    },
    [this](tick_atom) {
      if (phase_ != phase::open)
        return;
      if (ping_unanswered_) {
        // A whole interval without a pong (a heartbeat timeout at least as
        // long as the interval ends here).
        close(frames::close_code::heartbeat, "heartbeat timeout");
        return;
      }
      conn_->send_ping();
      schedule_expiry();
      ping_unanswered_ = true;
      if (deps_->rooms)
        recheck_room_presence();
    },
    [this](sessions_atom) {
      session_info info{session_id(),
                        claims_ ? claims_->sub : std::string{},
                        claims_ ? claims_->org : std::string{},
                        {}};
      for (auto& kvp : subs_)
        if (kvp.second.node)
          info.subscriptions.emplace_back(kvp.first);
      return info;
    },
    [this](pong_due_atom) {
      // From the registry's wheel, one heartbeat timeout after this
      // session's ping.
      if (phase_ == phase::open && ping_unanswered_)
        close(frames::close_code::heartbeat, "heartbeat timeout");
    },
  };
}

void session_server::on_exit() {
  deps_->sinks->remove(id());
  if (phase_ != phase::closed)
    conn_->close(frames::close_code::going_away, "session ended");
  if (registered_)
    deps_->stats->sessions_authenticated.fetch_sub(1,
                                                   std::memory_order_relaxed);
  conn_.reset(); // breaks the session <-> connection reference cycle
  // A connection that outlives this actor keeps the actor object, not the
  // node's handles in the deps (a detached actor's thread waits for its
  // last handle, and the node's stop for that thread).
  deps_.reset();
  // Topic actors and the registry monitor this actor and clean up on the
  // down message, whatever the reason of the exit.
}

// -- inbound frames -----------------------------------------------------------

bool session_server::on_text(const std::string& text) {
  if (phase_ == phase::closed)
    return true;
  return on_frame(decode_client_frame(text, deps_->cfg->max_json_depth),
                  text.size(), text.capacity());
}

bool session_server::on_frame(client_frame frame, size_t size,
                              size_t capacity) {
  if (frame.type != client_frame_type::none
      && frame.type != client_frame_type::auth && phase_ != phase::open) {
    reply_error(frame.id, "unauthorized", "authenticate first");
    return true;
  }
  if (frame.error_code != nullptr) {
    refuse(size, frame.too_deep, frame.id, frame.error_code, frame.error);
    return true;
  }
  switch (frame.type) {
    case client_frame_type::auth: on_auth(frame.id, frame.token); break;
    case client_frame_type::subscribe: {
      std::optional<replay_request> recover;
      if (frame.recover)
        recover = replay_request{frame.topic, frame.recover_since,
                                 std::move(frame.recover_epoch),
                                 frame.recover_since_ts, frame.recover_by_time};
      on_subscribe(frame.id, frame.topic, std::move(recover));
      break;
    }
    case client_frame_type::unsubscribe:
      on_unsubscribe(frame.id, frame.topic);
      break;
    case client_frame_type::presence:
      on_presence(frame.id, frame.topic, frame.room);
      break;
    case client_frame_type::publish: return on_publish(frame, capacity);
    case client_frame_type::ack:
      send(deps_->notifications, ack_atom::value, claims_->org, claims_->sub,
           frame.id);
      break;
    case client_frame_type::none: break; // refused above: no type
  }
  return true;
}

bool session_server::on_msgpack(const std::string& bytes) {
  if (phase_ == phase::closed)
    return true;
  auto max_depth = deps_->cfg->max_json_depth;
  auto parsed = json_limits::parse_msgpack(bytes, max_depth);
  auto too_deep = parsed.error == json_limits::failure::too_deep;
  if (parsed.error != json_limits::failure::none || !parsed.value.is_object()) {
    refuse(bytes.size(), too_deep, "", "bad_request",
           too_deep ? "frame has " + json_limits::too_deep_message(max_depth)
                    : std::string{"a binary frame must be one msgpack map"});
    return true;
  }
  // The same fields as a text frame's: one reading for both encodings.
  return on_frame(client_frame_from_json(parsed.value), bytes.size(),
                  bytes.capacity());
}

void session_server::refuse(size_t size, bool too_deep, const std::string& id,
                            const char* code, const std::string& message) {
  deps_->stats->count_rejected(input_source::client, too_deep);
  if (uint64_t held = 0; rejection_log().admit(held))
    log()->warn("session {}: refused a {}-byte frame ({}); {} more refused "
                "since the last such line",
                session_id(), size, too_deep ? "too deep" : "malformed", held);
  reply_error(id, code, message);
}

void session_server::on_auth(const std::string& id, const std::string& token) {
  auto res = verify_token(token, deps_->cfg->jwt_keys,
                          node_context::unix_ms() / 1000,
                          deps_->cfg->jwt_leeway);
  if (!res.value) {
    deps_->stats->auth_failures.fetch_add(1, std::memory_order_relaxed);
    reply_error(id, "unauthorized", res.error);
    if (phase_ == phase::awaiting_auth)
      close(frames::close_code::unauthorized, res.error);
    // An open session keeps its current token until that one expires.
    return;
  }
  if (phase_ == phase::open) {
    if (res.value->sub != claims_->sub || res.value->org != claims_->org) {
      reply_error(id, "forbidden",
                  "a fresh token must be for the same user and org");
      return;
    }
    claims_ = std::move(res.value);
    ++auth_gen_;
    schedule_expiry();
    drop_forbidden_subscriptions();
    reply_ok(id);
    return;
  }
  authenticated(std::move(*res.value), id);
}

void session_server::authenticated(claims c, const std::string& id) {
  claims_ = std::move(c);
  // Wait for the registry before anything else: frames that arrive
  // meanwhile stay in the mailbox, in order.
  request(deps_->sessions, std::chrono::seconds(10), register_atom::value,
          claims_->org, claims_->sub, caf::actor_cast<session_actor>(this))
    .await(
      [this, id](bool admitted) {
        if (!admitted) {
          reply_error(id, "rate_limited", "too many connections for this user");
          close(frames::close_code::too_many, "too many connections");
          return;
        }
        phase_ = phase::open;
        registered_ = true;
        deps_->stats->sessions_authenticated.fetch_add(
          1, std::memory_order_relaxed);
        conn_->send_text(
          frames::welcome_json(session_id(), claims_->sub, claims_->org,
                               deps_->cfg->heartbeat_interval.count(),
                               claims_->exp, conn_->format()));
        if (!id.empty())
          reply_ok(id);
        ++auth_gen_;
        schedule_expiry();
        // Heartbeat ticks come from the registry's wheel from now on.
      },
      [this](caf::error& err) {
        log()->error("session {}: registry unavailable: {}", session_id(),
                     to_string(err));
        close(frames::close_code::internal_error, "registry unavailable");
      });
}

void session_server::on_subscribe(const std::string& id,
                                  const std::string& pattern,
                                  std::optional<replay_request> recover) {
  std::string why;
  if (!topic::valid_pattern(pattern, &why)) {
    reply_error(id, "bad_topic", why);
    return;
  }
  if (is_presence_pattern(pattern)) {
    auto target = parse_presence_key(pattern, &why);
    if (!target) {
      reply_error(id, "bad_topic", why);
      return;
    }
    if (!may_see_presence(*claims_, *target)) {
      reply_error(id, "forbidden", "token may not see " + pattern);
      return;
    }
    with_room_read(id, room_of(*target), pattern, [this, id, pattern, recover] {
      subscribe_checked(id, pattern, recover);
    });
    return;
  }
  if (!may_subscribe(*claims_, pattern)) {
    reply_error(id, "forbidden", "token may not subscribe to " + pattern);
    return;
  }
  with_room_access(id, rooms::room_of_pattern(pattern), pattern,
                   [this, id, pattern, recover] {
                     subscribe_checked(id, pattern, recover);
                   });
}

template<class F>
void session_server::with_room_read(const std::string& id,
                                    const std::string& room,
                                    const std::string& what, F then) {
  if (room.empty()) {
    then();
    return;
  }
  if (!deps_->rooms) {
    reply_error(id, "forbidden", "this node has no rooms");
    return;
  }
  // Who is in a room is the room's data: the room must exist, be loaded
  // and be readable by this user (presence events are not filtered by a
  // room's audience as its own events are).
  request(deps_->rooms, std::chrono::seconds(10), get_atom::value,
          caller{claims_->sub, claims_->org, claims_->admin}, room)
    .await(
      [this, id, what, then](const outcome& res, const room_record&) {
        if (res.ok())
          then();
        else if (refuses_room(res))
          reply_error(id, "forbidden", "may not see the room of " + what);
        else
          reply_error(id, "unavailable", "rooms are not ready, retry");
      },
      [this, id](caf::error&) {
        reply_error(id, "unavailable", "rooms did not answer, retry");
      });
}

bool session_server::may_hold(const std::string& pattern) const {
  if (!is_presence_pattern(pattern))
    return may_subscribe(*claims_, pattern);
  auto target = parse_presence_key(pattern, nullptr);
  return target && may_see_presence(*claims_, *target);
}

void session_server::recheck_room_presence() {
  for (auto& [pattern, sub] : subs_) {
    if (!is_presence_pattern(pattern) || !sub.node)
      continue;
    auto target = parse_presence_key(pattern, nullptr);
    auto room = target ? room_of(*target) : std::string{};
    if (room.empty())
      continue;
    request(deps_->rooms, std::chrono::seconds(10), get_atom::value,
            caller{claims_->sub, claims_->org, claims_->admin}, room)
      .then(
        [this, pattern = pattern](const outcome& res, const room_record&) {
          if (refuses_room(res))
            drop_subscription(pattern, "forbidden");
        },
        [](caf::error&) {
          // Unanswered: the next heartbeat asks again.
        });
  }
}

template<class F>
void session_server::with_room_access(const std::string& id,
                                      std::string_view room,
                                      const std::string& what, F then) {
  if (room.empty() || !deps_->rooms) {
    then();
    return;
  }
  // A private room's topics are for its participants: ask first (await:
  // later frames wait, and their replies keep order).
  request(deps_->rooms, std::chrono::seconds(10), access_atom::value,
          claims_->org, claims_->sub, std::string{room})
    .await(
      [this, id, what, then](bool allowed) {
        if (allowed)
          then();
        else
          reply_error(id, "forbidden",
                      "not a participant of the private room of " + what);
      },
      [this, id](caf::error&) {
        reply_error(id, "unavailable", "rooms did not answer, retry");
      });
}

template<class Atom>
void session_server::tell_presence(Atom atm, const std::string& pattern) {
  for (auto& key : presence_keys_of(claims_->org, pattern))
    send(deps_->sessions, atm, std::move(key),
         caf::actor_cast<session_actor>(this));
}

void session_server::on_presence(const std::string& id,
                                 const std::string& topic,
                                 const std::string& room) {
  presence_target target;
  std::string what;
  if (topic.empty()) {
    if (!rooms::valid_room_id(room)) {
      reply_error(id, "bad_request",
                  "room must be a room id (conv_ and 24 hex digits)");
      return;
    }
    target.room = room;
    target.key = presence_room_key(claims_->org, room);
    what = "room " + room;
  } else {
    std::string why;
    if (!topic::valid_topic(topic, &why)) {
      reply_error(id, "bad_topic", why);
      return;
    }
    target.topic = topic;
    target.key = presence_topic_key(claims_->org, topic);
    what = topic;
  }
  target.org = claims_->org;
  if (!may_see_presence(*claims_, target)) {
    reply_error(id, "forbidden", "token may not see who is on " + what);
    return;
  }
  with_room_read(id, room_of(target), what, [this, id, key = target.key] {
    request(deps_->sessions, std::chrono::seconds(10), presence_atom::value,
            key)
      .then(
        [this, id](const presence_info& info) {
          conn_->send_text(frames::presence_json(id, info));
        },
        [this, id](caf::error&) {
          reply_error(id, "unavailable", "presence did not answer, retry");
        });
  });
}

void session_server::subscribe_checked(const std::string& id,
                                       const std::string& pattern,
                                       std::optional<replay_request> recover) {
  if (subs_.count(pattern) != 0) {
    // Idempotent: still one delivery per event, and nothing to recover on
    // a subscription that never stopped.
    if (recover) {
      replay_result res;
      res.reason = "subscribed";
      conn_->send_text(frames::recovered_json(id, res));
    } else {
      reply_ok(id);
    }
    return;
  }
  if (subs_.size() >= deps_->cfg->max_subscriptions) {
    reply_error(id, "too_many_subscriptions",
                "at most " + std::to_string(deps_->cfg->max_subscriptions)
                  + " subscriptions per connection");
    return;
  }
  auto gen = ++sub_gen_;
  subs_.emplace(pattern, subscription{subscription_actor{}, gen});
  // With history, a recovering subscription's live events wait in its
  // topic actor until the replay is queued.
  bool replays = recover && !deps_->history.empty()
    && !is_presence_pattern(pattern);
  auto on_node = [this, id, pattern, gen, recover,
                  replays](subscription_actor& node) {
    auto i = subs_.find(pattern);
    if (i == subs_.end()) {
      // Unsubscribed while the subscribe was in flight.
      send(node, unsubscribe_atom::value,
           caf::actor_cast<subscriber_actor>(this));
    } else if (i->second.gen == gen) {
      i->second.node = std::move(node);
      tell_presence(join_atom::value, pattern);
      if (replays) {
        replay(id, pattern, gen, *recover);
        return;
      }
    } // else: unsubscribed and subscribed again; the newer reply counts
    if (recover) {
      replay_result res;
      res.reason = "unavailable"; // no history on this node
      conn_->send_text(frames::recovered_json(id, res));
    } else {
      reply_ok(id);
    }
    if (deps_->rooms && rooms::may_match_streams(pattern, claims_->org))
      catch_up(pattern);
  };
  auto on_error = [this, id, pattern, gen](caf::error& err) {
    auto i = subs_.find(pattern);
    if (i != subs_.end() && i->second.gen == gen)
      subs_.erase(i);
    log()->warn("session {}: subscribe {} failed: {}", session_id(), pattern,
                to_string(err));
    reply_error(id, "unavailable", "subscription failed, retry");
  };
  auto self = caf::actor_cast<subscriber_actor>(this);
  if (replays)
    request(deps_->topics, std::chrono::seconds(10), recover_atom::value,
            pattern, self)
      .then(on_node, on_error);
  else
    request(deps_->topics, std::chrono::seconds(10), subscribe_atom::value,
            pattern, self)
      .then(on_node, on_error);
}

// -- recovery -----------------------------------------------------------------

void session_server::replay(const std::string& id, const std::string& pattern,
                            uint64_t gen, replay_request req) {
  // By pattern: the same replays meet in one front and share a read.
  auto& reader = deps_->history[std::hash<std::string>{}(req.pattern)
                                % deps_->history.size()];
  auto start = [this, id, pattern, gen](replay_result&& res) {
    auto i = subs_.find(pattern);
    if (i == subs_.end() || i->second.gen != gen)
      return; // unsubscribed meanwhile; its topic actor dropped the hold
    if (!replays_)
      replays_ = std::make_unique<std::map<std::string, replay_state>>();
    (*replays_)[pattern] = replay_state{id, gen, std::move(res), 0};
    continue_replay(pattern);
  };
  auto since = req.by_time ? 0 : req.since;
  request(reader, replay_timeout, replay_atom::value, std::move(req))
    .then(
      [start](replay_result& res) {
        start(std::move(res));
      },
      [this, start, pattern, since](caf::error& err) {
        log()->warn("session {}: replay of {} failed: {}", session_id(),
                    pattern, to_string(err));
        replay_result res;
        res.last_seq = since;
        res.reason = "unavailable";
        start(std::move(res));
      });
}

void session_server::continue_replay(const std::string& pattern) {
  if (!replays_ || phase_ != phase::open)
    return;
  auto i = replays_->find(pattern);
  if (i == replays_->end())
    return;
  auto& r = i->second;
  auto& events = r.result.events;
  // Paced by the client: what it has not read yet stays under half the
  // outbound limit, so a replay never makes it a slow consumer.
  auto most = deps_->cfg->outbound_queue_limit / 2;
  while (r.next < events.size()) {
    if (conn_->backlog() > most) {
      delayed_send(this, replay_pause, replay_atom::value, pattern);
      return;
    }
    auto& ev = events[r.next++];
    // What a room's live events would have shown this client: its audience
    // only, and replies whole (their `message_posted`), not token by token.
    if (rooms::is_room_topic(ev.topic)
        && (!rooms::in_audience(ev, claims_->sub)
            || rooms::event_of(ev.topic) == "message_stream"))
      continue;
    conn_->push(frames::encode_event(conn_->format(), pattern, ev));
  }
  conn_->send_text(frames::recovered_json(r.id, r.result));
  if (auto s = subs_.find(pattern); s != subs_.end() && s->second.node)
    send(s->second.node, release_atom::value,
         caf::actor_cast<subscriber_actor>(this), r.result.last_seq);
  replays_->erase(i);
  if (replays_->empty())
    replays_.reset();
  if (deps_->rooms && rooms::may_match_streams(pattern, claims_->org))
    catch_up(pattern);
}

void session_server::on_unsubscribe(const std::string& id,
                                    const std::string& pattern) {
  std::string why;
  if (!topic::valid_pattern(pattern, &why)) {
    reply_error(id, "bad_topic", why);
    return;
  }
  auto i = subs_.find(pattern);
  if (i != subs_.end()) {
    if (i->second.node) {
      send(i->second.node, unsubscribe_atom::value,
           caf::actor_cast<subscriber_actor>(this));
      tell_presence(leave_atom::value, pattern);
    }
    subs_.erase(i);
    if (replays_)
      replays_->erase(pattern);
    if (streams_) {
      auto first = streams_->views.lower_bound({pattern, std::string{}});
      auto last = first;
      while (last != streams_->views.end() && last->first.first == pattern) {
        streams_->held -= std::min(streams_->held, last->second.token.size());
        ++last;
      }
      streams_->views.erase(first, last);
    }
  }
  reply_ok(id); // idempotent, like subscribe
}

bool session_server::on_publish(client_frame& frame, size_t capacity) {
  if (auto refusal = check_publish(*claims_, frame.topic)) {
    reply_error(frame.id, refusal->code, refusal->message);
    return true;
  }
  auto ev = client_event(*deps_->ids, *claims_, std::move(frame.topic),
                         std::move(frame.event_id), std::move(frame.data));
  auto event_id = ev.id;
  auto deadline = node_context::unix_ms() + publish_timeout.count();
  // await, not then: one publish in flight per session, and the frames
  // after it wait in the mailbox (counted against the connection's inbound
  // limit) so every reply comes in the order of the requests. The frame's
  // own bytes count until the bus took the event.
  request(deps_->publisher, publish_timeout, publish_atom::value, std::move(ev),
          deadline)
    .await(
      [this, id = frame.id, event_id, capacity](const std::string& status) {
        if (status.empty())
          conn_->send_text(frames::published_json(id, event_id));
        else
          reply_error(id, "unavailable", status);
        conn_->consumed(capacity);
      },
      [this, id = frame.id, capacity](caf::error& err) {
        if (uint64_t held = 0; publish_log().admit(held))
          log()->warn("session {}: publish failed: {}; {} more failed since "
                      "the last such line",
                      session_id(), to_string(err), held);
        reply_error(id, "unavailable", "event bus did not answer; retry");
        conn_->consumed(capacity);
      });
  return false;
}

// -- room events --------------------------------------------------------------

namespace {

/// How often a lagging client's coalesced tokens are offered again.
constexpr auto stream_flush_interval = std::chrono::milliseconds(50);

/// Most replies a session follows at once; past it, views without held
/// tokens are forgotten (at worst a duplicate token after a catch-up).
constexpr size_t max_stream_views = 256;

template<class Map>
void forget_idle_views(Map& views) {
  for (auto i = views.begin(); i != views.end();)
    i = i->second.pending ? std::next(i) : views.erase(i);
}

/// A string field of a stream event's payload, or "" (payloads come from
/// the bus: never trust their shape).
std::string text_of(const nlohmann::json& data, const char* key) {
  auto i = data.find(key);
  return i != data.end() && i->is_string() ? i->get<std::string>()
                                           : std::string{};
}

std::string header(const event& ev, std::string_view key) {
  auto i = ev.headers.find(std::string{key});
  return i == ev.headers.end() ? std::string{} : i->second;
}

} // namespace

void session_server::on_room_event(const std::string& pattern,
                                   const event& ev) {
  if (!rooms::in_audience(ev, claims_->sub))
    return;
  if (rooms::event_of(ev.topic) != "message_stream") {
    // Whatever a reply's watcher had held back goes first: a reply's
    // `message_posted` never overtakes its tokens.
    flush_streams(true);
    conn_->push(frames::encode_event(conn_->format(), pattern, ev));
    return;
  }
  auto message_id = header(ev, rooms::message_header);
  int64_t index = 0;
  try {
    index = std::stoll(header(ev, rooms::index_header));
  } catch (const std::exception&) {
    return; // not a stream event of this node's making
  }
  bool done = header(ev, rooms::done_header) == "1";
  if (!streams_)
    streams_ = std::make_unique<stream_state>();
  else if (streams_->views.size() >= max_stream_views)
    forget_idle_views(streams_->views); // replies whose end this client missed
  auto key = std::make_pair(pattern, message_id);
  if (index > 0 && streams_->views.count(key) == 0 && deps_->rooms) {
    // This client missed the start of the reply (it joined the room, or
    // this subscription was in place before its subscribe completed):
    // the text so far first.
    lazy_catch_up(pattern, ev, message_id, index);
    return;
  }
  auto& view = streams_->views[key];
  if (index <= view.sent)
    return; // covered by the catch-up
  bool lagging = conn_->backlog() > deps_->cfg->stream_coalesce_bytes;
  if (!view.pending && !lagging) {
    conn_->push(frames::encode_event(conn_->format(), pattern, ev));
    view.sent = index;
    if (done)
      streams_->views.erase(key);
    return;
  }
  auto data = nlohmann::json::parse(ev.data, nullptr, false);
  if (!data.is_object())
    return;
  if (!view.pending) {
    view.pending = true;
    view.held = ev;
    auto seq = data.find("seq");
    view.seq = seq != data.end() && seq->is_number_unsigned()
      ? seq->get<uint64_t>()
      : 0;
    view.token.clear();
  }
  auto token = text_of(data, "token");
  streams_->held += token.size();
  if (streams_->held > deps_->cfg->outbound_queue_limit) {
    // As the outbound queue would: this client reads slower than replies
    // stream, for longer than the limit allows.
    close(frames::close_code::slow_consumer, "slow consumer");
    return;
  }
  view.token += token;
  view.index = index;
  view.done = done;
  view.state = text_of(data, "state");
  view.reason = text_of(data, "reason");
  deps_->stats->stream_tokens_coalesced.fetch_add(1, std::memory_order_relaxed);
  if (done) {
    flush_streams(true);
  } else if (!flush_armed_) {
    flush_armed_ = true;
    delayed_send(this, stream_flush_interval, flush_atom::value);
  }
}

void session_server::flush_streams(bool force) {
  if (!streams_ || phase_ != phase::open)
    return;
  if (!force && conn_->backlog() > deps_->cfg->stream_coalesce_bytes) {
    if (!flush_armed_) {
      flush_armed_ = true;
      delayed_send(this, stream_flush_interval, flush_atom::value);
    }
    return;
  }
  for (auto i = streams_->views.begin(); i != streams_->views.end();) {
    auto& view = i->second;
    if (!view.pending) {
      ++i;
      continue;
    }
    nlohmann::json data{{"message_id", i->first.second},
                        {"seq", view.seq},
                        {"index", view.index},
                        {"token", view.token},
                        {"done", view.done}};
    if (view.done && !view.state.empty())
      data["state"] = view.state;
    if (!view.reason.empty())
      data["reason"] = view.reason;
    auto ev = std::move(view.held);
    ev.data = data.dump();
    conn_->push(frames::encode_event(conn_->format(), i->first.first, ev));
    view.sent = view.index;
    view.pending = false;
    streams_->held -= std::min(streams_->held, view.token.size());
    view.token.clear();
    if (view.done)
      i = streams_->views.erase(i);
    else
      ++i;
  }
}

void session_server::send_catch_up(const std::string& pattern,
                                   const stream_snapshot& snap) {
  event ev;
  ev.id = deps_->ids->next();
  ev.topic = snap.topic;
  ev.ts = node_context::unix_ms();
  ev.data = nlohmann::json{
    {"message_id", snap.message_id},
    {"seq", snap.seq},
    {"index", snap.index},
    {"text", snap.text},
    {"done",
     false}}.dump();
  conn_->push(frames::encode_event(conn_->format(), pattern, ev));
  if (!streams_)
    streams_ = std::make_unique<stream_state>();
  streams_->views[{pattern, snap.message_id}].sent = snap.index;
}

void session_server::lazy_catch_up(const std::string& pattern, const event& ev,
                                   const std::string& message_id,
                                   int64_t index) {
  // await: later events wait, so this one and those after it follow the
  // catch-up in order.
  auto resume = [this, pattern, ev, message_id,
                 index](const std::vector<stream_snapshot>& snaps) {
    if (phase_ != phase::open)
      return;
    bool caught = false;
    for (auto& snap : snaps)
      if (snap.message_id == message_id && snap.index >= 0) {
        send_catch_up(pattern, snap);
        caught = true;
      }
    if (!caught) // ended meanwhile: its text is in the history
      streams_->views[{pattern, message_id}].sent = index - 1;
    on_room_event(pattern, ev);
  };
  request(deps_->rooms, std::chrono::seconds(10), catch_up_atom::value,
          claims_->org, claims_->sub, ev.topic)
    .await(
      [resume](std::vector<stream_snapshot>& snaps) {
        resume(snaps);
      },
      [resume](caf::error&) {
        resume({});
      });
}

void session_server::catch_up(const std::string& pattern) {
  // await: the live tokens that arrive meanwhile wait in the mailbox, and
  // those the snapshot covers are dropped when they come.
  request(deps_->rooms, std::chrono::seconds(10), catch_up_atom::value,
          claims_->org, claims_->sub, pattern)
    .await(
      [this, pattern](std::vector<stream_snapshot>& snaps) {
        for (auto& snap : snaps) {
          // Tokens of it came already (the subscription was in place
          // before this answer): the rest comes live.
          if (streams_ && streams_->views.count({pattern, snap.message_id}))
            continue;
          send_catch_up(pattern, snap);
        }
      },
      [this, pattern](caf::error& err) {
        log()->warn("session {}: no catch-up for {}: {}", session_id(), pattern,
                    to_string(err));
      });
}

// -- helpers ------------------------------------------------------------------

void session_server::schedule_expiry() {
  // A timer per session costs memory for the token's whole life; arm it only
  // once expiry is within two heartbeats (each tick calls this again).
  auto left = claims_->exp * 1000 - node_context::unix_ms();
  if (expiry_armed_ == auth_gen_
      || left > 2 * deps_->cfg->heartbeat_interval.count())
    return;
  expiry_armed_ = auth_gen_;
  delayed_send(this, std::chrono::milliseconds(std::max<int64_t>(left, 0)),
               expire_atom::value, auth_gen_);
}

void session_server::drop_forbidden_subscriptions() {
  std::vector<std::string> gone;
  for (auto& kvp : subs_)
    if (!may_hold(kvp.first))
      gone.push_back(kvp.first);
  for (auto& pattern : gone)
    drop_subscription(pattern, "forbidden");
}

void session_server::drop_subscription(const std::string& pattern,
                                       const char* reason) {
  auto i = subs_.find(pattern);
  if (i == subs_.end())
    return;
  if (i->second.node) {
    send(i->second.node, unsubscribe_atom::value,
         caf::actor_cast<subscriber_actor>(this));
    tell_presence(leave_atom::value, pattern);
  }
  conn_->send_text(nlohmann::json{
    {"type", "unsubscribed"}, {"topic", pattern}, {"reason", reason}}
                     .dump());
  if (replays_)
    replays_->erase(pattern);
  subs_.erase(i);
}

void session_server::reply_ok(const std::string& id) {
  conn_->send_text(frames::ok_json(id));
}

void session_server::reply_error(const std::string& id, const char* code,
                                 const std::string& message) {
  conn_->send_text(frames::error_json(id, code, message));
}

void session_server::close(uint16_t code, const std::string& reason) {
  if (phase_ == phase::closed)
    return;
  phase_ = phase::closed;
  log()->debug("session {}: closing with {} ({})", session_id(), code, reason);
  conn_->close(code, reason);
  quit();
}

} // namespace switchyard
