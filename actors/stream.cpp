#include "actors/stream.hpp"

#include <nlohmann/json.hpp>

#include "actors/bus_publisher.hpp"
#include "actors/log.hpp"
#include "actors/log_limiter.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("stream");
  return instance;
}

/// Limits the log lines about token events the bus did not take.
log_limiter& bus_log() {
  static log_limiter instance;
  return instance;
}

using stream_ptr = stream_actor::stateful_pointer<stream_state>;

void finish(stream_ptr self, const std::string& state,
            const std::string& reason);

/// Publishes one `message_stream` event (numbered `index`; the last one
/// `done`, with the reply's `state`). With `rp`, answers the agent's token
/// once the bus took the event.
void publish(stream_ptr self, const std::string& token, bool done,
             const std::string& state, const std::string& reason,
             caf::typed_response_promise<bool>* rp) {
  auto& st = self->state;
  auto& reply = st.spec.reply;
  nlohmann::json data{{"message_id", reply.message_id},
                      {"seq", reply.seq},
                      {"index", st.index},
                      {"token", token},
                      {"done", done}};
  if (done)
    data["state"] = state;
  if (!reason.empty())
    data["reason"] = reason;
  auto ev = room_event(*st.spec.deps->ids, st.topic, reply.author, data.dump(),
                       st.spec.is_private, st.spec.audience);
  ev.headers.emplace(rooms::message_header, reply.message_id);
  ev.headers.emplace(rooms::index_header, std::to_string(st.index));
  ev.headers.emplace(rooms::done_header, done ? "1" : "0");
  auto deadline = node_context::unix_ms() + publish_timeout.count();
  ++st.publishing;
  auto on_status = [self](const std::string& status) {
    if (--self->state.publishing == 0 && self->state.ended)
      self->quit(); // every promise to the agent kept
    if (!status.empty())
      if (uint64_t held = 0; bus_log().admit(held))
        log()->warn("stream {}: the bus did not take a token event ({}); {} "
                    "more since the last such line",
                    self->state.spec.reply.message_id, status, held);
  };
  if (rp == nullptr) {
    self
      ->request(st.spec.deps->publisher, publish_timeout, publish_atom::value,
                std::move(ev), deadline)
      .then(on_status, [on_status](caf::error& err) {
        on_status(to_string(err));
      });
    return;
  }
  self
    ->request(st.spec.deps->publisher, publish_timeout, publish_atom::value,
              std::move(ev), deadline)
    .then(
      [self, rp = *rp, on_status](const std::string& status) mutable {
        // A token the watchers did not get would leave a gap in what they
        // show: the reply fails instead (its text so far is kept).
        if (!status.empty())
          finish(self, "failed", "the event bus refused a token: " + status);
        rp.deliver(!self->state.ended);
        on_status(status);
      },
      [self, rp = *rp, on_status](caf::error& err) mutable {
        rp.deliver(!self->state.ended);
        on_status(to_string(err));
      });
}

void finish(stream_ptr self, const std::string& state,
            const std::string& reason) {
  auto& st = self->state;
  if (st.ended)
    return;
  st.ended = true;
  ++st.index;
  publish(self, "", true, state, reason, nullptr);
  auto reply = st.spec.reply;
  reply.state = state;
  reply.reason = reason;
  // After the final token event went to the publisher: the room's
  // `message_posted` follows it on the bus.
  self->send(st.spec.owner, stream_end_atom::value, std::move(reply));
  // The actor ends once the bus answered its last publish (above).
}

} // namespace

room_deps_ptr room_deps_of(const node_context_ptr& ctx) {
  // Aliasing pointers: each keeps the context alive, and names only its part.
  return std::make_shared<const room_deps>(
    room_deps{std::shared_ptr<const settings>(ctx, &ctx->cfg),
              std::shared_ptr<metrics>(ctx, &ctx->stats),
              std::shared_ptr<id_source>(ctx, &ctx->ids), ctx->publisher,
              ctx->agents, ctx->http});
}

event room_event(id_source& ids, std::string topic, std::string source,
                 std::string data, bool is_private,
                 const std::vector<std::string>& audience) {
  event ev;
  ev.id = ids.next();
  ev.topic = std::move(topic);
  ev.ts = node_context::unix_ms();
  ev.source = std::move(source);
  ev.data = std::move(data);
  ev.headers.emplace(rooms::audience_header,
                     is_private ? nlohmann::json(audience).dump() : "*");
  return ev;
}

stream_actor::behavior_type stream_server(stream_ptr self, stream_spec spec) {
  auto& st = self->state;
  st.spec = std::move(spec);
  st.topic = rooms::topic(st.spec.org, "message_stream", st.spec.room);
  st.spec.deps->stats->streams_active.fetch_add(1, std::memory_order_relaxed);
  self->attach_functor([stats = st.spec.deps->stats] {
    stats->streams_active.fetch_sub(1, std::memory_order_relaxed);
  });
  auto stall = st.spec.deps->cfg->agent_stall_timeout;
  if (st.spec.agent) {
    self->monitor(st.spec.agent);
    self->set_down_handler([self](const caf::down_msg&) {
      finish(self, "failed", "agent crashed");
    });
  }
  st.last_progress = self->clock().now();
  self->delayed_send(self, stall, stall_atom::value, int64_t{0});
  return {
    [self](token_atom, std::string& token) -> caf::result<bool> {
      auto& st = self->state;
      if (st.ended)
        return false;
      if (st.spec.reply.text.size() + token.size()
          > st.spec.deps->cfg->max_reply_text) {
        finish(self, "failed", "reply longer than the node allows");
        return false;
      }
      ++st.index;
      st.spec.reply.text += token;
      // Empty tokens are no progress: they do not hold off the stall timer.
      if (!token.empty())
        st.last_progress = self->clock().now();
      auto rp = self->make_response_promise<bool>();
      publish(self, token, false, {}, {}, &rp);
      return rp;
    },
    [self](end_atom) {
      finish(self, "complete", {});
    },
    [self](fail_atom, const std::string& reason) {
      finish(self, "failed", reason.empty() ? "agent failed" : reason);
    },
    [self](snapshot_atom) {
      auto& st = self->state;
      // Once ended, `index` numbers the final (done) event, which is still
      // on its way to the watchers: the snapshot covers the tokens only.
      auto last_token = st.ended ? st.index - 1 : st.index;
      return stream_snapshot{st.topic, st.spec.reply.message_id,
                             st.spec.reply.seq, last_token, st.spec.reply.text};
    },
    [self](cancel_atom) {
      finish(self, "cancelled", {});
    },
    [self](audience_atom, std::vector<std::string>& audience) {
      self->state.spec.audience = std::move(audience);
    },
    [self, stall](stall_atom, int64_t) {
      // One timer at a time, re-armed for what is left of the window.
      auto& st = self->state;
      if (st.ended)
        return;
      auto quiet = self->clock().now() - st.last_progress;
      if (quiet >= stall) {
        finish(self, "failed", "agent stalled");
        return;
      }
      auto left
        = std::chrono::duration_cast<std::chrono::milliseconds>(stall - quiet);
      self->delayed_send(self, std::max(left, std::chrono::milliseconds{1}),
                         stall_atom::value, int64_t{0});
    },
  };
}

} // namespace switchyard
