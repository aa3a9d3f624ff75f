#define CAF_SUITE topic_grammar

#include <caf/test/dsl.hpp>

#include "schemas/topic.hpp"

using namespace switchyard;

CAF_TEST(published topics follow the token grammar) {
  CAF_CHECK(topic::valid_topic("events.org_123.tasks.task.completed.t-1"));
  CAF_CHECK(!topic::valid_topic(""));
  CAF_CHECK(!topic::valid_topic("events..x"));
  CAF_CHECK(!topic::valid_topic("events.org.x."));
  CAF_CHECK(!topic::valid_topic("events.org.*"));
  CAF_CHECK(!topic::valid_topic("events.org.>"));
  CAF_CHECK(!topic::valid_topic("events.org.a b"));
  CAF_CHECK(!topic::valid_topic("events.org.é"));
  CAF_CHECK(topic::valid_topic("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p"));
  CAF_CHECK(!topic::valid_topic("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q"));
  CAF_CHECK(topic::valid_topic(std::string(256, 'a')));
  CAF_CHECK(!topic::valid_topic(std::string(257, 'a')));
}

CAF_TEST(patterns allow star anywhere and greater - than only last) {
  CAF_CHECK(topic::valid_pattern("events.org.*.task.*.>"));
  CAF_CHECK(topic::valid_pattern(">"));
  CAF_CHECK(!topic::valid_pattern("events.>.x"));
  CAF_CHECK(!topic::valid_pattern("events.a*.x"));
  CAF_CHECK(!topic::valid_pattern("events.org."));
}

CAF_TEST(star matches exactly one token) {
  CAF_CHECK(topic::matches("a.*.c", "a.b.c"));
  CAF_CHECK(!topic::matches("a.*.c", "a.c"));
  CAF_CHECK(!topic::matches("a.*.c", "a.b.x.c"));
  CAF_CHECK(!topic::matches("a.*", "a.b.c"));
}

CAF_TEST(greater - than matches one or more trailing tokens) {
  CAF_CHECK(topic::matches("a.>", "a.b"));
  CAF_CHECK(topic::matches("a.>", "a.b.c.d"));
  CAF_CHECK(!topic::matches("a.>", "a"));
  CAF_CHECK(!topic::matches("a.>", "b.c"));
  CAF_CHECK(topic::matches("a.b.c", "a.b.c"));
  CAF_CHECK(!topic::matches("a.b.c", "a.b.c.d"));
}

CAF_TEST(covers compares patterns token by token) {
  CAF_CHECK(topic::covers("events.o.>", "events.o.x.*.y"));
  CAF_CHECK(topic::covers("events.o.>", "events.o.>"));
  CAF_CHECK(!topic::covers("events.o.>", "events.o"));
  CAF_CHECK(!topic::covers("events.o.>", "events.*.x"));
  CAF_CHECK(!topic::covers("events.o.>", "events.>"));
  CAF_CHECK(topic::covers("events.o.*.c", "events.o.b.c"));
  CAF_CHECK(!topic::covers("events.o.*", "events.o.>"));
  CAF_CHECK(!topic::covers("events.o.b", "events.o.*"));
}

CAF_TEST(org of an events topic is its second token) {
  CAF_CHECK_EQUAL(topic::org_of("events.org_1.a.b"), "org_1");
  CAF_CHECK_EQUAL(topic::org_of("events.org_1"), "org_1");
  CAF_CHECK_EQUAL(topic::org_of("events.*.a"), "");
  CAF_CHECK_EQUAL(topic::org_of("other.org_1.a"), "");
}
