#include "net/ws_codec.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace switchyard::net {

using frames::opcode;

ws_parser::status ws_parser::fail(uint16_t code, const char* why) {
  close_code_ = code;
  error_ = why;
  return status::error;
}

ws_parser::status ws_parser::next() {
  for (;;) {
    // Compact the buffer once the consumed prefix dominates it, and give
    // the memory back when it ran empty: idle connections hold no buffer.
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
      if (buf_.capacity() > 1024)
        buf_.shrink_to_fit();
    } else if (pos_ > 0 && pos_ * 2 >= buf_.size()) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    auto avail = buf_.size() - pos_;
    if (avail < 2)
      return status::need_more;
    auto* p = reinterpret_cast<const uint8_t*>(buf_.data() + pos_);
    bool fin = (p[0] & 0x80) != 0;
    if ((p[0] & 0x70) != 0)
      return fail(frames::close_code::protocol_error, "reserved bits set");
    auto op = static_cast<opcode>(p[0] & 0x0F);
    bool masked = (p[1] & 0x80) != 0;
    if (!masked)
      return fail(frames::close_code::protocol_error,
                  "client frames must be masked");
    uint64_t len = p[1] & 0x7F;
    size_t header = 2;
    if (len == 126) {
      if (avail < 4)
        return status::need_more;
      len = (uint64_t{p[2]} << 8) | p[3];
      header = 4;
    } else if (len == 127) {
      if (avail < 10)
        return status::need_more;
      len = 0;
      for (int i = 0; i < 8; ++i)
        len = (len << 8) | p[2 + i];
      header = 10;
    }
    bool control = (static_cast<uint8_t>(op) & 0x8) != 0;
    if (control) {
      if (!fin || len > 125)
        return fail(frames::close_code::protocol_error, "bad control frame");
      if (op != opcode::close && op != opcode::ping && op != opcode::pong)
        return fail(frames::close_code::protocol_error, "unknown opcode");
    } else if (op != opcode::continuation && op != opcode::text
               && op != opcode::binary) {
      return fail(frames::close_code::protocol_error, "unknown opcode");
    }
    if (!control && len + partial_.size() > max_)
      return fail(frames::close_code::too_large, "message too large");
    header += 4; // masking key
    if (avail < header + len)
      return status::need_more;
    const uint8_t* key = p + header - 4;
    std::string payload(buf_.data() + pos_ + header, len);
    for (size_t i = 0; i < payload.size(); ++i)
      payload[i] = static_cast<char>(payload[i] ^ key[i % 4]);
    pos_ += header + len;
    if (control) {
      msg_.op = op;
      msg_.payload = std::move(payload);
      return status::message;
    }
    if (op == opcode::continuation) {
      if (!in_message_)
        return fail(frames::close_code::protocol_error,
                    "continuation without a message");
      partial_ += payload;
    } else {
      if (in_message_)
        return fail(frames::close_code::protocol_error,
                    "new message inside a fragmented one");
      partial_ = std::move(payload);
      partial_op_ = op;
      in_message_ = true;
    }
    if (fin) {
      in_message_ = false;
      msg_.op = partial_op_;
      msg_.payload = std::move(partial_);
      partial_.clear();
      return status::message;
    }
  }
}

uint16_t close_code_of(std::string_view payload) {
  if (payload.size() < 2)
    return frames::close_code::no_status;
  return static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8)
                               | static_cast<uint8_t>(payload[1]));
}

std::string websocket_accept(std::string_view key) {
  std::string input{key};
  input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455 GUID
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(),
       digest);
  unsigned char out[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  auto n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

} // namespace switchyard::net
