#include "schemas/token.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <memory>

#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "schemas/topic.hpp"

namespace switchyard {

namespace {

/// Largest encoded header read: `alg`, `typ` and a `kid` fit many times.
constexpr size_t max_header_size = 1024;

struct jwt_deleter {
  void operator()(jwt_t* ptr) const {
    jwt_free(ptr);
  }
};

using jwt_ptr = std::unique_ptr<jwt_t, jwt_deleter>;

struct openssl_deleter {
  void operator()(EVP_PKEY* ptr) const {
    EVP_PKEY_free(ptr);
  }
  void operator()(EVP_PKEY_CTX* ptr) const {
    EVP_PKEY_CTX_free(ptr);
  }
  void operator()(BIO* ptr) const {
    BIO_free(ptr);
  }
  void operator()(BIGNUM* ptr) const {
    BN_free(ptr);
  }
  void operator()(OSSL_PARAM_BLD* ptr) const {
    OSSL_PARAM_BLD_free(ptr);
  }
  void operator()(OSSL_PARAM* ptr) const {
    OSSL_PARAM_free(ptr);
  }
};

template<class T>
using ossl_ptr = std::unique_ptr<T, openssl_deleter>;

/// The algorithms a node accepts, each with the only key type it may use.
struct alg_rule {
  const char* name;
  jwt_alg_t alg;
  key_type key;
};

constexpr alg_rule alg_rules[] = {
  {"HS256", JWT_ALG_HS256, key_type::hmac},
  {"RS256", JWT_ALG_RS256, key_type::rsa},
  {"RS384", JWT_ALG_RS384, key_type::rsa},
  {"RS512", JWT_ALG_RS512, key_type::rsa},
  {"ES256", JWT_ALG_ES256, key_type::ec_p256},
};

/// Decodes unpadded base64url (OpenSSL's base64 after mapping the URL
/// alphabet); nullopt on any other character.
std::optional<std::string> base64url_decode(std::string_view in) {
  if (in.size() % 4 == 1)
    return std::nullopt; // one character left over: not a whole byte
  std::string b64;
  b64.reserve(in.size() + 3);
  for (auto c : in) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (!std::isalnum(static_cast<unsigned char>(c)))
      return std::nullopt;
    b64.push_back(c);
  }
  size_t padding = (4 - b64.size() % 4) % 4;
  b64.append(padding, '=');
  std::string out(b64.size() / 4 * 3, '\0');
  auto n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                           reinterpret_cast<const unsigned char*>(b64.data()),
                           static_cast<int>(b64.size()));
  if (n < 0)
    return std::nullopt;
  // EVP_DecodeBlock counts the padding as decoded zero bytes.
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

/// The JOSE header fields that pick the key.
struct jose_header {
  std::string alg;
  std::optional<std::string> kid;
};

/// Reads the header of `token`; returns an error or an empty string.
std::string read_header(std::string_view token, jose_header& out) {
  auto dot = token.find('.');
  if (dot == std::string_view::npos)
    return "invalid token signature or format";
  if (dot > max_header_size)
    return "token header too large";
  auto text = base64url_decode(token.substr(0, dot));
  if (!text)
    return "invalid token signature or format";
  auto head = nlohmann::json::parse(*text, nullptr, false);
  if (head.is_discarded() || !head.is_object())
    return "invalid token signature or format";
  auto alg = head.find("alg");
  if (alg == head.end() || !alg->is_string())
    return "token header has no alg";
  out.alg = alg->get<std::string>();
  if (auto kid = head.find("kid"); kid != head.end()) {
    if (!kid->is_string())
      return "token kid must be a string";
    out.kid = kid->get<std::string>();
  }
  if (head.contains("crit"))
    return "token header has critical extensions";
  return {};
}

/// The key a token header asks for, with the rule of its algorithm.
struct chosen_key {
  const alg_rule* rule = nullptr;
  std::string_view key;
  std::string error;
};

/// Picks the key of `head`: its `kid`'s public key, or the secret when it
/// names none. The algorithm must fit the key's type.
chosen_key choose_key(const jose_header& head, const key_set& keys) {
  chosen_key result;
  for (auto& r : alg_rules)
    if (head.alg == r.name)
      result.rule = &r;
  if (result.rule == nullptr) {
    result.error = "token algorithm not accepted (HS256, RS256, RS384, RS512, "
                   "ES256)";
  } else if (head.kid) {
    auto i = keys.keys.find(*head.kid);
    if (i == keys.keys.end())
      result.error = "unknown key id";
    else if (i->second.type != result.rule->key)
      result.error = "token algorithm does not fit its key";
    else
      result.key = i->second.pem;
  } else if (result.rule->key != key_type::hmac) {
    result.error = "token signed with " + std::string{result.rule->name}
      + " needs a kid";
  } else if (keys.secret.empty()) {
    result.error = "HS256 tokens are not accepted by this node";
  } else {
    result.key = keys.secret;
  }
  return result;
}

/// The claim `grant` parsed from the JSON text libjwt hands out; nullopt
/// when the token has no such claim.
std::optional<nlohmann::json> grant_json(jwt_t* jwt, const char* grant) {
  char* raw = jwt_get_grants_json(jwt, grant);
  if (raw == nullptr)
    return std::nullopt;
  auto parsed = nlohmann::json::parse(raw, nullptr, false);
  free(raw); // libjwt 1.10 hands out malloc()ed strings
  return parsed;
}

std::vector<std::string> string_list(jwt_t* jwt, const char* grant,
                                     std::string& error) {
  std::vector<std::string> result;
  auto parsed = grant_json(jwt, grant);
  if (!parsed)
    return result;
  if (!parsed->is_array()) {
    error = std::string{grant} + " must be an array of patterns";
    return result;
  }
  for (auto& item : *parsed) {
    if (!item.is_string() || !topic::valid_pattern(item.get<std::string>())) {
      error = std::string{grant} + " holds an invalid pattern";
      return {};
    }
    result.emplace_back(item.get<std::string>());
  }
  return result;
}

/// Reads the optional integer claim `grant`; false when present but not an
/// integer. Absent leaves `out` alone.
bool optional_int(jwt_t* jwt, const char* grant, std::optional<int64_t>& out) {
  auto parsed = grant_json(jwt, grant);
  if (!parsed)
    return true;
  if (!parsed->is_number_integer())
    return false;
  out = parsed->get<int64_t>();
  return true;
}

// -- public keys --------------------------------------------------------------

/// Checks that `key` is one we verify with and stores it as PEM in `out`.
std::string to_public_key(EVP_PKEY* key, public_key& out) {
  if (EVP_PKEY_is_a(key, "RSA")) {
    if (EVP_PKEY_get_bits(key) < 2048)
      return "RSA keys need at least 2048 bits";
    out.type = key_type::rsa;
  } else if (EVP_PKEY_is_a(key, "EC")) {
    char group[64];
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                       sizeof(group), &len)
          != 1
        || std::string_view{group, len} != "prime256v1")
      return "EC keys must be on the P-256 curve (ES256)";
    out.type = key_type::ec_p256;
  } else {
    return "only RSA and EC P-256 keys are supported (no EdDSA)";
  }
  ossl_ptr<BIO> bio{BIO_new(BIO_s_mem())};
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1)
    return "cannot encode the key as PEM";
  char* data = nullptr;
  auto size = BIO_get_mem_data(bio.get(), &data);
  out.pem.assign(data, static_cast<size_t>(size));
  return {};
}

