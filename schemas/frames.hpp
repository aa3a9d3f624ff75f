// Encoders for protocol v1 server frames, as JSON text and as complete
// WebSocket frames. An event frame is encoded once per (subscription, event)
// and the same bytes go to every recipient: server frames are never masked
// (RFC 6455 5.1), so the wire bytes do not depend on the connection.

#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "schemas/messages.hpp"

namespace switchyard::frames {

// -- WebSocket opcodes and close codes
// -----------------------------------------

/// RFC 6455 opcodes.
enum class opcode : uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// Close codes of protocol v1 (4xxx are ours; 1xxx from RFC 6455).
namespace close_code {
constexpr uint16_t normal = 1000;          // RFC 6455: normal closure
constexpr uint16_t going_away = 1001;      // node shutting down
constexpr uint16_t protocol_error = 1002;  // RFC 6455: protocol error
constexpr uint16_t no_status = 1005;       // RFC 6455: no code in close frame
constexpr uint16_t abnormal = 1006;        // RFC 6455: closed without a frame
constexpr uint16_t invalid_payload = 1007; // RFC 6455: e.g. bad UTF-8
constexpr uint16_t too_large = 1009;       // message larger than allowed
constexpr uint16_t internal_error = 1011;  // RFC 6455: server failure
constexpr uint16_t unauthorized = 4401;    // bad/expired token, auth timeout
constexpr uint16_t heartbeat = 4408;       // pong missing within timeout
constexpr uint16_t slow_consumer = 4409;   // outbound queue over its limit
constexpr uint16_t too_many = 4429;        // inbound rate or connection limit
} // namespace close_code

using frame_ptr = std::shared_ptr<const std::string>;

// -- subprotocols -------------------------------------------------------------

/// How a connection's server frames are encoded: its WebSocket subprotocol.
enum class wire_format : uint8_t {
  /// `switchyard.v1.json`: one JSON object per text frame (the default).
  json,
  /// `switchyard.v1.ndjson`: one or more JSON objects per text frame,
  /// separated by `\n`.
  ndjson,
  /// `switchyard.v1.msgpack`: one or more msgpack maps per binary frame.
  msgpack,
};

/// The `Sec-WebSocket-Protocol` token of `format`.
std::string_view subprotocol_name(wire_format format);

/// Picks the first subprotocol of `offered` (the comma-separated tokens of
/// the client's `Sec-WebSocket-Protocol` headers, in its order of
/// preference) that the node speaks; json when the client offered none, and
/// nothing when it offered only protocols the node does not speak.
std::optional<wire_format> negotiate_subprotocol(std::string_view offered);

/// Whether `format` packs several messages into one WebSocket frame: the
/// connection then queues bare messages and frames them at write time.
constexpr bool batched(wire_format format) {
  return format != wire_format::json;
}

/// One server message as a connection of `format` queues it: a complete
/// text frame for json, the object and its `\n` separator for ndjson
/// (the last separator of a frame is left out when it is written), the
/// msgpack map for msgpack. `json` is the message as JSON text.
std::string encode_message(wire_format format, std::string_view json);

/// An event for every recipient of `subscription` whose connection speaks
/// `format`, encoded as `encode_message` would encode `event_json`.
frame_ptr encode_event(wire_format format, std::string_view subscription,
                       const event& ev);

/// The header of a final, unmasked frame with a payload of `size` bytes,
/// written to `out` (room for 10 bytes); returns its length.
size_t frame_header(opcode op, uint64_t size, char* out);

// -- WebSocket framing
// ---------------------------------------------------------

/// Encodes one unmasked, final WebSocket frame.
std::string ws_frame(opcode op, std::string_view payload);

/// Encodes a close frame with `code` and a reason (cut to 123 bytes).
std::string ws_close(uint16_t code, std::string_view reason);

// -- JSON frames of protocol v1
// ------------------------------------------------

/// Escapes `str` as a JSON string literal, quotes included.
std::string json_string(std::string_view str);

/// `{"type":"event",...}` for one subscription; with its `seq` and
/// `epoch` when it came from the history stream.
std::string event_json(std::string_view subscription, const event& ev);

/// `{"type":"ok","id":...}`.
std::string ok_json(std::string_view id);

/// `{"type":"ok","id":...,"recovered":...}`: the answer to a subscribe
/// with `recover`, after its replay: whether it was complete (else why),
/// and the position it reached.
std::string recovered_json(std::string_view id, const replay_result& res);

/// Who is present, as `GET /v1/presence` answers: `{"presence_topic",
/// "users","sessions","capped","members":[{"user","sessions","nodes"}]}`.
nlohmann::json presence_object(const presence_info& info);

/// `{"type":"presence","id":...}` with `presence_object`'s fields: the
/// answer to a presence frame.
std::string presence_json(std::string_view id, const presence_info& info);

/// `{"type":"ok","id":...,"event_id":...}`: a publish frame accepted.
std::string published_json(std::string_view id, std::string_view event_id);

/// `{"type":"error",...}`; `id` is left out when empty.
std::string error_json(std::string_view id, std::string_view code,
                       std::string_view message);

/// `{"type":"welcome",...}`.
std::string welcome_json(std::string_view session, std::string_view user,
                         std::string_view org, int64_t heartbeat_ms,
                         int64_t expires_at, wire_format format);

} // namespace switchyard::frames
