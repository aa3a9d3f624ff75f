#!/usr/bin/env bash
# Fails, printing them, when sanitizer reports exist in the folder $1 (the
# sanitizer build's tests write every report there).
set -euo pipefail
shopt -s nullglob
reports=("$1"/report*)
if ((${#reports[@]} == 0)); then
  echo "no sanitizer reports"
  exit 0
fi
for r in "${reports[@]}"; do
  echo "== $r"
  cat "$r"
done
echo "${#reports[@]} sanitizer report(s)"
exit 1
