#include "actors/agent_gateway.hpp"

#include <nlohmann/json.hpp>

#include "actors/log.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("agents");
  return instance;
}

using gateway_ptr = agent_gateway_actor::stateful_pointer<agent_gateway_state>;

/// How long a request of an external agent may wait for the rooms.
constexpr auto gateway_timeout = std::chrono::seconds(10);

void answer(gateway_ptr self, const std::string& reply,
            const nlohmann::json& body) {
  if (reply.empty())
    return; // a plain publish: nobody waits for an answer
  if (auto err = self->state.nats->publish_raw(reply, body.dump());
      !err.empty())
    log()->warn("answer to an external agent not sent: {}", err);
}

nlohmann::json refusal(const std::string& code, const std::string& message) {
  return {{"ok", false}, {"code", code}, {"message", message}};
}

std::string text_field(const nlohmann::json& j, const char* key) {
  auto i = j.find(key);
  return i != j.end() && i->is_string() ? i->get<std::string>() : std::string{};
}

void on_start(gateway_ptr self, const nlohmann::json& req,
              const std::string& reply) {
  auto org = text_field(req, "org");
  auto room = text_field(req, "room");
  auto agent = text_field(req, "agent");
  auto reply_to = text_field(req, "reply_to");
  if (org.empty() || room.empty() || agent.empty()) {
    answer(self, reply,
           refusal("bad_request", "start needs the strings org, room, agent"));
    return;
  }
  auto on_error = [self, reply](caf::error& err) {
    answer(self, reply, refusal("unavailable", to_string(err)));
  };
  // The bus is trusted like any publisher: NATS credentials decide who may
  // speak for an agent. The room checks that `agent` is one of its agents.
  caller service{"", org, true};
  self
    ->request(self->state.cfg.rooms, gateway_timeout, resolve_atom::value,
              service, room)
    .then(
      [=](outcome& res, room_actor& r) {
        if (!res.ok()) {
          answer(self, reply, refusal(res.code, res.message));
          return;
        }
        self->request(r, gateway_timeout, start_atom::value, agent, reply_to)
          .then(
            [=](outcome& res, room_message& msg, stream_actor& stream) {
              if (!res.ok()) {
                answer(self, reply, refusal(res.code, res.message));
                return;
              }
              self->monitor(stream);
              self->state.streams.emplace(msg.message_id, stream);
              answer(self, reply,
                     {{"ok", true},
                      {"message_id", msg.message_id},
                      {"seq", msg.seq},
                      {"subject",
                       agent_stream_subject(self->state.cfg.node_id,
                                            msg.message_id)}});
            },
            on_error);
      },
      on_error);
}

void on_stream(gateway_ptr self, const std::string& message_id,
               const nlohmann::json& req, const std::string& reply) {
  auto i = self->state.streams.find(message_id);
  if (i == self->state.streams.end()) {
    answer(self, reply, refusal("ended", "the reply is not streaming"));
    return;
  }
  auto stream = i->second;
  auto type = text_field(req, "type");
  if (type == "token") {
    auto t = req.find("token");
    if (t == req.end() || !t->is_string()) {
      answer(self, reply,
             refusal("bad_request", "a token needs a string token"));
      return;
    }
    self
      ->request(stream, gateway_timeout, token_atom::value,
                t->get<std::string>())
      .then(
        [=](bool go_on) {
          answer(self, reply,
                 go_on ? nlohmann::json{{"ok", true}}
                       : refusal("ended", "the reply has ended (cancelled)"));
        },
        [=](caf::error&) {
          answer(self, reply, refusal("ended", "the reply has ended"));
        });
  } else if (type == "end") {
    self->send(stream, end_atom::value);
    answer(self, reply, {{"ok", true}});
  } else if (type == "error") {
    self->send(stream, fail_atom::value, text_field(req, "reason"));
    answer(self, reply, {{"ok", true}});
  } else {
    answer(self, reply,
           refusal("bad_request", "type must be token, end or error"));
  }
}

} // namespace

std::string agent_stream_subject(std::string_view node,
                                 std::string_view message_id) {
  std::string out = "switchyard.agents.stream.";
  out.append(node).append(".").append(message_id);
  return out;
}

agent_gateway_actor::behavior_type
agent_gateway(gateway_ptr self, agent_gateway_state::config cfg,
              std::shared_ptr<nats_port> nats) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.nats = std::move(nats);
  // Weak: the subscriptions live in this actor's state.
  caf::weak_actor_ptr weak = self->ctrl();
  auto forward = [weak](std::string subject, std::string reply,
                        std::string data) {
    if (auto hdl = caf::actor_cast<agent_gateway_actor>(weak.lock()))
      caf::anon_send(hdl, input_atom::value, std::move(subject),
                     std::move(reply), std::move(data));
  };
  st.starts = st.nats->subscribe_raw(std::string{agent_start_subject},
                                     "switchyard", max_agent_message, forward);
  auto prefix = agent_stream_subject(st.cfg.node_id, "");
  st.tokens = st.nats->subscribe_raw(prefix + "*", "", max_agent_message,
                                     forward);
  self->set_down_handler([self](const caf::down_msg& dm) {
    auto& streams = self->state.streams;
    for (auto i = streams.begin(); i != streams.end(); ++i)
      if (i->second.address() == dm.source) {
        streams.erase(i);
        return;
      }
  });
  self->attach_functor(
    [nats = st.nats, starts = st.starts, tokens = st.tokens] {
      nats->unsubscribe(starts);
      nats->unsubscribe(tokens);
    });
  return {
    [self, prefix](input_atom, std::string& subject, std::string& reply,
                   std::string& data) {
      auto parsed = json_limits::parse_json(data,
                                            self->state.cfg.max_json_depth);
      if (parsed.error != json_limits::failure::none
          || !parsed.value.is_object()) {
        answer(self, reply,
               refusal("bad_request", "a message must be one JSON object"));
        return;
      }
      if (subject == agent_start_subject)
        on_start(self, parsed.value, reply);
      else if (subject.rfind(prefix, 0) == 0)
        on_stream(self, subject.substr(prefix.size()), parsed.value, reply);
    },
  };
}

} // namespace switchyard
