// The parts of an http:// or https:// URL that a request needs: the
// streamed HTTP client (net/http_stream_client.hpp) and the checks of
// configured URLs (push gateways, agents' APIs) share this parser.

#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace switchyard {

/// What a request needs of an `http://` or `https://` URL.
struct http_url {
  /// https: TLS, with the server's certificate verified against the
  /// system's trust store and the host name.
  bool tls = false;
  /// A name or an IP address (IPv6 without brackets).
  std::string host;
  /// The URL's port, else 80 or 443.
  std::string port;
  /// Whether the URL named its port: the Host header names it then.
  bool explicit_port = false;
  /// Path and query, at least "/".
  std::string target;
};

/// Parses an absolute http or https URL without user info. Sets `error`
/// and returns nothing when `url` is none.
std::optional<http_url> parse_http_url(std::string_view url,
                                       std::string& error);

} // namespace switchyard
