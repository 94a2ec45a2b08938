#!/usr/bin/env bash
# B3: `steward replay` over a generated 1,000,000-event file against the
# example rules, side by side with merely parsing the same file with
# serde_json. Prints wall time, events per second and peak memory of each.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
cargo build --release --quiet -p steward-cli --bin steward
cargo build --release --quiet --example gen_events --example parse_jsonl
file="$(mktemp -d)/events.jsonl"
target/release/examples/gen_events "$n" > "$file"
echo "B3: $n events, $(du -h "$file" | cut -f1)"
measure() {
  local label="$1"; shift
  /usr/bin/time -o /tmp/b3-time -f "%e %M" "$@" > /dev/null 2> /dev/null
  local secs mem
  read -r secs mem < /tmp/b3-time
  echo "$label: ${secs}s, $(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.0f", n/s}') events/s, peak ${mem} KiB"
}
for run in 1 2 3; do
  echo "run $run"
  measure "  serde_json parse (the limit)" target/release/examples/parse_jsonl "$file"
  measure "  steward replay" target/release/steward replay --rules rules/ --events "$file"
done
rm -f "$file"
