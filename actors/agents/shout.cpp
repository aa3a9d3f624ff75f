#include "actors/agents/shout.hpp"

#include <cctype>

namespace switchyard {

namespace {

agent_actor::behavior_type shout_agent(agent_actor::pointer self,
                                       agent_spec spec) {
  auto suffix = spec.config.value("suffix", std::string{"!"});
  return {
    [self, suffix](respond_atom, const agent_request& req) {
      auto text = req.prompt.text;
      for (auto& c : text)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      text += suffix;
      // The answer to a token comes once it is on its way to the watchers
      // (the agent's credit); only then is the reply complete.
      auto stream = req.stream;
      self->request(stream, caf::infinite, token_atom::value, std::move(text))
        .then(
          [self, stream](bool) {
            self->send(stream, end_atom::value);
          },
          [](caf::error&) {
            // The reply ended before its token (cancelled): nothing
            // left to do.
          });
    },
    [](tick_atom, uint64_t) {
      // no timers
    },
    [](input_atom, uint64_t, bool, const std::string&) {
      // no outside input
    },
  };
}

std::string validate(const nlohmann::json& config) {
  auto i = config.find("suffix");
  if (i != config.end()
      && (!i->is_string() || i->get_ref<const std::string&>().size() > 64))
    return "config.suffix must be a string of at most 64 bytes";
  return {};
}

} // namespace

void register_shout_agent(agent_registry& registry) {
  registry.add_behavior("shout", shout_agent, validate);
}

} // namespace switchyard
