#!/usr/bin/env bash
# B4 (../shared/BENCHMARKS.md): steward run on PostgreSQL (1 and 2 workers)
# and SQLite, against a bare claim-and-acknowledge SQL loop on the same
# table in the same run, and Graphile Worker (npm) on the same database. PostgreSQL from DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/test). Usage: scripts/b4.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p steward-cli --bin steward
cargo build --release --quiet -p steward-db --example b4
# The peer, Graphile Worker (npm), from its lock file.
(cd benches/b4-graphile && npm ci --no-audit --no-fund --silent)
target="${CARGO_TARGET_DIR:-target}"
B4_GRAPHILE="$PWD/benches/b4-graphile/drain.js" \
  "$target/release/examples/b4" "$target/release/steward" "${1:-20000}"
