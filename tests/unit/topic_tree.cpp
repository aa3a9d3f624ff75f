#define CAF_SUITE topic_tree

#include <caf/test/dsl.hpp>

#include "actors/topic_router.hpp"
#include "fixture.hpp"

using namespace switchyard;
using namespace switchyard::test;

namespace {

struct fixture : test_coordinator_fixture<test_config> {
  // Topic and registry actors live as long as the node; do not wait for them.
  bool no_await = (sys.await_actors_before_shutdown(false), true);

  ~fixture() {
    stop_node(sched, *ctx, clients);
  }
  node_context_ptr ctx = make_node(sys);
  /// Every stand-in session, ended with the node.
  std::vector<caf::actor> clients;

  struct client {
    subscriber_actor actor;
    std::shared_ptr<recording_connection> conn;
  };

  /// A stand-in session: an actor whose socket queue is a recording sink.
  client make_client(frames::wire_format format = frames::wire_format::json) {
    auto actor = sys.spawn([]() -> subscriber_actor::behavior_type {
      return {[](publish_atom, const std::string&, const event&) {}};
    });
    auto conn = std::make_shared<recording_connection>(format);
    ctx->sinks.add(actor.id(), conn);
    clients.push_back(caf::actor_cast<caf::actor>(actor));
    return {actor, conn};
  }

  subscription_actor subscribe(const client& c, const std::string& pattern) {
    self->send(ctx->topics, subscribe_atom::value, pattern, c.actor);
    sched.run();
    subscription_actor node;
    self->receive([&](subscription_actor& x) {
      node = x;
    });
    return node;
  }

  void publish(const std::string& topic, const std::string& id = "e1") {
    ctx->publish(make_event(topic, id));
    sched.run();
  }

  std::vector<topic_info> topics() {
    self->send(ctx->topics, topics_atom::value);
    sched.run();
    std::vector<topic_info> result;
    self->receive([&](std::vector<topic_info>& xs) {
      result = xs;
    });
    return result;
  }

