#!/usr/bin/env bash
# Webhook delivery end to end, with the official Standard Webhooks verifier
# (the `standardwebhooks` package from PyPI) as the receiver: builds
# `steward`, installs the pinned verifier into a virtual environment under
# the target folder, and runs test_webhooks.py against `steward run`.
set -euo pipefail
cd "$(dirname "$0")/../../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet -p steward-cli --bin steward
venv="$target/webhooks-venv"
if [ ! -x "$venv/bin/python" ] || ! cmp -s cli/tests/webhooks/requirements.txt "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r cli/tests/webhooks/requirements.txt
  cp cli/tests/webhooks/requirements.txt "$venv/requirements.txt"
fi
STEWARD="$(cd "$target/debug" && pwd)/steward" "$venv/bin/python" cli/tests/webhooks/test_webhooks.py
