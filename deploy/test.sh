#!/usr/bin/env bash
# Fresh machine to green tests: install, build, run every test under ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
cd build
ctest --output-on-failure --timeout 900
