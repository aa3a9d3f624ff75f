#define CAF_SUITE ingest

#include <caf/test/dsl.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <openssl/hmac.h>
#include <unistd.h>

#include "schemas/ingest.hpp"
#include "schemas/topic.hpp"

using namespace switchyard;
using ingest::outcome;

namespace {

// -- helpers ------------------------------------------------------------------

/// A fixed clock: 2023-11-14T22:13:20Z.
constexpr int64_t now_s = 1'700'000'000;
constexpr int64_t now_ms = now_s * 1000;

constexpr size_t depth = 64;

/// HMAC-SHA256 with OpenSSL's one-shot call, independent of the module's.
std::string mac(const std::string& key, const std::string& data) {
  unsigned char out[32];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &size);
  return {reinterpret_cast<const char*>(out), size};
}

std::string hex(const std::string& bytes, bool upper = false) {
  static constexpr char lower_digits[] = "0123456789abcdef";
  static constexpr char upper_digits[] = "0123456789ABCDEF";
  auto* digits = upper ? upper_digits : lower_digits;
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string base64(const std::string& bytes, bool pad = true) {
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
  while (pad && out.size() % 4 != 0)
    out.push_back('=');
  return out;
}

/// Request headers, looked up without regard to case.
struct headers {
  std::map<std::string, std::string> values;

  headers& set(std::string name, std::string value) {
    for (auto& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    values[name] = std::move(value);
    return *this;
  }

  ingest::header_lookup lookup() const {
    return [this](std::string_view name) -> std::optional<std::string_view> {
      std::string key{name};
      for (auto& c : key)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto i = values.find(key);
      if (i == values.end())
        return std::nullopt;
      return std::string_view{i->second};
    };
  }
};

using entries = std::vector<ingest::config_entry>;

/// `key = value` lines of section `[ingest.<name>]`.
entries section(const std::string& name,
                std::vector<std::pair<std::string, std::string>> keys) {
  entries out;
  for (auto& [k, v] : keys)
    out.emplace_back("ingest." + name + "." + k, v);
  return out;
}

/// The worked example of docs/notifications.md.
entries github_keys() {
  return section("github",
                 {{"org", "org_123"},
                  {"secret", "gh-secret"},
                  {"signature-header", "X-Hub-Signature-256"},
                  {"signature-prefix", "sha256="},
                  {"event", "{header.X-GitHub-Event}"},
                  {"resource", "repository"},
                  {"resource-id", "{body.repository.id}"},
                  {"id", "{header.X-GitHub-Delivery}"}});
}

/// A source with a signed timestamp and base64 signatures.
entries stamped_keys() {
  return section("billing",
                 {{"org", "org_123"},
                  {"secret", "billing-secret"},
                  {"signature-header", "X-Signature"},
                  {"signature-encoding", "base64"},
                  {"timestamp-header", "X-Timestamp"},
                  {"tolerance", "5m"},
                  {"resource", "{body.type}"},
                  {"event", "{body.event}"},
                  {"resource-id", "{body.data.id}"}});
}

ingest::source one_source(const entries& keys) {
  std::vector<ingest::source> out;
  auto err = ingest::parse_sources(keys, out);
  if (!err.empty() || out.size() != 1)
    CAF_FAIL("config should parse: " << err);
  return out.front();
}

/// The error of parsing `keys`.
std::string config_error(const entries& keys) {
  std::vector<ingest::source> out;
  return ingest::parse_sources(keys, out);
}

/// `github_keys()` with `key` replaced (or removed, for an empty value).
entries github_with(const std::string& key, const std::string& value) {
  entries out;
  for (auto& e : github_keys())
    if (e.first != "ingest.github." + key)
      out.push_back(e);
  if (!value.empty())
    out.emplace_back("ingest.github." + key, value);
  return out;
}

constexpr auto pr_body
  = R"({"action":"opened","repository":{"id":42,"name":"hello"}})";

/// A GitHub delivery of `body` signed with `secret`.
headers github_headers(const std::string& body,
                       const std::string& secret = "gh-secret") {
  headers h;
  h.set("X-Hub-Signature-256", "sha256=" + hex(mac(secret, body)))
    .set("X-GitHub-Event", "pull_request")
    .set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  return h;
}

/// A delivery of the timestamped source at unix time `ts`.
headers stamped_headers(const std::string& body, int64_t ts,
                        const std::string& secret = "billing-secret") {
  headers h;
  auto stamp = std::to_string(ts);
  h.set("X-Signature", base64(mac(secret, stamp + "." + body)))
    .set("X-Timestamp", stamp);
  return h;
}

constexpr auto invoice_body
  = R"({"type":"invoice","event":"paid","data":{"id":"in_7"}})";

} // namespace

// -- configuration ------------------------------------------------------------

CAF_TEST(a GitHub style section parses with its defaults) {
  auto src = one_source(github_keys());
  CAF_CHECK_EQUAL(src.name, "github");
  CAF_CHECK_EQUAL(src.org, "org_123");
  CAF_CHECK_EQUAL(src.secret, "gh-secret");
  CAF_CHECK_EQUAL(src.signature_header, "X-Hub-Signature-256");
  CAF_CHECK_EQUAL(src.signature_prefix, "sha256=");
  CAF_CHECK(src.signature_encoding == ingest::encoding::hex);
  CAF_CHECK(src.timestamp_header.empty());
  CAF_CHECK(!src.timestamp_signed);
  CAF_CHECK(src.tolerance == ingest::default_tolerance);
  CAF_CHECK(src.id.has_value());
  CAF_CHECK(src.reads_body());
  CAF_CHECK_EQUAL(
    src.kept_headers,
    (std::vector<std::string>{"X-GitHub-Event", "X-GitHub-Delivery"}));
}

CAF_TEST(a timestamp header signs the timestamp unless signed payload is body) {
  auto src = one_source(stamped_keys());
  CAF_CHECK_EQUAL(src.timestamp_header, "X-Timestamp");
  CAF_CHECK(src.timestamp_signed);
  CAF_CHECK(src.signature_encoding == ingest::encoding::base64);
  CAF_CHECK_EQUAL(src.kept_headers, (std::vector<std::string>{"X-Timestamp"}));
  auto keys = stamped_keys();
  keys.emplace_back("ingest.billing.signed-payload", "body");
  keys.emplace_back("ingest.billing.keep-headers",
                    " X-Request-Id , x-timestamp");
  auto body_only = one_source(keys);
  CAF_CHECK(!body_only.timestamp_signed);
  CAF_CHECK_EQUAL(body_only.kept_headers,
                  (std::vector<std::string>{"X-Timestamp", "X-Request-Id"}));
}

CAF_TEST(sections keep their file order and several may coexist) {
  auto keys = github_keys();
  for (auto& e : stamped_keys())
    keys.push_back(e);
  std::vector<ingest::source> out;
  CAF_CHECK_EQUAL(ingest::parse_sources(keys, out), "");
  CAF_REQUIRE_EQUAL(out.size(), 2u);
  CAF_CHECK_EQUAL(out[0].name, "github");
  CAF_CHECK_EQUAL(out[1].name, "billing");
  CAF_CHECK_EQUAL(ingest::parse_sources({}, out), "");
  CAF_CHECK(out.empty());
}

CAF_TEST(a bad section is refused naming the source and the key) {
  std::vector<std::pair<entries, std::string>> cases{
    {github_with("org", ""), "[ingest.github] org: required"},
    {github_with("org", "org.1"),
     "[ingest.github] org: 'org.1' is not a topic token"},
    {github_with("secret", ""),
     "[ingest.github] secret or secret-file: exactly one"},
    {github_with("secret-file", "/nonexistent/secret"),
     "[ingest.github] secret or secret-file: exactly one"},
    {github_with("signature-header", ""),
     "[ingest.github] signature-header: required"},
    {github_with("signature-header", "X Sig"),
     "[ingest.github] signature-header: 'X Sig' is not a header name"},
    {github_with("signature-encoding", "base32"),
     "[ingest.github] signature-encoding: 'base32' is neither hex nor base64"},
    {github_with("signed-payload", "timestamp.body"),
     "[ingest.github] signed-payload: timestamp.body needs timestamp-header"},
    {github_with("signed-payload", "all"),
     "[ingest.github] signed-payload: 'all' is neither body nor "
     "timestamp.body"},
    {github_with("tolerance", "5m"),
     "[ingest.github] tolerance: needs timestamp-header"},
    {github_with("resource", ""), "[ingest.github] resource: required"},
    {github_with("event", ""), "[ingest.github] event: required"},
    {github_with("resource-id", ""), "[ingest.github] resource-id: required"},
    {github_with("resource", "repo/sitory"),
     "[ingest.github] resource: literal text may only hold"},
    {github_with("event", "{header.X-GitHub-Event"),
     "[ingest.github] event: a '{' without its '}'"},
    {github_with("event", "x}"),
     "[ingest.github] event: a '}' without its '{'"},
    {github_with("event", "{query.x}"),
     "[ingest.github] event: {query.x} is neither"},
    {github_with("resource-id", "{body.repository..id}"),
     "[ingest.github] resource-id: an empty step"},
    {github_with("resource-id", "{header.}"),
     "[ingest.github] resource-id: no header name"},
    {github_with("keep-headers", "X-Ok, Bad Header"),
     "[ingest.github] keep-headers: 'Bad Header' is not a header name"},
    {github_with("colour", "blue"), "[ingest.github] colour: unknown key"},
    {section("git.hub", {{"org", "o"}}),
     "[ingest.git.hub] the source name must be a topic token"},
    {section("conversations",
             {{"org", "o"},
              {"secret", "s"},
              {"signature-header", "X-S"},
              {"resource", "conversation"},
              {"event", "e"},
              {"resource-id", "r"}}),
     "[ingest.conversations] the source name is reserved for rooms"},
    {entries{{"ingest.github", "x"}},
     "ingest.github: put the keys of a source in a section"},
  };
  for (auto& [keys, want] : cases) {
    auto err = config_error(keys);
    CAF_CHECK_EQUAL(err.substr(0, want.size()), want);
  }
  auto twice = github_keys();
  twice.emplace_back("ingest.github.org", "org_9");
  CAF_CHECK_EQUAL(config_error(twice), "[ingest.github] org: given twice");
  for (auto* bad : {"0s", "5", "soon"}) {
    auto keys = stamped_keys();
    for (auto& e : keys)
      if (e.first == "ingest.billing.tolerance")
        e.second = bad;
    CAF_CHECK_EQUAL(config_error(keys),
                    "[ingest.billing] tolerance: needs a duration like 30s, "
                    "5m or 1h");
  }
}

CAF_TEST(no error message ever holds the secret) {
  auto keys = github_with("secret", "s3cr3t-value");
  for (auto& e : keys)
    if (e.first == "ingest.github.resource-id")
      e.second = "{body.id";
  auto err = config_error(keys);
  CAF_CHECK_NOT_EQUAL(err, "");
  CAF_CHECK_EQUAL(err.find("s3cr3t"), std::string::npos);
  auto src = one_source(github_with("secret", "s3cr3t-value"));
  headers h;
  for (auto* sig : {"", "sha256=", "sha256=00", "s3cr3t-value"}) {
    h.set("X-Hub-Signature-256", sig);
    auto r = ingest::verify(src, pr_body, h.lookup(), now_ms);
    CAF_CHECK_EQUAL(r.message.find("s3cr3t"), std::string::npos);
  }
}

CAF_TEST(secret file holds the secret on its first line) {
  char path[] = "/tmp/switchyard-ingest-secret-XXXXXX";
  auto fd = ::mkstemp(path);
  CAF_REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::ofstream out{path};
    out << "from-file\r\nsecond line\n";
  }
  auto keys = github_with("secret", "");
  keys.emplace_back("ingest.github.secret-file", path);
  CAF_CHECK_EQUAL(one_source(keys).secret, "from-file");
  {
    std::ofstream out{path};
    out << "\nlater\n";
  }
  CAF_CHECK_EQUAL(config_error(keys),
                  "[ingest.github] secret-file: the first line is empty");
  std::remove(path);
  CAF_CHECK_EQUAL(config_error(keys),
                  std::string{"[ingest.github] secret-file: cannot read "}
                    + path);
}

