#include "actors/agents/echo.hpp"

#include <deque>
#include <vector>

namespace switchyard {

namespace {

/// Most prompts waiting while the agent answers another one.
constexpr size_t max_queued = 16;

struct echo_state {
  agent_spec spec;
  std::chrono::milliseconds delay{0};
  std::deque<agent_request> queue;
  /// The reply being written: the front of `queue`.
  std::vector<std::string> tokens;
  size_t next = 0;
  /// When the last token went to the stream.
  caf::actor_clock::time_point sent_at;
  bool busy = false;

  static inline const char* name = "echo_agent";
};

using echo_ptr = agent_actor::stateful_pointer<echo_state>;

/// `text` cut before each word, the space kept with the word after it.
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    auto start = i;
    while (i < text.size() && text[i] == ' ')
      ++i;
    while (i < text.size() && text[i] != ' ')
      ++i;
    out.emplace_back(text.substr(start, i - start));
  }
  return out;
}

void start_next(echo_ptr self);

void step(echo_ptr self) {
  auto& st = self->state;
  auto stream = st.queue.front().stream;
  if (st.next == st.tokens.size()) {
    self->send(stream, end_atom::value);
    st.queue.pop_front();
    st.busy = false;
    start_next(self);
    return;
  }
  st.sent_at = self->clock().now();
  self->request(stream, caf::infinite, token_atom::value, st.tokens[st.next])
    .then(
      [self](bool go_on) {
        auto& st = self->state;
        if (!go_on) { // cancelled: drop the rest of this reply
          st.queue.pop_front();
          st.busy = false;
          start_next(self);
          return;
        }
        ++st.next;
        // Words `delay` apart: the wait for the answer counts toward it.
        auto waited = self->clock().now() - st.sent_at;
        if (waited < st.delay)
          self->delayed_send(
            self,
            std::chrono::duration_cast<std::chrono::milliseconds>(st.delay
                                                                  - waited),
            tick_atom::value, uint64_t{0});
        else
          step(self);
      },
      [self](caf::error&) {
        // The stream is gone (it ended on its own, say by a timeout).
        auto& st = self->state;
        st.queue.pop_front();
        st.busy = false;
        start_next(self);
      });
}

void start_next(echo_ptr self) {
  auto& st = self->state;
  if (st.busy || st.queue.empty())
    return;
  st.busy = true;
  st.tokens = words_of(st.queue.front().prompt.text);
  st.next = 0;
  step(self);
}

agent_actor::behavior_type echo_agent(echo_ptr self, agent_spec spec) {
  auto& st = self->state;
  st.delay = std::chrono::milliseconds{spec.config.value("delay_ms", 0)};
  st.spec = std::move(spec);
  return {
    [self](respond_atom, agent_request& req) {
      auto& st = self->state;
      if (st.queue.size() >= max_queued) {
        self->send(req.stream, fail_atom::value,
                   std::string{"agent busy: too many prompts waiting"});
        return;
      }
      st.queue.push_back(std::move(req));
      start_next(self);
    },
    [self](tick_atom, uint64_t) {
      if (self->state.busy)
        step(self);
    },
    [](input_atom, uint64_t, bool, const std::string&) {
      // echo takes no outside input
    },
  };
}

std::string validate(const nlohmann::json& config) {
  auto i = config.find("delay_ms");
  if (i != config.end()
      && (!i->is_number_integer() || i->get<int64_t>() < 0
          || i->get<int64_t>() > 10'000))
    return "config.delay_ms must be an integer from 0 to 10000";
  return {};
}

} // namespace

void register_echo_agent(agent_registry& registry) {
  registry.add_behavior("echo", echo_agent, validate);
}

} // namespace switchyard
