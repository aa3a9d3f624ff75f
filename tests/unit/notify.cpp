#define CAF_SUITE notify

#include <caf/test/dsl.hpp>

#include "actors/notification_directory.hpp"
#include "actors/notification_store.hpp"
#include "actors/notifier.hpp"
#include "actors/placement.hpp"
#include "actors/room_directory.hpp"
#include "actors/room_store.hpp"
#include "actors/session.hpp"
#include "actors/session_registry.hpp"
#include "fixture.hpp"

using namespace switchyard;
using namespace switchyard::test;
using std::chrono::milliseconds;

namespace {

// -- the routing decision, as a pure function ---------------------------------

constexpr int64_t t0 = 1'700'000'000'000;
constexpr int64_t ack = 60'000;

notification note(std::string priority) {
  notification x;
  x.id = "n1";
  x.org = "org_1";
  x.user = "alice";
  x.priority = std::move(priority);
  x.channels = {"websocket", "push", "email"};
  return x;
}

route_facts offline() {
  route_facts f;
  f.push_ready = true;
  f.email_ready = true;
  return f;
}

route_facts online() {
  auto f = offline();
  f.connected = true;
  return f;
}

/// Performs `step` the way the notifier records it.
void perform(notification& x, route_action what, int64_t now) {
  auto start = [now](channel_state& c) {
    if (c.attempts++ == 0)
      c.at = now;
    c.state = "sending";
  };
  switch (what) {
    case route_action::websocket:
      x.websocket.state = "sent";
      x.websocket.at = now;
      break;
    case route_action::push: start(x.push); break;
    case route_action::email: start(x.email); break;
    case route_action::digest: x.email.state = "queued"; break;
    case route_action::none: break;
  }
}

/// The action `plan_route` answers at `now`, performed.
route_action next(notification& x, const route_facts& f, int64_t now) {
  auto step = plan_route(x, f, now, ack);
  perform(x, step.action, now);
  return step.action;
}

// -- the actors, with channels that record
// -------------------------------------

/// Records pushes and emails; answers each as `outcomes` says (in order;
/// success once they run out).
class recording_channels : public delivery_channels {
public:
  struct call {
    std::string channel;
    std::vector<std::string> ids;
    std::string to;
    std::vector<std::string> titles;
  };

  bool push_configured() const override {
    return true;
  }

  bool email_configured() const override {
    return true;
  }

  void push(const notification& x, const std::vector<device>&,
            done_handler done) override {
    record({"push", {x.id}, "", {x.title}}, std::move(done));
  }

  void email(const notification& x, const std::string& to,
             done_handler done) override {
    record({"email", {x.id}, to, {x.title}}, std::move(done));
  }

  void digest(const std::vector<notification>& xs, const std::string& to,
              done_handler done) override {
    call c{"digest", {}, to, {}};
    for (auto& x : xs) {
      c.ids.push_back(x.id);
      c.titles.push_back(x.title);
    }
    record(std::move(c), std::move(done));
  }

  size_t count(const std::string& channel) const {
    return static_cast<size_t>(
      std::count_if(calls.begin(), calls.end(), [&](auto& c) {
        return c.channel == channel;
      }));
  }

  std::vector<call> calls;
  /// Errors to answer, first to last ("" succeeds); `permanent` marks them
  /// final.
  std::vector<std::string> outcomes;
  bool permanent = false;

private:
  void record(call c, done_handler done) {
    calls.push_back(std::move(c));
    std::string error;
    if (!outcomes.empty()) {
      error = outcomes.front();
      outcomes.erase(outcomes.begin());
    }
    done(error, !error.empty() && permanent);
  }
};

settings unit_settings() {
  settings cfg;
  cfg.jwt_keys.secret = "notify-suite-secret";
  cfg.max_connections_per_user = 16;
  cfg.notify.ack_timeout = milliseconds(1000);
  cfg.notify.digest_window = milliseconds(5000);
  cfg.notify.retry_max_delay = milliseconds(4000);
  cfg.notify.rate_limit = 3;
  return cfg;
}

const caller admin{"root", "org_1", true};

struct fixture : test_coordinator_fixture<test_config> {
  bool no_await = (sys.await_actors_before_shutdown(false), true);
  node_context_ptr ctx = make_node(sys, unit_settings());
  std::shared_ptr<recording_channels> channels
    = std::make_shared<recording_channels>();
  std::shared_ptr<memory_notification_store> memory
    = std::make_shared<memory_notification_store>();
  room_store_actor room_store;
  notification_store_actor store;
  std::vector<caf::actor> sessions;