// -- signatures ---------------------------------------------------------------

CAF_TEST(the HMAC matches the test vector of GitHub docs) {
  // docs.github.com, "Validating webhook deliveries".
  auto sig = ingest::hmac_sha256("It's a Secret to Everybody",
                                 {"Hello, World!"});
  CAF_CHECK_EQUAL(hex(sig),
                  "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c4"
                  "6f4379c8b043e17");
  CAF_CHECK_EQUAL(ingest::hmac_sha256("k", {"a", ".", "b"}),
                  ingest::hmac_sha256("k", {"a.b"}));
}

CAF_TEST(a hex signature verifies in either case and with the prefix only) {
  auto src = one_source(github_keys());
  auto h = github_headers(pr_body);
  CAF_CHECK(ingest::verify(src, pr_body, h.lookup(), now_ms).result
            == outcome::accepted);
  h.set("X-Hub-Signature-256",
        "SHA256=" + hex(mac("gh-secret", pr_body), true));
  CAF_CHECK(ingest::verify(src, pr_body, h.lookup(), now_ms).result
            == outcome::accepted);
  auto refused = [&](const std::string& value) {
    h.set("X-Hub-Signature-256", value);
    return ingest::verify(src, pr_body, h.lookup(), now_ms);
  };
  auto good = hex(mac("gh-secret", pr_body));
  // No prefix, a short one, a long one, a bad digit, another secret.
  auto r = refused(good);
  CAF_CHECK(r.result == outcome::bad_signature);
  CAF_CHECK_EQUAL(r.message, "X-Hub-Signature-256 does not start with sha256=");
  r = refused("sha256=" + good.substr(2));
  CAF_CHECK(r.result == outcome::bad_signature);
  CAF_CHECK_EQUAL(r.message,
                  "X-Hub-Signature-256 is not 64 hex digits after sha256=");
  CAF_CHECK(refused("sha256=" + good + "00").result == outcome::bad_signature);
  CAF_CHECK(refused("sha256=" + good.substr(1) + "g").result
            == outcome::bad_signature);
  r = refused("sha256=" + hex(mac("other", pr_body)));
  CAF_CHECK(r.result == outcome::bad_signature);
  CAF_CHECK_EQUAL(r.message, "signature does not match");
  // A body changed by one byte.
  h.set("X-Hub-Signature-256", "sha256=" + good);
  CAF_CHECK(
    ingest::verify(src, std::string{pr_body} + " ", h.lookup(), now_ms).result
    == outcome::bad_signature);
  headers none;
  r = ingest::verify(src, pr_body, none.lookup(), now_ms);
  CAF_CHECK(r.result == outcome::missing_signature);
  CAF_CHECK_EQUAL(r.message, "missing signature header X-Hub-Signature-256");
}

