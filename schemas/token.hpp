// Tokens of protocol v1: JWTs signed HS256 with the node's secret, checked
// and minted by libjwt. No JWT parsing or signature code of our own.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard {

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
  /// Whether the token may use admin endpoints (`admin`).
  bool admin = false;
};

/// Outcome of `verify_token`: claims or a reason fit for an error frame.
struct verified {
  std::optional<claims> value;
  std::string error;
};

/// Checks signature (HS256 only), expiry and required claims.
verified verify_token(std::string_view token, std::string_view secret,
                      int64_t now_unix_s);

/// Signs `c` with HS256.
std::string mint_token(const claims& c, std::string_view secret);

/// Whether `c` may subscribe to `pattern`: inside `events.<org>.` whatever
/// `sub_allow` says, and covered by one of its `sub_allow` patterns.
bool may_subscribe(const claims& c, std::string_view pattern);

/// Whether `c` may publish to `topic` (matched by one `pub_allow` pattern).
bool may_publish(const claims& c, std::string_view topic);

} // namespace switchyard
