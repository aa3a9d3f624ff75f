#include "schemas/topic.hpp"

namespace switchyard::topic {

namespace {

bool valid_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
    || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool check(std::string_view str, bool wildcards, std::string* why) {
  auto fail = [why](const char* msg) {
    if (why != nullptr)
      *why = msg;
    return false;
  };
  if (str.empty())
    return fail("topic is empty");
  if (str.size() > max_bytes)
    return fail("topic is longer than 256 bytes");
  auto tokens = split(str);
  if (tokens.size() > max_tokens)
    return fail("topic has more than 16 tokens");
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto tok = tokens[i];
    if (tok.empty())
      return fail("topic has an empty token");
    if (tok == "*" || tok == ">") {
      if (!wildcards)
        return fail("a published topic may not contain wildcards");
      if (tok == ">" && i + 1 != tokens.size())
        return fail("'>' may only be the last token");
      continue;
    }
    for (auto c : tok)
      if (!valid_token_char(c))
        return fail("tokens may only contain A-Z, a-z, 0-9, '_' and '-'");
  }
  return true;
}

} // namespace

bool valid_topic(std::string_view topic, std::string* why) {
  return check(topic, false, why);
}

bool valid_pattern(std::string_view pattern, std::string* why) {
  return check(pattern, true, why);
}

std::vector<std::string_view> split(std::string_view str) {
  std::vector<std::string_view> result;
  size_t pos = 0;
  for (;;) {
    auto dot = str.find('.', pos);
    if (dot == std::string_view::npos) {
      result.emplace_back(str.substr(pos));
      return result;
    }
    result.emplace_back(str.substr(pos, dot - pos));
    pos = dot + 1;
  }
}

bool matches(std::string_view pattern, std::string_view topic) {
  auto ps = split(pattern);
  auto ts = split(topic);
  for (size_t i = 0; i < ps.size(); ++i) {
    if (ps[i] == ">")
      return ts.size() > i;
    if (i >= ts.size())
      return false;
    if (ps[i] != "*" && ps[i] != ts[i])
      return false;
  }
  return ps.size() == ts.size();
}

bool covers(std::string_view outer, std::string_view inner) {
  auto os = split(outer);
  auto is = split(inner);
  for (size_t i = 0; i < os.size(); ++i) {
    if (os[i] == ">")
      return is.size() > i; // `>` covers one or more tokens of any kind
    if (i >= is.size())
      return false;
    if (os[i] == "*") {
      if (is[i] == ">")
        return false; // `>` may stand for several tokens, `*` for one
      continue;
    }
    if (os[i] != is[i])
      return false; // a literal covers only itself, never a wildcard
  }
  return os.size() == is.size();
}

std::string_view org_of(std::string_view str) {
  std::string_view rest;
  for (std::string_view prefix : {"events.", "presence."})
    if (str.substr(0, prefix.size()) == prefix)
      rest = str.substr(prefix.size());
  if (rest.empty())
    return {};
  auto dot = rest.find('.');
  auto org = rest.substr(0, dot);
  if (org == "*" || org == ">")
    return {};
  return org;
}

} // namespace switchyard::topic