std::string add_key(key_set& ks, const std::string& kid, EVP_PKEY* key) {
  if (kid.empty())
    return "empty key id";
  if (ks.keys.count(kid) != 0)
    return "duplicate key id " + kid;
  public_key pk;
  if (auto err = to_public_key(key, pk); !err.empty())
    return err;
  ks.keys.emplace(kid, std::move(pk));
  return {};
}

/// Builds a public key of `type` ("RSA" or "EC") from OpenSSL parameters.
ossl_ptr<EVP_PKEY> key_from_params(const char* type, OSSL_PARAM* params) {
  ossl_ptr<EVP_PKEY_CTX> ctx{
    EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr)};
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1
      || EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
    return nullptr;
  return ossl_ptr<EVP_PKEY>{key};
}

/// Reads the string member `name` of a JWK; `fallback` when missing or not
/// a string.
std::string jwk_string(const nlohmann::json& jwk, const char* name,
                       const char* fallback = "") {
  auto i = jwk.find(name);
  if (i == jwk.end() || !i->is_string())
    return fallback;
  return i->get<std::string>();
}

/// Reads the base64url member `name` of a JWK; empty when missing or bad.
std::string jwk_bytes(const nlohmann::json& jwk, const char* name) {
  return base64url_decode(jwk_string(jwk, name)).value_or(std::string{});
}

