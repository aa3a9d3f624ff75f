#include "actors/agents/registry.hpp"

#include "actors/agents/echo.hpp"
#include "actors/agents/openai.hpp"
#include "actors/agents/shout.hpp"

namespace switchyard {

void agent_registry::add(std::string name, agent_factory factory,
                         agent_validator validate) {
  entries_[std::move(name)] = entry{std::move(factory), std::move(validate)};
}

bool agent_registry::has(const std::string& name) const {
  return entries_.count(name) != 0;
}

std::string agent_registry::check(const std::string& name,
                                  const nlohmann::json& config) const {
  auto i = entries_.find(name);
  if (i == entries_.end())
    return "unknown behavior '" + name + "' (known: " + names() + ")";
  if (!config.is_object())
    return "config must be a JSON object";
  return i->second.validate ? i->second.validate(config) : std::string{};
}

agent_actor agent_registry::spawn(caf::actor_system& sys,
                                  const std::string& name,
                                  agent_spec spec) const {
  return entries_.at(name).factory(sys, std::move(spec));
}

std::string agent_registry::names() const {
  std::string out;
  for (auto& kvp : entries_) {
    if (!out.empty())
      out += ", ";
    out += kvp.first;
  }
  return out.empty() ? "none" : out;
}

void register_builtin_agents(agent_registry& registry) {
  register_echo_agent(registry);
  register_openai_agent(registry);
  register_shout_agent(registry);
}

} // namespace switchyard
