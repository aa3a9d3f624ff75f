// The typed interfaces of the room, stream, agent, directory and store
// actors. Every message they exchange is made of the types of
// schemas/rooms.hpp, atoms and these handles, all in the `switchyard`
// type-ID block, so any of these actors can live on another node.

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/cluster_interfaces.hpp"
#include "schemas/rooms.hpp"

CAF_ADD_ATOM(switchyard, switchyard, get_atom, "get")
CAF_ADD_ATOM(switchyard, switchyard, create_atom, "create")
CAF_ADD_ATOM(switchyard, switchyard, list_atom, "list")
CAF_ADD_ATOM(switchyard, switchyard, resolve_atom, "resolve")
CAF_ADD_ATOM(switchyard, switchyard, join_atom, "join")
CAF_ADD_ATOM(switchyard, switchyard, leave_atom, "leave")
CAF_ADD_ATOM(switchyard, switchyard, post_atom, "post")
CAF_ADD_ATOM(switchyard, switchyard, history_atom, "history")
CAF_ADD_ATOM(switchyard, switchyard, cancel_atom, "cancel")
CAF_ADD_ATOM(switchyard, switchyard, access_atom, "access")
CAF_ADD_ATOM(switchyard, switchyard, catch_up_atom, "catch_up")
CAF_ADD_ATOM(switchyard, switchyard, updated_atom, "updated")
CAF_ADD_ATOM(switchyard, switchyard, token_atom, "token")
CAF_ADD_ATOM(switchyard, switchyard, end_atom, "end")
CAF_ADD_ATOM(switchyard, switchyard, fail_atom, "fail")
CAF_ADD_ATOM(switchyard, switchyard, snapshot_atom, "snapshot")
CAF_ADD_ATOM(switchyard, switchyard, audience_atom, "audience")
CAF_ADD_ATOM(switchyard, switchyard, respond_atom, "respond")
CAF_ADD_ATOM(switchyard, switchyard, stream_end_atom, "stream_end")
CAF_ADD_ATOM(switchyard, switchyard, stream_open_atom, "stream_opn")
CAF_ADD_ATOM(switchyard, switchyard, stall_atom, "stall")
CAF_ADD_ATOM(switchyard, switchyard, restart_atom, "restart")
CAF_ADD_ATOM(switchyard, switchyard, idle_atom, "idle")
CAF_ADD_ATOM(switchyard, switchyard, put_atom, "put")
CAF_ADD_ATOM(switchyard, switchyard, append_atom, "append")
CAF_ADD_ATOM(switchyard, switchyard, load_atom, "load")
CAF_ADD_ATOM(switchyard, switchyard, load_all_atom, "load_all")
CAF_ADD_ATOM(switchyard, switchyard, flush_atom, "flush")
CAF_ADD_ATOM(switchyard, switchyard, input_atom, "input")
CAF_ADD_ATOM(switchyard, switchyard, tick_atom, "tick")

