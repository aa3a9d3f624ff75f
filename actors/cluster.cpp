#include "actors/cluster.hpp"

#include <algorithm>

#include "actors/log.hpp"
#include "schemas/messages.hpp"

namespace switchyard {

namespace {

auto& log() {
  static auto instance = logger("cluster");
  return instance;
}

using self_ptr = cluster_actor::stateful_pointer<cluster_state>;

/// Bound of one connect through the middleman. The middleman's actor makes
/// TCP connects one after the other, and one to a host that drops packets
/// takes until the kernel gives up (about 130 s with Linux's defaults).
/// Until its answer or this bound, longer than the kernel's, an address
/// gets no second connect, so its queue there stays one deep.
constexpr std::chrono::seconds connect_timeout{300};

int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

node_load own_load(const metrics* stats) {
  node_load x;
  if (stats == nullptr)
    return x;
  x.connections = stats->connections.load(std::memory_order_relaxed);
  x.topic_actors = stats->topic_actors.load(std::memory_order_relaxed);
  x.rooms_active = stats->rooms_active.load(std::memory_order_relaxed);
  x.streams_active = stats->streams_active.load(std::memory_order_relaxed);
  x.notifiers = stats->notifiers.load(std::memory_order_relaxed);
  x.rule_actors = stats->rule_actors.load(std::memory_order_relaxed);
  return x;
}

/// The cards of the live members, this node's first.
member_view live_cards(self_ptr self) {
  auto& st = self->state;
  member_view out{st.cfg.self};
  for (auto& kvp : st.peers)
    if (kvp.second.state == "alive")
      out.push_back(kvp.second.card);
  return out;
}

/// Tells the directories and the session registry the live members, when
/// they changed since the last time.
void tell_view(self_ptr self) {
  auto& st = self->state;
  auto view = live_cards(self);
  std::vector<std::string> names;
  // Name, incarnation and handle: a member reached over a new connection
  // has new handles, and the directories need them.
  for (auto& card : view)
    names.push_back(card.name + "@" + std::to_string(card.started_at) + "/"
                    + (card.member ? to_string(card.member->node()) + ":"
                           + std::to_string(card.member->id())
                                   : std::string{}));
  std::sort(names.begin(), names.end());
  if (names == st.told)
    return;
  st.told = std::move(names);
  log()->info("{} members alive", view.size());
  for (auto* hdl :
       {&st.cfg.self.rooms, &st.cfg.self.notifications, &st.cfg.self.sessions})
    if (*hdl)
      caf::anon_send(caf::actor_cast<caf::actor>(*hdl), members_atom::value,
                     view);
}

void mark_down(self_ptr self, member_status& peer, const char* why) {
  if (peer.state == "down")
    return;
  peer.state = "down";
  peer.last_seen = unix_ms();
  log()->warn("member {} at {} is down: {}", peer.card.name, peer.card.address,
              why);
  tell_view(self);
}

void connect(self_ptr self, const std::string& address);

/// Takes in what a peer said of itself and of the members it knows.
void learn(self_ptr self, node_card& card, const node_load* load,
           const std::vector<node_card>& known) {
  auto& st = self->state;
  if (card.name == st.cfg.self.name) {
    if (card.started_at != st.cfg.self.started_at)
      log()->error("another node at {} calls itself {}, as this one does: "
                   "give every node its own --node-name",
                   card.address, card.name);
    return;
  }
  auto& peer = st.peers[card.name];
  // A new incarnation (a new node id), or the same one reached over a new
  // connection (CAF ended the proxies of the old one): new handles.
  auto same_member = peer.card.member && card.member
    && peer.card.member->id() == card.member->id()
    && peer.card.member->node() == card.member->node();
  if (!same_member) {
    if (peer.card.member)
      self->demonitor(caf::actor_cast<caf::actor_addr>(peer.card.member));
    if (!peer.card.name.empty() && peer.card.started_at != card.started_at)
      log()->info("member {} restarted", card.name);
    peer.card = card;
    self->monitor(caf::actor_cast<caf::actor>(peer.card.member));
  }
  if (peer.state != "alive")
    log()->info("member {} at {} is alive", card.name, card.address);
  peer.state = "alive";
  peer.last_seen = unix_ms();
  st.answered[card.name] = self->clock().now();
  if (load != nullptr)
    peer.load = *load;
  for (auto& other : known) {
    if (other.name == st.cfg.self.name)
      continue;
    auto i = st.peers.find(other.name);
    if (i == st.peers.end() || i->second.state != "alive"
        || i->second.card.started_at != other.started_at)
      connect(self, other.address);
  }
  tell_view(self);
}

/// Introduces this node to the cluster actor `hdl`.
void greet(self_ptr self, const caf::strong_actor_ptr& hdl) {
  auto& st = self->state;
  auto peer = caf::actor_cast<cluster_actor>(hdl);
  if (!peer)
    return;
  self
    ->request(peer, st.cfg.timeout, hello_atom::value, st.cfg.self,
              live_cards(self))
    .then(
      [self](node_card& card, node_load& load, std::vector<node_card>& known) {
        learn(self, card, &load, known);
      },
      [](caf::error&) {
        // Not answered: the ping timer decides when the member is down.
      });
}

/// Connects to the cluster listener at `address` and greets what is
/// published there.
void connect(self_ptr self, const std::string& address) {
  auto& st = self->state;
  if (address == st.cfg.self.address || st.connecting.count(address) != 0)
    return;
  std::string host;
  uint16_t port = 0;
  if (!split_address(address, host, port)) {
    log()->error("not a cluster address (host:port): {}", address);
    return;
  }
  st.connecting.insert(address);
  self
    ->request(st.cfg.middleman, connect_timeout, caf::connect_atom::value,
              std::move(host), port)
    .then(
      [self, address](const caf::node_id&, caf::strong_actor_ptr& hdl,
                      const std::set<std::string>&) {
        self->state.connecting.erase(address);
        if (hdl)
          greet(self, hdl);
        else
          log()->warn("nothing published at {}", address);
      },
      [self, address](caf::error& err) {
        self->state.connecting.erase(address);
        log()->debug("cannot reach {}: {}", address, to_string(err));
      });
}

/// One round: ping the live members, mark silent ones down, connect to the
/// seeds and down members.
void round(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  std::set<std::string> alive_at;
  for (auto& kvp : st.peers) {
    auto& peer = kvp.second;
    if (peer.state != "alive")
      continue;
    if (now - st.answered[kvp.first] > st.cfg.timeout) {
      mark_down(self, peer, "no answer within the timeout");
      continue;
    }
    alive_at.insert(peer.card.address);
    greet(self, peer.card.member);
  }
  for (auto& seed : st.cfg.seeds)
    if (alive_at.count(seed) == 0)
      connect(self, seed);
  for (auto& kvp : st.peers)
    if (kvp.second.state == "down"
        && alive_at.count(kvp.second.card.address) == 0)
      connect(self, kvp.second.card.address);
}

} // namespace

std::chrono::milliseconds ping_interval(std::chrono::milliseconds timeout) {
  return std::max(std::chrono::milliseconds{50}, timeout / 4);
}

bool split_address(const std::string& address, std::string& host,
                   uint16_t& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()
      || address.size() - colon - 1 > 5)
    return false;
  uint32_t value = 0;
  for (auto i = colon + 1; i < address.size(); ++i) {
    auto c = address[i];
    if (c < '0' || c > '9')
      return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value == 0 || value > 65535)
    return false;
  host = address.substr(0, colon);
  // [::1]:4000 -> ::1
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  port = static_cast<uint16_t>(value);
  return true;
}

