// The cluster actor: one per node. It finds the other nodes from the seed
// list through CAF's middleman, greets each with this node's card, pings the
// live ones, and tells the node's directories and session registry which
// members are alive whenever that changes. A member that has not answered for
// the timeout, or whose actor went down (its process died, its connection
// broke), is down; the node keeps trying its address and the seeds, so a
// member back from a restart or a partition rejoins.

#pragma once

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/middleman_actor.hpp>

#include "actors/cluster_interfaces.hpp"
#include "actors/metrics.hpp"

namespace switchyard {

/// Default of `--cluster-timeout`: a member silent this long is down. Long
/// enough to ride out a stalled process or a lost packet or two, short
/// enough that its rooms move within seconds.
constexpr std::chrono::milliseconds default_cluster_timeout{3'000};

/// What a cluster actor works with.
struct cluster_config {
  /// This node's card (from `start_atom`; the actor fills in `member`).
  node_card self;
  /// `host:port` of other members' cluster listeners.
  std::vector<std::string> seeds;
  std::chrono::milliseconds timeout = default_cluster_timeout;
  /// Connects to other nodes.
  caf::io::middleman_actor middleman;
  /// The node's counters, for the load members report (outlive the actor).
  const metrics* stats = nullptr;
};

/// State of the cluster actor.
struct cluster_state {
  cluster_config cfg;
  /// Every member ever seen but this node, by name.
  std::map<std::string, member_status> peers;
  /// When each peer last answered (the actor clock's time).
  std::map<std::string, caf::actor_clock::time_point> answered;
  /// Addresses with a connect in flight.
  std::set<std::string> connecting;
  /// The live members last told to the directories: name, incarnation and
  /// handle of each, sorted.
  std::vector<std::string> told;

  static inline const char* name = "cluster";
};

cluster_actor::behavior_type
cluster(cluster_actor::stateful_pointer<cluster_state> self,
        cluster_config cfg);

/// How often the cluster actor pings its peers: a quarter of the timeout, so
/// a member is down after about four unanswered pings.
std::chrono::milliseconds ping_interval(std::chrono::milliseconds timeout);

/// Splits `host:port` (the port after the last `:`); false when the port is
/// not a number from 1 to 65535 or the host is empty.
bool split_address(const std::string& address, std::string& host,
                   uint16_t& port);

} // namespace switchyard
