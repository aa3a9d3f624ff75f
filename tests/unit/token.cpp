#define CAF_SUITE token

#include <caf/test/dsl.hpp>

#include <memory>

#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "actors/node_context.hpp"
#include "schemas/token.hpp"

using namespace switchyard;

namespace {

constexpr auto secret = "token-suite-secret";

constexpr auto leeway = std::chrono::seconds(30);

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

/// The HS256 secret alone, as a node without public keys has it.
key_set secret_only() {
  return key_set{secret, {}};
}

verified verify(std::string_view token, const key_set& keys = secret_only()) {
  return verify_token(token, keys, now_s(), leeway);
}

// -- keys and tokens generated at test time -----------------------------------

struct pkey_deleter {
  void operator()(EVP_PKEY* ptr) const {
    EVP_PKEY_free(ptr);
  }
};

/// A key pair with both halves as PEM.
struct key_pair {
  std::shared_ptr<EVP_PKEY> key;
  std::string private_pem;
  std::string public_pem;
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  auto size = BIO_get_mem_data(bio, &data);
  std::string out{data, static_cast<size_t>(size)};
  BIO_free(bio);
  return out;
}

key_pair key_pair_of(EVP_PKEY* raw) {
  key_pair kp;
  kp.key.reset(raw, pkey_deleter{});
  BIO* priv = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(priv, raw, nullptr, nullptr, 0, nullptr, nullptr);
  kp.private_pem = bio_text(priv);
  BIO* pub = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(pub, raw);
  kp.public_pem = bio_text(pub);
  return kp;
}

const key_pair& rsa_key() {
  static auto kp = key_pair_of(EVP_RSA_gen(2048));
  return kp;
}

const key_pair& other_rsa_key() {
  static auto kp = key_pair_of(EVP_RSA_gen(2048));
  return kp;
}

const key_pair& ec_key() {
  static auto kp = key_pair_of(EVP_EC_gen("P-256"));
  return kp;
}

/// The secret plus the RSA key as `rsa-1` and the EC key as `ec-1`.
key_set all_keys() {
  auto ks = secret_only();
  CAF_REQUIRE_EQUAL(add_pem_key(ks, "rsa-1", rsa_key().public_pem), "");
  CAF_REQUIRE_EQUAL(add_pem_key(ks, "ec-1", ec_key().public_pem), "");
  return ks;
}

nlohmann::json payload(int64_t exp_in = 3600) {
  return {{"sub", "u_1"}, {"org", "org_123"}, {"exp", now_s() + exp_in}};
}

/// Signs `body` with libjwt, `kid` in the header unless empty.
std::string sign(const nlohmann::json& body, jwt_alg_t alg,
                 const std::string& key, const std::string& kid = "") {
  jwt_t* jwt = nullptr;
  CAF_REQUIRE_EQUAL(jwt_new(&jwt), 0);
  jwt_add_grants_json(jwt, body.dump().c_str());
  if (!kid.empty())
    jwt_add_header(jwt, "kid", kid.c_str());
  jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(key.data()),
              static_cast<int>(key.size()));
  char* encoded = jwt_encode_str(jwt);
  jwt_free(jwt);
  CAF_REQUIRE(encoded != nullptr);
  std::string out{encoded};
  free(encoded);
  return out;
}

std::string hs256(const nlohmann::json& body) {
  return sign(body, JWT_ALG_HS256, secret);
}

std::string base64url(std::string_view bytes) {
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (auto c : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0)
    out.push_back(alphabet[(acc << (6 - bits)) & 63]);
  return out;
}

std::string bn_param(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  CAF_REQUIRE_EQUAL(EVP_PKEY_get_bn_param(key, name, &bn), 1);
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

nlohmann::json rsa_jwk(const key_pair& kp, const std::string& kid) {
  return {{"kty", "RSA"},
          {"kid", kid},
          {"use", "sig"},
          {"n", base64url(bn_param(kp.key.get(), OSSL_PKEY_PARAM_RSA_N))},
          {"e", base64url(bn_param(kp.key.get(), OSSL_PKEY_PARAM_RSA_E))}};
}

nlohmann::json ec_jwk(const key_pair& kp, const std::string& kid) {
  unsigned char point[65];
  size_t len = 0;
  CAF_REQUIRE_EQUAL(EVP_PKEY_get_octet_string_param(kp.key.get(),
                                                    OSSL_PKEY_PARAM_PUB_KEY,
                                                    point, sizeof(point), &len),
                    1);
  CAF_REQUIRE_EQUAL(len, 65u);
  auto bytes = std::string_view{reinterpret_cast<char*>(point), len};
  return {{"kty", "EC"},
          {"crv", "P-256"},
          {"kid", kid},
          {"x", base64url(bytes.substr(1, 32))},
          {"y", base64url(bytes.substr(33, 32))}};
}

} // namespace

