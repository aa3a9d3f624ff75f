// Notification rules, users' contact points and notifications: the values
// that travel between the rule, notifier and store actors. Each has an
// `inspect` overload and a place in the `switchyard` type-ID block
// (schemas/messages.hpp), so any of those actors may live on another node;
// each has a JSON form for the HTTP API and the store. The functions here
// are pure: rule matching, templating, recipients, quiet hours.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/meta/type_name.hpp>
#include <nlohmann/json_fwd.hpp>

namespace switchyard {

struct event;

// -- limits -------------------------------------------------------------------

/// Most conditions in one rule's `when`.
constexpr size_t max_rule_conditions = 32;
/// Most explicit users plus fields in one rule's `recipients`.
constexpr size_t max_rule_recipients = 256;
/// Longest title template; a rendered title is cut to the same length.
constexpr size_t max_title_size = 256;
/// Longest body template; a rendered body is cut to the same length.
constexpr size_t max_body_size = 4096;
/// Longest field path (`data.a.b`) and most steps in it.
constexpr size_t max_field_path_size = 256;
constexpr size_t max_field_path_steps = 16;
/// Most devices per contact.
constexpr size_t max_devices = 16;
/// Longest device token (APNs tokens are 64 hex digits, FCM's ~160 bytes,
/// a Web Push subscription's JSON under 1 KiB).
constexpr size_t max_device_token_size = 2048;
/// Longest operand of a condition (its JSON text: an `in` list of a few
/// hundred ids fits) and most arrays and objects nested in it. Operands are
/// parsed again for every event they are matched against, so both stay
/// small.
constexpr size_t max_condition_value_size = 8192;
constexpr size_t max_condition_value_depth = 16;
/// Most users `direct_recipients` returns: the fields an event names may
/// hold arrays of any length; one event notifies at most this many.
constexpr size_t max_direct_recipients = 1000;
/// Longest email address (RFC 5321's limit on a path).
constexpr size_t max_email_size = 254;
/// Longest time zone name (the longest IANA name has 32 bytes).
constexpr size_t max_tz_size = 64;

// -- priorities and channels --------------------------------------------------

/// "low", "normal", "high" or "urgent" -> 0..3; -1 for anything else.
int priority_rank(std::string_view priority);

/// Whether `channel` is "websocket", "push" or "email".
bool valid_channel(std::string_view channel);

// -- rules --------------------------------------------------------------------

/// One condition of a rule's `when`; all of a rule's conditions must hold.
struct rule_condition {
  /// Where in the event: `data.<path>` (dots between keys, decimal steps
  /// index arrays), `topic`, `id`, `source`, `ts` or `headers.<name>`.
  std::string field;
  /// "equals", "not_equals", "in", "exists", "contains", "gt", "gte", "lt"
  /// or "lte".
  std::string op;
  /// The operand as JSON text: any value for equals/not_equals, an array
  /// for in, a boolean for exists, a string (substring of a string field)
  /// or any value (element of an array field) for contains, a number for
  /// the comparisons.
  std::string value;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, rule_condition& x) {
  return f(caf::meta::type_name("switchyard::rule_condition"), x.field, x.op,
           x.value);
}

/// Whom a rule notifies; the union of all three, each user once.
struct rule_recipients {
  /// Explicit user ids.
  std::vector<std::string> users;
  /// Event fields (paths as in `rule_condition::field`) holding a user id
  /// or an array of user ids.
  std::vector<std::string> fields;
  /// The user participants of the event's room, except the message's
  /// author (room topics only, see schemas/rooms.hpp).
  bool room_participants = false;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, rule_recipients& x) {
  return f(caf::meta::type_name("switchyard::rule_recipients"), x.users,
           x.fields, x.room_participants);
}

/// A notification rule of an org.
struct notification_rule {
  std::string id;
  /// From the token of whoever wrote the rule.
  std::string org;
  /// Subscription pattern (the grammar of `subscribe`), in `org`.
  std::string topic;
  std::vector<rule_condition> when;
  rule_recipients recipients;
  /// Templates with `{{path}}` placeholders (paths as in conditions).
  std::string title;
  std::string body;
  /// "low", "normal", "high" or "urgent".
  std::string priority = "normal";
  /// The channels allowed, a subset of websocket, push and email.
  std::vector<std::string> channels;
  bool enabled = true;
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, notification_rule& x) {
  return f(caf::meta::type_name("switchyard::notification_rule"), x.id, x.org,
           x.topic, x.when, x.recipients, x.title, x.body, x.priority,
           x.channels, x.enabled, x.created_at, x.updated_at);
}

/// Reads a rule from an HTTP body (`POST` or `PUT /v1/notification-rules`)
/// for `org`. `id` is the path's id for PUT, else empty (the body's `id` or
/// a generated one: 16 hex digits). On error returns nothing and sets
/// `error` to a message naming the wrong field, e.g.
/// `when[1].op: unknown operator "foo"`; a field the rule does not have is
/// an error too. Required: `topic` (a pattern `subscribe` would accept
/// from a token of `org`), `recipients` (naming someone) and a non-empty
/// `title`. Defaults: empty body, priority normal, all channels, enabled,
/// no conditions. The fields `to_json` adds (`org`, which must then be
/// `org`, `created_at`, `updated_at`) are accepted and ignored, so a rule
/// read with GET may be sent back with PUT; the result's times are 0 (the
/// caller sets them).
std::optional<notification_rule>
parse_rule(const nlohmann::json& body, const std::string& org,
           const std::string& id, std::string& error);

/// Whether `id` may name a rule: 1 to 64 of `[A-Za-z0-9_-]`.
bool valid_rule_id(std::string_view id);

nlohmann::json to_json(const notification_rule& x);

/// Reads what `to_json` wrote (the store's records); nothing when a field
/// is missing or of the wrong type, or a condition's operand exceeds the
/// limits above.
std::optional<notification_rule> rule_from_json(const nlohmann::json& j);

/// Whether `path` is a field path as `rule_condition::field` describes (a
/// bare `data` is the whole payload), at most `max_field_path_size` bytes
/// and `max_field_path_steps` steps, none empty; `why` says what is wrong.
bool valid_field_path(std::string_view path, std::string* why = nullptr);

/// The value at `path` of the event (`data` is `ev.data` parsed), or
/// nothing when there is none. `headers.audience` (schemas/rooms.hpp) is
/// never there: rules and templates see no room's participant list.
std::optional<nlohmann::json>
event_field(const event& ev, const nlohmann::json& data, std::string_view path);

/// Whether the event's topic matches the rule's and every condition of
/// `rule` holds for it (`enabled` is the caller's to check). Conditions on
/// a missing field fail (except `exists: false`); `exists` counts a null
/// field as present. Equality is JSON equality with numbers compared by
/// value (1 equals 1.0), so `not_equals` holds for a value of another
/// type; `contains` on a field that is neither a string nor an array, and
/// gt/gte/lt/lte on anything but two numbers, fail.
bool matches(const notification_rule& rule, const event& ev,
             const nlohmann::json& data);

/// Renders `tmpl`: each `{{path}}` (spaces inside the braces allowed) is
/// replaced by the field's value (strings as they are, other values as
/// JSON text, missing fields as nothing), HTML-escaped when `html`; the
/// template's own text is escaped too when `html`. The result is cut at
/// `limit` bytes on a UTF-8 boundary.
std::string render(std::string_view tmpl, const event& ev,
                   const nlohmann::json& data, bool html, size_t limit);

/// The explicit users and those the event's fields name (a string, or an
/// array of them; other values are ignored), valid user ids only
/// (`valid_participant_id(id, false)` of schemas/rooms.hpp), each once, in
/// order of first appearance, at most `max_direct_recipients`.
std::vector<std::string> direct_recipients(const notification_rule& rule,
                                           const event& ev,
                                           const nlohmann::json& data);

/// The id of the notification `rule` makes of event `event_id` for `user`:
/// the same inputs give the same id, on every node, so that a notification
/// is created once however often its event is seen. 32 hex digits: the
/// first half of the SHA-256 of the three, each prefixed by its length.
std::string notification_id(std::string_view rule_id, std::string_view event_id,
                            std::string_view user);

// -- contact points -----------------------------------------------------------

/// A device that receives push notifications.
struct device {
  /// "fcm", "apns" or "webpush".
  std::string platform;
  std::string token;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, device& x) {
  return f(caf::meta::type_name("switchyard::device"), x.platform, x.token);
}

/// Daily hours in which low and normal priority wait; none when `start`
/// is empty. `start` and `end` are "HH:MM" in the IANA time zone `tz`;
/// `start` after `end` spans midnight; `start == end` is never quiet.
struct quiet_hours {
  std::string start;
  std::string end;
  std::string tz;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, quiet_hours& x) {
  return f(caf::meta::type_name("switchyard::quiet_hours"), x.start, x.end,
           x.tz);
}

/// Where a user gets notifications when not connected.
struct contact {
  std::string org;
  std::string user;
  /// Empty: no email.
  std::string email;
  std::vector<device> devices;
  quiet_hours quiet;
  int64_t updated_at = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, contact& x) {
  return f(caf::meta::type_name("switchyard::contact"), x.org, x.user, x.email,
           x.devices, x.quiet, x.updated_at);
}

/// Reads `PUT /v1/users/{id}/contact`; on error returns nothing and sets
/// `error` naming the field (`devices[0].platform: ...`); a field the
/// contact does not have is an error too. Every field is optional; a null
/// or missing `quiet_hours` is none. The email must look like
/// `local@domain`, one `@`, at most `max_email_size` bytes, without
/// control characters, spaces or any of `<>,;"()\` (so that it can go
/// into a mail header as it is); times are "HH:MM" from 00:00 to 23:59;
/// the time zone must be one the system's tz database knows.
std::optional<contact>
parse_contact(const nlohmann::json& body, const std::string& org,
              const std::string& user, std::string& error);

nlohmann::json to_json(const contact& x);

std::optional<contact> contact_from_json(const nlohmann::json& j);

/// When `unix_ms` lies within the quiet hours `q`: the unix time in
/// milliseconds at which they end (the next local `end`; where daylight
/// saving time skips it, the instant of the skip; where it repeats it, the
/// first one after `unix_ms`); else 0 (also for no quiet hours, an unknown
/// zone or a time before 1970). Thread-safe; zones are looked up once.
/// The tz database is read as Howard Hinnant's date library reads the
/// system's: transitions through 2037, after that a zone's last offset.
int64_t quiet_until(const quiet_hours& q, int64_t unix_ms);

// -- notifications ------------------------------------------------------------

/// How far one channel of a notification got.
struct channel_state {
  /// "pending" (not tried yet), "waiting" (sent; waiting for an ack before
  /// the next channel), "sent", "skipped" (not allowed, not configured or
  /// nothing to send to), "failed" (gave up; `error` says why).
  std::string state = "pending";
  int32_t attempts = 0;
  /// Unix ms of the next attempt while retrying, else 0.
  int64_t next_at = 0;
  /// Unix ms of the last change.
  int64_t at = 0;
  std::string error;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, channel_state& x) {
  return f(caf::meta::type_name("switchyard::channel_state"), x.state,
           x.attempts, x.next_at, x.at, x.error);
}

/// One notification for one user, kept until delivered (and then as the
/// user's inbox entry).
struct notification {
  /// See `notification_id`.
  std::string id;
  std::string org;
  std::string user;
  std::string rule_id;
  std::string event_id;
  std::string topic;
  std::string title;
  /// Plain text.
  std::string body;
  /// The body template rendered with HTML escaping (the email's HTML part).
  std::string html_body;
  std::string priority = "normal";
  /// The event's data, JSON text.
  std::string data;
  /// Unix ms when the notification was made.
  int64_t ts = 0;
  /// The channels the rule allows.
  std::vector<std::string> channels;
  channel_state websocket;
  channel_state push;
  channel_state email;
  /// Acknowledged on a session, or read through the API: no further
  /// channel is tried.
  bool acked = false;
  bool read = false;
  int64_t read_at = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, notification& x) {
  return f(caf::meta::type_name("switchyard::notification"), x.id, x.org,
           x.user, x.rule_id, x.event_id, x.topic, x.title, x.body, x.html_body,
           x.priority, x.data, x.ts, x.channels, x.websocket, x.push, x.email,
           x.acked, x.read, x.read_at);
}

/// Whether `x` allows `channel`.
bool allows(const notification& x, std::string_view channel);

/// Whether nothing is left to do for `x`: acked or read, or every channel
/// sent, skipped or failed (a channel `x` does not allow counts as
/// skipped, whatever its state).
bool settled(const notification& x);

/// The store's and the inbox's form (`GET /v1/notifications`): every field,
/// with `data` as JSON.
nlohmann::json to_json(const notification& x);

std::optional<notification> notification_from_json(const nlohmann::json& j);

/// The frame a connected client gets, compact JSON in this order:
/// `{"type":"notification","id","title","body","priority","data","ts"}`
/// (`data` as JSON; null when it is not valid JSON).
std::string notification_frame(const notification& x);

} // namespace switchyard
