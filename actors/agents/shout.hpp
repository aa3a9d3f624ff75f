// The `shout` agent: the example of docs/extending.md. It answers with the
// message in capitals and `config.suffix` (default "!") as one token.

#pragma once

#include "actors/agents/registry.hpp"

namespace switchyard {

void register_shout_agent(agent_registry& registry);

} // namespace switchyard