// -- HS256 with the secret ----------------------------------------------------

CAF_TEST(a token signed with the secret verifies with its claims) {
  auto c = user();
  c.pub_allow = {"events.org_123.tasks.>"};
  c.admin = true;
  auto res = verify(mint_token(c, secret));
  CAF_REQUIRE(res.value);
  CAF_CHECK_EQUAL(res.value->sub, "u_1");
  CAF_CHECK_EQUAL(res.value->org, "org_123");
  CAF_CHECK(res.value->admin);
  CAF_CHECK(!res.value->node_admin);
  // No sub_allow claim: the default, the whole org space.
  CAF_CHECK(res.value->sub_allow.empty());
  CAF_CHECK(may_subscribe(*res.value, "events.org_123.any.thing"));
  CAF_CHECK_EQUAL(res.value->pub_allow,
                  std::vector<std::string>{"events.org_123.tasks.>"});
}

CAF_TEST(node_admin implies admin) {
  auto c = user();
  c.node_admin = true;
  auto res = verify(mint_token(c, secret));
  CAF_REQUIRE(res.value);
  CAF_CHECK(res.value->admin);
  CAF_CHECK(res.value->node_admin);
  auto body = payload();
  body["node_admin"] = true;
  res = verify(hs256(body));
  CAF_REQUIRE(res.value);
  CAF_CHECK(res.value->admin);
}

CAF_TEST(a token signed with another secret is rejected) {
  auto res = verify(mint_token(user(), "other"));
  CAF_CHECK(!res.value);
  CAF_CHECK(!res.error.empty());
}

CAF_TEST(a tampered token is rejected) {
  auto tok = mint_token(user(), secret);
  auto forged = mint_token(user("org_999"), "other");
  // Header and payload of the forged token, signature of the real one.
  auto cut = tok.rfind('.');
  auto forged_cut = forged.rfind('.');
  auto res = verify(forged.substr(0, forged_cut) + tok.substr(cut));
  CAF_CHECK(!res.value);
}

CAF_TEST(an expired token is rejected) {
  auto c = user();
  c.exp = now_s() - 1;
  auto res = verify(mint_token(c, secret));
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "token expired");
}

CAF_TEST(garbage and unsigned tokens are rejected) {
  CAF_CHECK(!verify("").value);
  CAF_CHECK(!verify("a.b.c").value);
  // {"alg":"none"} . {"sub":"u_1","org":"org_123","exp":9999999999} .
  auto none = std::string{"eyJhbGciOiJub25lIn0."}
    + "eyJzdWIiOiJ1XzEiLCJvcmciOiJvcmdfMTIzIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
  CAF_CHECK(!verify(none).value);
  CAF_CHECK(!verify(none, all_keys()).value);
  // {"alg":"none","kid":"rsa-1"}: a known kid does not make none acceptable.
  auto none_kid = base64url(R"({"alg":"none","kid":"rsa-1"})") + "."
    + base64url(payload().dump()) + ".";
  auto res = verify(none_kid, all_keys());
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error,
                  "token algorithm not accepted (HS256, RS256, "
                  "RS384, RS512, ES256)");
}

CAF_TEST(tokens over the size limit are refused before decoding) {
  auto body = payload();
  body["pad"] = std::string(max_token_size, 'x');
  auto res = verify(hs256(body));
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "token too long");
  // Not even a header is read: garbage of that size gets the same answer.
  CAF_CHECK_EQUAL(verify(std::string(max_token_size + 1, '.')).error,
                  "token too long");
}

// -- nbf and iat --------------------------------------------------------------

CAF_TEST(nbf beyond the leeway is refused and within it accepted) {
  auto body = payload();
  body["nbf"] = now_s() + 120;
  auto res = verify(hs256(body));
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "token not yet valid");
  body["nbf"] = now_s() + 10;
  CAF_CHECK(verify(hs256(body)).value);
  body["nbf"] = now_s() - 10;
  CAF_CHECK(verify(hs256(body)).value);
  // Without leeway, 10 s ahead is too early.
  body["nbf"] = now_s() + 10;
  CAF_CHECK(!verify_token(hs256(body), secret_only(), now_s(),
                          std::chrono::milliseconds{0})
               .value);
}

CAF_TEST(iat beyond the leeway is refused and within it accepted) {
  auto body = payload();
  body["iat"] = now_s() + 120;
  auto res = verify(hs256(body));
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "token issued in the future");
  body["iat"] = now_s() + 10;
  CAF_CHECK(verify(hs256(body)).value);
  body["iat"] = now_s() - 600;
  CAF_CHECK(verify(hs256(body)).value);
}