  fixture() {
    room_store = sys.spawn(room_store_server,
                           std::make_shared<memory_room_store>());
    ctx->rooms = sys.spawn(room_directory, room_deps_of(ctx), room_store);
    store = sys.spawn(notification_store_server, memory);
    ctx->notifications = sys.spawn(
      notification_directory,
      notification_deps{ctx->cfg.notify, store, ctx->topics, ctx->sessions,
                        ctx->rooms, channels, &ctx->stats});
    sched.run();
  }

  ~fixture() {
    for (auto* hdl : {&ctx->notifications})
      caf::anon_send_exit(*hdl, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ctx->rooms, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(room_store, caf::exit_reason::user_shutdown);
    sched.run();
    ctx->notifications = nullptr;
    ctx->rooms = nullptr;
    store = nullptr;
    room_store = nullptr;
    stop_node(sched, *ctx, sessions);
  }

  template<class... Rs, class Handle, class... Ts>
  std::tuple<Rs...> call(Handle hdl, Ts... xs) {
    return test::call<Rs...>(sys, sched, hdl, xs...);
  }

  /// Stores a rule through the directory, as the HTTP API does.
  void add_rule(const std::string& json) {
    std::string why;
    auto r = parse_rule(nlohmann::json::parse(json), "org_1", "", why);
    CAF_REQUIRE(r.has_value());
    auto [res, stored] = call<outcome, notification_rule>(
      ctx->notifications, put_atom::value, admin, *r, true);
    CAF_REQUIRE(res.ok());
    sched.run();
  }

  void set_contact(const std::string& user, const std::string& json) {
    std::string why;
    auto x = parse_contact(nlohmann::json::parse(json), "org_1", user, why);
    CAF_REQUIRE(x.has_value());
    auto [res] = call<outcome>(ctx->notifications, put_atom::value,
                               caller{user, "org_1", false}, *x);
    CAF_REQUIRE(res.ok());
  }

  void publish(const std::string& topic, const std::string& id,
               const std::string& data) {
    auto ev = make_event(topic, id);
    ev.data = data;
    caf::anon_send(ctx->topics, publish_atom::value, ev);
    sched.run();
  }

  /// A session of `user` (authenticated, no subscriptions) and its
  /// connection.
  std::pair<caf::actor, std::shared_ptr<recording_connection>>
  connect(const std::string& user) {
    claims c;
    c.sub = user;
    c.org = "org_1";
    c.exp = node_context::unix_ms() / 1000 + 3600;
    auto conn = std::make_shared<recording_connection>();
    auto s = caf::actor_cast<caf::actor>(sys.spawn<session_server>(
      conn, session_deps_of(ctx), mint_token(c, ctx->cfg.jwt_keys.secret)));
    sessions.push_back(s);
    sched.run();
    return {s, conn};
  }

  /// The notification frames `conn` got.
  static std::vector<nlohmann::json> frames_of(recording_connection& conn) {
    std::vector<nlohmann::json> out;
    for (auto& j : conn.json_texts())
      if (j.value("type", "") == "notification")
        out.push_back(j);
    return out;
  }

  std::vector<notification> inbox(const std::string& user) {
    auto [res, xs] = call<outcome, std::vector<notification>>(
      ctx->notifications, inbox_atom::value, caller{user, "org_1", false},
      false);
    CAF_REQUIRE(res.ok());
    return xs;
  }

  static node_card card(std::string name,
                        const notification_directory_actor& hdl) {
    node_card c;
    c.name = std::move(name);
    c.notifications = caf::actor_cast<caf::strong_actor_ptr>(hdl);
    return c;
  }

  /// A member name that owns alice in a cluster with "node-a".
  static std::string owner_of_alice() {
    for (int i = 0; i < 256; ++i) {
      auto name = "node-" + std::to_string(i);
      member_view view{card("node-a", {}), card(name, {})};
      if (owner_of(view, "user/" + user_key("org_1", "alice"))->name == name)
        return name;
    }
    CAF_FAIL("no member name owns alice");
    return {};
  }

  void advance(milliseconds d) {
    for (auto left = d; left.count() > 0; left -= milliseconds(100)) {
      sched.advance_time(std::min(left, milliseconds(100)));
      sched.run();
    }
  }
};

const char* task_rule = R"({
  "id": "tasks",
  "topic": "events.org_1.tasks.task.done.*",
  "when": [{"field": "data.status", "op": "equals", "value": "done"}],
  "recipients": {"fields": ["data.assignee"]},
  "title": "{{data.name}} is done",
  "body": "Task {{data.name}} finished",
  "priority": "normal"
})";