namespace switchyard {

/// Persistence of rooms (actors/room_store.hpp). Spawned detached: the
/// JetStream store makes blocking nats.c calls.
using room_store_actor = caf::typed_actor<
  // Creates or replaces a room's record.
  caf::replies_to<put_atom, room_record>::with<outcome>,
  // Appends a record of a message to its room's history.
  caf::replies_to<append_atom, std::string /*org*/, std::string /*room*/,
                  room_message>::with<outcome>,
  // A room's history, oldest first (later records of one message id
  // replace earlier ones).
  caf::replies_to<load_atom, std::string /*org*/, std::string /*room*/>::with<
    outcome, std::vector<room_message>>,
  // Every room.
  caf::replies_to<load_all_atom>::with<outcome, std::vector<room_record>>>;

/// One agent reply being generated (actors/stream.hpp). Its agent writes
/// tokens into it; it publishes them and keeps the text so far.
using stream_actor = caf::typed_actor<
  // Appends a token. The answer comes once the token's event is on the
  // bus (the agent's credit): true to go on, false when the reply has
  // ended (cancelled, timed out) and the agent should stop.
  caf::replies_to<token_atom, std::string>::with<bool>,
  // The reply is complete.
  caf::reacts_to<end_atom>,
  // The agent gave up, with a reason.
  caf::reacts_to<fail_atom, std::string>,
  // The text so far, for a watcher that joins mid-reply.
  caf::replies_to<snapshot_atom>::with<stream_snapshot>,
  // Ends the reply as cancelled.
  caf::reacts_to<cancel_atom>,
  // The room's participants changed: who may see its events.
  caf::reacts_to<audience_atom, std::vector<std::string>>,
  // Its own stall timer.
  caf::reacts_to<stall_atom, int64_t>>;

/// What an agent is asked to answer.
struct agent_request {
  std::string org;
  std::string room;
  /// The agent's participant id.
  std::string agent;
  /// The message to answer.
  room_message prompt;
  /// The room's recent messages before it, oldest first.
  std::vector<room_message> history;
  /// Where the reply goes.
  stream_actor stream;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, agent_request& x) {
  return f(caf::meta::type_name("switchyard::agent_request"), x.org, x.room,
           x.agent, x.prompt, x.history, x.stream);
}

/// An agent participant (actors/agents/registry.hpp): behaviors users write
/// implement this interface.
using agent_actor = caf::typed_actor<
  // Answer `prompt` into `stream`.
  caf::reacts_to<respond_atom, agent_request>,
  // A timer of the behavior's own (`delayed_send` to itself), with a value
  // of its choosing.
  caf::reacts_to<tick_atom, uint64_t>,
  // Input from outside the actor system (an HTTP client's callback, say),
  // tagged with a value of the behavior's choosing; `last` marks the end
  // of that input, with `data` empty on success or the error.
  caf::reacts_to<input_atom, uint64_t /*tag*/, bool /*last*/,
                 std::string /*data*/>>;

/// One active room (actors/room.hpp): the single ordering point of its
/// messages.
using room_actor = caf::typed_actor<
  caf::replies_to<get_atom, caller>::with<outcome, room_record>,
  caf::replies_to<join_atom, caller, participant>::with<outcome, room_record>,
  caf::replies_to<leave_atom, caller, std::string>::with<outcome>,
  caf::replies_to<post_atom, caller, std::string>::with<outcome, room_message>,
  caf::replies_to<history_atom, caller, uint64_t /*after*/,
                  uint32_t /*limit*/>::with<outcome, std::vector<room_message>>,
  caf::replies_to<cancel_atom, caller, std::string>::with<outcome>,
  // An external agent starts a reply (to the message `reply_to`, or none).
  caf::replies_to<start_atom, std::string /*agent*/, std::string /*reply_to*/>::
    with<outcome, room_message, stream_actor>,
  // From a stream actor: the reply's last state, to store and announce.
  caf::reacts_to<stream_end_atom, room_message>,
  // Its own timers: restart a crashed agent; end the room actor once it
  // has been idle for the idle timeout.
  caf::reacts_to<restart_atom, std::string /*agent*/>,
  caf::reacts_to<idle_atom, uint64_t>>;

/// The rooms of a node (actors/room_directory.hpp): creates and finds them,
/// activates a room actor on demand, and answers the sessions' questions
/// about rooms (may this user subscribe, what is streaming now). In a
/// cluster each room has one owner node (actors/placement.hpp): a directory
/// passes `resolve` for a room it does not own to the owner's directory, and
/// serves requests from other nodes itself.
using room_directory_actor = caf::typed_actor<
  caf::replies_to<create_atom, caller, std::string /*name*/,
                  bool /*private*/>::with<outcome, room_record>,
  // The caller's rooms, ordered by id, after the id `after`.
  caf::replies_to<list_atom, caller, std::string /*after*/,
                  uint32_t /*limit*/>::with<outcome, std::vector<room_record>>,
  caf::replies_to<resolve_atom, caller, std::string /*room*/>::with<outcome,
                                                                    room_actor>,
  // A room's record as the directory knows it, without activating the room
  // (the notification rules' "room participants").
  caf::replies_to<get_atom, caller, std::string /*room*/>::with<outcome,
                                                                room_record>,
  // Whether `user` of `org` may see room `room` (true for a room that does
  // not exist: its events, should it come to be, are fenced per event).
  caf::replies_to<access_atom, std::string /*org*/, std::string /*user*/,
                  std::string /*room*/>::with<bool>,
  // The replies streaming now whose topic `pattern` matches and that
  // `user` may see (on every member, when asked from this node).
  caf::replies_to<catch_up_atom, std::string /*org*/, std::string /*user*/,
                  std::string /*pattern*/>::with<std::vector<stream_snapshot>>,
  // From room actors: a room's record changed (passed on to the other
  // members' directories; from them: taken in).
  caf::reacts_to<updated_atom, room_record>,
  // From the cluster actor: the live members.
  caf::reacts_to<members_atom, member_view>,
  // From room actors: a reply started streaming.
  caf::reacts_to<stream_open_atom, std::string /*org*/, std::string /*room*/,
                 std::string /*topic*/, stream_actor>>;

/// External agents over NATS (actors/agent_gateway.hpp): the messages of
/// its NATS subscriptions, as received.
using agent_gateway_actor = caf::typed_actor<
  caf::reacts_to<input_atom, std::string /*subject*/, std::string /*reply*/,
                 std::string /*data*/>>;

} // namespace switchyard