CAF_TEST(a base64 signature verifies padded or not ) {
  auto keys = stamped_keys();
  keys.emplace_back("ingest.billing.signed-payload", "body");
  auto src = one_source(keys);
  auto sig = mac("billing-secret", invoice_body);
  headers h;
  h.set("X-Timestamp", std::to_string(now_s));
  auto check = [&](const std::string& value) {
    h.set("X-Signature", value);
    return ingest::verify(src, invoice_body, h.lookup(), now_ms).result;
  };
  CAF_CHECK(check(base64(sig)) == outcome::accepted);
  CAF_CHECK(check(base64(sig, false)) == outcome::accepted);
  CAF_CHECK_EQUAL(base64(sig).size(), 44u);
  CAF_CHECK(check(base64(sig) + "=") == outcome::bad_signature);
  CAF_CHECK(check(base64(sig).substr(1)) == outcome::bad_signature);
  CAF_CHECK(check(hex(sig)) == outcome::bad_signature);
  // base64url digits, and nonzero padding bits in the last digit.
  auto url = base64(sig);
  for (auto& c : url)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  if (url != base64(sig))
    CAF_CHECK(check(url) == outcome::bad_signature);
  // The last of 43 digits carries 4 bits of the MAC and 2 of padding.
  static constexpr std::string_view alphabet
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto loose = base64(sig);
  loose[42] = alphabet[alphabet.find(loose[42]) ^ 1];
  CAF_CHECK(check(loose) == outcome::bad_signature);
  CAF_CHECK(check(base64(mac("other", invoice_body)))
            == outcome::bad_signature);
}