const char* urgent_rule = R"({
  "id": "pages",
  "topic": "events.org_1.alerts.alert.fired.*",
  "recipients": {"users": ["alice"]},
  "title": "Alert {{data.name}}",
  "body": "<{{data.name}}> fired",
  "priority": "urgent"
})";

const char* low_rule = R"({
  "id": "digest",
  "topic": "events.org_1.feed.item.new.*",
  "recipients": {"users": ["alice"]},
  "title": "New {{data.n}}",
  "body": "Item {{data.n}}",
  "priority": "low"
})";

} // namespace

CAF_TEST(a connected user gets the frame and low
         or normal priority ends there) {
  auto x = note("normal");
  CAF_CHECK(next(x, online(), t0) == route_action::websocket);
  CAF_CHECK(next(x, online(), t0) == route_action::none);
  CAF_CHECK_EQUAL(x.push.state, "skipped");
  CAF_CHECK_EQUAL(x.email.state, "skipped");
  CAF_CHECK(settled(x));
}

CAF_TEST(an unacknowledged urgent frame falls back to push then email) {
  auto x = note("urgent");
  CAF_CHECK(next(x, online(), t0) == route_action::websocket);
  auto step = plan_route(x, online(), t0 + 10, ack);
  CAF_CHECK(step.action == route_action::none);
  CAF_CHECK_EQUAL(step.wake_at, t0 + ack);
  CAF_CHECK(next(x, online(), t0 + ack) == route_action::push);
  x.push.state = "sent";
  step = plan_route(x, online(), t0 + ack + 1, ack);
  CAF_CHECK_EQUAL(step.wake_at, t0 + 2 * ack);
  CAF_CHECK(next(x, online(), t0 + 2 * ack) == route_action::email);
}

CAF_TEST(an ack stops every channel not yet tried) {
  auto x = note("urgent");
  next(x, online(), t0);
  x.acked = true;
  CAF_CHECK(next(x, online(), t0 + ack) == route_action::none);
  CAF_CHECK_EQUAL(x.push.state, "skipped");
  CAF_CHECK_EQUAL(x.email.state, "skipped");
}

CAF_TEST(an offline user gets push then email one ack timeout later) {
  auto x = note("normal");
  CAF_CHECK(next(x, offline(), t0) == route_action::push);
  CAF_CHECK_EQUAL(x.websocket.state, "skipped");
  CAF_CHECK_EQUAL(plan_route(x, offline(), t0 + 1, ack).wake_at, t0 + ack);
  CAF_CHECK(next(x, offline(), t0 + ack) == route_action::email);
}