cluster_actor::behavior_type cluster(self_ptr self, cluster_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  self->set_down_handler([self](const caf::down_msg& dm) {
    for (auto& kvp : self->state.peers)
      if (caf::actor_cast<caf::actor_addr>(kvp.second.card.member)
          == dm.source) {
        mark_down(self, kvp.second, to_string(dm.reason).c_str());
        return;
      }
  });
  return {
    [self](start_atom, node_card& card) {
      auto& st = self->state;
      if (!st.cfg.self.name.empty())
        return;
      card.member = caf::actor_cast<caf::strong_actor_ptr>(self);
      st.cfg.self = std::move(card);
      tell_view(self);
      self->send(self, ping_atom::value);
    },
    [self](hello_atom, node_card& card, std::vector<node_card>& known)
      -> caf::result<node_card, node_load, std::vector<node_card>> {
      auto& st = self->state;
      if (st.cfg.self.name.empty())
        return caf::make_error(error_code::cluster_not_started);
      learn(self, card, nullptr, known);
      return {st.cfg.self, own_load(st.cfg.stats), live_cards(self)};
    },
    [self](members_atom) {
      auto& st = self->state;
      std::vector<member_status> out;
      member_status me;
      me.card = st.cfg.self;
      me.state = "self";
      me.last_seen = unix_ms();
      me.load = own_load(st.cfg.stats);
      out.push_back(std::move(me));
      for (auto& kvp : st.peers)
        out.push_back(kvp.second);
      return out;
    },
    [self](ping_atom) {
      round(self);
      self->delayed_send(self, ping_interval(self->state.cfg.timeout),
                         ping_atom::value);
    },
  };
}

} // namespace switchyard
