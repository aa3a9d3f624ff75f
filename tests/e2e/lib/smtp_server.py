#!/usr/bin/python3
"""A real SMTP server for tests (Debian's python3-aiosmtpd).

    /usr/bin/python3 smtp_server.py --host 127.0.0.1 --port 0 --out FILE
        [--cert CERT --key KEY] [--user U --password P] [--require-tls]

With --port 0 it binds a free port. Once listening it prints one line,
`ready <port>`, to stdout. With --cert and --key it offers STARTTLS; with
--require-tls it refuses every command but EHLO, NOOP, QUIT and STARTTLS
until TLS is up (530). With --user and --password it requires AUTH (PLAIN
or LOGIN) before MAIL, and, when it offers STARTTLS, only after it.

Every message it accepts is appended to FILE as one JSON line:
  {"mail_from": ..., "rcpt_tos": [...], "data": "<raw message text>",
   "auth_user": "..." or null, "tls": true/false}
where data is the message as received, dot-stuffing undone, CRLF kept.
It exits on SIGTERM (and SIGINT).

Options for tests of the client's error paths:
  --auth-exclude MECH   do not offer MECH (PLAIN or LOGIN); repeatable
  --rcpt-reply REPLY    answer every RCPT TO with REPLY, e.g. "450 4.2.1 busy"
  --implicit-tls        TLS from the first byte (port 465 style) with
                        --cert and --key, instead of STARTTLS
"""

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, out, rcpt_reply):
        self.out = out
        self.rcpt_reply = rcpt_reply

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": envelope.original_content.decode("utf-8", "replace"),
            "auth_user": login,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 2.0.0 OK: queued"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: aiosmtpd answers 535 for a failure itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    return check


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--require-tls", action="store_true")
    p.add_argument("--auth-exclude", action="append", default=[])
    p.add_argument("--rcpt-reply")
    p.add_argument("--implicit-tls", action="store_true")
    args = p.parse_args()
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    if bool(args.user) != bool(args.password):
        p.error("--user and --password go together")
    if (args.require_tls or args.implicit_tls) and not args.cert:
        p.error("--require-tls and --implicit-tls need --cert and --key")

    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)

    loop = asyncio.get_running_loop()
    handler = Handler(args.out, args.rcpt_reply)
    auth = bool(args.user)

    starttls = None if args.implicit_tls else tls

    def factory():
        return SMTP(
            handler,
            hostname="localhost",
            tls_context=starttls,
            require_starttls=args.require_tls and not args.implicit_tls,
            auth_required=auth,
            # AUTH only after STARTTLS when there is STARTTLS to be had.
            auth_require_tls=bool(starttls),
            authenticator=authenticator(args.user, args.password) if auth else None,
            auth_exclude_mechanism=args.auth_exclude,
            loop=loop,
        )

    server = await loop.create_server(
        factory,
        host=args.host,
        port=args.port,
        ssl=tls if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {port}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    # aiosmtpd warns that AUTH without TLS is insecure (the tests know) and
    # that it sets a deprecated attribute itself: errors only.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    asyncio.run(main())
    sys.exit(0)