// -- timestamps ---------------------------------------------------------------

CAF_TEST(a signed timestamp is accepted within the tolerance on both sides) {
  auto src = one_source(stamped_keys());
  auto at = [&](int64_t ts) {
    return ingest::verify(src, invoice_body,
                          stamped_headers(invoice_body, ts).lookup(), now_ms);
  };
  CAF_CHECK(at(now_s).result == outcome::accepted);
  CAF_CHECK(at(now_s - 300).result == outcome::accepted);
  CAF_CHECK(at(now_s + 300).result == outcome::accepted);
  auto late = at(now_s - 301);
  CAF_CHECK(late.result == outcome::stale_timestamp);
  CAF_CHECK_EQUAL(late.message,
                  "X-Timestamp is more than 5m away from the node's clock");
  CAF_CHECK(at(now_s + 301).result == outcome::stale_timestamp);
  CAF_CHECK(at(0).result == outcome::stale_timestamp);
  CAF_CHECK_EQUAL(ingest::http_status(outcome::stale_timestamp), 401u);
}

CAF_TEST(the timestamp is part of the signed payload) {
  auto src = one_source(stamped_keys());
  auto h = stamped_headers(invoice_body, now_s);
  // The signature of another time does not cover this one.
  h.set("X-Timestamp", std::to_string(now_s + 1));
  CAF_CHECK(ingest::verify(src, invoice_body, h.lookup(), now_ms).result
            == outcome::bad_signature);
  // A signature over the body alone does not do either.
  h.set("X-Timestamp", std::to_string(now_s))
    .set("X-Signature", base64(mac("billing-secret", invoice_body)));
  CAF_CHECK(ingest::verify(src, invoice_body, h.lookup(), now_ms).result
            == outcome::bad_signature);
}

