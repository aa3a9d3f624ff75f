#include "schemas/token.hpp"

#include <cerrno>
#include <cstdlib>
#include <memory>

#include <jwt.h>
#include <nlohmann/json.hpp>

#include "schemas/topic.hpp"

namespace switchyard {

namespace {

struct jwt_deleter {
  void operator()(jwt_t* ptr) const {
    jwt_free(ptr);
  }
};

using jwt_ptr = std::unique_ptr<jwt_t, jwt_deleter>;

std::vector<std::string> string_list(jwt_t* jwt, const char* grant,
                                     std::string& error) {
  std::vector<std::string> result;
  char* raw = jwt_get_grants_json(jwt, grant);
  if (raw == nullptr)
    return result;
  auto parsed = nlohmann::json::parse(raw, nullptr, false);
  free(raw); // libjwt 1.10 hands out malloc()ed strings
  if (!parsed.is_array()) {
    error = std::string{grant} + " must be an array of patterns";
    return result;
  }
  for (auto& item : parsed) {
    if (!item.is_string() || !topic::valid_pattern(item.get<std::string>())) {
      error = std::string{grant} + " holds an invalid pattern";
      return {};
    }
    result.emplace_back(item.get<std::string>());
  }
  return result;
}

} // namespace

verified verify_token(std::string_view token, std::string_view secret,
                      int64_t now_unix_s) {
  verified result;
  if (token.empty()) {
    result.error = "missing token";
    return result;
  }
  jwt_t* raw = nullptr;
  std::string tok{token};
  if (jwt_decode(&raw, tok.c_str(),
                 reinterpret_cast<const unsigned char*>(secret.data()),
                 static_cast<int>(secret.size()))
        != 0
      || raw == nullptr) {
    result.error = "invalid token signature or format";
    return result;
  }
  jwt_ptr jwt{raw};
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) {
    result.error = "token must be signed with HS256";
    return result;
  }
  claims c;
  auto str_claim = [&](const char* name, std::string& out) {
    const char* val = jwt_get_grant(jwt.get(), name);
    if (val == nullptr || *val == '\0')
      return false;
    out = val;
    return true;
  };
  if (!str_claim("sub", c.sub)) {
    result.error = "token has no sub claim";
    return result;
  }
  if (!str_claim("org", c.org)) {
    result.error = "token has no org claim";
    return result;
  }
  std::string why;
  if (!topic::valid_topic(c.org, &why)
      || c.org.find('.') != std::string::npos) {
    result.error = "token org is not a single topic token";
    return result;
  }
  errno = 0;
  c.exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno != 0 || c.exp == 0) {
    result.error = "token has no exp claim";
    return result;
  }
  if (c.exp <= now_unix_s) {
    result.error = "token expired";
    return result;
  }
  std::string list_error;
  c.sub_allow = string_list(jwt.get(), "sub_allow", list_error);
  c.pub_allow = string_list(jwt.get(), "pub_allow", list_error);
  if (!list_error.empty()) {
    result.error = list_error;
    return result;
  }
  errno = 0;
  auto admin = jwt_get_grant_bool(jwt.get(), "admin");
  c.admin = errno == 0 && admin == 1;
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
  if (c.admin)
    extra["admin"] = true;
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
  for (auto& allowed : c.pub_allow)
    if (topic::matches(allowed, topic))
      return true;
  return false;
}

} // namespace switchyard
