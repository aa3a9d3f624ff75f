#include "net/tls.hpp"

#include <openssl/ssl.h>

namespace switchyard::net {

namespace ssl = boost::asio::ssl;

tls_config::tls_config(std::string cert_file, std::string key_file)
  : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {
  // nop
}

std::shared_ptr<tls_config> tls_config::load(std::string cert_file,
                                             std::string key_file,
                                             std::string& error) {
  std::shared_ptr<tls_config> result{
    new tls_config(std::move(cert_file), std::move(key_file))};
  result->ctx_ = result->make(error);
  if (!result->ctx_)
    return nullptr;
  return result;
}

std::string tls_config::reload() {
  std::string error;
  auto fresh = make(error);
  if (!fresh)
    return error;
  std::atomic_store(&ctx_, std::move(fresh));
  return {};
}

std::shared_ptr<ssl::context> tls_config::current() const {
  return std::atomic_load(&ctx_);
}

std::shared_ptr<ssl::context> tls_config::make(std::string& error) const {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  // TLS 1.2 and 1.3 only.
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                     | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                     | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                   ec);
  // OpenSSL frees its own record buffers while a connection is idle (Asio's
  // stream keeps its two 17 KiB buffers regardless).
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (!ec)
    ctx->use_certificate_chain_file(cert_file_, ec);
  if (ec) {
    error = "cannot use TLS certificate " + cert_file_ + ": " + ec.message();
    return nullptr;
  }
  ctx->use_private_key_file(key_file_, ssl::context::pem, ec);
  if (ec) {
    error = "cannot use TLS key " + key_file_ + ": " + ec.message();
    return nullptr;
  }
  // OpenSSL refuses a key of the certificate's type that does not match it,
  // but files a key of another type (EC for an RSA certificate) silently
  // in another slot, leaving the certificate without a key.
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    error = "TLS key " + key_file_ + " does not belong to certificate "
      + cert_file_;
    return nullptr;
  }
  return ctx;
}

} // namespace switchyard::net