CAF_TEST(a missing or malformed timestamp is refused) {
  auto src = one_source(stamped_keys());
  auto h = stamped_headers(invoice_body, now_s);
  for (auto* bad : {"", "-5", "1700000000.5", "17e8", "1234567890123"}) {
    h.set("X-Timestamp", bad);
    auto r = ingest::verify(src, invoice_body, h.lookup(), now_ms);
    CAF_CHECK(r.result == outcome::bad_timestamp);
    CAF_CHECK_EQUAL(r.message, "X-Timestamp is not unix seconds");
  }
  headers no_stamp;
  no_stamp.set("X-Signature", base64(mac("billing-secret", invoice_body)));
  auto r = ingest::verify(src, invoice_body, no_stamp.lookup(), now_ms);
  CAF_CHECK(r.result == outcome::bad_timestamp);
  CAF_CHECK_EQUAL(r.message, "missing timestamp header X-Timestamp");
}

CAF_TEST(a stale timestamp with a bad signature is a bad signature) {
  auto src = one_source(stamped_keys());
  auto h = stamped_headers(invoice_body, now_s - 3600, "wrong");
  CAF_CHECK(ingest::verify(src, invoice_body, h.lookup(), now_ms).result
            == outcome::bad_signature);
}

CAF_TEST(with signed payload body the timestamp is checked but not signed) {
  auto keys = stamped_keys();
  keys.emplace_back("ingest.billing.signed-payload", "body");
  auto src = one_source(keys);
  headers h;
  h.set("X-Signature", base64(mac("billing-secret", invoice_body)))
    .set("X-Timestamp", std::to_string(now_s - 10));
  CAF_CHECK(ingest::verify(src, invoice_body, h.lookup(), now_ms).result
            == outcome::accepted);
  h.set("X-Timestamp", std::to_string(now_s - 600));
  CAF_CHECK(ingest::verify(src, invoice_body, h.lookup(), now_ms).result
            == outcome::stale_timestamp);
}

