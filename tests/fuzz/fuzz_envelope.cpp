// NATS envelopes (schemas/envelope.hpp) on arbitrary payloads. The first
// byte picks the format (bit 0: JSON, else msgpack) and the subject (bit 1:
// the input up to its first NUL byte, else a fixed valid topic). A decoded
// event must survive encoding and decoding again unchanged.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "actors/node_context.hpp"
#include "schemas/envelope.hpp"

using namespace switchyard;

namespace {

constexpr size_t depth = settings::default_max_json_depth;

envelope::decoded decode(bool json, std::string_view subject,
                         std::string_view payload, size_t max_depth) {
  return json ? envelope::from_json(subject, payload, max_depth)
              : envelope::from_msgpack(subject, payload, max_depth);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  auto json = (data[0] & 1) != 0;
  std::string_view rest{reinterpret_cast<const char*>(data + 1), size - 1};
  std::string_view subject = "events.org_1.svc.task.done";
  if ((data[0] & 2) != 0) {
    auto nul = rest.find('\0');
    if (nul == std::string_view::npos)
      return 0;
    subject = rest.substr(0, nul);
    rest.remove_prefix(nul + 1);
  }
  auto out = decode(json, subject, rest, depth);
  if (!out.value) {
    if (out.error.empty())
      __builtin_trap(); // every refusal says why
    return 0;
  }
  auto ev = std::move(*out.value);
  if (ev.topic != subject)
    __builtin_trap();
  if (ev.id.empty())
    ev.id = "fuzz-1"; // as the node does for id-less envelopes
  // A msgpack bin or ext value dumps as {"bytes":[...]}, two levels deeper
  // than it was, so the second decoding allows for that.
  auto again = envelope::from_msgpack(ev.topic, envelope::to_msgpack(ev),
                                      depth + 2);
  if (!again.value || again.value->id != ev.id || again.value->ts != ev.ts
      || again.value->source != ev.source || again.value->data != ev.data
      || again.value->headers != ev.headers)
    __builtin_trap();
  return 0;
}
