// Agent behaviors, registered by name. A participant of kind "agent" names
// its behavior and gives it a JSON `config`; its room spawns the agent actor
// from here when the room activates, and again (with backoff) after a crash.
// docs/extending.md walks through writing one.

#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/http_port.hpp"
#include "actors/node_context.hpp"
#include "actors/room_interfaces.hpp"

namespace switchyard {

/// What an agent actor is spawned with.
struct agent_spec {
  /// The participant id (`agent_1`).
  std::string id;
  std::string org;
  std::string room;
  /// The participant's `config`, checked by the behavior's validator.
  nlohmann::json config;
  /// Deepest nesting the node accepts in JSON (--max-json-depth), for what
  /// the agent's backend sends.
  size_t max_json_depth = settings::default_max_json_depth;
  /// Streamed HTTP requests, for agents that call a model's API.
  std::shared_ptr<http_port> http;
};

/// Spawns the agent actor of one participant.
using agent_factory
  = std::function<agent_actor(caf::actor_system&, agent_spec)>;

/// Checks a participant's `config` before it joins: empty when usable, else
/// what is wrong (answered as 400 `bad_request`).
using agent_validator = std::function<std::string(const nlohmann::json&)>;

/// The behaviors a node knows.
class agent_registry {
public:
  /// Registers `name`, spawned by `factory`.
  void add(std::string name, agent_factory factory,
           agent_validator validate = nullptr);

  /// Registers `name` as a typed behavior function or class: spawned with
  /// `sys.spawn(fun, spec)`.
  template<class Fun>
  void
  add_behavior(std::string name, Fun fun, agent_validator validate = nullptr) {
    add(
      std::move(name),
      [fun](caf::actor_system& sys, agent_spec spec) -> agent_actor {
        return sys.spawn(fun, std::move(spec));
      },
      std::move(validate));
  }

  /// Whether `name` is registered.
  bool has(const std::string& name) const;

  /// Empty when a participant may use behavior `name` with `config`, else
  /// why not.
  std::string check(const std::string& name,
                    const nlohmann::json& config) const;

  /// Spawns an agent with behavior `name` (which must be registered).
  agent_actor spawn(caf::actor_system& sys, const std::string& name,
                    agent_spec spec) const;

  /// The registered names, for errors and docs.
  std::string names() const;

private:
  struct entry {
    agent_factory factory;
    agent_validator validate;
  };
  std::map<std::string, entry> entries_;
};

/// Registers the built-in behaviors (`echo`, `openai`, `external`) and the
/// example of docs/extending.md (`shout`).
void register_builtin_agents(agent_registry& registry);

} // namespace switchyard