ossl_ptr<EVP_PKEY> rsa_from_jwk(const nlohmann::json& jwk) {
  auto n = jwk_bytes(jwk, "n");
  auto e = jwk_bytes(jwk, "e");
  if (n.empty() || e.empty())
    return nullptr;
  auto bn = [](const std::string& bytes) {
    return ossl_ptr<BIGNUM>{
      BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                static_cast<int>(bytes.size()), nullptr)};
  };
  auto bn_n = bn(n);
  auto bn_e = bn(e);
  ossl_ptr<OSSL_PARAM_BLD> bld{OSSL_PARAM_BLD_new()};
  if (!bn_n || !bn_e || !bld
      || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get())
        != 1
      || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())
        != 1)
    return nullptr;
  ossl_ptr<OSSL_PARAM> params{OSSL_PARAM_BLD_to_param(bld.get())};
  if (!params)
    return nullptr;
  return key_from_params("RSA", params.get());
}

ossl_ptr<EVP_PKEY> ec_from_jwk(const nlohmann::json& jwk) {
  auto x = jwk_bytes(jwk, "x");
  auto y = jwk_bytes(jwk, "y");
  // RFC 7518 6.2.1.2: coordinates are the full 32 bytes for P-256.
  if (jwk_string(jwk, "crv") != "P-256" || x.size() != 32 || y.size() != 32)
    return nullptr;
  // An uncompressed point; OpenSSL refuses one that is not on the curve.
  auto point = "\x04" + x + y;
  char group[] = "prime256v1";
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
    OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                      point.size()),
    OSSL_PARAM_construct_end(),
  };
  return key_from_params("EC", params);
}

} // namespace

std::string add_pem_key(key_set& ks, const std::string& kid,
                        std::string_view pem) {
  ossl_ptr<BIO> bio{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))};
  ossl_ptr<EVP_PKEY> key{
    bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr};
  ERR_clear_error();
  if (!key)
    return "not a PEM public key (-----BEGIN PUBLIC KEY-----)";
  return add_key(ks, kid, key.get());
}

std::string add_jwks(key_set& ks, std::string_view jwks) {
  auto doc = nlohmann::json::parse(jwks, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("keys")
      || !doc["keys"].is_array())
    return "not a JWKS document ({\"keys\":[...]})";
  size_t added = 0;
  for (auto& jwk : doc["keys"]) {
    if (!jwk.is_object())
      return "a JWKS entry is not an object";
    // Encryption keys are no business of ours.
    if (jwk_string(jwk, "use", "sig") != "sig")
      continue;
    auto kid = jwk_string(jwk, "kid");
    if (kid.empty())
      return "a JWKS key has no kid";
    auto kty = jwk_string(jwk, "kty");
    ossl_ptr<EVP_PKEY> key;
    if (kty == "RSA")
      key = rsa_from_jwk(jwk);
    else if (kty == "EC")
      key = ec_from_jwk(jwk);
    else
      return "JWKS key " + kid + ": unsupported kty (RSA or EC P-256 only)";
    ERR_clear_error();
    if (!key)
      return "JWKS key " + kid + ": bad or missing key parameters";
    if (auto err = add_key(ks, kid, key.get()); !err.empty())
      return "JWKS key " + kid + ": " + err;
    ++added;
  }
  if (added == 0)
    return "the JWKS has no signing keys";
  return {};
}

