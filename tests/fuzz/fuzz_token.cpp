// Token verification (schemas/token.hpp) on arbitrary strings. With bit 0 of
// the first byte clear, the rest of the input is the token as a client would
// send it, which rarely gets past the signature. With it set, the rest is a
// JWT header and payload (split at the first newline; the header defaults to
// HS256) that the harness signs with the fuzzing key, so arbitrary claims
// reach libjwt's parser and our claim checks.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "schemas/token.hpp"

using namespace switchyard;

namespace {

constexpr std::string_view key = "fuzz-secret";

/// A fixed clock keeps every run of an input the same: 2023-11-14.
constexpr int64_t now_unix_s = 1'700'000'000;

/// The secret, and one EC P-256 public key as kid `ec` so that the header
/// parsing, key choice and algorithm pinning of asymmetric tokens are
/// fuzzed too (no input can sign for it).
const key_set& keys() {
  static const key_set instance = [] {
    key_set ks;
    ks.secret = std::string{key};
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pkey);
    char* pem = nullptr;
    auto len = BIO_get_mem_data(bio, &pem);
    if (!add_pem_key(ks, "ec", std::string_view{pem, static_cast<size_t>(len)})
           .empty())
      __builtin_trap();
    BIO_free(bio);
    EVP_PKEY_free(pkey);
    return ks;
  }();
  return instance;
}

/// The one call of verify_token.
verified verify(std::string_view token) {
  return verify_token(token, keys(), now_unix_s, std::chrono::seconds(30));
}

std::string base64url(std::string_view in) {
  std::string out;
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  uint32_t acc = 0;
  int bits = 0;
  for (auto c : in) {
    acc = (acc << 8) | static_cast<uint8_t>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0)
    out.push_back(alphabet[(acc << (6 - bits)) & 0x3F]);
  return out;
}

/// `header.payload.signature` with an HS256 signature by `key`.
std::string sign(std::string_view header, std::string_view payload) {
  auto input = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
       &mac_size);
  return input + "."
    + base64url({reinterpret_cast<const char*>(mac), mac_size});
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  std::string_view rest{reinterpret_cast<const char*>(data + 1), size - 1};
  verified result;
  if ((data[0] & 1) == 0) {
    result = verify(rest);
  } else {
    std::string_view header = R"({"alg":"HS256","typ":"JWT"})";
    auto nl = rest.find('\n');
    if (nl != std::string_view::npos) {
      header = rest.substr(0, nl);
      rest.remove_prefix(nl + 1);
    }
    result = verify(sign(header, rest));
  }
  if (result.value.has_value() == !result.error.empty())
    __builtin_trap(); // claims xor a reason
  if (result.value && result.value->exp <= now_unix_s)
    __builtin_trap(); // an expired token never verifies
  return 0;
}
