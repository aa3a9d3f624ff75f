// Shared pieces of the unit tests: a config with our type-ID block, a node
// context, and a recording connection (the only fake: it stands in for the
// socket so actor logic runs under CAF's deterministic scheduler).

#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/bus_publisher.hpp"
#include "actors/connection_port.hpp"
#include "actors/local_bus.hpp"
#include "actors/node_context.hpp"
#include "actors/session_registry.hpp"
#include "actors/topic_root.hpp"
#include "schemas/messages.hpp"

namespace switchyard::test {

struct test_config : caf::actor_system_config {
  test_config() {
    add_switchyard_types(*this);
  }
};

/// Records what actors do to a connection.
class recording_connection : public connection_port {
public:
  explicit recording_connection(frames::wire_format fmt
                                = frames::wire_format::json)
    : fmt(fmt) {
    // nop
  }

  frames::wire_format format() const override {
    return fmt;
  }

  const void* group() const override {
    return this; // every recording sink is a group of its own
  }

  bool push(const std::shared_ptr<const std::string>& frame) override {
    std::lock_guard<std::mutex> guard{mtx};
    if (closed_with != 0)
      return false;
    order.emplace_back(false, frames.size());
    frames.push_back(frame);
    return true;
  }

  /// Records at once: the deterministic scheduler runs no other thread.
  void push_all(frames::frame_ptr frame,
                std::shared_ptr<const sink_list> sinks) override {
    for (auto& sink : *sinks)
      sink->push(frame);
  }

  void send_text(const std::string& json) override {
    std::lock_guard<std::mutex> guard{mtx};
    order.emplace_back(true, texts.size());
    texts.push_back(json);
  }

  size_t backlog() override {
    std::lock_guard<std::mutex> guard{mtx};
    return lag;
  }

  void send_ping() override {
    std::lock_guard<std::mutex> guard{mtx};
    ++pings;
  }

  void consumed(size_t capacity) override {
    std::lock_guard<std::mutex> guard{mtx};
    consumed_bytes += capacity;
  }

  void close(uint16_t code, const std::string&, bool) override {
    std::lock_guard<std::mutex> guard{mtx};
    if (closed_with == 0)
      closed_with = code;
  }

  /// Parses the text frames sent so far.
  std::vector<nlohmann::json> json_texts() {
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<nlohmann::json> result;
    for (auto& t : texts)
      result.push_back(nlohmann::json::parse(t));
    return result;
  }

  /// Payloads of the event frames (WebSocket header stripped).
  std::vector<nlohmann::json> events() {
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<nlohmann::json> result;
    for (auto& f : frames) {
      auto len = static_cast<uint8_t>((*f)[1]) & 0x7F;
      size_t header = len == 126 ? 4 : (len == 127 ? 10 : 2);
      result.push_back(nlohmann::json::parse(f->substr(header)));
    }
    return result;
  }

  /// Everything queued, in order: each event frame as `event:<id>`, each
  /// text frame as its `type`.
  std::vector<std::string> timeline() {
    auto evs = events();
    auto txts = json_texts();
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<std::string> result;
    for (auto [is_text, i] : order)
      result.push_back(is_text ? txts[i]["type"].get<std::string>()
                               : "event:" + evs[i]["id"].get<std::string>());
    return result;
  }

  frames::wire_format fmt;
  std::mutex mtx;
  /// (text frame?, index in `texts` or `frames`) in the order queued.
  std::vector<std::pair<bool, size_t>> order;
  std::vector<std::shared_ptr<const std::string>> frames;
  std::vector<std::string> texts;
  int pings = 0;
  /// What `backlog` answers: bytes the client has yet to read.
  size_t lag = 0;
  /// Sum of the capacities the session reported consumed.
  size_t consumed_bytes = 0;
  uint16_t closed_with = 0;
};

/// A node context with its topic root and session registry spawned in `sys`.
inline node_context_ptr make_node(caf::actor_system& sys, settings cfg = {}) {
  if (cfg.jwt_keys.secret.empty())
    cfg.jwt_keys.secret = "unit-test-secret";
  auto ctx = std::make_shared<node_context>(cfg);
  ctx->topics = sys.spawn(topic_root, topic_deps_of(ctx));
  ctx->bus = std::make_shared<local_bus>(*ctx);
  // Not detached here: the deterministic scheduler runs it like any actor.
  ctx->publisher = sys.spawn(bus_publisher, ctx->bus);
  auto registry = registry_config(ctx->cfg);
  registry.node = "unit";
  registry.event_ids = ctx->ids.node_id();
  registry.publisher = ctx->publisher;
  registry.topics = ctx->topics;
  ctx->sessions = sys.spawn(session_registry, std::move(registry));
  return ctx;
}

/// Ends a node made by `make_node` and the `others` (sessions, stand-in
/// clients): the registry's heartbeat wheel reschedules itself forever, the
/// topic root stops its routers and they their topic actors, and the
/// context lets go of the handles whose actors point back at it. Nothing is
/// left for the deterministic scheduler to leak at exit.
inline void stop_node(caf::scheduler::test_coordinator& sched,
                      node_context& ctx,
                      const std::vector<caf::actor>& others = {}) {
  for (auto& other : others)
    if (other)
      caf::anon_send_exit(other, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ctx.sessions, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ctx.topics, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ctx.publisher, caf::exit_reason::user_shutdown);
  sched.run();
  ctx.sessions = nullptr;
  ctx.topics = nullptr;
  ctx.publisher = nullptr;
  ctx.bus = nullptr;
}

/// Sends `xs` to `hdl` as a request from a one-shot actor of `sys` and
/// returns the answer, after running everything it set off.
template<class... Rs, class Handle, class... Ts>
std::tuple<Rs...> call(caf::actor_system& sys,
                       caf::scheduler::test_coordinator& sched, Handle hdl,
                       Ts... xs) {
  auto out = std::make_shared<std::optional<std::tuple<Rs...>>>();
  sys.spawn([=](caf::event_based_actor* self) {
    self->request(hdl, caf::infinite, xs...).then([=](Rs&... rs) {
      *out = std::make_tuple(rs...);
    });
  });
  sched.run();
  CAF_REQUIRE(out->has_value());
  return **out;
}

/// An event on `topic` with a small JSON payload.
inline event make_event(std::string topic, std::string id = "e1") {
  event ev;
  ev.id = std::move(id);
  ev.topic = std::move(topic);
  ev.ts = 1700000000000;
  ev.source = "unit";
  ev.data = R"({"n":1})";
  return ev;
}

} // namespace switchyard::test
