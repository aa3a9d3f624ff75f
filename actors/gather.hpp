// Collects the answers of several actors into one response: used where one
// request fans out (the topic root asking its org routers, the session
// registry asking its sessions).

#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <caf/all.hpp>

namespace switchyard {

/// Delivers the collected items once every asked actor answered or failed.
template<class T>
struct gather {
  size_t pending = 0;
  std::vector<T> result;
  caf::response_promise promise;

  /// Starts a gather over `n` answers for the current request of `self`.
  template<class Self>
  static std::shared_ptr<gather> make(Self* self, size_t n) {
    auto g = std::make_shared<gather>();
    g->pending = n;
    g->promise = self->make_response_promise();
    return g;
  }

  /// Counts one answer (or failure).
  void done() {
    if (--pending == 0)
      promise.deliver(std::move(result));
  }
};

} // namespace switchyard
