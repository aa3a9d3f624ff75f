// The typed interface of the history readers (actors/history.hpp): replay of
// the events a reconnecting client missed, and pages of past events for
// `POST /v1/history`, both read from the JetStream stream of `events.>`.

#pragma once

#include <cstdint>
#include <string>

#include <caf/all.hpp>

#include "actors/room_interfaces.hpp"

CAF_ADD_ATOM(switchyard, switchyard, replay_atom, "replay")

namespace switchyard {

struct replay_request;
struct replay_result;
struct history_page;

/// One history reader; a node runs several, each on a thread of its own
/// (their JetStream calls block).
using history_actor = caf::typed_actor<
  // The events matching a pattern after a position, at most a named
  // maximum of them.
  caf::replies_to<replay_atom, replay_request>::with<replay_result>,
  // The last `limit` events matching `pattern` before stream sequence
  // `before` (0: before the end), newest last.
  caf::replies_to<history_atom, std::string /*pattern*/, uint32_t /*limit*/,
                  uint64_t /*before*/>::with<history_page>>;

} // namespace switchyard
