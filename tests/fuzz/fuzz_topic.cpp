// The topic grammar and matching (schemas/topic.hpp) on splits of the input
// at its first two newlines: a pattern, another pattern and a topic. Beyond
// not crashing, matching must agree with the grammar and with `covers`.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "schemas/topic.hpp"

using namespace switchyard;

namespace {

/// Cuts `in` at its first newline: returns the part before, keeps the rest.
std::string_view next_part(std::string_view& in) {
  auto nl = in.find('\n');
  auto part = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  return part;
}

void check(bool condition) {
  if (!condition)
    __builtin_trap();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  auto a = next_part(in);
  auto b = next_part(in);
  auto t = in;
  std::string why;
  bool a_ok = topic::valid_pattern(a, &why);
  check(a_ok == why.empty());
  bool b_ok = topic::valid_pattern(b);
  bool t_ok = topic::valid_topic(t, &why);
  topic::org_of(a);
  if (t_ok) {
    check(topic::valid_pattern(t));
    check(topic::matches(t, t));
    check(topic::covers(t, t));
  }
  if (!a_ok || !b_ok)
    return 0;
  auto a_covers_b = topic::covers(a, b);
  check(topic::covers(a, a));
  if (a_covers_b && topic::covers(b, a))
    check(a == b); // covering both ways: the same pattern
  if (!t_ok)
    return 0;
  auto a_t = topic::matches(a, t);
  if (a_covers_b && topic::matches(b, t))
    check(a_t); // what the inner pattern matches, the outer one matches
  if (a_t && !topic::org_of(a).empty())
    check(topic::org_of(a) == topic::org_of(t));
  return 0;
}