CAF_TEST(without a device email goes out at once) {
  auto f = offline();
  f.push_ready = false;
  auto x = note("high");
  CAF_CHECK(next(x, f, t0) == route_action::email);
  CAF_CHECK_EQUAL(x.push.state, "skipped");
}

CAF_TEST(quiet hours hold low and normal priority but not urgent) {
  auto f = offline();
  f.quiet_until = t0 + 3'600'000;
  auto x = note("normal");
  auto step = plan_route(x, f, t0, ack);
  CAF_CHECK(step.action == route_action::none);
  CAF_CHECK_EQUAL(step.wake_at, f.quiet_until);
  CAF_CHECK(next(x, f, f.quiet_until) == route_action::push);
  auto y = note("urgent");
  CAF_CHECK(next(y, f, t0) == route_action::push);
}

CAF_TEST(low priority and normal over the rate limit go into the digest) {
  auto f = offline();
  f.push_ready = false;
  auto x = note("low");
  CAF_CHECK(next(x, f, t0) == route_action::digest);
  auto g = offline();
  g.rate_limited = true;
  auto y = note("normal");
  CAF_CHECK(next(y, g, t0) == route_action::digest);
  CAF_CHECK_EQUAL(y.push.state, "skipped");
  auto z = note("urgent");
  CAF_CHECK(next(z, g, t0) == route_action::push);
}

CAF_TEST(channels the rule does not allow are skipped) {
  auto x = note("urgent");
  x.channels = {"email"};
  CAF_CHECK(next(x, online(), t0) == route_action::email);
  CAF_CHECK_EQUAL(x.websocket.state, "skipped");
  CAF_CHECK_EQUAL(x.push.state, "skipped");
}

CAF_TEST(retries back off and stop at the limit) {
  CAF_CHECK_EQUAL(retry_delay_ms(1, 300'000), 1000);
  CAF_CHECK_EQUAL(retry_delay_ms(2, 300'000), 2000);
  CAF_CHECK_EQUAL(retry_delay_ms(4, 300'000), 8000);
  CAF_CHECK_EQUAL(retry_delay_ms(40, 300'000), 300'000);
}

CAF_TEST_FIXTURE_SCOPE(notify_tests, fixture)

CAF_TEST(a rule notifies a connected user on the session and nowhere else) {
  add_rule(task_rule);
  set_contact("bob", R"({"email":"bob@example.com",
                         "devices":[{"platform":"fcm","token":"t1"}]})");
  auto [session, conn] = connect("bob");
  publish("events.org_1.tasks.task.done.t1", "e1",
          R"({"status":"done","assignee":"bob","name":"Ship <it>"})");
  publish("events.org_1.tasks.task.done.t2", "e2",
          R"({"status":"open","assignee":"bob","name":"Other"})");
  auto got = frames_of(*conn);
  CAF_REQUIRE_EQUAL(got.size(), 1u);
  CAF_CHECK_EQUAL(got[0]["title"], "Ship <it> is done");
  CAF_CHECK_EQUAL(got[0]["priority"], "normal");
  CAF_CHECK_EQUAL(got[0]["data"]["assignee"], "bob");
  advance(milliseconds(3000));
  CAF_CHECK(channels->calls.empty());
  auto box = inbox("bob");
  CAF_REQUIRE_EQUAL(box.size(), 1u);
  CAF_CHECK_EQUAL(box[0].websocket.state, "sent");
  CAF_CHECK_EQUAL(box[0].email.state, "skipped");
}

CAF_TEST(an offline user gets push and then email with the rendered content) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"email":"alice@example.com",
                           "devices":[{"platform":"apns","token":"t"}]})");
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"disk"})");
  CAF_REQUIRE_EQUAL(channels->calls.size(), 1u);
  CAF_CHECK_EQUAL(channels->calls[0].channel, "push");
  CAF_CHECK_EQUAL(channels->calls[0].titles[0], "Alert disk");
  advance(milliseconds(1100));
  CAF_REQUIRE_EQUAL(channels->calls.size(), 2u);
  CAF_CHECK_EQUAL(channels->calls[1].channel, "email");
  CAF_CHECK_EQUAL(channels->calls[1].to, "alice@example.com");
  auto box = inbox("alice");
  CAF_REQUIRE_EQUAL(box.size(), 1u);
  CAF_CHECK_EQUAL(box[0].html_body, "&lt;disk&gt; fired");
  CAF_CHECK_EQUAL(box[0].push.state, "sent");
  CAF_CHECK_EQUAL(box[0].email.state, "sent");
}

CAF_TEST(an acked urgent frame is not pushed and an unacked one is) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"devices":[{"platform":"fcm","token":"t"}]})");
  auto [session, conn] = connect("alice");
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"one"})");
  auto got = frames_of(*conn);
  CAF_REQUIRE_EQUAL(got.size(), 1u);
  auto id = got[0]["id"].get<std::string>();
  caf::anon_send(session, text_atom::value,
                 R"({"type":"ack","id":")" + id + "\"}");
  sched.run();
  publish("events.org_1.alerts.alert.fired.a2", "e2", R"({"name":"two"})");
  advance(milliseconds(1500));
  CAF_REQUIRE_EQUAL(channels->calls.size(), 1u);
  CAF_CHECK_EQUAL(channels->calls[0].titles[0], "Alert two");
  CAF_CHECK_EQUAL(frames_of(*conn).size(), 2u);
}