verified verify_token(std::string_view token, const key_set& keys,
                      int64_t now_unix_s, std::chrono::milliseconds leeway) {
  verified result;
  auto fail = [&result](std::string why) {
    result.error = std::move(why);
    return result;
  };
  if (token.empty())
    return fail("missing token");
  if (token.size() > max_token_size)
    return fail("token too long");
  // Pick the key before libjwt sees the token, and only the algorithms of
  // its type: an RSA public key must never serve as an HMAC secret.
  jose_header head;
  if (auto err = read_header(token, head); !err.empty())
    return fail(err);
  auto chosen = choose_key(head, keys);
  if (!chosen.error.empty())
    return fail(chosen.error);
  jwt_t* raw = nullptr;
  std::string tok{token};
  if (jwt_decode(&raw, tok.c_str(),
                 reinterpret_cast<const unsigned char*>(chosen.key.data()),
                 static_cast<int>(chosen.key.size()))
        != 0
      || raw == nullptr) {
    ERR_clear_error();
    return fail("invalid token signature or format");
  }
  jwt_ptr jwt{raw};
  if (jwt_get_alg(jwt.get()) != chosen.rule->alg)
    return fail("token algorithm does not fit its key");
  claims c;
  auto str_claim = [&](const char* name, std::string& out) {
    const char* val = jwt_get_grant(jwt.get(), name);
    if (val == nullptr || *val == '\0')
      return false;
    out = val;
    return true;
  };
  if (!str_claim("sub", c.sub))
    return fail("token has no sub claim");
  if (!str_claim("org", c.org))
    return fail("token has no org claim");
  std::string why;
  if (!topic::valid_topic(c.org, &why) || c.org.find('.') != std::string::npos)
    return fail("token org is not a single topic token");
  errno = 0;
  c.exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno != 0 || c.exp == 0)
    return fail("token has no exp claim");
  if (c.exp <= now_unix_s)
    return fail("token expired");
  // Clocks of issuers and nodes differ by a little; nbf and iat may be
  // ahead of ours by up to the leeway.
  auto latest = now_unix_s + leeway.count() / 1000;
  std::optional<int64_t> nbf;
  std::optional<int64_t> iat;
  if (!optional_int(jwt.get(), "nbf", nbf))
    return fail("token nbf must be an integer");
  if (!optional_int(jwt.get(), "iat", iat))
    return fail("token iat must be an integer");
  if (nbf && *nbf > latest)
    return fail("token not yet valid");
  if (iat && *iat > latest)
    return fail("token issued in the future");
  std::string list_error;
  c.sub_allow = string_list(jwt.get(), "sub_allow", list_error);
  c.pub_allow = string_list(jwt.get(), "pub_allow", list_error);
  if (!list_error.empty())
    return fail(list_error);
  auto flag = [&](const char* name) {
    errno = 0;
    auto val = jwt_get_grant_bool(jwt.get(), name);
    return errno == 0 && val == 1;
  };
  c.node_admin = flag("node_admin");
  c.admin = c.node_admin || flag("admin");
  result.value = std::move(c);
  return result;
}

std::string mint_token(const claims& c, std::string_view secret) {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0)
    return {};
  jwt_ptr jwt{raw};
  std::string key{secret};
  jwt_set_alg(jwt.get(), JWT_ALG_HS256,
              reinterpret_cast<const unsigned char*>(key.data()),
              static_cast<int>(key.size()));
  jwt_add_grant(jwt.get(), "sub", c.sub.c_str());
  jwt_add_grant(jwt.get(), "org", c.org.c_str());
  jwt_add_grant_int(jwt.get(), "exp", static_cast<long>(c.exp));
  nlohmann::json extra = nlohmann::json::object();
  if (!c.sub_allow.empty())
    extra["sub_allow"] = c.sub_allow;
  if (!c.pub_allow.empty())
    extra["pub_allow"] = c.pub_allow;
  if (c.admin || c.node_admin)
    extra["admin"] = true;
  if (c.node_admin)
    extra["node_admin"] = true;
  if (!extra.empty())
    jwt_add_grants_json(jwt.get(), extra.dump().c_str());
  char* encoded = jwt_encode_str(jwt.get());
  if (encoded == nullptr)
    return {};
  std::string result{encoded};
  free(encoded);
  return result;
}

bool may_subscribe(const claims& c, std::string_view pattern) {
  // The org fence comes first: no sub_allow entry can widen it.
  if (!topic::covers("events." + c.org + ".>", pattern))
    return false;
  if (c.sub_allow.empty())
    return true; // the default sub_allow is the org space itself
  for (auto& allowed : c.sub_allow)
    if (topic::covers(allowed, pattern))
      return true;
  return false;
}

bool may_publish(const claims& c, std::string_view topic) {
  // The same fence as for subscriptions: no pub_allow entry can widen it.
  if (!topic::matches("events." + c.org + ".>", topic))
    return false;
  for (auto& allowed : c.pub_allow)
    if (topic::matches(allowed, topic))
      return true;
  return false;
}

} // namespace switchyard
