#include "schemas/ingest.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "schemas/duration.hpp"
#include "schemas/json_limits.hpp"
#include "schemas/messages.hpp"
#include "schemas/rooms.hpp"
#include "schemas/topic.hpp"

namespace switchyard::ingest {

namespace {

// -- characters ---------------------------------------------------------------

bool token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
    || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/// Whether `s` is one topic token.
bool valid_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), token_char);
}

/// An HTTP field name (RFC 9110 token).
bool valid_header_name(std::string_view s) {
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c))
      || extra.find(c) != std::string_view::npos;
  });
}

std::string lower(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size()
    && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x))
             == std::tolower(static_cast<unsigned char>(y));
         });
}

/// `s` quoted for a message, cut at 64 bytes: values come from the request.
std::string shown(std::string_view s) {
  constexpr size_t most = 64;
  if (s.size() <= most)
    return "'" + std::string{s} + "'";
  return "'" + std::string{s.substr(0, most)} + "...'";
}

// -- decoding the signature ---------------------------------------------------

/// Bytes of an HMAC-SHA256.
constexpr size_t mac_size = 32;

int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int base64_digit(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/// Decodes exactly `mac_size` bytes; the length is checked before any
/// decoding.
bool decode_mac(std::string_view text, encoding enc,
                std::array<unsigned char, mac_size>& out) {
  if (enc == encoding::hex) {
    if (text.size() != 2 * mac_size)
      return false;
    for (size_t i = 0; i < mac_size; ++i) {
      auto hi = hex_digit(text[2 * i]);
      auto lo = hex_digit(text[2 * i + 1]);
      if (hi < 0 || lo < 0)
        return false;
      out[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return true;
  }
  // 32 bytes are 43 base64 digits (the last holding 2 bits of padding,
  // which must be zero) and one `=`.
  constexpr size_t digits = (mac_size * 8 + 5) / 6;
  if (text.size() == digits + 1 && text.back() == '=')
    text.remove_suffix(1);
  if (text.size() != digits)
    return false;
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (auto c : text) {
    auto d = base64_digit(c);
    if (d < 0)
      return false;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = static_cast<unsigned char>((acc >> bits) & 0xFF);
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;
}

/// Parses 1 to 12 decimal digits (unix seconds until the year 33658).
std::optional<int64_t> unix_seconds(std::string_view s) {
  if (s.empty() || s.size() > 12)
    return std::nullopt;
  int64_t value = 0;
  for (auto c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

// -- templates ----------------------------------------------------------------

/// Renders one body value: strings as they are, integers in decimal.
bool value_text(const nlohmann::json& value, std::string& out) {
  if (value.is_string())
    out = value.get<std::string>();
  else if (value.is_number_integer() || value.is_number_unsigned())
    out = value.dump();
  else
    return false;
  return true;
}

/// Finds `path` in `body`: object keys, or decimal indexes of arrays.
const nlohmann::json* find_path(const nlohmann::json& body,
                                const std::vector<std::string>& path) {
  auto* at = &body;
  for (auto& step : path) {
    if (at->is_object()) {
      auto i = at->find(step);
      if (i == at->end())
        return nullptr;
      at = &*i;
    } else if (at->is_array()) {
      if (step.empty() || step.size() > 9
          || !std::all_of(step.begin(), step.end(), [](char c) {
               return c >= '0' && c <= '9';
             }))
        return nullptr;
      auto index = std::stoul(step);
      if (index >= at->size())
        return nullptr;
      at = &(*at)[index];
    } else {
      return nullptr;
    }
  }
  return at;
}

std::string placeholder_name(const segment& seg) {
  std::string out;
  if (seg.kind == segment::header) {
    out = "header." + seg.text;
  } else {
    out = "body";
    for (auto& step : seg.path)
      out += "." + step;
  }
  return out;
}

/// Renders `tpl`; on failure returns false with `why` naming the key.
bool render(const text_template& tpl, const nlohmann::json* body,
            const header_lookup& headers, std::string& out, std::string& why) {
  out.clear();
  for (auto& seg : tpl.segments) {
    if (seg.kind == segment::literal) {
      out += seg.text;
      continue;
    }
    std::string value;
    if (seg.kind == segment::header) {
      auto hdr = headers(seg.text);
      if (!hdr) {
        why = tpl.key + ": the request has no header " + seg.text;
        return false;
      }
      value = std::string{*hdr};
    } else {
      auto* found = body == nullptr ? nullptr : find_path(*body, seg.path);
      if (found == nullptr) {
        why = tpl.key + ": the body has no " + placeholder_name(seg);
        return false;
      }
      if (!value_text(*found, value)) {
        why = tpl.key + ": " + placeholder_name(seg)
          + " is not a string or an integer";
        return false;
      }
    }
    if (seg.to_token)
      for (auto& c : value)
        if (!token_char(c))
          c = '_';
    out += value;
  }
  return true;
}

// -- sections -----------------------------------------------------------------

/// Every key a section may hold.
constexpr std::array<std::string_view, 14> known_keys{"org",
                                                      "secret",
                                                      "secret-file",
                                                      "signature-header",
                                                      "signature-prefix",
                                                      "signature-encoding",
                                                      "timestamp-header",
                                                      "signed-payload",
                                                      "tolerance",
                                                      "resource",
                                                      "event",
                                                      "resource-id",
                                                      "id",
                                                      "keep-headers"};

/// Validates one section's keys into `src`.
std::string build_source(const std::string& name,
                         const std::map<std::string, std::string>& keys,
                         source& src) {
  auto get = [&keys](const char* key) -> const std::string* {
    auto i = keys.find(key);
    return i == keys.end() ? nullptr : &i->second;
  };
  src.name = name;
  auto* org = get("org");
  if (org == nullptr)
    return "org: required (the <org> token of the topics)";
  if (!valid_token(*org))
    return "org: " + shown(*org) + " is not a topic token ([A-Za-z0-9_-]+)";
  src.org = *org;
  if (rooms::is_room_topic("events." + src.org + "." + name
                           + ".conversation.e.r"))
    return "the source name is reserved for rooms' events";
  auto* secret = get("secret");
  auto* secret_file = get("secret-file");
  if ((secret == nullptr) == (secret_file == nullptr))
    return "secret or secret-file: exactly one is required";
  if (secret != nullptr) {
    src.secret = *secret;
  } else {
    std::ifstream in{*secret_file};
    if (!in || !std::getline(in, src.secret))
      return "secret-file: cannot read " + *secret_file;
    if (!src.secret.empty() && src.secret.back() == '\r')
      src.secret.pop_back();
  }
  if (src.secret.empty())
    return secret != nullptr ? "secret: empty"
                             : "secret-file: the first line is empty";
  auto* sig = get("signature-header");
  if (sig == nullptr)
    return "signature-header: required (X-Hub-Signature-256, say)";
  if (!valid_header_name(*sig))
    return "signature-header: " + shown(*sig) + " is not a header name";
  src.signature_header = *sig;
  if (auto* prefix = get("signature-prefix"))
    src.signature_prefix = *prefix;
  if (auto* enc = get("signature-encoding")) {
    if (*enc == "hex")
      src.signature_encoding = encoding::hex;
    else if (*enc == "base64")
      src.signature_encoding = encoding::base64;
    else
      return "signature-encoding: " + shown(*enc) + " is neither hex nor "
        + "base64";
  }
  auto* ts = get("timestamp-header");
  if (ts != nullptr) {
    if (!valid_header_name(*ts))
      return "timestamp-header: " + shown(*ts) + " is not a header name";
    src.timestamp_header = *ts;
    src.timestamp_signed = true;
  }
  if (auto* payload = get("signed-payload")) {
    if (*payload == "body")
      src.timestamp_signed = false;
    else if (*payload != "timestamp.body")
      return "signed-payload: " + shown(*payload)
        + " is neither body nor timestamp.body";
    else if (ts == nullptr)
      return "signed-payload: timestamp.body needs timestamp-header";
  }
  if (auto* tol = get("tolerance")) {
    if (ts == nullptr)
      return "tolerance: needs timestamp-header";
    auto parsed = parse_duration(*tol);
    if (!parsed || parsed->count() <= 0)
      return "tolerance: needs a duration like 30s, 5m or 1h";
    src.tolerance = *parsed;
  }
  struct {
    const char* key;
    text_template* target;
  } topic_parts[] = {{"resource", &src.resource},
                     {"event", &src.event},
                     {"resource-id", &src.resource_id}};
  for (auto& part : topic_parts) {
    auto* spec = get(part.key);
    if (spec == nullptr)
      return std::string{part.key} + ": required";
    if (auto err = parse_template(part.key, *spec, true, *part.target);
        !err.empty())
      return err;
  }
  if (auto* id = get("id")) {
    src.id.emplace();
    if (auto err = parse_template("id", *id, false, *src.id); !err.empty())
      return err;
  }
  // Kept headers: those the templates name, the timestamp, then the list.
  auto keep = [&src](const std::string& header) {
    auto same = [&header](const std::string& x) {
      return iequals(x, header);
    };
    if (std::none_of(src.kept_headers.begin(), src.kept_headers.end(), same))
      src.kept_headers.push_back(header);
  };
  for (auto* tpl : {&src.resource, &src.event, &src.resource_id,
                    src.id ? &*src.id : nullptr})
    if (tpl != nullptr)
      for (auto& seg : tpl->segments)
        if (seg.kind == segment::header)
          keep(seg.text);
  if (!src.timestamp_header.empty())
    keep(src.timestamp_header);
  if (auto* list = get("keep-headers")) {
    size_t pos = 0;
    while (pos <= list->size()) {
      auto comma = std::min(list->find(',', pos), list->size());
      auto item = list->substr(pos, comma - pos);
      pos = comma + 1;
      auto first = item.find_first_not_of(" \t");
      if (first == std::string::npos)
        continue;
      item = item.substr(first, item.find_last_not_of(" \t") - first + 1);
      if (!valid_header_name(item))
        return "keep-headers: " + shown(item) + " is not a header name";
      keep(item);
    }
  }
  return {};
}

} // namespace

// -- configuration ------------------------------------------------------------

bool source::reads_body() const {
  for (auto* tpl : {&resource, &event, &resource_id, id ? &*id : nullptr})
    if (tpl != nullptr)
      for (auto& seg : tpl->segments)
        if (seg.kind == segment::body)
          return true;
  return false;
}

std::string parse_template(std::string key, std::string spec, bool topic_token,
                           text_template& out) {
  out.key = std::move(key);
  out.spec = std::move(spec);
  out.segments.clear();
  auto fail = [&out](const std::string& why) {
    return out.key + ": " + why + " in " + shown(out.spec);
  };
  if (out.spec.empty())
    return out.key + ": empty";
  std::string_view rest = out.spec;
  while (!rest.empty()) {
    auto open = rest.find_first_of("{}");
    if (open != 0) {
      auto text = rest.substr(0, open);
      if (topic_token && !std::all_of(text.begin(), text.end(), token_char))
        return fail("literal text may only hold A-Z, a-z, 0-9, '_' and '-'");
      out.segments.push_back({segment::literal, std::string{text}, {}, false});
      if (open == std::string_view::npos)
        break;
      rest.remove_prefix(open);
    }
    if (rest.front() == '}')
      return fail("a '}' without its '{'");
    auto close = rest.find('}');
    if (close == std::string_view::npos)
      return fail("a '{' without its '}'");
    auto inner = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    if (inner.find('{') != std::string_view::npos)
      return fail("a '{' inside a placeholder");
    segment seg;
    constexpr std::string_view filter = "|token";
    if (inner.size() >= filter.size()
        && inner.substr(inner.size() - filter.size()) == filter) {
      seg.to_token = true;
      inner.remove_suffix(filter.size());
    }
    constexpr std::string_view body_prefix = "body.";
    constexpr std::string_view header_prefix = "header.";
    if (inner.substr(0, body_prefix.size()) == body_prefix) {
      seg.kind = segment::body;
      auto path = inner.substr(body_prefix.size());
      for (auto step : topic::split(path)) {
        if (step.empty())
          return fail("an empty step in {" + std::string{inner} + "}");
        seg.path.emplace_back(step);
      }
    } else if (inner.substr(0, header_prefix.size()) == header_prefix) {
      seg.kind = segment::header;
      seg.text = std::string{inner.substr(header_prefix.size())};
      if (!valid_header_name(seg.text))
        return fail("no header name in {" + std::string{inner} + "}");
    } else {
      return fail("{" + std::string{inner}
                  + "} is neither {body.<path>} nor {header.<Name>}");
    }
    out.segments.push_back(std::move(seg));
  }
  return {};
}

std::string parse_sources(const std::vector<config_entry>& entries,
                          std::vector<source>& out) {
  constexpr std::string_view section_prefix = "ingest.";
  // Sections in file order, each with its keys.
  std::vector<std::pair<std::string, std::map<std::string, std::string>>>
    sections;
  for (auto& [full_key, value] : entries) {
    std::string_view rest = full_key;
    if (rest.substr(0, section_prefix.size()) != section_prefix)
      return full_key + ": not an [ingest.<source>] key";
    rest.remove_prefix(section_prefix.size());
    auto dot = rest.rfind('.');
    if (dot == std::string_view::npos)
      return full_key + ": put the keys of a source in a section "
        + "[ingest.<source>]";
    auto name = std::string{rest.substr(0, dot)};
    auto key = std::string{rest.substr(dot + 1)};
    auto section = "[ingest." + name + "] ";
    if (!valid_token(name))
      return section + "the source name must be a topic token ([A-Za-z0-9_-]+)";
    if (std::find(known_keys.begin(), known_keys.end(), key)
        == known_keys.end())
      return section + key + ": unknown key";
    auto i = std::find_if(sections.begin(), sections.end(), [&name](auto& s) {
      return s.first == name;
    });
    if (i == sections.end()) {
      sections.emplace_back(name, std::map<std::string, std::string>{});
      i = std::prev(sections.end());
    }
    if (!i->second.emplace(key, value).second)
      return section + key + ": given twice";
  }
  out.clear();
  for (auto& [name, keys] : sections) {
    source src;
    if (auto err = build_source(name, keys, src); !err.empty())
      return "[ingest." + name + "] " + err;
    out.push_back(std::move(src));
  }
  return {};
}

// -- requests -----------------------------------------------------------------

unsigned http_status(outcome x) {
  switch (x) {
    case outcome::accepted: return 202;
    case outcome::method_not_allowed: return 405;
    case outcome::too_large: return 413;
    case outcome::missing_signature:
    case outcome::bad_signature:
    case outcome::bad_timestamp:
    case outcome::stale_timestamp: return 401;
    case outcome::malformed_body:
    case outcome::unmappable: return 422;
    case outcome::unavailable: return 503;
  }
  return 500;
}

const char* error_code(outcome x) {
  switch (http_status(x)) {
    case 401: return "unauthorized";
    case 422: return "unprocessable";
    case 503: return "unavailable";
    default: return "bad_request";
  }
}

std::string hmac_sha256(std::string_view secret,
                        std::initializer_list<std::string_view> parts) {
  // Fetched once: a fetch looks the algorithm up in OpenSSL's provider
  // tables under a lock.
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  std::string out;
  if (mac == nullptr)
    return out;
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx{
    EVP_MAC_CTX_new(mac), &EVP_MAC_CTX_free};
  char digest[] = "SHA256";
  OSSL_PARAM params[]
    = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
       OSSL_PARAM_construct_end()};
  if (!ctx
      || EVP_MAC_init(ctx.get(),
                      reinterpret_cast<const unsigned char*>(secret.data()),
                      secret.size(), params)
        != 1)
    return out;
  for (auto part : parts)
    if (EVP_MAC_update(ctx.get(),
                       reinterpret_cast<const unsigned char*>(part.data()),
                       part.size())
        != 1)
      return out;
  out.resize(mac_size);
  size_t written = 0;
  if (EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                    &written, out.size())
        != 1
      || written != mac_size)
    out.clear();
  return out;
}

verdict verify(const source& src, std::string_view body,
               const header_lookup& headers, int64_t now_ms) {
  verdict out;
  auto refuse = [&out](outcome x, std::string why) {
    out.result = x;
    out.message = std::move(why);
    return out;
  };
  auto sig = headers(src.signature_header);
  if (!sig)
    return refuse(outcome::missing_signature,
                  "missing signature header " + src.signature_header);
  auto text = *sig;
  if (text.size() < src.signature_prefix.size()
      || !iequals(text.substr(0, src.signature_prefix.size()),
                  src.signature_prefix))
    return refuse(outcome::bad_signature,
                  src.signature_header + " does not start with "
                    + src.signature_prefix);
  text.remove_prefix(src.signature_prefix.size());
  std::array<unsigned char, mac_size> given{};
  if (!decode_mac(text, src.signature_encoding, given))
    return refuse(
      outcome::bad_signature,
      src.signature_header + " is not "
        + (src.signature_encoding == encoding::hex ? "64 hex digits"
                                                   : "32 bytes in base64")
        + (src.signature_prefix.empty() ? std::string{}
                                        : " after " + src.signature_prefix));
  std::optional<int64_t> ts;
  std::string_view ts_text;
  if (!src.timestamp_header.empty()) {
    auto hdr = headers(src.timestamp_header);
    if (!hdr)
      return refuse(outcome::bad_timestamp,
                    "missing timestamp header " + src.timestamp_header);
    ts_text = *hdr;
    ts = unix_seconds(ts_text);
    if (!ts)
      return refuse(outcome::bad_timestamp,
                    src.timestamp_header + " is not unix seconds");
  }
  auto expected = src.timestamp_signed
    ? hmac_sha256(src.secret, {ts_text, ".", body})
    : hmac_sha256(src.secret, {body});
  if (expected.size() != mac_size
      || CRYPTO_memcmp(expected.data(), given.data(), mac_size) != 0)
    return refuse(outcome::bad_signature, "signature does not match");
  // After the signature: only a correctly signed request learns that its
  // timestamp is off, and the log tells a replay (or a skewed clock) from
  // a forgery.
  if (ts) {
    auto skew = *ts * 1000 - now_ms;
    if (skew > src.tolerance.count() || -skew > src.tolerance.count())
      return refuse(outcome::stale_timestamp,
                    src.timestamp_header + " is more than "
                      + format_duration(src.tolerance)
                      + " away from the node's clock");
  }
  return out;
}

verdict map_event(const source& src, std::string_view body,
                  const header_lookup& headers, size_t max_json_depth) {
  verdict out;
  auto refuse = [&out](outcome x, std::string why) {
    out.result = x;
    out.message = std::move(why);
    return out;
  };
  auto parsed = json_limits::parse_json(body, max_json_depth);
  if (parsed.error == json_limits::failure::too_deep)
    return refuse(outcome::malformed_body,
                  "body has " + json_limits::too_deep_message(max_json_depth));
  if (parsed.error != json_limits::failure::none)
    return refuse(outcome::malformed_body, "body is not JSON");
  auto reads_body = src.reads_body();
  if (reads_body && !parsed.value.is_object())
    return refuse(outcome::malformed_body, "body must be a JSON object");
  const nlohmann::json* root = reads_body ? &parsed.value : nullptr;
  std::string parts[3];
  const text_template* tpls[] = {&src.resource, &src.event, &src.resource_id};
  for (size_t i = 0; i < 3; ++i) {
    std::string why;
    if (!render(*tpls[i], root, headers, parts[i], why))
      return refuse(outcome::unmappable, std::move(why));
    if (!valid_token(parts[i]))
      return refuse(outcome::unmappable,
                    tpls[i]->key + ": " + shown(parts[i])
                      + " is not a topic token ([A-Za-z0-9_-]+)");
  }
  auto& ev = out.event;
  ev.topic = "events." + src.org + "." + src.name + "." + parts[0] + "."
    + parts[1] + "." + parts[2];
  std::string why;
  if (!topic::valid_topic(ev.topic, &why))
    return refuse(outcome::unmappable, why);
  if (rooms::is_room_topic(ev.topic))
    return refuse(outcome::unmappable, "room topics come from rooms only");
  if (src.id) {
    if (!render(*src.id, root, headers, ev.id, why))
      return refuse(outcome::unmappable, std::move(why));
    if (!valid_event_id(ev.id))
      return refuse(outcome::unmappable,
                    "id: " + shown(ev.id) + " is not 1 to 128 bytes");
  }
  for (auto& name : src.kept_headers)
    if (auto value = headers(name))
      ev.headers.emplace(std::string{header_prefix} + lower(name),
                         std::string{*value});
  ev.data = parsed.value.dump(-1, ' ', false,
                              nlohmann::json::error_handler_t::replace);
  return out;
}

verdict handle(const source& src, std::string_view body,
               const header_lookup& headers, int64_t now_ms,
               size_t max_json_depth) {
  auto checked = verify(src, body, headers, now_ms);
  if (checked.result != outcome::accepted)
    return checked;
  return map_event(src, body, headers, max_json_depth);
}

} // namespace switchyard::ingest
