// The session actor: one per WebSocket connection. It owns the connection's
// lifecycle (authentication, subscriptions, heartbeats, closing) while the
// topic actors hand event frames straight to the connection's queue.

#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <caf/all.hpp>

#include "actors/connection_port.hpp"
#include "actors/node_context.hpp"
#include "schemas/client_frame.hpp"
#include "schemas/token.hpp"

namespace switchyard {

/// What the sessions need of their node, shared by all of them.
struct session_deps {
  std::shared_ptr<const settings> cfg;
  std::shared_ptr<metrics> stats;
  /// Where a session registers its socket queue for the topic actors.
  std::shared_ptr<sink_registry> sinks;
  std::shared_ptr<id_source> ids;
  topic_router_actor topics;
  session_registry_actor sessions;
  bus_publisher_actor publisher;
  /// Null where a unit test runs without rooms or notifications.
  room_directory_actor rooms;
  notification_directory_actor notifications;
  /// The history readers; empty without --history.
  std::vector<history_actor> history;
};

using session_deps_ptr = std::shared_ptr<const session_deps>;

/// The sessions' part of `ctx`, once its actors are spawned.
session_deps_ptr session_deps_of(const node_context_ptr& ctx);

/// A session is a small state machine:
/// awaiting_auth -> (registering) -> open -> closed.
class session_server : public session_actor::base {
public:
  // -- member types -----------------------------------------------------------

  enum class phase { awaiting_auth, open, closed };

  // -- constructors -----------------------------------------------------------

  /// `token` comes from the upgrade request (header or query) and may be
  /// empty, in which case the client has `auth_timeout` to send an `auth`.
  session_server(caf::actor_config& cfg, std::shared_ptr<connection_port> conn,
                 session_deps_ptr deps, std::string token);

  // -- overrides --------------------------------------------------------------

  const char* name() const override {
    return "session";
  }

  behavior_type make_behavior() override;

  void on_exit() override;

private:
  // -- inbound frames ---------------------------------------------------------

  /// Handles one text frame. Returns false when the frame is still in
  /// progress (a publish waiting for the bus), which then reports its bytes
  /// consumed itself.
  bool on_text(const std::string& text);
  /// A binary client frame of switchyard.v1.msgpack: one msgpack map with
  /// the fields of a text frame. Returns as `on_text` does.
  bool on_msgpack(const std::string& bytes);
  /// Acts on a decoded frame of `size` bytes, `capacity` as handed over by
  /// the connection. Returns as `on_text` does.
  bool on_frame(client_frame frame, size_t size, size_t capacity);
  void on_auth(const std::string& id, const std::string& token);
  void on_subscribe(const std::string& id, const std::string& pattern,
                    std::optional<replay_request> recover);
  void on_unsubscribe(const std::string& id, const std::string& pattern);
  /// Answers who is present on exact `topic` or, when `topic` is empty, on
  /// room `room`.
  void on_presence(const std::string& id, const std::string& topic,
                   const std::string& room);
  /// Returns false when the event went to the bus (see `on_text`).
  bool on_publish(client_frame& frame, size_t capacity);
  /// Subscribes once the pattern is known to be allowed; with `recover`,
  /// replays what the client missed before its events go live.
  void subscribe_checked(const std::string& id, const std::string& pattern,
                         std::optional<replay_request> recover);
  /// Runs `then` once the user may see room `room` (at once for no room),
  /// else answers `id` with `forbidden` for `what`.
  template<class F>
  void with_room_access(const std::string& id, std::string_view room,
                        const std::string& what, F then);
  /// As `with_room_access`, but the room must exist and be readable by
  /// the user (`get_atom`): for presence, whose events and answers no
  /// room audience filters.
  template<class F>
  void with_room_read(const std::string& id, const std::string& room,
                      const std::string& what, F then);
  /// Whether the token allows holding subscription `pattern`.
  bool may_hold(const std::string& pattern) const;
  /// Drops the presence subscriptions of rooms this user may no longer
  /// see (removed from a private room, the room deleted); once per
  /// heartbeat.
  void recheck_room_presence();
  /// Ends subscription `pattern` and tells the client why.
  void drop_subscription(const std::string& pattern, const char* reason);
  /// Tells the registry that subscription `pattern` counts (`join_atom`)
  /// or no longer counts (`leave_atom`) for its presence keys.
  template<class Atom>
  void tell_presence(Atom atm, const std::string& pattern);

