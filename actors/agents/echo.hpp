// The `echo` agent: replies with the message it answers, streamed a word at
// a time, `config.delay_ms` milliseconds apart (default 0, at most 10000: well
// under the stall timeout).

#pragma once

#include "actors/agents/registry.hpp"

namespace switchyard {

void register_echo_agent(agent_registry& registry);

} // namespace switchyard
