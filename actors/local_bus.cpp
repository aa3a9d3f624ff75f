#include "actors/local_bus.hpp"

#include "schemas/messages.hpp"

namespace switchyard {

std::string local_bus::publish(event ev) {
  ctx_.stats.events_in.fetch_add(1, std::memory_order_relaxed);
  caf::anon_send(ctx_.topics, publish_atom::value, std::move(ev));
  return {};
}

void local_bus::render_metrics(std::string& out) const {
  append_metric(out, "switchyard_bus_up", "gauge",
                "Whether the event bus is usable (1) or not (0).", 1);
}

} // namespace switchyard
