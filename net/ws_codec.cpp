#include "net/ws_codec.hpp"

#include <algorithm>

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace switchyard::net {

using frames::opcode;
namespace close_code = frames::close_code;

namespace {

constexpr bool is_control(opcode op) {
  return (static_cast<uint8_t>(op) & 0x8) != 0;
}

/// Bytes of the extended payload length after the first two header bytes.
constexpr size_t extended_length_size(uint8_t second_byte) {
  switch (second_byte & 0x7F) {
    case 126: return 2;
    case 127: return 8;
    default: return 0;
  }
}

constexpr size_t mask_size = 4;

} // namespace

ws_parser::status ws_parser::fail(uint16_t code, const char* why) {
  close_code_ = code;
  error_ = why;
  in_ = in_end_;
  return status::error;
}

bool ws_parser::refuse(uint16_t code, const char* why) {
  fail(code, why);
  return false;
}

ws_parser::status ws_parser::next() {
  if (close_code_ != 0)
    return status::error;
  // The last message is handled by now (or was moved out): its memory goes.
  std::string{}.swap(msg_.payload);
  while (in_ != in_end_) {
    if (!in_payload_) {
      header_[header_size_++] = static_cast<uint8_t>(*in_++);
      if (header_size_ < 2)
        continue;
      auto ext = extended_length_size(header_[1]);
      if (header_size_ == 2 || header_size_ == 2 + ext) {
        if (!start_frame())
          return status::error;
      }
      if (header_size_ < 2 + ext + mask_size)
        continue;
      std::copy_n(header_.begin() + 2 + ext, mask_size, mask_.begin());
      mask_pos_ = 0;
      in_payload_ = true;
      header_size_ = 0;
      if (remaining_ > 0)
        continue;
    } else {
      auto n = static_cast<size_t>(
        std::min<uint64_t>(remaining_, static_cast<uint64_t>(in_end_ - in_)));
      take_payload(n);
      if (close_code_ != 0)
        return status::error;
      if (remaining_ > 0)
        continue;
    }
    // The current frame is complete.
    in_payload_ = false;
    if (is_control(op_)) {
      if (op_ == opcode::close && !check_close())
        return status::error;
      msg_.op = op_;
      msg_.payload = control_;
      return status::message;
    }
    if (!fin_)
      continue;
    in_message_ = false;
    if (skipping_)
      continue;
    if (partial_op_ == opcode::text && !utf8_.finish())
      return fail(close_code::invalid_payload,
                  "invalid UTF-8 in a text message");
    msg_.op = partial_op_;
    msg_.payload = std::move(partial_);
    partial_.clear();
    return status::message;
  }
  return status::need_more;
}

bool ws_parser::start_frame() {
  auto ext = extended_length_size(header_[1]);
  if (header_size_ == 2) {
    // Everything the first two bytes tell is checked at once, before the
    // client sends another byte.
    fin_ = (header_[0] & 0x80) != 0;
    op_ = static_cast<opcode>(header_[0] & 0x0F);
    if ((header_[0] & 0x70) != 0)
      return refuse(close_code::protocol_error, "reserved bits set");
    if ((header_[1] & 0x80) == 0)
      return refuse(close_code::protocol_error, "client frames must be masked");
    switch (op_) {
      case opcode::close:
      case opcode::ping:
      case opcode::pong:
        if (!fin_)
          return refuse(close_code::protocol_error, "fragmented control frame");
        if (ext != 0 || (header_[1] & 0x7F) > 125)
          return refuse(close_code::protocol_error,
                        "control frame longer than 125 bytes");
        break;
      case opcode::continuation:
        if (!in_message_)
          return refuse(close_code::protocol_error,
                        "continuation without a message");
        break;
      case opcode::text:
      case opcode::binary:
        if (in_message_)
          return refuse(close_code::protocol_error,
                        "new message inside a fragmented one");
        break;
      default: return refuse(close_code::protocol_error, "reserved opcode");
    }
    if (ext != 0)
      return true; // the length follows
    remaining_ = header_[1] & 0x7F;
  } else if (ext == 2) {
    remaining_ = (uint64_t{header_[2]} << 8) | header_[3];
    if (remaining_ < 126)
      return refuse(close_code::protocol_error,
                    "payload length not minimally encoded");
  } else {
    if ((header_[2] & 0x80) != 0)
      return refuse(close_code::protocol_error,
                    "64-bit payload length with the top bit set");
    remaining_ = 0;
    for (size_t i = 2; i < 10; ++i)
      remaining_ = (remaining_ << 8) | header_[i];
    if (remaining_ <= 0xFFFF)
      return refuse(close_code::protocol_error,
                    "payload length not minimally encoded");
  }
  // The length is known: take the frame on.
  if (is_control(op_)) {
    control_.clear();
    return true;
  }
  if (op_ != opcode::continuation) {
    in_message_ = true;
    partial_op_ = op_;
    partial_.clear();
    utf8_.reset();
  }
  skipping_ = skip_data_;
  if (skipping_)
    return true; // nothing is kept, so no size limit applies
  // partial_.size() <= max_ holds, so the subtraction cannot wrap and no
  // addition can overflow.
  if (remaining_ > max_ - partial_.size())
    return refuse(close_code::too_large, "message too large");
  // A message in one frame gets exactly its size (so its capacity is its
  // size); fragments grow the buffer as they come.
  if (fin_ && op_ != opcode::continuation)
    partial_.reserve(static_cast<size_t>(remaining_));
  return true;
}

void ws_parser::take_payload(size_t n) {
  auto* src = reinterpret_cast<const uint8_t*>(in_);
  in_ += n;
  remaining_ -= n;
  auto unmask = [&](char* out) {
    for (size_t i = 0; i < n; ++i)
      out[i] = static_cast<char>(src[i] ^ mask_[(mask_pos_ + i) & 3]);
    mask_pos_ = (mask_pos_ + n) & 3;
  };
  if (is_control(op_)) {
    auto old = control_.size();
    control_.resize(old + n);
    unmask(control_.data() + old);
    return;
  }
  if (skipping_)
    return;
  auto old = partial_.size();
  partial_.resize(old + n);
  unmask(partial_.data() + old);
  // Text is checked as it arrives: the first invalid byte fails the
  // connection, even in the first fragment of a long message.
  if (partial_op_ == opcode::text
      && !utf8_.write(reinterpret_cast<const uint8_t*>(partial_.data() + old),
                      n))
    fail(close_code::invalid_payload, "invalid UTF-8 in a text message");
}

bool ws_parser::check_close() {
  if (control_.empty())
    return true;
  if (control_.size() == 1)
    return refuse(close_code::protocol_error,
                  "close frame with a 1-byte payload");
  if (!valid_close_code(close_code_of(control_)))
    return refuse(close_code::protocol_error, "invalid close code");
  // A checker of its own: a close may arrive inside a fragmented text
  // message, whose state must survive it.
  boost::beast::websocket::detail::utf8_checker reason;
  if (!reason.write(reinterpret_cast<const uint8_t*>(control_.data() + 2),
                    control_.size() - 2)
      || !reason.finish())
    return refuse(close_code::invalid_payload,
                  "invalid UTF-8 in a close reason");
  return true;
}

uint16_t close_code_of(std::string_view payload) {
  if (payload.size() < 2)
    return close_code::no_status;
  return static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8)
                               | static_cast<uint8_t>(payload[1]));
}

bool valid_close_code(uint16_t code) {
  // RFC 6455 7.4.1 defines 1000-1003 and 1007-1011; IANA registered
  // 1012-1014 since. 1004-1006 and 1015 must never be sent; 3000-4999 are
  // for libraries and applications.
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
    || (code >= 3000 && code <= 4999);
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