CAF_TEST(nbf and iat must be integers) {
  for (auto name : {"nbf", "iat"}) {
    for (auto bad : {nlohmann::json("soon"), nlohmann::json(1.5),
                     nlohmann::json::array(), nlohmann::json(true)}) {
      auto body = payload();
      body[name] = bad;
      auto res = verify(hs256(body));
      CAF_CHECK(!res.value);
      CAF_CHECK_EQUAL(res.error,
                      std::string{"token "} + name + " must be an integer");
    }
  }
}

// -- public keys --------------------------------------------------------------

CAF_TEST(RS256 and ES256 tokens verify with PEM keys picked by kid) {
  auto keys = all_keys();
  auto rs = verify(
    sign(payload(), JWT_ALG_RS256, rsa_key().private_pem, "rsa-1"), keys);
  CAF_REQUIRE(rs.value);
  CAF_CHECK_EQUAL(rs.value->sub, "u_1");
  CAF_CHECK(
    verify(sign(payload(), JWT_ALG_RS512, rsa_key().private_pem, "rsa-1"), keys)
      .value);
  auto es = verify(sign(payload(), JWT_ALG_ES256, ec_key().private_pem, "ec-1"),
                   keys);
  CAF_REQUIRE(es.value);
  CAF_CHECK_EQUAL(es.value->org, "org_123");
  // Claims are checked as for HS256.
  auto early = payload();
  early["nbf"] = now_s() + 120;
  CAF_CHECK_EQUAL(
    verify(sign(early, JWT_ALG_ES256, ec_key().private_pem, "ec-1"), keys)
      .error,
    "token not yet valid");
}

CAF_TEST(public keys alone verify without a secret) {
  key_set keys;
  CAF_REQUIRE_EQUAL(add_pem_key(keys, "rsa-1", rsa_key().public_pem), "");
  CAF_CHECK(
    verify(sign(payload(), JWT_ALG_RS256, rsa_key().private_pem, "rsa-1"), keys)
      .value);
  // An HS256 token cannot be verified: there is no secret.
  auto res = verify(hs256(payload()), keys);
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "HS256 tokens are not accepted by this node");
}

CAF_TEST(a token signed with another key is rejected) {
  auto keys = all_keys();
  auto res = verify(
    sign(payload(), JWT_ALG_RS256, other_rsa_key().private_pem, "rsa-1"), keys);
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "invalid token signature or format");
  auto other_ec = key_pair_of(EVP_EC_gen("P-256"));
  CAF_CHECK(
    !verify(sign(payload(), JWT_ALG_ES256, other_ec.private_pem, "ec-1"), keys)
       .value);
}

CAF_TEST(an unknown kid is refused) {
  auto res = verify(
    sign(payload(), JWT_ALG_RS256, rsa_key().private_pem, "rsa-2"), all_keys());
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "unknown key id");
  // An asymmetric token must name its key.
  res = verify(sign(payload(), JWT_ALG_RS256, rsa_key().private_pem),
               all_keys());
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "token signed with RS256 needs a kid");
}

CAF_TEST(the algorithm must fit the key type) {
  auto keys = all_keys();
  // The classic confusion: HS256 keyed with the public key PEM.
  auto forged = sign(payload(), JWT_ALG_HS256, rsa_key().public_pem, "rsa-1");
  auto res = verify(forged, keys);
  CAF_CHECK(!res.value);
  CAF_CHECK_EQUAL(res.error, "token algorithm does not fit its key");
  // Without a kid it is checked against the secret, and fails.
  CAF_CHECK(
    !verify(sign(payload(), JWT_ALG_HS256, rsa_key().public_pem), keys).value);
  CAF_CHECK(
    !verify(sign(payload(), JWT_ALG_HS256, ec_key().public_pem, "ec-1"), keys)
       .value);
  // RSA signature under an EC kid, and the other way round.
  CAF_CHECK_EQUAL(
    verify(sign(payload(), JWT_ALG_RS256, rsa_key().private_pem, "ec-1"), keys)
      .error,
    "token algorithm does not fit its key");
  CAF_CHECK_EQUAL(
    verify(sign(payload(), JWT_ALG_ES256, ec_key().private_pem, "rsa-1"), keys)
      .error,
    "token algorithm does not fit its key");
  // ES384 is not among the accepted algorithms.
  auto p384 = key_pair_of(EVP_EC_gen("P-384"));
  CAF_CHECK(
    !verify(sign(payload(), JWT_ALG_ES384, p384.private_pem, "ec-1"), keys)
       .value);
}