// -- mapping ------------------------------------------------------------------

CAF_TEST(a GitHub delivery maps to its topic and id and data and headers) {
  auto src = one_source(github_keys());
  auto pretty = std::string{"{\n  \"action\": \"opened\",\n  \"repository\": "
                            "{ \"id\": 42, \"name\": \"hello\" }\n}\n"};
  auto h = github_headers(pretty);
  auto r = ingest::handle(src, pretty, h.lookup(), now_ms, depth);
  CAF_REQUIRE(r.result == outcome::accepted);
  CAF_CHECK_EQUAL(r.event.topic,
                  "events.org_123.github.repository.pull_request.42");
  CAF_CHECK(topic::valid_topic(r.event.topic));
  CAF_CHECK_EQUAL(r.event.id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
  // The same value, compact: no newline can split an ndjson frame.
  CAF_CHECK_EQUAL(
    r.event.data,
    R"({"action":"opened","repository":{"id":42,"name":"hello"}})");
  CAF_CHECK_EQUAL(r.event.headers.size(), 2u);
  CAF_CHECK_EQUAL(r.event.headers["ingest-x-github-event"], "pull_request");
  CAF_CHECK_EQUAL(r.event.headers["ingest-x-github-delivery"],
                  "72d3162e-cc78-11e3-81ab-4c9367dc0958");
}

CAF_TEST(without an id template the id is left to the node) {
  auto src = one_source(github_with("id", ""));
  auto r = ingest::map_event(src, pr_body, github_headers(pr_body).lookup(),
                             depth);
  CAF_REQUIRE(r.result == outcome::accepted);
  CAF_CHECK_EQUAL(r.event.id, "");
}

CAF_TEST(templates mix literals and body paths and array indexes and headers) {
  auto keys = github_with("resource", "repo-{body.repository.name}");
  keys = [&] {
    entries out;
    for (auto& e : keys)
      if (e.first != "ingest.github.resource-id")
        out.push_back(e);
    out.emplace_back("ingest.github.resource-id",
                     "{body.commits.1.n}_{header.X-GitHub-Event}");
    return out;
  }();
  auto src = one_source(keys);
  std::string body
    = R"({"repository":{"name":"hello"},"commits":[{"n":1},{"n":-7}]})";
  auto r = ingest::map_event(src, body, github_headers(body).lookup(), depth);
  CAF_REQUIRE(r.result == outcome::accepted);
  CAF_CHECK_EQUAL(r.event.topic,
                  "events.org_123.github.repo-hello.pull_request.-7_pull_"
                  "request");
}

CAF_TEST(a value that is no topic token is refused naming the field) {
  auto src = one_source(github_with("resource-id", "{body.repository.name}"));
  auto with_name = [&](const std::string& name) {
    auto body = R"({"repository":{"name":)" + name + "}}";
    return ingest::map_event(src, body, github_headers(body).lookup(), depth);
  };
  auto r = with_name(R"("octo/hello")");
  CAF_CHECK(r.result == outcome::unmappable);
  CAF_CHECK_EQUAL(r.message,
                  "resource-id: 'octo/hello' is not a topic token "
                  "([A-Za-z0-9_-]+)");
  CAF_CHECK(with_name(R"("")").result == outcome::unmappable);
  CAF_CHECK(with_name(R"("a.b")").result == outcome::unmappable);
  r = with_name("1.5");
  CAF_CHECK(r.result == outcome::unmappable);
  CAF_CHECK_EQUAL(r.message,
                  "resource-id: body.repository.name is not a string or an "
                  "integer");
  for (auto* other : {"true", "null", "[1]", R"({"a":1})"})
    CAF_CHECK(with_name(other).result == outcome::unmappable);
  CAF_CHECK(with_name("18446744073709551615").result == outcome::accepted);
  CAF_CHECK(with_name(R"("Hello_World-2")").result == outcome::accepted);
  // A long value is cut in the message.
  r = with_name("\"" + std::string(300, '/') + "\"");
  CAF_CHECK(r.result == outcome::unmappable);
  CAF_CHECK_LESS(r.message.size(), 140u);
}

CAF_TEST(the token filter makes any value a token) {
  auto src = one_source(github_with("event", "{header.X-GitHub-Event|token}"));
  auto h = github_headers(pr_body);
  h.set("X-GitHub-Event", "orders/create.v2");
  auto r = ingest::map_event(src, pr_body, h.lookup(), depth);
  CAF_REQUIRE(r.result == outcome::accepted);
  CAF_CHECK_EQUAL(r.event.topic,
                  "events.org_123.github.repository.orders_create_v2.42");
  // An empty value stays empty, and is no token.
  h.set("X-GitHub-Event", "");
  CAF_CHECK(ingest::map_event(src, pr_body, h.lookup(), depth).result
            == outcome::unmappable);
}

CAF_TEST(a missing field or header is refused naming it) {
  auto src = one_source(github_keys());
  std::string body = R"({"action":"opened","repository":{"name":"x"}})";
  auto r = ingest::map_event(src, body, github_headers(body).lookup(), depth);
  CAF_CHECK(r.result == outcome::unmappable);
  CAF_CHECK_EQUAL(r.message, "resource-id: the body has no body.repository.id");
  CAF_CHECK_EQUAL(ingest::http_status(r.result), 422u);
  CAF_CHECK_EQUAL(std::string{ingest::error_code(r.result)}, "unprocessable");
  auto h = github_headers(pr_body);
  h.values.erase("x-github-event");
  r = ingest::map_event(src, pr_body, h.lookup(), depth);
  CAF_CHECK(r.result == outcome::unmappable);
  CAF_CHECK_EQUAL(r.message, "event: the request has no header X-GitHub-Event");
  h = github_headers(pr_body);
  h.values.erase("x-github-delivery");
  r = ingest::map_event(src, pr_body, h.lookup(), depth);
  CAF_CHECK(r.result == outcome::unmappable);
  CAF_CHECK_EQUAL(r.message, "id: the request has no header X-GitHub-Delivery");
  // An index past the end, and a path through a scalar.
  auto indexed = one_source(github_with("resource-id", "{body.a.5}"));
  CAF_CHECK(ingest::map_event(indexed, R"({"a":[1]})", h.lookup(), depth).result
            == outcome::unmappable);
  CAF_CHECK(ingest::map_event(indexed, R"({"a":7})", h.lookup(), depth).result
            == outcome::unmappable);
}

CAF_TEST(a body that is not a JSON object is refused when templates read it) {
  auto src = one_source(github_keys());
  auto h = github_headers(pr_body);
  for (auto* bad :
       {"", "not json", "{\"a\":", "{} {}", "[1,2]", "42", "null"}) {
    auto r = ingest::map_event(src, bad, h.lookup(), depth);
    CAF_CHECK(r.result == outcome::malformed_body);
    CAF_CHECK_EQUAL(ingest::http_status(r.result), 422u);
  }
  CAF_CHECK_EQUAL(ingest::map_event(src, "[1]", h.lookup(), depth).message,
                  "body must be a JSON object");
  std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']')
    + "}";
  auto r = ingest::map_event(src, deep, h.lookup(), depth);
  CAF_CHECK(r.result == outcome::malformed_body);
  CAF_CHECK_EQUAL(r.message, "body has nesting deeper than 64");
  // Templates of headers and literals only take any JSON value.
  auto keys = section("pings",
                      {{"org", "org_123"},
                       {"secret", "s"},
                       {"signature-header", "X-S"},
                       {"resource", "ping"},
                       {"event", "{header.X-Kind}"},
                       {"resource-id", "all"}});
  auto pings = one_source(keys);
  CAF_CHECK(!pings.reads_body());
  headers ph;
  ph.set("X-Kind", "beat");
  auto ok = ingest::map_event(pings, " [1, 2] ", ph.lookup(), depth);
  CAF_REQUIRE(ok.result == outcome::accepted);
  CAF_CHECK_EQUAL(ok.event.topic, "events.org_123.pings.ping.beat.all");
  CAF_CHECK_EQUAL(ok.event.data, "[1,2]");
  CAF_CHECK(ingest::map_event(pings, "nope", ph.lookup(), depth).result
            == outcome::malformed_body);
}

