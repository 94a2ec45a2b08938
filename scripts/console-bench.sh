#!/usr/bin/env bash
# The console's list pages on a full store (docs/performance.md): EVENTS
# events (one in ten acts, so EVENTS/10 actions) pushed and handled by
# `steward run`, on SQLite and on PostgreSQL (a database of its own at
# DATABASE_URL's server), then each list page requested REQUESTS times.
# Usage: scripts/console-bench.sh [EVENTS] [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-100000}"
requests="${2:-200}"
cargo build --release --quiet -p steward-cli --bin steward
cargo build --release --quiet -p steward-server --example console_bench
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat > "$work/bench.stw" <<'RULES'
event booking.made { id: string  amount: float }
rule big_booking "Big bookings are logged"
  when booking.made
  if amount >= 900.0
  then
    log "big booking {id}"
end
RULES
python3 - "$events" > "$work/events.jsonl" <<'PY'
import json, sys, datetime
n = int(sys.argv[1])
start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
for i in range(n):
    at = (start + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(json.dumps({"id": f"b{i}", "tenant": "acme", "type": "booking.made", "occurred_at": at,
                      "key": f"guest_{i % 5000}", "payload": {"id": f"b{i}", "amount": float(i % 1000)}}))
PY
fill() {
  "$target/release/steward" push --database "$1" "$work/events.jsonl" > /dev/null
  "$target/release/steward" run --database "$1" --rules "$work/bench.stw" --exit-when-idle > /dev/null
}
echo "## SQLite, $events events"
fill "$work/console.db"
"$target/release/examples/console_bench" "$work/console.db" acme "$requests"
base="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
server="${base%/*}"
psql "$base" -qc "DROP DATABASE IF EXISTS steward_console_bench" -qc "CREATE DATABASE steward_console_bench" > /dev/null
echo
echo "## PostgreSQL, $events events"
fill "$server/steward_console_bench"
"$target/release/examples/console_bench" "$server/steward_console_bench" acme "$requests"
psql "$base" -qc "DROP DATABASE IF EXISTS steward_console_bench" > /dev/null
