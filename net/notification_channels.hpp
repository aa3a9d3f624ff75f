// The real push and email channels of notifications: a push gateway over
// HTTP (net/http_stream_client.hpp) and a mail server over SMTP
// (net/smtp_client.hpp).

#pragma once

#include <string>
#include <utility>
#include <vector>

#include "actors/notification_channels.hpp"
#include "net/smtp_client.hpp"

namespace switchyard::net {

/// Where pushes and emails go.
struct channel_config {
  /// The push gateway's URL (http or https); empty: no push.
  std::string push_url;
  /// Extra headers of every push request (e.g. the gateway's credentials).
  std::vector<std::pair<std::string, std::string>> push_headers;
  /// The mail server; an empty host: no email.
  smtp_config smtp;
  /// Product name in email subjects of digests and footers.
  std::string product = "Switchyard";
};

/// Pushes with one `POST <push_url>` per notification, body
/// `{"id","org","user","title","body","priority","data","ts","devices":
/// [{"platform","token"}]}` and an `Idempotency-Key: <id>` header, so a
/// gateway can drop a repeat; a 2xx answer is success, 408, 429 and 5xx
/// are retried, other answers are final. Emails are multipart text and
/// HTML messages with `Message-ID: <id@switchyard>`.
class network_channels : public delivery_channels {
public:
  explicit network_channels(channel_config cfg);

  bool push_configured() const override;

  bool email_configured() const override;

  void push(const notification& x, const std::vector<device>& devices,
            done_handler done) override;

  void email(const notification& x, const std::string& to,
             done_handler done) override;

  void digest(const std::vector<notification>& xs, const std::string& to,
              done_handler done) override;

  /// The push request's body for `x` (documented in docs/notifications.md).
  static std::string push_body(const notification& x,
                               const std::vector<device>& devices);

  /// Whether the error of a failed push is final: an HTTP answer other
  /// than 408, 429 and 5xx.
  static bool push_error_is_final(const std::string& error);

private:
  channel_config cfg_;
};

} // namespace switchyard::net