CAF_TEST(a topic over the grammar limits or a bad id is refused) {
  auto src = one_source(github_with("resource-id", "{body.name}"));
  auto h = github_headers(pr_body);
  auto body = R"({"name":")" + std::string(250, 'x') + "\"}";
  auto r = ingest::map_event(src, body, h.lookup(), depth);
  CAF_CHECK(r.result == outcome::unmappable);
  CAF_CHECK_EQUAL(r.message, "topic is longer than 256 bytes");
  h.set("X-GitHub-Delivery", std::string(129, 'd'));
  r = ingest::map_event(src, R"({"name":"n"})", h.lookup(), depth);
  CAF_CHECK(r.result == outcome::unmappable);
  CAF_CHECK_EQUAL(r.message.substr(0, 4), "id: ");
  h.set("X-GitHub-Delivery", "");
  CAF_CHECK(ingest::map_event(src, R"({"name":"n"})", h.lookup(), depth).result
            == outcome::unmappable);
  h.set("X-GitHub-Delivery", std::string(128, 'd'));
  CAF_CHECK(ingest::map_event(src, R"({"name":"n"})", h.lookup(), depth).result
            == outcome::accepted);
}

// -- decisions ----------------------------------------------------------------

CAF_TEST(handle checks the signature before it reads the body) {
  auto src = one_source(github_keys());
  // Unmappable and badly signed: 401, not 422.
  auto h = github_headers(pr_body, "wrong");
  CAF_CHECK(ingest::handle(src, "not json", h.lookup(), now_ms, depth).result
            == outcome::bad_signature);
  headers none;
  CAF_CHECK(ingest::handle(src, "not json", none.lookup(), now_ms, depth).result
            == outcome::missing_signature);
  auto signed_garbage = github_headers("not json");
  CAF_CHECK(
    ingest::handle(src, "not json", signed_garbage.lookup(), now_ms, depth)
      .result
    == outcome::malformed_body);
}

CAF_TEST(every outcome has its status and error code) {
  std::vector<std::tuple<outcome, unsigned, std::string>> want{
    {outcome::accepted, 202, "bad_request"},
    {outcome::method_not_allowed, 405, "bad_request"},
    {outcome::too_large, 413, "bad_request"},
    {outcome::missing_signature, 401, "unauthorized"},
    {outcome::bad_signature, 401, "unauthorized"},
    {outcome::bad_timestamp, 401, "unauthorized"},
    {outcome::stale_timestamp, 401, "unauthorized"},
    {outcome::malformed_body, 422, "unprocessable"},
    {outcome::unmappable, 422, "unprocessable"},
    {outcome::unavailable, 503, "unavailable"}};
  CAF_CHECK_EQUAL(want.size(), ingest::outcome_names.size());
  for (auto& [x, status, code] : want) {
    CAF_CHECK_EQUAL(ingest::http_status(x), status);
    if (x != outcome::accepted)
      CAF_CHECK_EQUAL(std::string{ingest::error_code(x)}, code);
  }
  CAF_CHECK_EQUAL(std::string{ingest::outcome_names[0]}, "accepted");
  CAF_CHECK_EQUAL(std::string{ingest::outcome_names[9]}, "unavailable");
}
