#!/usr/bin/env bash
# The language server's end-to-end test with pytest-lsp (a client someone
# else wrote): builds `steward`, installs the pinned client into a virtual
# environment under the target folder, and runs lsp/e2e against `steward lsp`.
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet -p steward-cli --bin steward
venv="$target/e2e-venv"
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s lsp/e2e/requirements.txt "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r lsp/e2e/requirements.txt
  cp lsp/e2e/requirements.txt "$venv/requirements.txt"
fi
STEWARD="$(cd "$target/debug" && pwd)/steward" "$venv/bin/pytest" -q -p no:cacheprovider lsp/e2e "$@"
