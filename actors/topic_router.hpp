// The router of one org: indexes the org's subscription patterns in a token
// trie, owns one topic actor per pattern, and forwards each publish to the
// topic actors whose pattern matches. Orgs never share a router, so a hot
// org cannot slow another one down.

#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/node_context.hpp"

namespace switchyard {

/// A token trie of subscription patterns with `*` and `>` nodes.
class pattern_trie {
public:
  /// Adds `pattern` with `value`; replaces an older value.
  void insert(std::string_view pattern, caf::actor value);

  /// Removes `pattern`.
  void erase(std::string_view pattern);

  /// Appends the value of every pattern matching `topic` to `out`.
  void match(std::string_view topic, std::vector<caf::actor>& out) const;

private:
  struct node {
    std::unordered_map<std::string, std::unique_ptr<node>> children;
    std::unique_ptr<node> star;
    caf::actor terminal; // a pattern ends here
    caf::actor rest;     // a pattern ends here with `>`
    bool empty() const {
      return children.empty() && !star && !terminal && !rest;
    }
  };

  static void match(const node& n, const std::vector<std::string_view>& toks,
                    size_t i, std::vector<caf::actor>& out);

  static bool erase(node& n, const std::vector<std::string_view>& toks,
                    size_t i);

  node root_;
};

/// State of an org router.
struct topic_router_state {
  struct entry {
    caf::actor node;
    uint64_t forwarded = 0;
    uint64_t subscribers = 0;
  };

  std::string org;
  caf::actor root;
  node_context_ptr ctx;
  std::map<std::string, entry> patterns;
  pattern_trie trie;
  /// Subscribes received from the root (see topic_node_state::received).
  uint64_t received = 0;

  static inline const char* name = "topic_router";
};

/// Messages:
/// - `(subscribe_atom, pattern, session) -> actor`: delegates to the topic
///   actor of `pattern`, spawning it on first use;
/// - `(publish_atom, event)`: forwards to every matching topic actor;
/// - `(count_atom, pattern, subscribers, received)`: from a topic actor;
///   retires it once it is empty and no subscribe is in flight;
/// - `(topics_atom) -> std::vector<topic_info>`.
caf::behavior topic_router(caf::stateful_actor<topic_router_state>* self,
                           std::string org, caf::actor root,
                           node_context_ptr ctx);

} // namespace switchyard
