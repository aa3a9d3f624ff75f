#include "actors/placement.hpp"

#include <algorithm>
#include <string>

namespace switchyard {

namespace {

constexpr uint64_t fnv_offset = 14695981039346656037ull;
constexpr uint64_t fnv_prime = 1099511628211ull;

uint64_t fnv1a(uint64_t h, std::string_view bytes) {
  for (auto c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= fnv_prime;
  }
  return h;
}

uint64_t splitmix_finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

} // namespace

uint64_t rendezvous_score(std::string_view member, std::string_view key) {
  // The NUL separates the two: ("ab", "c") and ("a", "bc") score apart.
  auto h = fnv1a(fnv_offset, member);
  h = fnv1a(h, std::string_view{"\0", 1});
  return splitmix_finalize(fnv1a(h, key));
}

const node_card* owner_of(const member_view& members, std::string_view key) {
  const node_card* best = nullptr;
  uint64_t best_score = 0;
  for (auto& m : members) {
    auto score = rendezvous_score(m.name, key);
    if (best == nullptr || score > best_score) {
      best = &m;
      best_score = score;
    }
  }
  return best;
}

const node_card* remote_owner(const member_view& members,
                              std::string_view key) {
  if (members.size() < 2)
    return nullptr;
  auto* owner = owner_of(members, key);
  return owner == &members.front() ? nullptr : owner;
}

bool same_incarnation(const node_card& x, const node_card& y) {
  return x.name == y.name && x.started_at == y.started_at;
}

bool has_newcomer(const member_view& before, const member_view& now) {
  return std::any_of(now.begin(), now.end(), [&](const node_card& m) {
    return std::none_of(before.begin(), before.end(),
                        [&](const node_card& old) {
                          return same_incarnation(old, m);
                        });
  });
}

bool sent_by_member(const caf::strong_actor_ptr& sender,
                    const member_view& members,
                    caf::strong_actor_ptr node_card::*field) {
  if (!sender)
    return false;
  for (size_t i = 1; i < members.size(); ++i) {
    auto& hdl = members[i].*field;
    if (hdl && hdl->id() == sender->id() && hdl->node() == sender->node())
      return true;
  }
  return false;
}

std::string room_key(std::string_view org, std::string_view room) {
  std::string key{"room/"};
  key.append(org).append("/").append(room);
  return key;
}

} // namespace switchyard
