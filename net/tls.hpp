// TLS for the listener (`wss://`, `https://`): OpenSSL through Asio's SSL
// stream. The certificate chain and key are files, read at start and again
// on SIGHUP; a connection keeps the context it was accepted with.

#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

namespace switchyard::net {

/// The listener's certificate and key, swappable while the node runs.
class tls_config {
public:
  /// Reads `cert_file` (PEM chain, leaf first) and `key_file` (PEM key).
  /// Returns null and sets `error` when either is unreadable or they do not
  /// belong together.
  static std::shared_ptr<tls_config>
  load(std::string cert_file, std::string key_file, std::string& error);

  /// Reads both files again. On failure, keeps the current context and
  /// returns why; returns an empty string on success.
  std::string reload();

  /// The context for the next connection.
  std::shared_ptr<boost::asio::ssl::context> current() const;

private:
  tls_config(std::string cert_file, std::string key_file);

  /// A fresh server context from the files, or null with `error` set.
  std::shared_ptr<boost::asio::ssl::context> make(std::string& error) const;

  std::string cert_file_;
  std::string key_file_;
  /// Read and written with std::atomic_load/std::atomic_store: reloads run
  /// on the HTTP thread while I/O threads accept.
  std::shared_ptr<boost::asio::ssl::context> ctx_;
};

} // namespace switchyard::net
