// The errors Switchyard's actors answer a request with when they cannot
// answer it with a value (CAF's own `sec` codes cover timeouts and dead
// actors). Requests of the HTTP API answer an `outcome` instead, whose
// codes are the protocol's (docs/protocol.md); these are for the actors'
// own requests. Registered with CAF, so they cross the cluster and print
// by name (`switchyard: bad_pattern (...)`).

#pragma once

#include <cstdint>
#include <string>

#include <caf/all.hpp>

namespace switchyard {

enum class error_code : uint8_t {
  /// A subscription pattern outside `events.<org>.`.
  bad_pattern = 1,
  /// A room's history could not be read from the store.
  history_unavailable,
  /// A member asked before this node's cluster actor started.
  cluster_not_started,
};

std::string to_string(error_code x);

/// The category of error_code in caf::error.
constexpr caf::atom_value error_category = caf::atom("switchyard");

} // namespace switchyard

CAF_ERROR_CODE_ENUM(switchyard::error_code, "switchyard")
