#!/usr/bin/env bash
# Configures and builds into build/ (two jobs: this is a 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