CAF_TEST(a failing push is retried with backoff and delivered once) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"devices":[{"platform":"fcm","token":"t"}]})");
  channels->outcomes = {"HTTP 503: busy", "connect: refused"};
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"x"})");
  CAF_CHECK_EQUAL(channels->count("push"), 1u);
  advance(milliseconds(1100)); // first retry after 1 s
  CAF_CHECK_EQUAL(channels->count("push"), 2u);
  advance(milliseconds(1500)); // second after 2 s more
  CAF_CHECK_EQUAL(channels->count("push"), 2u);
  advance(milliseconds(600));
  CAF_CHECK_EQUAL(channels->count("push"), 3u);
  advance(milliseconds(10'000));
  CAF_CHECK_EQUAL(channels->count("push"), 3u);
  auto box = inbox("alice");
  CAF_REQUIRE_EQUAL(box.size(), 1u);
  CAF_CHECK_EQUAL(box[0].push.state, "sent");
  CAF_CHECK_EQUAL(box[0].push.attempts, 3);
}

CAF_TEST(a refused push is final and email takes over) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"email":"a@example.com",
                           "devices":[{"platform":"fcm","token":"t"}]})");
  channels->outcomes = {"HTTP 400: bad token"};
  channels->permanent = true;
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"x"})");
  advance(milliseconds(1100));
  CAF_CHECK_EQUAL(channels->count("push"), 1u);
  CAF_CHECK_EQUAL(channels->count("email"), 1u);
  auto box = inbox("alice");
  CAF_REQUIRE_EQUAL(box.size(), 1u);
  CAF_CHECK_EQUAL(box[0].push.state, "failed");
  CAF_CHECK_EQUAL(box[0].push.error, "HTTP 400: bad token");
}

CAF_TEST(a flood of low priority becomes one digest email) {
  add_rule(low_rule);
  set_contact("alice", R"({"email":"a@example.com"})");
  for (int i = 1; i <= 5; ++i)
    publish("events.org_1.feed.item.new.i" + std::to_string(i),
            "e" + std::to_string(i), R"({"n":)" + std::to_string(i) + "}");
  CAF_CHECK(channels->calls.empty());
  advance(milliseconds(5100));
  CAF_REQUIRE_EQUAL(channels->calls.size(), 1u);
  CAF_CHECK_EQUAL(channels->calls[0].channel, "digest");
  CAF_CHECK_EQUAL(channels->calls[0].ids.size(), 5u);
  for (auto& x : inbox("alice"))
    CAF_CHECK_EQUAL(x.email.state, "sent");
}

