#include "actors/topic_router.hpp"

#include "actors/topic_node.hpp"
#include "schemas/messages.hpp"
#include "schemas/topic.hpp"

namespace switchyard {

// -- pattern_trie -------------------------------------------------------------

void pattern_trie::insert(std::string_view pattern, topic_actor value) {
  auto toks = topic::split(pattern);
  node* n = &root_;
  for (size_t i = 0; i < toks.size(); ++i) {
    auto tok = toks[i];
    if (tok == ">") {
      n->rest = std::move(value);
      return;
    }
    auto& next = tok == "*" ? n->star : n->children[std::string{tok}];
    if (!next)
      next = std::make_unique<node>();
    n = next.get();
  }
  n->terminal = std::move(value);
}

void pattern_trie::erase(std::string_view pattern) {
  erase(root_, topic::split(pattern), 0);
}

bool pattern_trie::erase(node& n, const std::vector<std::string_view>& toks,
                         size_t i) {
  if (i == toks.size()) {
    n.terminal = nullptr;
  } else if (toks[i] == ">") {
    n.rest = nullptr;
  } else if (toks[i] == "*") {
    if (n.star && erase(*n.star, toks, i + 1))
      n.star.reset();
  } else {
    auto c = n.children.find(std::string{toks[i]});
    if (c != n.children.end() && erase(*c->second, toks, i + 1))
      n.children.erase(c);
  }
  return n.empty();
}

void pattern_trie::match(std::string_view topic,
                         std::vector<topic_actor>& out) const {
  match(root_, topic::split(topic), 0, out);
}

void pattern_trie::match(const node& n,
                         const std::vector<std::string_view>& toks, size_t i,
                         std::vector<topic_actor>& out) {
  if (n.rest && i < toks.size())
    out.push_back(n.rest);
  if (i == toks.size()) {
    if (n.terminal)
      out.push_back(n.terminal);
    return;
  }
  if (!n.children.empty()) {
    auto c = n.children.find(std::string{toks[i]});
    if (c != n.children.end())
      match(*c->second, toks, i + 1, out);
  }
  if (n.star)
    match(*n.star, toks, i + 1, out);
}

// -- topic_router -------------------------------------------------------------

namespace {

using self_ptr = topic_router_actor::stateful_pointer<topic_router_state>;

void report(self_ptr self) {
  auto& st = self->state;
  self->send(st.root, count_atom::value, st.org,
             static_cast<uint64_t>(st.patterns.size()), st.received);
}

using entry_iter = std::map<std::string, topic_router_state::entry>::iterator;

/// Removes a pattern from the index, drops its NATS interest and reports.
void forget(self_ptr self, entry_iter i) {
  auto& st = self->state;
  st.trie.erase(i->first);
  if (st.deps->bridge)
    self->send(st.deps->bridge, unsubscribe_atom::value, i->first,
               i->second.node);
  st.patterns.erase(i);
  report(self);
}

/// Stops an empty topic actor and forgets its pattern.
void retire(self_ptr self, entry_iter i) {
  self->demonitor(i->second.node.address());
  self->send_exit(i->second.node, caf::exit_reason::user_shutdown);
  forget(self, i);
}

/// The topic actor of `pattern` (spawned on first use), counting one more
/// subscribe forwarded to it.
topic_actor forward_to(self_ptr self, const std::string& pattern) {
  auto& st = self->state;
  ++st.received;
  auto i = st.patterns.find(pattern);
  if (i == st.patterns.end()) {
    auto& bridge = st.deps->bridge;
    auto node = self->spawn(topic_node, pattern,
                            caf::actor_cast<topic_router_actor>(self), st.deps,
                            bridge == nullptr);
    self->monitor(node);
    if (bridge)
      self->send(bridge, subscribe_atom::value, pattern, node);
    st.trie.insert(pattern, node);
    i = st.patterns.emplace(pattern, topic_router_state::entry{node}).first;
  }
  ++i->second.forwarded;
  return i->second.node;
}

} // namespace

topic_router_actor::behavior_type
topic_router(topic_router_actor::stateful_pointer<topic_router_state> self,
             std::string org, topic_router_actor root, topic_deps_ptr deps) {
  auto& st = self->state;
  st.org = std::move(org);
  st.root = std::move(root);
  st.deps = std::move(deps);
  st.deps->stats->org_routers.fetch_add(1, std::memory_order_relaxed);
  self->attach_functor([stats = st.deps->stats] {
    stats->org_routers.fetch_sub(1, std::memory_order_relaxed);
  });
  self->set_down_handler([self](const caf::down_msg& dm) {
    // A topic actor died on its own (it never should): forget it so the next
    // subscribe spawns a fresh one. Its subscribers must resubscribe.
    auto& st = self->state;
    for (auto i = st.patterns.begin(); i != st.patterns.end(); ++i)
      if (i->second.node.address() == dm.source) {
        forget(self, i);
        return;
      }
  });
  // Topic actors are monitored, not linked: a stopping router (retired, or
  // the node stops) stops them itself.
  self->set_exit_handler([self](const caf::exit_msg& msg) {
    for (auto& kvp : self->state.patterns)
      self->send_exit(kvp.second.node, msg.reason);
    self->quit(msg.reason);
  });
  return {
    [self](subscribe_atom atm, std::string& pattern,
           subscriber_actor& session) -> caf::result<subscription_actor> {
      auto node = forward_to(self, pattern);
      return self->delegate(node, atm, std::move(pattern), std::move(session));
    },
    [self](recover_atom atm, std::string& pattern,
           subscriber_actor& session) -> caf::result<subscription_actor> {
      auto node = forward_to(self, pattern);
      return self->delegate(node, atm, std::move(pattern), std::move(session));
    },
    [self](publish_atom, event& ev) {
      std::vector<topic_actor> targets;
      self->state.trie.match(ev.topic, targets);
      if (targets.empty())
        return;
      // One message, shared by the matching topic actors.
      auto msg = caf::make_message(publish_atom::value, std::move(ev));
      for (auto& target : targets)
        self->anon_send(caf::actor_cast<caf::actor>(target), msg);
    },
    [self](count_atom, const std::string& pattern, uint64_t subscribers,
           uint64_t received) {
      auto& st = self->state;
      auto i = st.patterns.find(pattern);
      if (i == st.patterns.end())
        return;
      i->second.subscribers = subscribers;
      if (subscribers == 0 && received == i->second.forwarded)
        retire(self, i);
    },
    [self](topics_atom) {
      std::vector<topic_info> result;
      for (auto& [pattern, e] : self->state.patterns)
        result.emplace_back(topic_info{pattern, e.subscribers});
      return result;
    },
  };
}

} // namespace switchyard
