// Webhook sources (`POST /v1/ingest/{source}`): the `[ingest.<source>]`
// sections of the config file, signature verification (HMAC-SHA256 of the
// raw body, optionally with a timestamp against replays) and the mapping of
// a verified body to one event topic. Pure functions: no server, no actor,
// no clock of their own, so the unit tests and the fuzzer drive them
// directly; net/http_router.cpp only adds the HTTP and the bus.

#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::ingest {

// -- defaults -----------------------------------------------------------------

/// Largest webhook body (`--max-ingest-body`): GitHub's payloads are a few
/// KiB to a few hundred KiB, and the event must still fit a client's
/// outbound queue (1 MiB by default) and NATS's default max_payload (1 MiB)
/// with room to spare; a body near either would cut subscribers (4409) or
/// fail over NATS (503).
constexpr size_t default_max_body = 256 * 1024;

/// How far a signed timestamp may be from the node's clock, either way
/// (`tolerance`): the window in which a captured request can be replayed,
/// and the slack for clock skew and the sender's retries (Stripe and Slack
/// use 5 minutes too).
constexpr std::chrono::milliseconds default_tolerance{300'000};

/// Event header names of kept request headers start with this
/// (`ingest-x-github-delivery`).
constexpr std::string_view header_prefix = "ingest-";

/// `source` of an ingested event: `ingest:<source name>`.
constexpr std::string_view event_source_prefix = "ingest:";

// -- configuration ------------------------------------------------------------

/// How the signature header encodes the 32 bytes of the HMAC.
enum class encoding : uint8_t {
  /// 64 hex digits, either case.
  hex,
  /// 44 characters of standard base64 (43 without the `=` padding).
  base64,
};

/// One piece of a template: literal text or a placeholder.
struct segment {
  enum kind_t : uint8_t {
    /// `text` as it is.
    literal,
    /// `{body.a.b}`: the value at `path` in the JSON body.
    body,
    /// `{header.Name}`: the request header `text`.
    header,
  };
  kind_t kind = literal;
  /// Literal text, or the header name.
  std::string text;
  /// Object keys (or array indexes, in decimal) from the body's root.
  std::vector<std::string> path;
  /// `|token` after the placeholder: every byte outside `[A-Za-z0-9_-]`
  /// becomes `_` (`orders/create` -> `orders_create`).
  bool to_token = false;
};

/// A template of one key (`resource`, `event`, `resource-id`, `id`).
struct text_template {
  /// The config key, for messages.
  std::string key;
  /// The template as configured.
  std::string spec;
  std::vector<segment> segments;
};

/// One `[ingest.<name>]` section, validated.
struct source {
  /// The `<source>` token of the topic and of the URL.
  std::string name;
  /// The `<org>` token of the topic.
  std::string org;
  /// The HMAC key (never logged, never in a message).
  std::string secret;
  /// Request header holding the signature (`X-Hub-Signature-256`).
  std::string signature_header;
  /// Text before the encoded signature (`sha256=`), compared without
  /// regard to case.
  std::string signature_prefix;
  encoding signature_encoding = encoding::hex;
  /// Request header holding unix seconds; empty: no timestamp check.
  std::string timestamp_header;
  /// Whether the HMAC covers `<timestamp>.<body>` (the default with a
  /// timestamp header) rather than the body alone.
  bool timestamp_signed = false;
  std::chrono::milliseconds tolerance = default_tolerance;
  text_template resource;
  text_template event;
  text_template resource_id;
  /// Event id template; none: the node assigns one.
  std::optional<text_template> id;
  /// Request headers copied into the event's headers (as
  /// `ingest-<lower-case name>`): those the templates name, the timestamp
  /// header and `keep-headers`.
  std::vector<std::string> kept_headers;

  /// Whether a template reads the body (which must then be a JSON object).
  bool reads_body() const;
};

/// One `key = value` line of the config file under `[ingest.<name>]`:
/// `ingest.<name>.<key>` and the value, as boost::program_options reports
/// them.
using config_entry = std::pair<std::string, std::string>;

/// Builds the sources of `entries` (in file order) into `out`. Returns an
/// empty string, or what is wrong, naming the section and the key
/// (`[ingest.github] org: required`) and never a secret. Reads
/// `secret-file`.
std::string parse_sources(const std::vector<config_entry>& entries,
                          std::vector<source>& out);

/// Parses one template; `topic_token` restricts its literal text to
/// `[A-Za-z0-9_-]`. Returns an empty string or what is wrong.
std::string parse_template(std::string key, std::string spec, bool topic_token,
                           text_template& out);

// -- requests -----------------------------------------------------------------

/// What became of one request, for the answer and
/// `switchyard_ingest_requests_total{result}`.
enum class outcome : uint8_t {
  /// Published (202).
  accepted,
  /// Not a POST (405).
  method_not_allowed,
  /// Body over `--max-ingest-body` (413).
  too_large,
  /// No signature header (401).
  missing_signature,
  /// A signature that is malformed or does not match (401).
  bad_signature,
  /// Timestamp header missing or not unix seconds (401).
  bad_timestamp,
  /// A signed timestamp outside the tolerance, either way (401).
  stale_timestamp,
  /// Not JSON, nested too deep, or not an object while the templates read
  /// it (422).
  malformed_body,
  /// A template could not be rendered: a missing field or header, a value
  /// that is no topic token, a topic or id too long (422).
  unmappable,
  /// The bus did not take the event (503).
  unavailable,
};

/// Labels of `outcome`, in order.
constexpr std::array<const char*, 10> outcome_names{
  "accepted",      "method_not_allowed", "too_large",       "missing_signature",
  "bad_signature", "bad_timestamp",      "stale_timestamp", "malformed_body",
  "unmappable",    "unavailable"};

/// HTTP status of `x`.
unsigned http_status(outcome x);

/// `code` of the JSON error body of `x` (`unauthorized`, `unprocessable`...).
const char* error_code(outcome x);

/// Finds a request header by name, without regard to case; nothing when
/// absent.
using header_lookup
  = std::function<std::optional<std::string_view>(std::string_view name)>;

/// The event a verified request maps to.
struct mapped {
  /// `events.<org>.<source>.<resource>.<event>.<resource-id>`.
  std::string topic;
  /// Rendered `id` template; empty without one.
  std::string id;
  /// The body's JSON value, compact (no newline, whatever the sender sent).
  std::string data;
  /// Kept request headers (`ingest-<lower-case name>` -> value).
  std::map<std::string, std::string> headers;
};

/// Outcome of `verify`, `map_event` and `handle`.
struct verdict {
  outcome result = outcome::accepted;
  /// Why, when refused: for the response body and the log.
  std::string message;
  /// The event, when accepted by `handle` or `map_event`.
  mapped event;
};

/// Checks the signature (and timestamp) of a request with `body` at unix
/// time `now_ms`. Accepted or one of the 401 outcomes.
verdict verify(const source& src, std::string_view body,
               const header_lookup& headers, int64_t now_ms);

/// Maps a (verified) request to its event: parses `body` within
/// `max_json_depth` and renders the templates. Accepted or a 422 outcome.
verdict map_event(const source& src, std::string_view body,
                  const header_lookup& headers, size_t max_json_depth);

/// `verify`, then `map_event`.
verdict handle(const source& src, std::string_view body,
               const header_lookup& headers, int64_t now_ms,
               size_t max_json_depth);

/// The HMAC-SHA256 of `parts` concatenated, keyed with `secret`: 32 bytes.
std::string hmac_sha256(std::string_view secret,
                        std::initializer_list<std::string_view> parts);

} // namespace switchyard::ingest
