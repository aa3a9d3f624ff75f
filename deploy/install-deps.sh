#!/usr/bin/env bash
# Installs everything Switchyard builds and tests with: Debian 12 packages
# (clang-14 with its sanitizer and libFuzzer runtimes, and llvm-14's
# llvm-symbolizer, for the fuzz build) and the npm packages of the end-to-end
# tests. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libcaf-dev libboost-dev libboost-program-options-dev
  libnats-dev libspdlog-dev libssl-dev
  libjwt-dev nlohmann-json3-dev libbenchmark-dev
  # Time zones of quiet hours: date/tz reading the system's tz database.
  libhowardhinnant-date-dev tzdata
  nats-server curl ca-certificates openssl
  clang-14 libclang-rt-14-dev llvm-14
  # The browser test (tests/e2e/browser.test.mjs) drives Debian's Chromium
  # through playwright-core: npm's Playwright would download a browser build
  # of its own, which this network does not reach. Fonts so that its
  # screenshots show text (Chromium only recommends them).
  chromium fonts-liberation
  # The SMTP server of the SMTP client's tests (tests/e2e/lib/smtp_server.py).
  python3-aiosmtpd
)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# WebSocket client and playwright-core for the end-to-end tests (npm registry).
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
