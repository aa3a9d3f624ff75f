#include "actors/room.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "actors/bus_publisher.hpp"
#include "actors/log.hpp"
#include "actors/stream.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("room");
  return instance;
}

using room_ptr = room_actor::stateful_pointer<room_state>;

/// First wait before restarting a crashed agent; doubles per crash in a
/// row, up to `max_restart_backoff`.
constexpr std::chrono::milliseconds restart_backoff{100};
constexpr std::chrono::milliseconds max_restart_backoff{30'000};

/// Wait before storing a finished reply again after the store refused it.
constexpr std::chrono::milliseconds reply_store_retry{1'000};

outcome forbidden(const std::string& what) {
  return outcome::fail("forbidden", what);
}

bool is_participant(const room_state& st, const caller& who) {
  return who.org == st.record.org && st.record.has_user(who.user);
}

/// Keeps the room actor alive for `room_idle_timeout` after this request.
/// One timer at a time: it re-arms itself for what is left when it fires.
void touch(room_ptr self) {
  auto& st = self->state;
  st.last_activity = self->clock().now();
  if (st.idle_armed)
    return;
  st.idle_armed = true;
  self->delayed_send(self, st.deps->cfg->room_idle_timeout, idle_atom::value,
                     uint64_t{0});
}

/// Logs a store request that got no answer (the store actor is gone: the
/// node is stopping).
auto store_error(room_ptr self) {
  return [self](caf::error& err) {
    log()->warn("room {}: the store did not answer: {}", self->state.record.id,
                to_string(err));
  };
}

/// Publishes a room event through the bus publisher (in order: every room
/// event of the node goes through that one actor).
void announce(room_ptr self, std::string_view name, const nlohmann::json& data,
              const std::vector<std::string>& audience,
              const std::string& source) {
  auto& st = self->state;
  auto ev = room_event(*st.deps->ids,
                       rooms::topic(st.record.org, name, st.record.id), source,
                       data.dump(), st.record.is_private, audience);
  auto deadline = node_context::unix_ms() + publish_timeout.count();
  self
    ->request(st.deps->publisher, publish_timeout, publish_atom::value,
              std::move(ev), deadline)
    .then(
      [self, name = std::string{name}](const std::string& status) {
        if (!status.empty())
          log()->warn("room {}: {} not published: {}", self->state.record.id,
                      name, status);
      },
      [self](caf::error& err) {
        log()->warn("room {}: publish failed: {}", self->state.record.id,
                    to_string(err));
      });
}

nlohmann::json posted_json(const room_message& msg) {
  return to_json(msg);
}

/// Inserts or replaces `msg` in the history, which stays ordered by seq.
void remember(room_state& st, room_message msg) {
  auto i = std::find_if(st.history.begin(), st.history.end(), [&](auto& x) {
    return x.message_id == msg.message_id;
  });
  if (i != st.history.end()) {
    *i = std::move(msg);
    return;
  }
  auto pos = std::upper_bound(st.history.begin(), st.history.end(), msg.seq,
                              [](uint64_t seq, const room_message& x) {
                                return seq < x.seq;
                              });
  st.history.insert(pos, std::move(msg));
}

void spawn_agent(room_ptr self, const participant& p) {
  auto& st = self->state;
  if (p.behavior == "external" || !st.deps->agents->has(p.behavior))
    return;
  agent_spec spec{p.id,
                  st.record.org,
                  st.record.id,
                  nlohmann::json::parse(p.config, nullptr, false),
                  st.deps->cfg->max_json_depth,
                  st.deps->http};
  // Checked again: a record from the store may not be what the API took.
  if (auto why = st.deps->agents->check(p.behavior, spec.config);
      !why.empty()) {
    log()->error("room {}: agent {} not started: {}", st.record.id, p.id, why);
    return;
  }
  auto agent = st.deps->agents->spawn(self->system(), p.behavior,
                                      std::move(spec));
  st.deps->stats->agents_running.fetch_add(1, std::memory_order_relaxed);
  agent->attach_functor([stats = st.deps->stats] {
    stats->agents_running.fetch_sub(1, std::memory_order_relaxed);
  });
  self->monitor(agent);
  st.agents[p.id].actor = std::move(agent);
}

void stop_agent(room_ptr self, const std::string& id) {
  auto& st = self->state;
  auto i = st.agents.find(id);
  if (i == st.agents.end())
    return;
  if (i->second.actor) {
    self->demonitor(i->second.actor.address());
    self->send_exit(i->second.actor, caf::exit_reason::user_shutdown);
  }
  st.agents.erase(i);
}

/// Registers a reply of agent `agent` to `prompt` (or to nothing), with
/// its stream actor; returns the reply as registered.
std::pair<room_message, stream_actor> start_reply(room_ptr self,
                                                  const participant& agent,
                                                  const room_message* prompt) {
  auto& st = self->state;
  room_message reply;
  reply.message_id = "msg_" + st.deps->ids->next();
  reply.seq = st.next_seq++;
  reply.author = agent.id;
  reply.author_kind = "agent";
  reply.ts = node_context::unix_ms();
  reply.state = "streaming";
  if (prompt != nullptr)
    reply.reply_to = prompt->message_id;
  agent_actor agent_hdl;
  if (auto i = st.agents.find(agent.id); i != st.agents.end())
    agent_hdl = i->second.actor;
  stream_spec spec{st.record.org,
                   st.record.id,
                   st.record.is_private,
                   st.record.audience(),
                   reply,
                   caf::actor_cast<room_actor>(self),
                   agent_hdl,
                   st.deps};
  auto stream = self->system().spawn(stream_server, std::move(spec));
  if (!agent_hdl && agent.behavior != "external")
    // Crashed and waiting for its restart: no one would write this reply.
    self->send(stream, fail_atom::value,
               std::string{"agent restarting after a crash"});
  st.streams[reply.message_id] = room_state::reply{stream, agent.id};
  remember(st, reply);
  // A record of the reply while it streams: a node that stops mid-reply
  // finds it on restart and marks it failed instead of losing it.
  self
    ->request(st.store, caf::infinite, append_atom::value, st.record.org,
              st.record.id, reply)
    .then([](const outcome&) {}, store_error(self));
  self->send(st.directory, stream_open_atom::value, st.record.org, st.record.id,
             rooms::topic(st.record.org, "message_stream", st.record.id),
             stream);
  if (agent_hdl && prompt != nullptr) {
    agent_request req;
    req.org = st.record.org;
    req.room = st.record.id;
    req.agent = agent.id;
    req.prompt = *prompt;
    auto end = std::find_if(st.history.begin(), st.history.end(), [&](auto& x) {
      return x.message_id == prompt->message_id;
    });
    auto begin = end
      - std::min<ptrdiff_t>(end - st.history.begin(), agent_context_messages);
    for (auto i = begin; i != end; ++i)
      if (i->state != "streaming")
        req.history.push_back(*i);
    req.stream = stream;
    self->send(agent_hdl, respond_atom::value, std::move(req));
  }
  return {reply, stream};
}

/// Starts the replies of the agents that answer `msg`.
void trigger_agents(room_ptr self, const room_message& msg) {
  // Agents never answer agents: no reply loops.
  if (msg.author_kind != "user")
    return;
  auto& st = self->state;
  for (auto& p : st.record.participants) {
    if (!p.is_agent() || p.behavior == "external")
      continue;
    auto mention = "@" + p.id;
    bool mentioned = false;
    for (auto pos = msg.text.find(mention); pos != std::string::npos;
         pos = msg.text.find(mention, pos + 1)) {
      auto after = pos + mention.size();
      auto c = after < msg.text.size() ? msg.text[after] : ' ';
      // `@agent_1` does not mention `agent_10`.
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_'
          && c != '-') {
        mentioned = true;
        break;
      }
    }
    if (p.auto_respond != "always"
        && !(p.auto_respond == "mention" && mentioned))
      continue;
    if (st.streams.size() >= max_streams_per_room) {
      log()->warn("room {}: {} replies streaming already; {} does not answer",
                  st.record.id, st.streams.size(), p.id);
      continue;
    }
    start_reply(self, p, &msg);
  }
}

void audience_changed(room_ptr self) {
  auto& st = self->state;
  auto audience = st.record.audience();
  for (auto& kvp : st.streams)
    self->send(kvp.second.stream, audience_atom::value, audience);
  self->send(st.directory, updated_atom::value, st.record);
}

/// Checks a participant to add; empty when it may join.
std::string check_participant(const room_state& st, participant& p) {
  if (p.kind != "user" && p.kind != "agent")
    return "kind must be \"user\" or \"agent\"";
  if (!rooms::valid_participant_id(p.id, p.is_agent()))
    return p.is_agent()
      ? "an agent id is 1 to 64 of A-Z, a-z, 0-9, _ and -"
      : "a user id is 1 to 128 bytes without control characters";
  if (!p.is_agent())
    return {};
  if (p.auto_respond.empty())
    p.auto_respond = "mention";
  if (p.auto_respond != "always" && p.auto_respond != "mention"
      && p.auto_respond != "never")
    return "auto_respond must be \"always\", \"mention\" or \"never\"";
  if (p.config.empty())
    p.config = "{}";
  auto config = nlohmann::json::parse(p.config, nullptr, false);
  if (p.behavior == "external")
    return config.is_object() ? std::string{} : "config must be a JSON object";
  return st.deps->agents->check(p.behavior, config);
}

} // namespace