CAF_TEST(the same event seen twice makes one notification) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"devices":[{"platform":"fcm","token":"t"}]})");
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"x"})");
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"x"})");
  CAF_CHECK_EQUAL(channels->count("push"), 1u);
  CAF_CHECK_EQUAL(inbox("alice").size(), 1u);
}

CAF_TEST(reading a notification acks it and marks it read) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"email":"a@example.com",
                           "devices":[{"platform":"fcm","token":"t"}]})");
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"x"})");
  auto id = inbox("alice").at(0).id;
  auto [res] = call<outcome>(ctx->notifications, read_atom::value,
                             caller{"alice", "org_1", false}, id);
  CAF_CHECK(res.ok());
  advance(milliseconds(2000));
  CAF_CHECK_EQUAL(channels->count("email"), 0u);
  auto box = inbox("alice");
  CAF_CHECK(box.at(0).read);
  CAF_CHECK_EQUAL(box.at(0).email.state, "skipped");
  auto [missing] = call<outcome>(ctx->notifications, read_atom::value,
                                 caller{"alice", "org_1", false},
                                 std::string{"nope"});
  CAF_CHECK_EQUAL(missing.code, "not_found");
}

CAF_TEST(room participants except the author are notified and no outsider) {
  add_rule(R"({
    "id": "chat",
    "topic": "events.org_1.conversations.conversation.message_posted.*",
    "recipients": {"users": ["carol"], "room_participants": true},
    "title": "{{data.author}} wrote",
    "body": "{{data.text}}",
    "channels": ["push"]
  })");
  for (auto* u : {"alice", "bob"})
    set_contact(u, R"({"devices":[{"platform":"fcm","token":"t"}]})");
  auto [res, rec] = call<outcome, room_record>(ctx->rooms, create_atom::value,
                                               caller{"alice", "org_1", false},
                                               std::string{"r"}, true);
  CAF_REQUIRE(res.ok());
  auto [res2, room] = call<outcome, room_actor>(
    ctx->rooms, resolve_atom::value, caller{"alice", "org_1", false}, rec.id);
  CAF_REQUIRE(res2.ok());
  participant bob{"bob", "user", "", "", "", 0};
  call<outcome, room_record>(room, join_atom::value,
                             caller{"alice", "org_1", false}, bob);
  sched.run();
  call<outcome, room_message>(room, post_atom::value,
                              caller{"alice", "org_1", false},
                              std::string{"hello"});
  sched.run();
  CAF_REQUIRE_EQUAL(channels->count("push"), 1u);
  CAF_CHECK_EQUAL(channels->calls[0].titles[0], "alice wrote");
  CAF_CHECK_EQUAL(inbox("bob").size(), 1u);
  CAF_CHECK_EQUAL(inbox("alice").size(), 0u);
  // Named by the rule, but not in the private room: nothing.
  CAF_CHECK_EQUAL(inbox("carol").size(), 0u);
}

CAF_TEST(pending deliveries resume from the store after a restart) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"email":"a@example.com",
                           "devices":[{"platform":"fcm","token":"t"}]})");
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"x"})");
  CAF_CHECK_EQUAL(channels->count("push"), 1u);
  // The node stops while the email waits for the ack timeout.
  caf::anon_send_exit(ctx->notifications, caf::exit_reason::user_shutdown);
  sched.run();
  ctx->notifications = sys.spawn(
    notification_directory,
    notification_deps{ctx->cfg.notify, store, ctx->topics, ctx->sessions,
                      ctx->rooms, channels, &ctx->stats});
  sched.run();
  advance(milliseconds(1500));
  CAF_CHECK_EQUAL(channels->count("push"), 1u);
  CAF_CHECK_EQUAL(channels->count("email"), 1u);
  auto box = inbox("alice");
  CAF_REQUIRE_EQUAL(box.size(), 1u);
  CAF_CHECK(settled(box[0]));
}

