// The in-process bus: a node without NATS publishes straight into its own
// topic tree.

#pragma once

#include "actors/node_context.hpp"

namespace switchyard {

/// Publishes into the local topic root.
class local_bus : public bus_port {
public:
  explicit local_bus(node_context& ctx) : ctx_(ctx) {
    // nop
  }

  std::string publish(event ev) override;

  std::string status() const override {
    return "in-process";
  }

  void render_metrics(std::string& out) const override;

private:
  node_context& ctx_;
};

} // namespace switchyard
