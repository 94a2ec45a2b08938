#!/usr/bin/env bash
# Delivery end to end: webhooks with the official Standard Webhooks verifier
# (the `standardwebhooks` package from PyPI) as the receiver, and mail over
# SMTP with aiosmtpd as the server: builds
# `steward`, installs the pinned verifier into a virtual environment under
# the target folder, and runs test_webhooks.py and test_mail.py against
# `steward run`, then test_crash.py: two workers on PostgreSQL (DATABASE_URL),
# one killed with SIGKILL again and again, delivering to both; then
# test_serve.py (the API end to end) and test_tenants.py (each tenant's
# webhooks signed with its own secret, across a rotation).
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
steward="$(cd "$target/debug" && pwd)/steward"
STEWARD="$steward" "$venv/bin/python" cli/tests/webhooks/test_webhooks.py
STEWARD="$steward" "$venv/bin/python" cli/tests/webhooks/test_mail.py
STEWARD="$steward" "$venv/bin/python" cli/tests/webhooks/test_crash.py
STEWARD="$steward" "$venv/bin/python" cli/tests/webhooks/test_serve.py
STEWARD="$steward" "$venv/bin/python" cli/tests/webhooks/test_tenants.py