  // -- recovery ---------------------------------------------------------------

  /// Asks a history reader what subscription `pattern` (generation `gen`,
  /// its events held by its topic actor) missed since `req`.
  void replay(const std::string& id, const std::string& pattern, uint64_t gen,
              replay_request req);
  /// Pushes the replay of `pattern` into the socket queue while the client
  /// keeps up, then answers the subscribe and releases the live events.
  void continue_replay(const std::string& pattern);

  // -- room events ------------------------------------------------------------

  /// An event of a room (rooms::is_room_topic) for subscription `pattern`:
  /// fenced by the room's audience; reply tokens are dropped when a
  /// catch-up covered them and coalesced while the client lags.
  void on_room_event(const std::string& pattern, const event& ev);
  /// Sends what is streaming now that `pattern` matches, as one event per
  /// reply with the text so far.
  void catch_up(const std::string& pattern);
  /// Asks for the text so far of reply `message_id`, whose event `ev`
  /// (numbered `index`) came first, sends it, then handles `ev`.
  void lazy_catch_up(const std::string& pattern, const event& ev,
                     const std::string& message_id, int64_t index);
  /// Sends `snap` as the catch-up event of subscription `pattern`.
  void send_catch_up(const std::string& pattern, const stream_snapshot& snap);
  /// Sends the coalesced tokens of lagging replies: all of them with
  /// `force`, else once the client's backlog allows.
  void flush_streams(bool force);

  // -- helpers ----------------------------------------------------------------

  void authenticated(claims c, const std::string& id);
  void schedule_expiry();
  void drop_forbidden_subscriptions();
  /// Counts, logs (rate-limited) and answers a frame that cannot be used.
  void refuse(size_t size, bool too_deep, const std::string& id,
              const char* code, const std::string& message);
  void reply_ok(const std::string& id);
  void reply_error(const std::string& id, const char* code,
                   const std::string& message);
  void close(uint16_t code, const std::string& reason);

  /// `s-<node id>-<actor id>`, computed when needed rather than stored: an
  /// idle session should cost as little memory as possible.
  std::string session_id() const {
    return "s-" + deps_->ids->node_id() + "-" + std::to_string(id());
  }

  // -- member variables -------------------------------------------------------

  std::shared_ptr<connection_port> conn_;
  session_deps_ptr deps_;
  std::string initial_token_;
  phase phase_ = phase::awaiting_auth;
  std::optional<claims> claims_;
  /// Bumped on every successful auth; stale expiry timers carry an old one.
  uint64_t auth_gen_ = 0;
  /// The auth_gen_ whose expiry timer is armed (0: none).
  uint64_t expiry_armed_ = 0;
  struct subscription {
    /// The topic actor; null while the subscribe is in flight.
    subscription_actor node;
    /// Tells a reply to this subscribe from one to an earlier, cancelled one.
    uint64_t gen = 0;
  };

  /// Pattern -> subscription.
  std::map<std::string, subscription> subs_;
  uint64_t sub_gen_ = 0;
  /// Whether the registry admitted this session (and the gauge counts it).
  bool registered_ = false;
  /// Whether the last ping is still unanswered.
  bool ping_unanswered_ = false;

  /// What this client has of one reply on one subscription.
  struct stream_view {
    /// The last token index sent.
    int64_t sent = -1;
    /// Tokens held back while the client lags, as one event.
    bool pending = false;
    event held;
    uint64_t seq = 0;
    std::string token;
    int64_t index = -1;
    bool done = false;
    std::string state;
    std::string reason;
  };
  struct stream_state {
    /// (subscription, message id) -> view.
    std::map<std::pair<std::string, std::string>, stream_view> views;
    /// Bytes of tokens held back, over all views.
    size_t held = 0;
  };
  /// Made at the first reply token, so that a session without any costs
  /// one pointer.
  std::unique_ptr<stream_state> streams_;

  /// A replay on its way to the client: the subscribe's id, what the
  /// history reader found, and how much of it is queued.
  struct replay_state {
    std::string id;
    uint64_t gen = 0;
    replay_result result;
    size_t next = 0;
  };
  /// Pattern -> replay; made at the first, as `streams_`.
  std::unique_ptr<std::map<std::string, replay_state>> replays_;
  bool flush_armed_ = false;
};

} // namespace switchyard
