// The `openai` agent behavior: answers from an OpenAI-compatible chat
// completions endpoint (OpenAI, or a local server speaking its API), its
// reply streamed token by token into the room.
//
// Participant config:
//   {"url": "https://api.openai.com/v1",   base URL or its /chat/completions
//    "model": "gpt-4o-mini",
//    "api_key_env": "OPENAI_API_KEY",      env var with the key; "" for none
//    "system": "You are ...",              optional system prompt
//    "history": 10,                        recent messages sent, 0 to 100
//    "timeout_ms": 30000}                  connect, first byte, silence
//
// The key lives in the node's environment, never in the room's record.

#pragma once

#include <string>
#include <string_view>

#include <caf/fwd.hpp>
#include <nlohmann/json_fwd.hpp>

#include "actors/agents/registry.hpp"

namespace switchyard {

/// Registers `openai` with its validator.
void register_openai_agent(agent_registry& registry);

/// Empty when `config` is a usable `openai` config, else what is wrong with
/// it, naming the field.
std::string validate_openai_config(const nlohmann::json& config);

/// The chat completions URL that the configured `url` stands for: a URL
/// ending in /chat/completions as it is, else that path appended (after
/// /v1, which is added when the URL does not end in it).
std::string openai_completions_url(std::string_view url);

/// Spawns an `openai` agent: what the registry's factory does.
agent_actor spawn_openai_agent(caf::actor_system& sys, agent_spec spec);

} // namespace switchyard
