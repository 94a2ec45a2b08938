#!/usr/bin/env bash
# The console's browser end-to-end tests: Debian's Chromium (/usr/bin/chromium,
# or CHROMIUM) driven by playwright-core, axe-core for accessibility, Node's
# own test runner. Each test file starts its own `steward serve` on a fresh
# SQLite file in a scratch folder of this run.
#
#   bash server/tests/console/run.sh                 # every file
#   bash server/tests/console/run.sh rules.test.mjs  # some files
#   STEWARD_SCREENSHOTS=docs/images bash server/tests/console/run.sh
#                                 # also refresh docs/images/console-*.png
#
# STEWARD names the binary (default: $CARGO_TARGET_DIR or target, then
# debug/steward; build it with `cargo build -p steward-cli --bin steward`).
# STEWARD_CONSOLE_KEEP=1 keeps the scratch folder (servers' logs, databases).
set -euo pipefail
cd "$(dirname "$0")/../../.."
root="$PWD"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
export STEWARD="${STEWARD:-$target/debug/steward}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
  # Debian's Chromium: playwright-core downloads no browser.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  [ -x "$CHROMIUM" ] || { echo "console tests: no Chromium at $CHROMIUM (apt-get install chromium)" >&2; exit 1; }
fi
if [ ! -x "$STEWARD" ]; then
  echo "console tests: no steward binary at $STEWARD (cargo build -p steward-cli --bin steward)" >&2
  exit 1
fi

cd server/tests/console
npm ci --no-audit --no-fund --loglevel=error

scratch="$(mktemp -d "${TMPDIR:-/tmp}/steward-console-run.XXXXXX")"
export STEWARD_CONSOLE_TMP="$scratch"
if [ "$#" -eq 0 ]; then set -- ./*.test.mjs; fi
log="$scratch/tap.txt"
set +e
node --test --test-concurrency=2 --test-timeout=180000 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
node summary.mjs "$scratch/axe.jsonl"
passed=$(awk '/^# pass / { print $3 }' "$log" | tail -1)
failed=$(awk '/^# fail / { print $3 }' "$log" | tail -1)
if [ "$status" -eq 0 ] && [ -z "${STEWARD_CONSOLE_KEEP:-}" ]; then
  rm -rf "$scratch"
else
  echo "console tests: the scratch folder (servers' logs, databases) is kept in $scratch"
fi
echo "console: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
