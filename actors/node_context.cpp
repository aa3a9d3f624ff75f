#include "actors/node_context.hpp"

#include <random>
#include <vector>

#include "schemas/messages.hpp"

namespace switchyard {

void sink_registry::add(caf::actor_id id,
                        std::shared_ptr<connection_port> conn) {
  std::lock_guard<std::mutex> guard{mtx_};
  sinks_[id] = std::move(conn);
}

void sink_registry::remove(caf::actor_id id) {
  std::lock_guard<std::mutex> guard{mtx_};
  sinks_.erase(id);
}

std::shared_ptr<connection_port> sink_registry::find(caf::actor_id id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = sinks_.find(id);
  return i == sinks_.end() ? nullptr : i->second.lock();
}

void sink_registry::close_all(uint16_t code, const std::string& reason) {
  std::vector<std::shared_ptr<connection_port>> all;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& kvp : sinks_)
      if (auto conn = kvp.second.lock())
        all.emplace_back(std::move(conn));
  }
  for (auto& conn : all)
    conn->close(code, reason);
}

id_source::id_source() {
  std::random_device rd;
  auto r = (static_cast<uint64_t>(rd()) << 32) | rd();
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = 0; i < 10; ++i)
    node_id_.push_back(hex[(r >> (i * 4)) & 0xF]);
}

std::string id_source::next() {
  return node_id_ + "-" + std::to_string(++seq_);
}

node_context::node_context(settings config) : cfg(std::move(config)) {
  stats.ingest_requests
    = decltype(stats.ingest_requests)(cfg.ingest_sources.size());
}

int64_t node_context::unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
    .count();
}

} // namespace switchyard

namespace switchyard {

std::string node_context::publish(event ev) {
  return bus->publish(std::move(ev));
}

std::string node_context::bus_status() const {
  return bus ? bus->status() : "none";
}

void node_context::extra_metrics(std::string& out) const {
  if (bus)
    bus->render_metrics(out);
}

} // namespace switchyard
