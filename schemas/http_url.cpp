#include "schemas/http_url.hpp"

#include <cctype>

namespace switchyard {

std::optional<http_url> parse_http_url(std::string_view url,
                                       std::string& error) {
  for (unsigned char c : url)
    if (c <= 0x20 || c >= 0x7F) {
      error = "URL contains a space, a control or a non-ASCII character";
      return std::nullopt;
    }
  http_url out;
  auto scheme_end = url.find("://");
  std::string scheme{url.substr(0, scheme_end)};
  for (auto& c : scheme)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme_end == std::string_view::npos
      || (scheme != "http" && scheme != "https")) {
    error = "URL must start with http:// or https://";
    return std::nullopt;
  }
  out.tls = scheme == "https";
  auto rest = url.substr(scheme_end + 3);
  auto authority_end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, authority_end);
  auto target = authority_end == std::string_view::npos
    ? std::string_view{}
    : rest.substr(authority_end);
  target = target.substr(0, target.find('#'));
  if (authority.find('@') != std::string_view::npos) {
    error = "URL must not contain user info";
    return std::nullopt;
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      error = "URL has an unclosed [ in its host";
      return std::nullopt;
    }
    out.host = std::string{authority.substr(1, close - 1)};
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        error = "URL has junk after its [host]";
        return std::nullopt;
      }
      port = after.substr(1);
      out.explicit_port = true;
    }
  } else {
    auto colon = authority.find(':');
    out.host = std::string{authority.substr(0, colon)};
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      out.explicit_port = true;
    }
  }
  if (out.host.empty()) {
    error = "URL has no host";
    return std::nullopt;
  }
  if (out.explicit_port) {
    unsigned value = 0;
    bool digits = !port.empty() && port.size() <= 5;
    for (char c : port) {
      if (c < '0' || c > '9') {
        digits = false;
        break;
      }
      value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (!digits || value == 0 || value > 65535) {
      error = "URL has an invalid port";
      return std::nullopt;
    }
    out.port = std::to_string(value);
  } else {
    out.port = out.tls ? "443" : "80";
  }
  out.target = target.empty() || target.front() != '/'
    ? "/" + std::string{target}
    : std::string{target};
  return out;
}

} // namespace switchyard
