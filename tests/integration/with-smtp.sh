#!/usr/bin/env bash
# Runs the SMTP client's integration test against real SMTP servers:
#   with-smtp.sh <program>
# makes two self-signed certificates in a fresh directory (cert.pem for
# localhost and 127.0.0.1, other.pem for another name) and runs
# `<program> /usr/bin/python3 tests/e2e/lib/smtp_server.py <dir>`, which
# starts tests/e2e/lib/smtp_server.py (aiosmtpd) per case. Exits with the
# program's status, or 77 (ctest's SKIP_RETURN_CODE) when python3-aiosmtpd
# or openssl is missing.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
python=/usr/bin/python3
if ! "$python" -c 'import aiosmtpd' 2>/dev/null; then
  echo "python3-aiosmtpd not installed: skipped"
  exit 77
fi
if ! command -v openssl >/dev/null; then
  echo "openssl not installed: skipped"
  exit 77
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cert() { # <name> <subjectAltName>
  openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=$1" \
    -addext "subjectAltName=$2" -days 1 \
    -keyout "$dir/$3-key.pem" -out "$dir/$3.pem" 2>"$dir/openssl.log" || {
    cat "$dir/openssl.log"
    exit 1
  }
}
cert localhost DNS:localhost,IP:127.0.0.1 cert
mv "$dir/cert-key.pem" "$dir/key.pem"
cert other.example DNS:other.example other

"$1" "$python" "$root/tests/e2e/lib/smtp_server.py" "$dir"
exit $?
