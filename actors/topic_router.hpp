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

#include "actors/node_interfaces.hpp"
#include "actors/topic_node.hpp"

namespace switchyard {

/// A token trie of subscription patterns with `*` and `>` nodes.
class pattern_trie {
public:
  /// Adds `pattern` with `value`; replaces an older value.
  void insert(std::string_view pattern, topic_actor value);

  /// Removes `pattern`.
  void erase(std::string_view pattern);

  /// Appends the value of every pattern matching `topic` to `out`.
  void match(std::string_view topic, std::vector<topic_actor>& out) const;

private:
  struct node {
    std::unordered_map<std::string, std::unique_ptr<node>> children;
    std::unique_ptr<node> star;
    topic_actor terminal; // a pattern ends here
    topic_actor rest;     // a pattern ends here with `>`
    bool empty() const {
      return children.empty() && !star && !terminal && !rest;
    }
  };

  static void match(const node& n, const std::vector<std::string_view>& toks,
                    size_t i, std::vector<topic_actor>& out);

  static bool erase(node& n, const std::vector<std::string_view>& toks,
                    size_t i);

  node root_;
};

/// State of an org router.
struct topic_router_state {
  struct entry {
    topic_actor node;
    uint64_t forwarded = 0;
    uint64_t subscribers = 0;
  };

  std::string org;
  topic_router_actor root;
  topic_deps_ptr deps;
  std::map<std::string, entry> patterns;
  pattern_trie trie;
  /// Subscribes received from the root (see topic_node_state::received).
  uint64_t received = 0;

  static inline const char* name = "topic_router";
};

/// A `topic_router_actor` for one org: a subscribe goes to the topic actor
/// of its pattern, spawned on first use; a publish to every matching topic
/// actor; a topic actor that reports itself empty, with no subscribe in
/// flight, retires.
topic_router_actor::behavior_type
topic_router(topic_router_actor::stateful_pointer<topic_router_state> self,
             std::string org, topic_router_actor root, topic_deps_ptr deps);

} // namespace switchyard
