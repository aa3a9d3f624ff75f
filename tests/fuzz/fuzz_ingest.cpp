// Webhook verification and mapping (schemas/ingest.hpp) on arbitrary
// requests. Byte 0: bits 0-1 pick one of four sources (hex with a prefix and
// an id template; base64 over `<timestamp>.<body>`; headers and literals
// with the `|token` filter; array paths with an unsigned timestamp), bit 2
// makes the harness sign the request itself (and stamp it with its clock),
// so that arbitrary bodies and headers get past the signature into the
// mapping. The rest: `Name: value` header lines up to an empty line, then
// the body.

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "schemas/ingest.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"
#include "schemas/rooms.hpp"
#include "schemas/topic.hpp"

using namespace switchyard;

namespace {

/// A fixed clock keeps every run of an input the same: 2023-11-14.
constexpr int64_t now_s = 1'700'000'000;

constexpr size_t max_depth = 16;

const std::vector<ingest::source>& sources() {
  static const std::vector<ingest::source> instance = [] {
    std::vector<ingest::config_entry> keys;
    auto add = [&keys](const char* name,
                       std::vector<std::pair<const char*, const char*>> kvs) {
      for (auto& [k, v] : kvs)
        keys.emplace_back(std::string{"ingest."} + name + "." + k, v);
    };
    add("github",
        {{"org", "org_1"},
         {"secret", "gh"},
         {"signature-header", "X-Hub-Signature-256"},
         {"signature-prefix", "sha256="},
         {"event", "{header.X-GitHub-Event}"},
         {"resource", "repository"},
         {"resource-id", "{body.repository.id}"},
         {"id", "{header.X-GitHub-Delivery}"}});
    add("billing",
        {{"org", "org_1"},
         {"secret", "bill"},
         {"signature-header", "X-Sig"},
         {"signature-encoding", "base64"},
         {"timestamp-header", "X-Ts"},
         {"resource", "{body.type}"},
         {"event", "{body.event|token}"},
         {"resource-id", "{body.data.id}"},
         {"id", "evt-{body.id}"}});
    add("pings",
        {{"org", "org_1"},
         {"secret", "p"},
         {"signature-header", "X-Sig"},
         {"resource", "r-{header.X-A|token}"},
         {"event", "{header.X-B}"},
         {"resource-id", "all"},
         {"keep-headers", "X-C"}});
    add("arrays",
        {{"org", "org_1"},
         {"secret", "a"},
         {"signature-header", "X-Sig"},
         {"timestamp-header", "X-Ts"},
         {"signed-payload", "body"},
         {"tolerance", "30s"},
         {"resource", "{body.a.0}"},
         {"event", "{body.a.1.b|token}"},
         {"resource-id", "{body.c}_{body.a.2}"}});
    std::vector<ingest::source> out;
    if (!ingest::parse_sources(keys, out).empty() || out.size() != 4)
      __builtin_trap();
    return out;
  }();
  return instance;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i]))
        != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

/// HMAC-SHA256 with OpenSSL's one-shot call, not the module's own.
std::string mac_of(const std::string& key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &n);
  return {reinterpret_cast<const char*>(out), n};
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string base64(std::string_view bytes) {
  static constexpr char alphabet[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0)
    out.push_back(alphabet[(acc << (6 - bits)) & 63]);
  while (out.size() % 4 != 0)
    out.push_back('=');
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  auto& src = sources()[data[0] & 3];
  bool sign = (data[0] & 4) != 0;
  std::string_view rest{reinterpret_cast<const char*>(data + 1), size - 1};
  std::vector<std::pair<std::string, std::string>> headers;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    auto line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{}
                                        : rest.substr(nl + 1);
    if (line.empty())
      break;
    auto colon = line.find(':');
    auto value = colon == std::string_view::npos ? std::string_view{}
                                                 : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    headers.emplace_back(line.substr(0, colon), value);
  }
  auto body = rest;
  if (sign) {
    // The harness's own signature and timestamp come first, so they win.
    auto stamp = std::to_string(now_s);
    auto mac = src.timestamp_signed
      ? mac_of(src.secret, stamp + "." + std::string{body})
      : mac_of(src.secret, body);
    auto encoded = src.signature_encoding == ingest::encoding::hex
      ? hex(mac)
      : base64(mac);
    headers.insert(headers.begin(),
                   {src.signature_header, src.signature_prefix + encoded});
    if (!src.timestamp_header.empty())
      headers.insert(headers.begin(), {src.timestamp_header, stamp});
  }
  ingest::header_lookup lookup
    = [&headers](std::string_view name) -> std::optional<std::string_view> {
    for (auto& [k, v] : headers)
      if (iequals(k, name))
        return std::string_view{v};
    return std::nullopt;
  };
  auto checked = ingest::verify(src, body, lookup, now_s * 1000);
  if (sign && checked.result != ingest::outcome::accepted)
    __builtin_trap(); // a correct, fresh signature always verifies
  auto result = ingest::handle(src, body, lookup, now_s * 1000, max_depth);
  auto status = ingest::http_status(result.result);
  if (result.result != ingest::outcome::accepted) {
    if (result.message.empty() || (status != 401 && status != 422))
      __builtin_trap(); // every refusal says why, as a 401 or a 422
    return 0;
  }
  if (checked.result != ingest::outcome::accepted)
    __builtin_trap(); // nothing unverified is ever mapped
  auto& ev = result.event;
  auto prefix = "events." + src.org + "." + src.name + ".";
  if (!topic::valid_topic(ev.topic) || ev.topic.rfind(prefix, 0) != 0
      || topic::split(ev.topic).size() != 6 || rooms::is_room_topic(ev.topic))
    __builtin_trap(); // a produced topic is always a valid one of its source
  if (!ev.id.empty() && !valid_event_id(ev.id))
    __builtin_trap();
  if (src.id && ev.id.empty())
    __builtin_trap();
  if (ev.data.find('\n') != std::string::npos
      || json_limits::parse_json(ev.data, max_depth).error
        != json_limits::failure::none)
    __builtin_trap(); // data is one line of JSON within the depth limit
  for (auto& [k, v] : ev.headers)
    if (k.rfind(ingest::header_prefix, 0) != 0)
      __builtin_trap();
  return 0;
}
