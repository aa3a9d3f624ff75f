// External agents, written in any language, stream replies into rooms over
// NATS (docs/external-agents.md): the gateway actor takes their `start`
// requests on `switchyard.agents.start` (a queue group: one node of a
// cluster answers each) and their tokens on a subject of the node that owns
// the reply's stream actor, and answers each request once the stream took
// it, which is the agent's credit.

#pragma once

#include <map>
#include <memory>
#include <string>

#include "actors/nats_port.hpp"
#include "actors/room_interfaces.hpp"

namespace switchyard {

/// Where external agents ask to start a reply.
constexpr std::string_view agent_start_subject = "switchyard.agents.start";

/// Where the tokens of reply `message_id`, streamed by node `node`, go.
std::string agent_stream_subject(std::string_view node,
                                 std::string_view message_id);

/// Largest message an external agent may send: a token is a few bytes, and
/// the whole reply is bounded by --max-reply-text anyway.
constexpr size_t max_agent_message = 64 * 1024;

/// State of the gateway.
struct agent_gateway_state {
  /// What the gateway needs of its node.
  struct config {
    /// The node's id: its token subjects name it.
    std::string node_id;
    size_t max_json_depth;
    room_directory_actor rooms;
  };

  config cfg;
  std::shared_ptr<nats_port> nats;
  nats_port::subscription_ptr starts;
  nats_port::subscription_ptr tokens;
  /// Replies of external agents streaming through this node, by message id.
  std::map<std::string, stream_actor> streams;

  static inline const char* name = "agent_gateway";
};

/// Spawn it `caf::detached`: its NATS replies may block like any publish.
agent_gateway_actor::behavior_type
agent_gateway(agent_gateway_actor::stateful_pointer<agent_gateway_state> self,
              agent_gateway_state::config cfg, std::shared_ptr<nats_port> nats);

} // namespace switchyard
