// Tokens of protocol v1: JWTs signed HS256 with the node's secret, or RS256,
// RS384, RS512 or ES256 with the public keys of an identity provider. libjwt
// checks the signatures; we read the header first only to pick the key and
// pin the algorithm to its type (no algorithm confusion).

#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard {

/// Longest token accepted: generous for an identity provider's token with a
/// few dozen patterns, small enough that a flood of huge tokens costs no
/// decoding. Longer tokens are refused before any parsing.
constexpr size_t max_token_size = 8 * 1024;

/// The claims a valid token carries.
struct claims {
  /// User or service id (`sub`).
  std::string sub;
  /// Organisation (`org`).
  std::string org;
  /// Expiry, unix seconds (`exp`).
  int64_t exp = 0;
  /// Patterns this token may subscribe to (`sub_allow`); empty means the
  /// default, the whole `events.<org>.` space (kept empty so idle sessions
  /// hold no copy of it).
  std::vector<std::string> sub_allow;
  /// Patterns this token may publish to (`pub_allow`); default none.
  std::vector<std::string> pub_allow;
  /// Whether the token may use admin endpoints (`admin`), for its own org.
  bool admin = false;
  /// Whether admin endpoints show every org of the node (`node_admin`);
  /// implies `admin`.
  bool node_admin = false;
};

/// What kind of key verifies a token.
enum class key_type {
  /// The node's HS256 secret.
  hmac,
  /// An RSA public key (RS256, RS384, RS512).
  rsa,
  /// An EC public key on P-256 (ES256).
  ec_p256,
};

/// A public key of an identity provider.
struct public_key {
  key_type type = key_type::rsa;
  /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), as libjwt
  /// reads it.
  std::string pem;
};

/// Everything a node verifies tokens with.
struct key_set {
  /// HS256 secret; empty means HS256 tokens are refused.
  std::string secret;
  /// Public keys by key id, the `kid` of a token header.
  std::map<std::string, public_key> keys;
};

/// Adds the PEM public key `pem` (RSA of at least 2048 bits, or EC P-256)
/// as `kid`. Returns why it cannot, or an empty string.
std::string add_pem_key(key_set& ks, const std::string& kid,
                        std::string_view pem);

/// Adds every signing key of the JWKS document `jwks` (RSA: `n`, `e`; EC
/// P-256: `x`, `y`; each with a `kid`). Returns why it cannot, or an empty
/// string.
std::string add_jwks(key_set& ks, std::string_view jwks);

/// Outcome of `verify_token`: claims or a reason fit for an error frame.
struct verified {
  std::optional<claims> value;
  std::string error;
};

/// Checks size, header, signature, expiry, `nbf` and `iat` (both may be up
/// to `leeway` in the future) and the required claims. A header with a
/// `kid` is verified with that public key, one without with the secret; the
/// header's `alg` must fit the key's type.
verified verify_token(std::string_view token, const key_set& keys,
                      int64_t now_unix_s, std::chrono::milliseconds leeway);

/// Signs `c` with HS256.
std::string mint_token(const claims& c, std::string_view secret);

/// Whether `c` may subscribe to `pattern`: inside `events.<org>.` whatever
/// `sub_allow` says, and covered by one of its `sub_allow` patterns.
bool may_subscribe(const claims& c, std::string_view pattern);

/// Whether `c` may publish to `topic`: inside `events.<org>.` whatever
/// `pub_allow` says, and matched by one of its `pub_allow` patterns.
bool may_publish(const claims& c, std::string_view topic);

} // namespace switchyard