CAF_TEST(a notification sent to an owner that died is delivered by the next) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"email":"a@example.com",
                           "devices":[{"platform":"fcm","token":"t"}]})");
  // Another member owns alice, and dies before it delivers anything.
  auto peer = sys.spawn(notification_directory,
                        notification_deps{ctx->cfg.notify, store, ctx->topics,
                                          ctx->sessions, ctx->rooms, channels,
                                          &ctx->stats});
  sched.run();
  caf::anon_send_exit(peer, caf::exit_reason::kill);
  sched.run();
  auto owner = owner_of_alice();
  caf::anon_send(ctx->notifications, members_atom::value,
                 member_view{card("node-a", ctx->notifications),
                             card(owner, peer)});
  sched.run();
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"x"})");
  CAF_CHECK_EQUAL(channels->count("push"), 0u);
  // The member is seen to be gone: this node owns alice now.
  caf::anon_send(ctx->notifications, members_atom::value,
                 member_view{card("node-a", ctx->notifications)});
  sched.run();
  CAF_CHECK_EQUAL(channels->count("push"), 1u);
  CAF_CHECK_EQUAL(inbox("alice").size(), 1u);
}

CAF_TEST(a member that joins and owns a user takes its deliveries over once) {
  add_rule(urgent_rule);
  set_contact("alice", R"({"email":"a@example.com",
                           "devices":[{"platform":"fcm","token":"t"}]})");
  // Alone, this node pushes the alert; the email waits for the ack timeout.
  publish("events.org_1.alerts.alert.fired.a1", "e1", R"({"name":"x"})");
  CAF_CHECK_EQUAL(channels->count("push"), 1u);
  // A member that owns alice joins.
  auto peer = sys.spawn(notification_directory,
                        notification_deps{ctx->cfg.notify, store, ctx->topics,
                                          ctx->sessions, ctx->rooms, channels,
                                          &ctx->stats, true});
  sched.run();
  auto owner = owner_of_alice();
  caf::anon_send(ctx->notifications, members_atom::value,
                 member_view{card("node-a", ctx->notifications),
                             card(owner, peer)});
  caf::anon_send(peer, members_atom::value,
                 member_view{card(owner, peer),
                             card("node-a", ctx->notifications)});
  sched.run();
  // A second alert, delivered by the owner, whose notifier reads alice's
  // pending notifications, the first one's included.
  publish("events.org_1.alerts.alert.fired.a2", "e2", R"({"name":"y"})");
  advance(milliseconds(1500));
  CAF_CHECK_EQUAL(channels->count("push"), 2u);
  CAF_CHECK_EQUAL(channels->count("email"), 2u);
  caf::anon_send_exit(peer, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(only admins manage rules and users their own contact points) {
  std::string why;
  auto r = parse_rule(nlohmann::json::parse(task_rule), "org_1", "", why);
  CAF_REQUIRE(r.has_value());
  auto [res, stored]
    = call<outcome, notification_rule>(ctx->notifications, put_atom::value,
                                       caller{"bob", "org_1", false}, *r, true);
  CAF_CHECK_EQUAL(res.code, "forbidden");
  auto x = parse_contact(nlohmann::json::parse(R"({"email":"a@b.c"})"), "org_1",
                         "alice", why);
  CAF_REQUIRE(x.has_value());
  auto [res2] = call<outcome>(ctx->notifications, put_atom::value,
                              caller{"bob", "org_1", false}, *x);
  CAF_CHECK_EQUAL(res2.code, "forbidden");
  auto [res3] = call<outcome>(ctx->notifications, put_atom::value, admin, *x);
  CAF_CHECK(res3.ok());
}

CAF_TEST_FIXTURE_SCOPE_END()