CAF_TEST(key files that are not usable public keys are refused) {
  key_set keys;
  CAF_CHECK_NOT_EQUAL(add_pem_key(keys, "a", "not a key"), "");
  // A private key is not a public key file.
  CAF_CHECK_NOT_EQUAL(add_pem_key(keys, "a", rsa_key().private_pem), "");
  CAF_CHECK_EQUAL(add_pem_key(keys, "a",
                              key_pair_of(EVP_RSA_gen(1024)).public_pem),
                  "RSA keys need at least 2048 bits");
  CAF_CHECK_EQUAL(add_pem_key(keys, "a",
                              key_pair_of(EVP_EC_gen("P-384")).public_pem),
                  "EC keys must be on the P-256 curve (ES256)");
  CAF_CHECK_EQUAL(add_pem_key(keys, "", rsa_key().public_pem), "empty key id");
  CAF_CHECK_EQUAL(add_pem_key(keys, "a", rsa_key().public_pem), "");
  CAF_CHECK_EQUAL(add_pem_key(keys, "a", ec_key().public_pem),
                  "duplicate key id a");
  CAF_CHECK_EQUAL(keys.keys.size(), 1u);
}

// -- JWKS ---------------------------------------------------------------------

CAF_TEST(RSA and EC P - 256 keys of a JWKS verify tokens by kid) {
  key_set keys;
  nlohmann::json jwks{
    {"keys",
     {rsa_jwk(rsa_key(), "idp-rsa"),
      ec_jwk(ec_key(), "idp-ec"),
      // Encryption keys are skipped.
      {{"kty", "RSA"}, {"kid", "enc"}, {"use", "enc"}, {"n", "AQAB"}}}}};
  CAF_REQUIRE_EQUAL(add_jwks(keys, jwks.dump()), "");
  CAF_CHECK_EQUAL(keys.keys.size(), 2u);
  CAF_CHECK(
    verify(sign(payload(), JWT_ALG_RS256, rsa_key().private_pem, "idp-rsa"),
           keys)
      .value);
  CAF_CHECK(
    verify(sign(payload(), JWT_ALG_ES256, ec_key().private_pem, "idp-ec"), keys)
      .value);
  // The JWKS keys are the same keys as the PEM files.
  CAF_CHECK_EQUAL(keys.keys["idp-rsa"].pem, rsa_key().public_pem);
  CAF_CHECK_EQUAL(keys.keys["idp-ec"].pem, ec_key().public_pem);
  CAF_CHECK(
    !verify(sign(payload(), JWT_ALG_HS256, keys.keys["idp-rsa"].pem, "idp-rsa"),
            keys)
       .value);
}

CAF_TEST(malformed JWKS documents are refused) {
  auto refused = [](const nlohmann::json& doc) {
    key_set keys;
    return !add_jwks(keys, doc.dump()).empty();
  };
  CAF_CHECK(refused(nlohmann::json::array()));
  CAF_CHECK(refused({{"keys", nlohmann::json::array()}}));
  key_set keys;
  CAF_CHECK_NOT_EQUAL(add_jwks(keys, "{"), "");
  auto no_kid = rsa_jwk(rsa_key(), "x");
  no_kid.erase("kid");
  CAF_CHECK(refused({{"keys", {no_kid}}}));
  auto okp = nlohmann::json{{"kty", "OKP"}, {"crv", "Ed25519"}, {"kid", "ed"}};
  CAF_CHECK(refused({{"keys", {okp}}}));
  auto bad_n = rsa_jwk(rsa_key(), "x");
  bad_n["n"] = "not base64url!";
  CAF_CHECK(refused({{"keys", {bad_n}}}));
  auto off_curve = ec_jwk(ec_key(), "x");
  off_curve["y"] = off_curve["x"];
  CAF_CHECK(refused({{"keys", {off_curve}}}));
  auto p384 = ec_jwk(ec_key(), "x");
  p384["crv"] = "P-384";
  CAF_CHECK(refused({{"keys", {p384}}}));
  auto kid_not_string = ec_jwk(ec_key(), "x");
  kid_not_string["kid"] = 7;
  CAF_CHECK(refused({{"keys", {kid_not_string}}}));
}

// -- authorization ------------------------------------------------------------

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

CAF_TEST(publishing never leaves the token org) {
  auto c = user("org_A");
  c.pub_allow = {"events.>"};
  CAF_CHECK(may_publish(c, "events.org_A.x.y.z.w"));
  CAF_CHECK(!may_publish(c, "events.org_B.x.y.z.w"));
  c.pub_allow = {">", "events.org_B.>", "events.*.x.>"};
  CAF_CHECK(!may_publish(c, "events.org_B.x.y.z.w"));
  CAF_CHECK(!may_publish(c, "other.org_A.x"));
  CAF_CHECK(may_publish(c, "events.org_A.x.y"));
  // The org space itself is not a topic of the org.
  CAF_CHECK(!may_publish(c, "events.org_A"));
}