room_actor::behavior_type
room_server(room_ptr self, room_record record, room_deps_ptr deps,
            room_store_actor store, room_directory_actor directory) {
  auto& st = self->state;
  st.record = std::move(record);
  st.deps = std::move(deps);
  st.store = std::move(store);
  st.directory = std::move(directory);
  st.deps->stats->rooms_active.fetch_add(1, std::memory_order_relaxed);
  self->attach_functor([stats = st.deps->stats] {
    stats->rooms_active.fetch_sub(1, std::memory_order_relaxed);
  });
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& st = self->state;
    for (auto& kvp : st.agents) {
      if (kvp.second.actor.address() != dm.source)
        continue;
      auto& slot = kvp.second;
      slot.actor = nullptr;
      auto wait = std::min(restart_backoff * (1 << std::min(slot.crashes, 16u)),
                           max_restart_backoff);
      ++slot.crashes;
      log()->warn("room {}: agent {} ended ({}); restarting in {} ms",
                  st.record.id, kvp.first, to_string(dm.reason), wait.count());
      self->delayed_send(self, wait, restart_atom::value, kvp.first);
      return;
    }
  });
  // The agents end with their room.
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& kvp : self->state.agents)
      if (kvp.second.actor)
        self->send_exit(kvp.second.actor, msg.reason);
    self->quit(msg.reason);
  });
  // Requests wait in the mailbox until the history is in memory.
  self
    ->request(st.store, std::chrono::seconds(30), load_atom::value,
              st.record.org, st.record.id)
    .await(
      [self](outcome& res, std::vector<room_message>& history) {
        auto& st = self->state;
        if (!res.ok()) {
          log()->error("room {}: history not loaded: {}", st.record.id,
                       res.message);
          self->quit(
            caf::make_error(error_code::history_unavailable, res.message));
          return;
        }
        st.history = std::move(history);
        std::sort(st.history.begin(), st.history.end(), [](auto& x, auto& y) {
          return x.seq < y.seq;
        });
        for (auto& msg : st.history) {
          st.next_seq = std::max(st.next_seq, msg.seq + 1);
          if (msg.state == "streaming") {
            // The node that served the room stopped (or handed it over) while
            // this reply streamed.
            msg.state = "failed";
            msg.reason = "the room's node stopped during the reply";
            self
              ->request(st.store, caf::infinite, append_atom::value,
                        st.record.org, st.record.id, msg)
              .then([](const outcome&) {}, store_error(self));
          }
        }
        for (auto& p : st.record.participants)
          if (p.is_agent())
            spawn_agent(self, p);
        touch(self);
      },
      [self](caf::error& err) {
        log()->error("room {}: history not loaded: {}", self->state.record.id,
                     to_string(err));
        self->quit(err);
      });
  return {
    [self](get_atom, const caller& who) -> caf::result<outcome, room_record> {
      auto& st = self->state;
      touch(self);
      if (!st.record.visible_to(who))
        return {forbidden("not a participant of this private room"),
                room_record{}};
      return {outcome{}, st.record};
    },
    [self](join_atom, const caller& who,
           participant& p) -> caf::result<outcome, room_record> {
      auto& st = self->state;
      touch(self);
      bool self_join = !st.record.is_private && p.kind == "user"
        && p.id == who.user && who.org == st.record.org;
      if (!is_participant(st, who) && !who.admin && !self_join)
        return {forbidden("only participants may add participants"),
                room_record{}};
      if (auto why = check_participant(st, p); !why.empty())
        return {outcome::fail("bad_request", why), room_record{}};
      if (st.record.find(p.id) != nullptr)
        return {outcome::fail("conflict", p.id + " is a participant already"),
                room_record{}};
      if (st.record.participants.size() >= max_participants)
        return {outcome::fail("conflict", "the room is full"), room_record{}};
      auto agents = std::count_if(st.record.participants.begin(),
                                  st.record.participants.end(), [](auto& x) {
                                    return x.is_agent();
                                  });
      if (p.is_agent() && static_cast<size_t>(agents) >= max_agents)
        return {outcome::fail("conflict",
                              "the room has " + std::to_string(max_agents)
                                + " agents already"),
                room_record{}};
      p.joined_at = node_context::unix_ms();
      auto updated = st.record;
      updated.participants.push_back(p);
      auto rp = self->make_response_promise<outcome, room_record>();
      // await: changes of the participants apply one at a time, each to the
      // record the one before left (a removal is never undone by a join
      // that read the record before it).
      self->request(st.store, caf::infinite, put_atom::value, updated)
        .await(
          [self, rp, updated, p, who](const outcome& res) mutable {
            auto& st = self->state;
            if (!res.ok()) {
              rp.deliver(res, room_record{});
              return;
            }
            st.record = std::move(updated);
            auto shown = to_json(p);
            shown.erase("config");
            announce(self, "participant_joined",
                     {{"participant", shown}, {"by", who.user}},
                     st.record.audience(), who.user);
            if (p.is_agent())
              spawn_agent(self, p);
            audience_changed(self);
            rp.deliver(outcome{}, st.record);
          },
          [self, rp](caf::error& err) mutable {
            store_error(self)(err);
            rp.deliver(outcome::fail("unavailable", "the store did not answer"),
                       room_record{});
          });
      return rp;
    },
    [self](leave_atom, const caller& who,
           const std::string& pid) -> caf::result<outcome> {
      auto& st = self->state;
      touch(self);
      if (!is_participant(st, who) && !who.admin)
        return forbidden("only participants may remove participants");
      auto p = st.record.find(pid);
      if (p == nullptr)
        return outcome::fail("not_found", pid + " is no participant");
      auto gone = *p;
      auto audience = st.record.audience(); // the leaver sees it leave
      auto updated = st.record;
      updated.participants.erase(std::remove_if(updated.participants.begin(),
                                                updated.participants.end(),
                                                [&](auto& x) {
                                                  return x.id == pid;
                                                }),
                                 updated.participants.end());
      auto rp = self->make_response_promise<outcome>();
      self->request(st.store, caf::infinite, put_atom::value, updated)
        .await(
          [self, rp, updated, gone, who, audience](const outcome& res) mutable {
            auto& st = self->state;
            if (!res.ok()) {
              rp.deliver(res);
              return;
            }
            st.record = std::move(updated);
            if (gone.is_agent()) {
              for (auto& kvp : st.streams)
                if (kvp.second.agent == gone.id)
                  self->send(kvp.second.stream, cancel_atom::value);
              stop_agent(self, gone.id);
            }
            announce(self, "participant_left",
                     {{"participant", {{"id", gone.id}, {"kind", gone.kind}}},
                      {"by", who.user}},
                     audience, who.user);
            audience_changed(self);
            rp.deliver(outcome{});
          },
          [self, rp](caf::error& err) mutable {
            store_error(self)(err);
            rp.deliver(
              outcome::fail("unavailable", "the store did not answer"));
          });
      return rp;
    },
    [self](post_atom, const caller& who,
           std::string& text) -> caf::result<outcome, room_message> {
      auto& st = self->state;
      touch(self);
      if (!is_participant(st, who))
        return {forbidden("only participants may post"), room_message{}};
      if (text.empty() || text.size() > st.deps->cfg->max_message_text)
        return {outcome::fail("bad_request",
                              "text must be 1 to "
                                + std::to_string(st.deps->cfg->max_message_text)
                                + " bytes"),
                room_message{}};
      room_message msg;
      msg.message_id = "msg_" + st.deps->ids->next();
      msg.seq = st.next_seq++;
      msg.author = who.user;
      msg.author_kind = "user";
      msg.text = std::move(text);
      msg.ts = node_context::unix_ms();
      auto rp = self->make_response_promise<outcome, room_message>();
      // Stored first, then announced: history never lacks an announced
      // message. The store answers in order, so announcements keep seq
      // order.
      self
        ->request(st.store, caf::infinite, append_atom::value, st.record.org,
                  st.record.id, msg)
        .then(
          [self, rp, msg](const outcome& res) mutable {
            auto& st = self->state;
            if (!res.ok()) {
              rp.deliver(res, room_message{});
              return;
            }
            remember(st, msg);
            announce(self, "message_posted", posted_json(msg),
                     st.record.audience(), msg.author);
            trigger_agents(self, msg);
            rp.deliver(outcome{}, msg);
          },
          [self, rp](caf::error& err) mutable {
            store_error(self)(err);
            rp.deliver(outcome::fail("unavailable", "the store did not answer"),
                       room_message{});
          });
      return rp;
    },
    [self](history_atom, const caller& who, uint64_t after,
           uint32_t limit) -> caf::result<outcome, std::vector<room_message>> {
      auto& st = self->state;
      touch(self);
      if (!st.record.visible_to(who))
        return {forbidden("not a participant of this private room"),
                std::vector<room_message>{}};
      if (limit == 0)
        limit = default_history_page;
      limit = std::min(limit, max_history_page);
      std::vector<room_message> out;
      auto i = std::upper_bound(st.history.begin(), st.history.end(), after,
                                [](uint64_t seq, const room_message& x) {
                                  return seq < x.seq;
                                });
      for (; i != st.history.end() && out.size() < limit; ++i)
        out.push_back(*i);
      return {outcome{}, std::move(out)};
    },
    [self](cancel_atom, const caller& who,
           const std::string& message_id) -> outcome {
      auto& st = self->state;
      touch(self);
      if (!is_participant(st, who) && !(who.admin && who.org == st.record.org))
        return forbidden("only participants may cancel a reply");
      auto i = st.streams.find(message_id);
      if (i == st.streams.end()) {
        auto known = std::any_of(st.history.begin(), st.history.end(),
                                 [&](auto& x) {
                                   return x.message_id == message_id;
                                 });
        return known ? outcome::fail("conflict", "the reply is not streaming")
                     : outcome::fail("not_found", "no such message");
      }
      self->send(i->second.stream, cancel_atom::value);
      return outcome{};
    },
    [self](start_atom, const std::string& agent_id, const std::string& reply_to)
      -> caf::result<outcome, room_message, stream_actor> {
      auto& st = self->state;
      touch(self);
      auto p = st.record.find(agent_id);
      if (p == nullptr || !p->is_agent())
        return {outcome::fail("forbidden",
                              agent_id + " is no agent of this room"),
                room_message{}, stream_actor{}};
      const room_message* prompt = nullptr;
      for (auto& msg : st.history)
        if (!reply_to.empty() && msg.message_id == reply_to)
          prompt = &msg;
      if (!reply_to.empty() && prompt == nullptr)
        return {outcome::fail("not_found", "no message " + reply_to),
                room_message{}, stream_actor{}};
      auto prompt_copy = prompt ? std::optional<room_message>{*prompt}
                                : std::nullopt;
      auto [reply, stream] = start_reply(self, *p,
                                         prompt_copy ? &*prompt_copy : nullptr);
      return {outcome{}, std::move(reply), std::move(stream)};
    },
    [self](stream_end_atom, room_message& reply) {
      auto& st = self->state;
      st.streams.erase(reply.message_id);
      if (auto i = st.agents.find(reply.author);
          i != st.agents.end() && reply.state == "complete")
        i->second.crashes = 0;
      touch(self);
      self
        ->request(st.store, caf::infinite, append_atom::value, st.record.org,
                  st.record.id, reply)
        .then(
          [self, reply](const outcome& res) {
            auto& st = self->state;
            if (!res.ok()) {
              // Announced only once stored, like every message: try again
              // until the store takes it.
              log()->error("room {}: reply {} not stored ({}); retrying",
                           st.record.id, reply.message_id, res.message);
              self->delayed_send(self, reply_store_retry,
                                 stream_end_atom::value, reply);
              return;
            }
            remember(st, reply);
            announce(self, "message_posted", posted_json(reply),
                     st.record.audience(), reply.author);
          },
          store_error(self));
    },
    [self](restart_atom, const std::string& agent_id) {
      auto& st = self->state;
      auto i = st.agents.find(agent_id);
      auto p = st.record.find(agent_id);
      if (i == st.agents.end() || p == nullptr || i->second.actor)
        return;
      auto crashes = i->second.crashes;
      spawn_agent(self, *p);
      st.agents[agent_id].crashes = crashes;
    },
    [self](idle_atom, uint64_t) {
      auto& st = self->state;
      auto idle_for = self->clock().now() - st.last_activity;
      auto timeout = st.deps->cfg->room_idle_timeout;
      if (idle_for < timeout || !st.streams.empty()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          timeout - idle_for);
        self->delayed_send(self, std::max(left, std::chrono::milliseconds{1}),
                           idle_atom::value, uint64_t{0});
        return;
      }
      for (auto& kvp : st.agents)
        if (kvp.second.actor)
          self->send_exit(kvp.second.actor, caf::exit_reason::user_shutdown);
      self->quit();
    },
  };
}

} // namespace switchyard
