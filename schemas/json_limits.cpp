#include "schemas/json_limits.hpp"

#include <boost/beast/websocket/detail/utf8_checker.hpp>

namespace switchyard::json_limits {

bool valid_utf8(std::string_view str) {
  boost::beast::websocket::detail::utf8_checker check;
  return check.write(reinterpret_cast<const uint8_t*>(str.data()), str.size())
    && check.finish();
}

namespace {

using nlohmann::json;
using dom_parser = nlohmann::detail::json_sax_dom_parser<json>;

/// nlohmann's DOM builder, refusing to open a container past the limit.
/// Returning false from a SAX callback ends the parse at once, so the
/// recursive msgpack reader never goes deeper than the limit either.
class bounded_dom_parser : public dom_parser {
public:
  bounded_dom_parser(json& root, size_t max_depth)
    : dom_parser(root, false), max_depth_(max_depth) {
    // nop
  }

  bool start_object(size_t len) {
    return enter() && dom_parser::start_object(len);
  }

  bool end_object() {
    --depth_;
    return dom_parser::end_object();
  }

  bool start_array(size_t len) {
    return enter() && dom_parser::start_array(len);
  }

  bool end_array() {
    --depth_;
    return dom_parser::end_array();
  }

  bool string(json::string_t& val) {
    return utf8(val) && dom_parser::string(val);
  }

  bool key(json::string_t& val) {
    return utf8(val) && dom_parser::key(val);
  }

  bool too_deep() const {
    return too_deep_;
  }

  bool not_utf8() const {
    return not_utf8_;
  }

private:
  bool utf8(const json::string_t& val) {
    if (valid_utf8(val))
      return true;
    not_utf8_ = true;
    return false;
  }

  bool enter() {
    if (depth_ == max_depth_) {
      too_deep_ = true;
      return false;
    }
    ++depth_;
    return true;
  }

  size_t max_depth_;
  size_t depth_ = 0;
  bool too_deep_ = false;
  bool not_utf8_ = false;
};

result parse(std::string_view input, nlohmann::detail::input_format_t format,
             size_t max_depth) {
  result out;
  bounded_dom_parser sax{out.value, max_depth};
  // Without exceptions, sax_parse reports failure through its return value;
  // the DOM builder may still throw for sizes no container can hold.
  bool ok = false;
  try {
    ok = json::sax_parse(input.begin(), input.end(), &sax, format, true);
  } catch (const json::exception&) {
    ok = false;
  }
  if (!ok) {
    out.value = json::value_t::discarded;
    out.error = sax.too_deep() ? failure::too_deep
      : sax.not_utf8()         ? failure::not_utf8
                               : failure::malformed;
  }
  return out;
}

} // namespace

result parse_json(std::string_view text, size_t max_depth) {
  return parse(text, nlohmann::detail::input_format_t::json, max_depth);
}

result parse_msgpack(std::string_view bytes, size_t max_depth) {
  return parse(bytes, nlohmann::detail::input_format_t::msgpack, max_depth);
}

std::string too_deep_message(size_t max_depth) {
  return "nesting deeper than " + std::to_string(max_depth);
}

std::string field_text(const nlohmann::json& object, const char* key) {
  auto i = object.find(key);
  return i == object.end() ? std::string{"null"} : i->dump();
}

} // namespace switchyard::json_limits
