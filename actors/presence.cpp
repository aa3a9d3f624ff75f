#include "actors/presence.hpp"

#include <algorithm>
#include <unordered_set>

#include "schemas/json_limits.hpp"
#include "schemas/rooms.hpp"
#include "schemas/topic.hpp"

namespace switchyard {

namespace {

constexpr std::string_view presence_prefix = "presence.";
constexpr std::string_view room_token = "room";

} // namespace

bool is_presence_pattern(std::string_view pattern) {
  return pattern.substr(0, presence_prefix.size()) == presence_prefix;
}

std::string presence_topic_key(std::string_view org, std::string_view topic) {
  std::string key{presence_prefix};
  key.append(org).append(".").append(topic);
  return key;
}

std::string presence_room_key(std::string_view org, std::string_view room) {
  std::string key{presence_prefix};
  key.append(org).append(".").append(room_token).append(".").append(room);
  return key;
}

std::optional<presence_target> parse_presence_key(std::string_view key,
                                                  std::string* why) {
  auto fail = [why](const char* text) -> std::optional<presence_target> {
    if (why != nullptr)
      *why = text;
    return std::nullopt;
  };
  constexpr auto usage = "a presence topic is presence.<org>.<exact topic of "
                         "the org> or presence.<org>.room.<room id>";
  if (!is_presence_pattern(key))
    return fail(usage);
  auto rest = key.substr(presence_prefix.size());
  auto dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0)
    return fail(usage);
  auto org = rest.substr(0, dot);
  auto inner = rest.substr(dot + 1);
  presence_target out;
  out.key = std::string{key};
  out.org = std::string{org};
  if (auto parts = topic::split(inner);
      parts.size() == 2 && parts[0] == room_token) {
    if (!rooms::valid_room_id(parts[1]))
      return fail("presence.<org>.room.<room id> needs a room id (conv_ and "
                  "24 hex digits)");
    out.room = std::string{parts[1]};
    return out;
  }
  if (!topic::valid_topic(inner) || topic::org_of(inner) != org)
    return fail(usage);
  out.topic = std::string{inner};
  return out;
}

bool may_see_presence(const claims& c, const presence_target& t) {
  if (t.org != c.org)
    return false;
  if (!t.topic.empty())
    return may_subscribe(c, t.topic);
  return may_subscribe(c, rooms::topic(c.org, "*", t.room));
}

std::string room_of(const presence_target& t) {
  if (!t.room.empty())
    return t.room;
  return std::string{rooms::room_of_pattern(t.topic)};
}

bool refuses_room(const outcome& res) {
  return res.code == "forbidden" || res.code == "not_found";
}

bool valid_presence_user(std::string_view user) {
  return !user.empty() && user.size() <= 256 && json_limits::valid_utf8(user);
}

std::vector<std::string> presence_keys_of(std::string_view org,
                                          std::string_view pattern) {
  std::vector<std::string> out;
  if (is_presence_pattern(pattern))
    return out;
  if (pattern.find_first_of("*>") == std::string_view::npos)
    out.push_back(presence_topic_key(org, pattern));
  if (auto room = rooms::room_of_pattern(pattern); !room.empty())
    out.push_back(presence_room_key(org, room));
  return out;
}

// -- local side ---------------------------------------------------------------

int32_t presence_book::add(const std::string& key, const std::string& user,
                           int32_t delta) {
  auto& users = local_[key];
  auto& n = users[user];
  n += delta;
  auto result = n;
  if (n <= 0) {
    users.erase(user);
    if (users.empty())
      local_.erase(key);
  }
  return result;
}

std::optional<int32_t> presence_book::join(const caf::actor_addr& session,
                                           const std::string& user,
                                           const std::string& key) {
  auto& keys = keys_of_[session];
  bool counted = std::find(keys.begin(), keys.end(), key) != keys.end();
  keys.push_back(key);
  if (counted)
    return std::nullopt;
  return add(key, user, 1);
}

std::optional<int32_t> presence_book::leave(const caf::actor_addr& session,
                                            const std::string& user,
                                            const std::string& key) {
  auto i = keys_of_.find(session);
  if (i == keys_of_.end())
    return std::nullopt;
  auto& keys = i->second;
  auto k = std::find(keys.begin(), keys.end(), key);
  if (k == keys.end())
    return std::nullopt;
  keys.erase(k);
  bool still = std::find(keys.begin(), keys.end(), key) != keys.end();
  if (keys.empty())
    keys_of_.erase(i);
  if (still)
    return std::nullopt;
  return add(key, user, -1);
}

