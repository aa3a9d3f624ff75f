#include "net/sse.hpp"

namespace switchyard::net {

bool sse_parser::feed(std::string_view chunk, std::vector<sse_event>& out) {
  if (!error_.empty())
    return false;
  size_t pos = 0;
  if (after_cr_ && !chunk.empty()) {
    after_cr_ = false;
    if (chunk[0] == '\n')
      pos = 1;
  }
  while (pos < chunk.size()) {
    auto end = chunk.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      auto rest = chunk.size() - pos;
      // line_ never exceeds max_line_, so the subtraction cannot wrap.
      if (rest > max_line_ - line_.size())
        return fail("event stream line over " + std::to_string(max_line_)
                    + " bytes");
      line_.append(chunk.data() + pos, rest);
      return true;
    }
    auto piece = chunk.substr(pos, end - pos);
    if (piece.size() > max_line_ - line_.size())
      return fail("event stream line over " + std::to_string(max_line_)
                  + " bytes");
    bool ok;
    if (line_.empty()) {
      ok = on_line(piece, out);
    } else {
      line_.append(piece.data(), piece.size());
      auto line = std::move(line_);
      line_.clear();
      ok = on_line(line, out);
    }
    if (!ok)
      return false;
    pos = end + 1;
    if (chunk[end] == '\r') {
      if (pos == chunk.size())
        after_cr_ = true;
      else if (chunk[pos] == '\n')
        ++pos;
    }
  }
  return true;
}

bool sse_parser::on_line(std::string_view line, std::vector<sse_event>& out) {
  if (first_line_) {
    first_line_ = false;
    constexpr std::string_view bom = "\xEF\xBB\xBF";
    if (line.substr(0, bom.size()) == bom)
      line.remove_prefix(bom.size());
  }
  if (line.empty()) {
    if (!data_.empty()) {
      data_.pop_back(); // the LF after the last data line
      out.push_back(sse_event{type_.empty() ? "message" : type_,
                              std::move(data_), last_id_});
    }
    data_.clear();
    type_.clear();
    return true;
  }
  if (line.front() == ':')
    return true;
  auto field = line;
  std::string_view value;
  if (auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
  }
  if (field == "data") {
    // data_ never exceeds max_event_; the value and its LF must fit in what
    // is left.
    if (value.size() >= max_event_ - data_.size())
      return fail("event stream event over " + std::to_string(max_event_)
                  + " bytes");
    data_.append(value.data(), value.size());
    data_.push_back('\n');
  } else if (field == "event") {
    type_.assign(value.data(), value.size());
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos)
      last_id_.assign(value.data(), value.size());
  }
  // `retry` and unknown fields: this client never reconnects, so neither
  // matters.
  return true;
}

bool sse_parser::fail(std::string reason) {
  error_ = std::move(reason);
  line_.clear();
  line_.shrink_to_fit();
  data_.clear();
  data_.shrink_to_fit();
  return false;
}

} // namespace switchyard::net
