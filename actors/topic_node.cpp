#include "actors/topic_node.hpp"

#include <algorithm>
#include <array>

#include "actors/log.hpp"
#include "schemas/frames.hpp"
#include "schemas/messages.hpp"
#include "schemas/rooms.hpp"

namespace switchyard {

namespace {

using self_ptr = topic_actor::stateful_pointer<topic_node_state>;

void report(self_ptr self) {
  auto& st = self->state;
  self->send(st.router, count_atom::value, st.pattern,
             static_cast<uint64_t>(st.subscribers.size()), st.received);
}

void remove_subscriber(self_ptr self, const caf::actor_addr& addr) {
  auto& st = self->state;
  auto i = st.index.find(addr);
  if (i == st.index.end())
    return;
  auto pos = i->second;
  st.index.erase(i);
  if (pos + 1 != st.subscribers.size()) {
    st.subscribers[pos] = std::move(st.subscribers.back());
    st.index[st.subscribers[pos].session.address()] = pos;
  }
  st.subscribers.pop_back();
  st.chunks_stale = true;
  st.deps->stats->subscriptions.fetch_sub(1, std::memory_order_relaxed);
  report(self);
}

/// Most sinks in one hand-off: a large fan-out still lets the thread's
/// other sockets, timers and HTTP requests run between chunks.
constexpr size_t chunk_size = 128;

/// Groups the local subscribers by thread and subprotocol, in chunks.
void rebuild_chunks(topic_node_state& st) {
  st.chunks.clear();
  std::vector<std::pair<std::pair<const void*, frames::wire_format>, sink_list>>
    open;
  auto flush = [&st](frames::wire_format format, sink_list& sinks) {
    st.chunks.push_back(
      {format, std::make_shared<const sink_list>(std::move(sinks))});
    sinks = sink_list{};
  };
  for (auto& sub : st.subscribers) {
    if (!sub.sink || sub.held)
      continue;
    auto key = std::make_pair(sub.sink->group(), sub.format);
    auto i = std::find_if(open.begin(), open.end(), [&](auto& g) {
      return g.first == key;
    });
    if (i == open.end()) {
      open.emplace_back(key, sink_list{});
      i = std::prev(open.end());
    }
    i->second.push_back(sub.sink);
    if (i->second.size() == chunk_size)
      flush(sub.format, i->second);
  }
  for (auto& [key, sinks] : open)
    if (!sinks.empty())
      flush(key.second, sinks);
  st.chunks_stale = false;
}

/// Adds `subscriber` (once); its events are held with `hold`. Returns
/// what the subscribe answers.
caf::result<subscription_actor>
add_subscriber(self_ptr self, const subscriber_actor& session, bool hold) {
  auto& st = self->state;
  ++st.received;
  auto i = st.index.find(session.address());
  if (i == st.index.end()) {
    topic_node_state::subscriber sub{session, nullptr};
    if (session.node() == self->node())
      sub.sink = st.deps->sinks->find(session.id());
    if (sub.sink)
      sub.format = sub.sink->format();
    self->monitor(session);
    i = st.index.emplace(session.address(), st.subscribers.size()).first;
    st.subscribers.emplace_back(std::move(sub));
    st.chunks_stale = true;
    st.deps->stats->subscriptions.fetch_add(1, std::memory_order_relaxed);
  }
  auto& sub = st.subscribers[i->second];
  if (hold && !sub.held) {
    sub.held = std::make_unique<topic_node_state::hold>();
    st.chunks_stale = true;
  }
  report(self);
  if (!st.armed) {
    st.waiting.emplace_back(self->make_response_promise());
    return caf::delegated<subscription_actor>{};
  }
  return caf::actor_cast<subscription_actor>(self);
}

/// Holds `ev` (as `frame` or `msg`) for recovering subscriber `sub`.
void hold_event(self_ptr self, topic_node_state::subscriber& sub,
                const event& ev, frames::frame_ptr frame, caf::message msg) {
  auto& held = *sub.held;
  if (held.overflowed)
    return;
  held.bytes += frame ? frame->size() : ev.data.size() + ev.topic.size();
  if (held.bytes > self->state.deps->hold_limit) {
    held.overflowed = true;
    held.events.clear();
    held.events.shrink_to_fit();
    self->anon_send(caf::actor_cast<caf::actor>(sub.session),
                    overflow_atom::value, self->state.pattern);
    return;
  }
  held.events.push_back({ev.seq, std::move(frame), std::move(msg)});
}

/// Ends the hold of `session`: what it held after `after` goes out first.
void release(self_ptr self, const subscriber_actor& session, uint64_t after) {
  auto& st = self->state;
  auto i = st.index.find(session.address());
  if (i == st.index.end())
    return;
  auto& sub = st.subscribers[i->second];
  if (!sub.held)
    return;
  auto held = std::move(sub.held);
  st.chunks_stale = true;
  if (held->overflowed)
    return; // its session closes
  uint64_t delivered = 0;
  for (auto& e : held->events) {
    if (e.seq != 0 && e.seq <= after)
      continue; // replayed already
    if (e.frame && sub.sink->push(e.frame))
      ++delivered;
    else if (!e.frame)
      self->anon_send(caf::actor_cast<caf::actor>(sub.session), e.msg);
  }
  st.deps->stats->events_out.fetch_add(delivered, std::memory_order_relaxed);
}

} // namespace

topic_deps_ptr topic_deps_of(const node_context_ptr& ctx) {
  // Aliasing pointers: each keeps the context alive, and names only its part.
  return std::make_shared<const topic_deps>(
    topic_deps{std::shared_ptr<metrics>(ctx, &ctx->stats),
               std::shared_ptr<const sink_registry>(ctx, &ctx->sinks),
               ctx->bridge, ctx->cfg.outbound_queue_limit});
}

topic_actor::behavior_type
topic_node(topic_actor::stateful_pointer<topic_node_state> self,
           std::string pattern, topic_router_actor router, topic_deps_ptr deps,
           bool armed) {
  auto& st = self->state;
  st.armed = armed;
  st.pattern = std::move(pattern);
  st.router = std::move(router);
  st.deps = std::move(deps);
  st.deps->stats->topic_actors.fetch_add(1, std::memory_order_relaxed);
  self->attach_functor([stats = st.deps->stats] {
    stats->topic_actors.fetch_sub(1, std::memory_order_relaxed);
  });
  self->set_down_handler([self](const caf::down_msg& dm) {
    remove_subscriber(self, dm.source);
  });
  return {
    [self](subscribe_atom, const std::string&,
           const subscriber_actor& session) -> caf::result<subscription_actor> {
      return add_subscriber(self, session, false);
    },
    [self](recover_atom, const std::string&,
           const subscriber_actor& session) -> caf::result<subscription_actor> {
      return add_subscriber(self, session, true);
    },
    [self](release_atom, const subscriber_actor& session, uint64_t after) {
      release(self, session, after);
    },
    [self](register_atom) {
      auto& st = self->state;
      st.armed = true;
      auto me = caf::actor_cast<subscription_actor>(self);
      for (auto& rp : st.waiting)
        rp.deliver(me);
      st.waiting.clear();
    },
    [self](unsubscribe_atom, const subscriber_actor& session) {
      self->demonitor(session.address());
      remove_subscriber(self, session.address());
    },
    [self](publish_atom, const event& ev) {
      auto& st = self->state;
      if (st.subscribers.empty())
        return;
      if (rooms::is_room_topic(ev.topic)) {
        // What a watcher gets of a room event depends on the watcher
        // (private rooms, catch-up, coalescing): its session decides.
        auto msg = caf::make_message(publish_atom::value, st.pattern, ev);
        for (auto& sub : st.subscribers)
          if (sub.held)
            hold_event(self, sub, ev, nullptr, msg);
          else
            self->anon_send(caf::actor_cast<caf::actor>(sub.session), msg);
        return;
      }
      // One encoding per subprotocol for every recipient of this
      // subscription, made when the first recipient needs it; one hand-off
      // per chunk of local recipients.
      if (st.chunks_stale)
        rebuild_chunks(st);
      std::array<frames::frame_ptr, 3> encoded;
      for (auto& c : st.chunks) {
        auto& frame = encoded[static_cast<size_t>(c.format)];
        if (!frame)
          frame = frames::encode_event(c.format, st.pattern, ev);
        c.sinks->front()->push_all(frame, c.sinks);
      }
      uint64_t delivered = 0;
      caf::message remote_msg;
      for (auto& sub : st.subscribers) {
        if (sub.sink && !sub.held)
          continue;
        if (sub.held && sub.sink) {
          auto& frame = encoded[static_cast<size_t>(sub.format)];
          if (!frame)
            frame = frames::encode_event(sub.format, st.pattern, ev);
          hold_event(self, sub, ev, frame, caf::message{});
          continue;
        }
        if (remote_msg.empty())
          remote_msg = caf::make_message(publish_atom::value, st.pattern, ev);
        if (sub.held) {
          hold_event(self, sub, ev, nullptr, remote_msg);
          continue;
        }
        self->anon_send(caf::actor_cast<caf::actor>(sub.session), remote_msg);
        ++delivered;
      }
      st.deps->stats->events_out.fetch_add(delivered,
                                           std::memory_order_relaxed);
    },
  };
}

} // namespace switchyard
