#include "actors/agents/openai.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <optional>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/http_port.hpp"
#include "actors/log.hpp"
#include "schemas/http_url.hpp"
#include "schemas/json_limits.hpp"

namespace switchyard {

namespace {

using std::chrono::milliseconds;

constexpr size_t default_history = 10;
constexpr size_t max_history = 100;
constexpr int64_t default_timeout_ms = 30'000;
constexpr int64_t max_timeout_ms = 600'000;
constexpr size_t max_model_size = 256;
constexpr size_t max_system_size = 32 * 1024;
constexpr size_t max_env_name_size = 128;

/// Token requests a reply has unanswered at most: enough to hide the round
/// trip to the stream actor, few enough that a slow stream slows the agent.
constexpr size_t token_window = 8;
/// Tokens waiting for the window are joined into pieces of about this size:
/// a slow stream gets fewer, larger tokens rather than a long queue.
constexpr size_t max_piece_size = 16 * 1024;
/// A stream this far behind the model server fails the reply: what waits
/// stays bounded even when the server outpaces the room.
constexpr size_t max_waiting_bytes = 1024 * 1024;
/// Requests waiting while the agent answers another.
constexpr size_t max_queued = 16;

struct openai_config {
  std::string url;
  std::string model;
  std::string api_key_env = "OPENAI_API_KEY";
  std::string system;
  size_t history = default_history;
  milliseconds timeout{default_timeout_ms};
};

bool valid_env_name(const std::string& name) {
  if (name.size() > max_env_name_size)
    return false;
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = name[i];
    bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9'))
      return false;
  }
  return true;
}

/// Reads a config, or says what is wrong with it.
std::optional<openai_config> read_config(const nlohmann::json& j,
                                         std::string& error) {
  if (!j.is_object()) {
    error = "config must be an object";
    return std::nullopt;
  }
  for (auto& [key, value] : j.items()) {
    static constexpr std::string_view known[]
      = {"url", "model", "api_key_env", "system", "history", "timeout_ms"};
    if (std::find(std::begin(known), std::end(known), key) == std::end(known)) {
      error = "config has an unknown field '" + key
        + "' (known: url, model, api_key_env, system, history, "
          "timeout_ms)";
      return std::nullopt;
    }
  }
  openai_config out;
  auto url = j.find("url");
  if (url == j.end() || !url->is_string()) {
    error = "config.url is required: the base URL of an OpenAI-compatible "
            "API (https://api.openai.com/v1) or its /chat/completions URL";
    return std::nullopt;
  }
  out.url = url->get<std::string>();
  std::string url_error;
  if (!parse_http_url(out.url, url_error)) {
    error = "config.url is invalid: " + url_error;
    return std::nullopt;
  }
  auto model = j.find("model");
  if (model == j.end() || !model->is_string()
      || model->get_ref<const std::string&>().empty()) {
    error = "config.model is required: the model's name (gpt-4o-mini)";
    return std::nullopt;
  }
  out.model = model->get<std::string>();
  if (out.model.size() > max_model_size) {
    error = "config.model is longer than " + std::to_string(max_model_size)
      + " bytes";
    return std::nullopt;
  }
  if (auto env = j.find("api_key_env"); env != j.end()) {
    if (!env->is_string() || !valid_env_name(env->get<std::string>())) {
      error = "config.api_key_env must name an environment variable "
              "([A-Za-z_][A-Za-z0-9_]*, up to 128), or be \"\" for no key";
      return std::nullopt;
    }
    out.api_key_env = env->get<std::string>();
  }
  if (auto system = j.find("system"); system != j.end()) {
    if (!system->is_string()
        || system->get_ref<const std::string&>().size() > max_system_size) {
      error = "config.system must be a string of at most "
        + std::to_string(max_system_size) + " bytes";
      return std::nullopt;
    }
    out.system = system->get<std::string>();
  }
  if (auto history = j.find("history"); history != j.end()) {
    if (!history->is_number_integer() || history->get<int64_t>() < 0
        || history->get<int64_t>() > static_cast<int64_t>(max_history)) {
      error = "config.history must be an integer from 0 to "
        + std::to_string(max_history);
      return std::nullopt;
    }
    out.history = history->get<size_t>();
  }
  if (auto timeout = j.find("timeout_ms"); timeout != j.end()) {
    if (!timeout->is_number_integer() || timeout->get<int64_t>() < 1
        || timeout->get<int64_t>() > max_timeout_ms) {
      error = "config.timeout_ms must be an integer from 1 to "
        + std::to_string(max_timeout_ms);
      return std::nullopt;
    }
    out.timeout = milliseconds{timeout->get<int64_t>()};
  }
  return out;
}

/// The chat completions request for `req`.
std::string request_body(const openai_config& cfg, const agent_request& req) {
  auto messages = nlohmann::json::array();
  if (!cfg.system.empty())
    messages.push_back({{"role", "system"}, {"content", cfg.system}});
  auto& history = req.history;
  auto first = history.size() > cfg.history ? history.size() - cfg.history : 0;
  for (auto i = first; i < history.size(); ++i) {
    auto& msg = history[i];
    // A reply that failed before its first token has nothing to say.
    if (msg.text.empty())
      continue;
    messages.push_back(
      {{"role", msg.author_kind == "agent" ? "assistant" : "user"},
       {"content", msg.text}});
  }
  messages.push_back({{"role", "user"}, {"content", req.prompt.text}});
  nlohmann::json body{
    {"model", cfg.model}, {"stream", true}, {"messages", std::move(messages)}};
  // Text from users may hold invalid UTF-8: replaced, not thrown on.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// The reply being generated.
struct reply {
  agent_request req;
  uint64_t tag = 0;
  std::shared_ptr<http_request> http;
  /// Token requests not answered yet.
  size_t in_flight = 0;
  /// Tokens waiting for the window, joined into pieces.
  std::deque<std::string> waiting;
  size_t waiting_bytes = 0;
  /// The server's stream ended (`[DONE]` or the end of the body).
  bool http_done = false;
};

struct openai_state {
  ~openai_state() {
    // The actor is going (its room ended it, or the node stops): the
    // streams it owes a reply learn why instead of waiting for a stall.
    if (current) {
      current->http->cancel();
      caf::anon_send(current->req.stream, fail_atom_v, "agent stopped");
    }
    for (auto& req : queue)
      caf::anon_send(req.stream, fail_atom_v, "agent stopped");
  }

  /// The config, or null with the reason in `config_error`.
  std::optional<openai_config> cfg;
  std::string config_error;
  std::string api_key;
  std::string completions_url;
  size_t max_json_depth = settings::default_max_json_depth;
  std::shared_ptr<http_port> http;
  std::optional<reply> current;
  std::deque<agent_request> queue;
  uint64_t next_tag = 0;

  static inline const char* name = "openai_agent";
};

using self_ptr = agent_actor::stateful_pointer<openai_state>;

void start_next(self_ptr self);

/// Ends the current reply and starts the next request.
void end_reply(self_ptr self) {
  auto& st = self->state;
  if (st.current) {
    st.current->http->cancel();
    st.current.reset();
  }
  start_next(self);
}

void fail_reply(self_ptr self, std::string reason) {
  auto& st = self->state;
  logger("openai")->warn("agent {} of room {}: reply failed: {}",
                         st.current->req.agent, st.current->req.room, reason);
  self->send(st.current->req.stream, fail_atom_v, std::move(reason));
  end_reply(self);
}

/// Ends the reply once the server's stream ended and every token is taken.
void maybe_complete(self_ptr self) {
  auto& cur = *self->state.current;
  if (!cur.http_done || cur.in_flight > 0 || !cur.waiting.empty())
    return;
  self->send(cur.req.stream, end_atom_v);
  end_reply(self);
}

void send_token(self_ptr self, std::string text) {
  auto& cur = *self->state.current;
  ++cur.in_flight;
  auto tag = cur.tag;
  self
    ->request(cur.req.stream, self->state.cfg->timeout, token_atom_v,
              std::move(text))
    .then(
      [self, tag](bool go_on) {
        auto& st = self->state;
        if (!st.current || st.current->tag != tag)
          return;
        auto& cur = *st.current;
        --cur.in_flight;
        if (!go_on) {
          // The reply ended on the stream's side (cancelled, too long):
          // it wants nothing more, not even an end.
          end_reply(self);
          return;
        }
        if (!cur.waiting.empty()) {
          auto next = std::move(cur.waiting.front());
          cur.waiting.pop_front();
          cur.waiting_bytes -= next.size();
          send_token(self, std::move(next));
        }
        maybe_complete(self);
      },
      [self, tag](caf::error& err) {
        auto& st = self->state;
        if (!st.current || st.current->tag != tag)
          return;
        fail_reply(self,
                   "the reply stream did not take a token: "
                     + self->system().render(err));
      });
}

/// A token from the server: sent at once while the window has room, else
/// kept until it has.
void on_token(self_ptr self, std::string text) {
  auto& cur = *self->state.current;
  if (cur.in_flight < token_window) {
    send_token(self, std::move(text));
    return;
  }
  // waiting_bytes never exceeds max_waiting_bytes.
  if (text.size() > max_waiting_bytes - cur.waiting_bytes) {
    fail_reply(self,
               "the reply stream is too slow: over "
                 + std::to_string(max_waiting_bytes)
                 + " bytes of tokens waiting for it");
    return;
  }
  cur.waiting_bytes += text.size();
  if (!cur.waiting.empty() && text.size() <= max_piece_size
      && cur.waiting.back().size() <= max_piece_size - text.size())
    cur.waiting.back() += text;
  else
    cur.waiting.push_back(std::move(text));
}

/// One event of the server's stream: a completion chunk or `[DONE]`.
void on_event(self_ptr self, const std::string& data) {
  auto& st = self->state;
  auto& cur = *st.current;
  if (data == "[DONE]") {
    cur.http_done = true;
    // The server may keep the connection open after it.
    cur.http->cancel();
    maybe_complete(self);
    return;
  }
  auto parsed = json_limits::parse_json(data, st.max_json_depth);
  if (parsed.error != json_limits::failure::none || !parsed.value.is_object()) {
    fail_reply(self, "the model server sent an event that is no JSON object");
    return;
  }
  auto& chunk = parsed.value;
  if (auto err = chunk.find("error"); err != chunk.end()) {
    auto msg = err->is_object() && err->contains("message")
        && (*err)["message"].is_string()
      ? (*err)["message"].get<std::string>()
      : err->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    fail_reply(self, "the model server failed: " + msg);
    return;
  }
  // Chunks without content (the role, the finish reason, usage) carry
  // nothing for the room.
  auto choices = chunk.find("choices");
  if (choices == chunk.end() || !choices->is_array() || choices->empty())
    return;
  auto& choice = (*choices)[0];
  if (!choice.is_object())
    return;
  auto delta = choice.find("delta");
  if (delta == choice.end() || !delta->is_object())
    return;
  auto content = delta->find("content");
  if (content == delta->end() || !content->is_string()
      || content->get_ref<const std::string&>().empty())
    return;
  on_token(self, content->get<std::string>());
}

void start(self_ptr self, agent_request req) {
  auto& st = self->state;
  auto tag = ++st.next_tag;
  auto& cur = st.current.emplace();
  cur.req = std::move(req);
  cur.tag = tag;
  auto& cfg = *st.cfg;
  http_port::header_list headers;
  if (!st.api_key.empty())
    headers.emplace_back("Authorization", "Bearer " + st.api_key);
  http_stream_options opts;
  opts.connect_timeout = cfg.timeout;
  opts.first_byte_timeout = cfg.timeout;
  opts.idle_timeout = cfg.timeout;
  // Weak: a request in flight must not keep an agent its room ended alive
  // (the state's destructor cancels it), and input for a gone agent is
  // dropped.
  caf::weak_actor_ptr weak{self->ctrl()};
  auto send_input = [weak, tag](bool last, std::string data) {
    if (auto hdl = caf::actor_cast<agent_actor>(weak))
      caf::anon_send(hdl, input_atom_v, tag, last, std::move(data));
  };
  logger("openai")->debug("agent {} of room {}: POST {} (model {})",
                          cur.req.agent, cur.req.room, st.completions_url,
                          cfg.model);
  cur.http = st.http->post(
    st.completions_url, std::move(headers), request_body(cfg, cur.req), opts,
    [send_input](std::string data) {
      send_input(false, std::move(data));
    },
    [send_input](std::string error) {
      send_input(true, std::move(error));
    });
}

/// Starts the oldest queued request, failing those that cannot be served.
void start_next(self_ptr self) {
  auto& st = self->state;
  while (!st.current && !st.queue.empty()) {
    auto req = std::move(st.queue.front());
    st.queue.pop_front();
    if (!st.cfg) {
      self->send(req.stream, fail_atom_v,
                 "invalid openai config: " + st.config_error);
    } else if (!st.http) {
      self->send(req.stream, fail_atom_v,
                 std::string{"this node gives agents no HTTP client"});
    } else if (!st.cfg->api_key_env.empty() && st.api_key.empty()) {
      self->send(req.stream, fail_atom_v,
                 "the environment variable " + st.cfg->api_key_env
                   + " (config.api_key_env) is not set on this node");
    } else {
      start(self, std::move(req));
    }
  }
}

agent_actor::behavior_type openai_agent(self_ptr self, agent_spec spec) {
  auto& st = self->state;
  st.cfg = read_config(spec.config, st.config_error);
  if (st.cfg) {
    st.completions_url = openai_completions_url(st.cfg->url);
    if (!st.cfg->api_key_env.empty())
      if (auto* key = std::getenv(st.cfg->api_key_env.c_str()))
        st.api_key = key;
  }
  st.max_json_depth = spec.max_json_depth;
  st.http = std::move(spec.http);
  return {
    [self](respond_atom, agent_request& req) {
      auto& st = self->state;
      if (st.queue.size() >= max_queued) {
        self->send(req.stream, fail_atom_v, "agent busy");
        return;
      }
      st.queue.push_back(std::move(req));
      start_next(self);
    },
    // Input from the HTTP client's I/O thread: the data of one event, or
    // (`last`) the end of the request, with its error if any. Tagged with
    // the reply it belongs to: input of a reply that ended is dropped.
    [self](input_atom, uint64_t tag, bool last, std::string& data) {
      auto& st = self->state;
      if (!st.current || st.current->tag != tag)
        return;
      if (!last) {
        on_event(self, data);
      } else if (!data.empty()) {
        fail_reply(self, std::move(data));
      } else {
        st.current->http_done = true;
        maybe_complete(self);
      }
    },
    // No timers of its own: the HTTP client times out the server, request
    // timeouts the stream.
    [](tick_atom, uint64_t) {},
  };
}

} // namespace

std::string validate_openai_config(const nlohmann::json& config) {
  std::string error;
  read_config(config, error);
  return error;
}

std::string openai_completions_url(std::string_view url) {
  std::string out{url};
  // Query and fragment aside, where the path ends.
  auto path_end = out.find_first_of("?#");
  auto suffix = path_end == std::string::npos ? std::string{}
                                              : out.substr(path_end);
  out.resize(std::min(path_end, out.size()));
  while (!out.empty() && out.back() == '/')
    out.pop_back();
  auto ends_with = [&out](std::string_view tail) {
    return out.size() >= tail.size()
      && std::string_view{out}.substr(out.size() - tail.size()) == tail;
  };
  if (!ends_with("/chat/completions")) {
    if (!ends_with("/v1"))
      out += "/v1";
    out += "/chat/completions";
  }
  return out + suffix;
}

agent_actor spawn_openai_agent(caf::actor_system& sys, agent_spec spec) {
  return sys.spawn(openai_agent, std::move(spec));
}

void register_openai_agent(agent_registry& registry) {
  registry.add("openai", spawn_openai_agent, validate_openai_config);
}

} // namespace switchyard
