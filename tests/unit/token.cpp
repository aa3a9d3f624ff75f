#define CAF_SUITE token

#include <caf/test/dsl.hpp>

#include "actors/node_context.hpp"
#include "schemas/token.hpp"

using namespace switchyard;

namespace {

constexpr auto secret = "token-suite-secret";

int64_t now_s() {
  return node_context::unix_ms() / 1000;
}

claims user(std::string org = "org_123") {
  claims c;
  c.sub = "u_1";
  c.org = std::move(org);
  c.exp = now_s() + 3600;
  return c;
}

} // namespace

CAF_TEST(a token signed with the secret verifies with its claims) {
  auto c = user();
  c.pub_allow = {"events.org_123.tasks.>"};
  c.admin = true;
  auto res = verify_token(mint_token(c, secret), secret, now_s());
  CAF_REQUIRE(res.value);
  CAF_CHECK_EQUAL(res.value->sub, "u_1");
  CAF_CHECK_EQUAL(res.value->org, "org_123");
  CAF_CHECK(res.value->admin);
  // No sub_allow claim: the default, the whole org space.
  CAF_CHECK(res.value->sub_allow.empty());
  CAF_CHECK(may_subscribe(*res.value, "events.org_123.any.thing"));
  CAF_CHECK_EQUAL(res.value->pub_allow,
                  std::vector<std::string>{"events.org_123.tasks.>"});
}

CAF_TEST(a token signed with another secret is rejected) {
  auto res = verify_token(mint_token(user(), "other"), secret, now_s());
  CAF_CHECK(!res.value);
  CAF_CHECK(!res.error.empty());
}

CAF_TEST(a tampered token is rejected) {
  auto tok = mint_token(user(), secret);
  auto forged = mint_token(user("org_999"), "other");
  // Header and payload of the forged token, signature of the real one.
  auto cut = tok.rfind('.');
  auto forged_cut = forged.rfind('.');
  auto res = verify_token(forged.substr(0, forged_cut) + tok.substr(cut),
                          secret, now_s());
  CAF_CHECK(!res.value);
}

CAF_TEST(an expired token is rejected) {
  auto c = user();
  c.exp = now_s() - 1;
  auto res = verify_token(mint_token(c, secret), secret, now_s());
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "token expired");
}

CAF_TEST(garbage and unsigned tokens are rejected) {
  CAF_CHECK(!verify_token("", secret, now_s()).value);
  CAF_CHECK(!verify_token("a.b.c", secret, now_s()).value);
  // {"alg":"none"} . {"sub":"u_1","org":"org_123","exp":9999999999} .
  auto none = std::string{"eyJhbGciOiJub25lIn0."}
    + "eyJzdWIiOiJ1XzEiLCJvcmciOiJvcmdfMTIzIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
  CAF_CHECK(!verify_token(none, secret, now_s()).value);
}

CAF_TEST(subscriptions never leave the token org) {
  auto c = user();
  CAF_CHECK(may_subscribe(c, "events.org_123.tasks.*"));
  CAF_CHECK(may_subscribe(c, "events.org_123.>"));
  CAF_CHECK(!may_subscribe(c, "events.org_999.tasks.*"));
  CAF_CHECK(!may_subscribe(c, "events.*.tasks"));
  CAF_CHECK(!may_subscribe(c, "events.>"));
  CAF_CHECK(!may_subscribe(c, ">"));
  // Not even a sub_allow that names another org widens the fence.
  c.sub_allow = {">", "events.org_999.>"};
  CAF_CHECK(!may_subscribe(c, "events.org_999.x"));
  CAF_CHECK(may_subscribe(c, "events.org_123.x"));
}

CAF_TEST(sub_allow narrows subscriptions) {
  auto c = user();
  c.sub_allow = {"events.org_123.tasks.*.completed.>"};
  CAF_CHECK(may_subscribe(c, "events.org_123.tasks.task.completed.t1"));
  CAF_CHECK(may_subscribe(c, "events.org_123.tasks.*.completed.>"));
  CAF_CHECK(!may_subscribe(c, "events.org_123.tasks.>"));
  CAF_CHECK(!may_subscribe(c, "events.org_123.billing.x.completed.y"));
}

CAF_TEST(pub_allow is required to publish) {
  auto c = user();
  CAF_CHECK(!may_publish(c, "events.org_123.a.b"));
  c.pub_allow = {"events.org_123.a.*"};
  CAF_CHECK(may_publish(c, "events.org_123.a.b"));
  CAF_CHECK(!may_publish(c, "events.org_123.a.b.c"));
}