std::vector<presence_book::change>
presence_book::drop(const caf::actor_addr& session, const std::string& user) {
  std::vector<change> out;
  auto i = keys_of_.find(session);
  if (i == keys_of_.end())
    return out;
  auto keys = std::move(i->second);
  keys_of_.erase(i);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  for (auto& key : keys)
    out.push_back(change{key, user, add(key, user, -1)});
  return out;
}

std::vector<presence_book::change> presence_book::local() const {
  std::vector<change> out;
  for (auto& [key, users] : local_)
    for (auto& [user, n] : users)
      out.push_back(change{key, user, n});
  return out;
}

// -- cluster side -------------------------------------------------------------

std::optional<presence_book::transition>
presence_book::set(const std::string& key, const std::string& user,
                   const std::string& node, int64_t started_at,
                   int32_t sessions) {
  auto& users = cluster_[key];
  auto u = users.find(user);
  bool was = u != users.end();
  if (!was) {
    if (sessions <= 0) {
      if (users.empty())
        cluster_.erase(key);
      return std::nullopt;
    }
    u = users.emplace(user, std::vector<holder>{}).first;
  }
  auto& nodes = u->second;
  auto h = std::find_if(nodes.begin(), nodes.end(), [&node](const holder& x) {
    return x.node == node;
  });
  if (sessions <= 0) {
    if (h != nodes.end())
      nodes.erase(h);
  } else if (h != nodes.end()) {
    h->started_at = started_at;
    h->sessions = sessions;
  } else {
    nodes.push_back(holder{node, started_at, sessions});
  }
  if (!nodes.empty())
    return was
      ? std::nullopt
      : std::optional<transition>{transition{key, user, true, users.size()}};
  users.erase(u);
  auto left = users.size();
  if (users.empty())
    cluster_.erase(key);
  return transition{key, user, false, left};
}

std::vector<presence_book::transition>
presence_book::replace(const std::string& node, int64_t started_at,
                       const std::vector<presence_count>& counts) {
  // What `node` reported before and no longer does goes to 0 first.
  std::vector<std::pair<std::string, std::string>> before;
  for (auto& [key, users] : cluster_)
    for (auto& [user, nodes] : users)
      for (auto& h : nodes)
        if (h.node == node)
          before.emplace_back(key, user);
  std::unordered_set<std::string> reported;
  for (auto& c : counts)
    if (c.sessions > 0)
      reported.insert(c.key + '\n' + c.user);
  std::vector<transition> out;
  for (auto& [key, user] : before)
    if (reported.count(key + '\n' + user) == 0)
      if (auto t = set(key, user, node, started_at, 0))
        out.push_back(std::move(*t));
  for (auto& c : counts)
    if (auto t = set(c.key, c.user, node, started_at, c.sessions))
      out.push_back(std::move(*t));
  return out;
}

std::vector<presence_book::transition>
presence_book::prune(const std::function<bool(const std::string& node,
                                              int64_t started_at)>& alive) {
  std::vector<transition> out;
  for (auto k = cluster_.begin(); k != cluster_.end();) {
    auto& users = k->second;
    auto first = out.size();
    for (auto u = users.begin(); u != users.end();) {
      auto& nodes = u->second;
      nodes.erase(std::remove_if(nodes.begin(), nodes.end(),
                                 [&alive](const holder& h) {
                                   return !alive(h.node, h.started_at);
                                 }),
                  nodes.end());
      if (!nodes.empty()) {
        ++u;
        continue;
      }
      out.push_back(transition{k->first, u->first, false, 0});
      u = users.erase(u);
    }
    // Each leave with the count right after it.
    for (auto i = first; i < out.size(); ++i)
      out[i].users = users.size() + (out.size() - 1 - i);
    if (users.empty())
      k = cluster_.erase(k);
    else
      ++k;
  }
  return out;
}

presence_info presence_book::info(const std::string& key, size_t cap) const {
  presence_info out;
  out.key = key;
  auto k = cluster_.find(key);
  if (k == cluster_.end())
    return out;
  auto& users = k->second;
  out.users = static_cast<uint32_t>(users.size());
  out.capped = users.size() > cap;
  for (auto& [user, nodes] : users) {
    presence_member m;
    m.user = user;
    for (auto& h : nodes) {
      m.sessions += h.sessions;
      m.nodes.push_back(h.node);
    }
    std::sort(m.nodes.begin(), m.nodes.end());
    out.sessions += static_cast<uint32_t>(m.sessions);
    if (!out.capped)
      out.members.push_back(std::move(m));
  }
  return out;
}

} // namespace switchyard