  int64_t gauge(const std::atomic<int64_t>& x) {
    return x.load();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(topic_tree_tests, fixture)

CAF_TEST(a wildcard subscriber receives every matching event) {
  auto c = make_client();
  subscribe(c, "events.o1.tasks.*.completed.>");
  publish("events.o1.tasks.task.completed.t1", "e1");
  publish("events.o1.tasks.task.completed.t2.sub", "e2");
  publish("events.o1.tasks.task.created.t1", "e3");   // wrong token
  publish("events.o1.tasks.task.completed", "e4");    // > needs one more
  publish("events.o2.tasks.task.completed.t1", "e5"); // other org
  auto evs = c.conn->events();
  CAF_REQUIRE_EQUAL(evs.size(), 2u);
  auto str = [&](size_t i, const char* field) {
    return evs[i][field].get<std::string>();
  };
  CAF_CHECK_EQUAL(str(0, "id"), "e1");
  CAF_CHECK_EQUAL(str(1, "id"), "e2");
  CAF_CHECK_EQUAL(str(0, "subscription"), "events.o1.tasks.*.completed.>");
  CAF_CHECK_EQUAL(str(0, "topic"), "events.o1.tasks.task.completed.t1");
  CAF_CHECK_EQUAL(evs[0]["data"]["n"].get<int>(), 1);
}

CAF_TEST(overlapping patterns deliver once per subscription) {
  auto c = make_client();
  subscribe(c, "events.o1.a.*.c");
  subscribe(c, "events.o1.a.>");
  publish("events.o1.a.b.c");
  auto evs = c.conn->events();
  CAF_REQUIRE_EQUAL(evs.size(), 2u);
  std::set<std::string> subs{evs[0]["subscription"].get<std::string>(),
                             evs[1]["subscription"].get<std::string>()};
  CAF_CHECK_EQUAL(subs,
                  (std::set<std::string>{"events.o1.a.*.c", "events.o1.a.>"}));
  publish("events.o1.a.b.d", "e2"); // only a.> matches
  CAF_CHECK_EQUAL(c.conn->events().size(), 3u);
}

CAF_TEST(subscribing twice to one pattern still delivers once) {
  auto c = make_client();
  auto n1 = subscribe(c, "events.o1.x");
  auto n2 = subscribe(c, "events.o1.x");
  CAF_CHECK_EQUAL(n1, n2);
  publish("events.o1.x");
  CAF_CHECK_EQUAL(c.conn->events().size(), 1u);
  CAF_CHECK_EQUAL(gauge(ctx->stats.subscriptions), 1);
}

CAF_TEST(subscribers of one pattern share one encoded frame) {
  auto c1 = make_client();
  auto c2 = make_client();
  subscribe(c1, "events.o1.x.*");
  subscribe(c2, "events.o1.x.*");
  publish("events.o1.x.y");
  CAF_REQUIRE_EQUAL(c1.conn->frames.size(), 1u);
  CAF_REQUIRE_EQUAL(c2.conn->frames.size(), 1u);
  CAF_CHECK_EQUAL(c1.conn->frames[0].get(), c2.conn->frames[0].get());
}

CAF_TEST(each subprotocol gets one encoding shared by its subscribers) {
  using frames::wire_format;
  auto j1 = make_client();
  auto j2 = make_client();
  auto n1 = make_client(wire_format::ndjson);
  auto n2 = make_client(wire_format::ndjson);
  auto m1 = make_client(wire_format::msgpack);
  for (auto* c : {&j1, &j2, &n1, &n2, &m1})
    subscribe(*c, "events.o1.x.*");
  publish("events.o1.x.y");
  for (auto* c : {&j1, &j2, &n1, &n2, &m1})
    CAF_REQUIRE_EQUAL(c->conn->frames.size(), 1u);
  CAF_CHECK_EQUAL(j1.conn->frames[0].get(), j2.conn->frames[0].get());
  CAF_CHECK_EQUAL(n1.conn->frames[0].get(), n2.conn->frames[0].get());
  // json: a whole text frame; ndjson: the bare object and its separator;
  // msgpack: the bare map, with the same fields.
  auto& json_frame = *j1.conn->frames[0];
  auto& line = *n1.conn->frames[0];
  CAF_CHECK_EQUAL(static_cast<uint8_t>(json_frame[0]), 0x81);
  CAF_REQUIRE_EQUAL(line.back(), '\n');
  auto object = nlohmann::json::parse(line.substr(0, line.size() - 1));
  auto json_events = j1.conn->events();
  CAF_CHECK_EQUAL(object, json_events[0]);
  auto map = nlohmann::json::from_msgpack(*m1.conn->frames[0]);
  CAF_CHECK_EQUAL(map, object);
  CAF_CHECK_EQUAL(object["topic"], "events.o1.x.y");
}

CAF_TEST(each org gets its own router) {
  auto c1 = make_client();
  auto c2 = make_client();
  subscribe(c1, "events.o1.>");
  subscribe(c2, "events.o2.>");
  CAF_CHECK_EQUAL(gauge(ctx->stats.org_routers), 2);
  CAF_CHECK_EQUAL(gauge(ctx->stats.topic_actors), 2);
  publish("events.o1.a");
  CAF_CHECK_EQUAL(c1.conn->events().size(), 1u);
  CAF_CHECK_EQUAL(c2.conn->events().size(), 0u);
}

CAF_TEST(a dead subscriber is removed and its empty topic actor goes away) {
  auto c1 = make_client();
  auto c2 = make_client();
  subscribe(c1, "events.o1.a.*");
  subscribe(c2, "events.o1.a.*");
  subscribe(c2, "events.o1.b");
  CAF_CHECK_EQUAL(topics().size(), 2u);
  caf::anon_send_exit(c2.actor, caf::exit_reason::kill);
  sched.run();
  auto ts = topics();
  CAF_REQUIRE_EQUAL(ts.size(), 1u);
  CAF_CHECK_EQUAL(ts[0].pattern, "events.o1.a.*");
  CAF_CHECK_EQUAL(ts[0].subscribers, 1u);
  CAF_CHECK_EQUAL(gauge(ctx->stats.subscriptions), 1);
  caf::anon_send_exit(c1.actor, caf::exit_reason::kill);
  sched.run();
  CAF_CHECK_EQUAL(topics().size(), 0u);
  CAF_CHECK_EQUAL(gauge(ctx->stats.topic_actors), 0);
  CAF_CHECK_EQUAL(gauge(ctx->stats.org_routers), 0);
  CAF_CHECK_EQUAL(gauge(ctx->stats.subscriptions), 0);
}

CAF_TEST(unsubscribe stops delivery and retires the topic actor) {
  auto c = make_client();
  auto node = subscribe(c, "events.o1.a");
  caf::anon_send(node, unsubscribe_atom::value, c.actor);
  sched.run();
  publish("events.o1.a");
  CAF_CHECK_EQUAL(c.conn->events().size(), 0u);
  CAF_CHECK_EQUAL(gauge(ctx->stats.topic_actors), 0);
}

CAF_TEST(a subscribe in flight keeps a topic actor from retiring) {
  auto c1 = make_client();
  auto c2 = make_client();
  auto node = subscribe(c1, "events.o1.a");
  // c1 leaves while c2's subscribe is on its way: the router must not retire
  // the topic actor under c2's feet.
  caf::anon_send(node, unsubscribe_atom::value, c1.actor);
  caf::anon_send(ctx->topics, subscribe_atom::value, std::string{"events.o1.a"},
                 c2.actor);
  sched.run();
  publish("events.o1.a");
  CAF_CHECK_EQUAL(c1.conn->events().size(), 0u);
  CAF_CHECK_EQUAL(c2.conn->events().size(), 1u);
  CAF_CHECK_EQUAL(gauge(ctx->stats.topic_actors), 1);
}

CAF_TEST(a pattern outside events of an org is refused with a named error) {
  auto c = make_client();
  self->send(ctx->topics, subscribe_atom::value, std::string{"other.o1.a"},
             c.actor);
  sched.run();
  caf::error err;
  self->receive(
    [](subscription_actor&) {
      CAF_FAIL("subscribed");
    },
    [&](caf::error& x) {
      err = std::move(x);
    });
  CAF_CHECK(err == error_code::bad_pattern);
  CAF_CHECK_EQUAL(
    sys.render(err),
    "switchyard: bad_pattern (\"pattern outside events.<org>.\")");
}

CAF_TEST(the trie matches star and greater - than at every level) {
  pattern_trie trie;
  auto a = caf::actor_cast<topic_actor>(sys.spawn([] {}));
  auto b = caf::actor_cast<topic_actor>(sys.spawn([] {}));
  auto c = caf::actor_cast<topic_actor>(sys.spawn([] {}));
  trie.insert("x.*.z", a);
  trie.insert("x.>", b);
  trie.insert("x.y.z", c);
  std::vector<topic_actor> out;
  trie.match("x.y.z", out);
  CAF_CHECK_EQUAL(out.size(), 3u);
  out.clear();
  trie.match("x.q.z", out);
  CAF_CHECK_EQUAL(out.size(), 2u);
  out.clear();
  trie.match("x", out);
  CAF_CHECK_EQUAL(out.size(), 0u);
  trie.erase("x.>");
  out.clear();
  trie.match("x.y.z", out);
  CAF_CHECK_EQUAL(out.size(), 2u);
}

CAF_TEST_FIXTURE_SCOPE_END()
