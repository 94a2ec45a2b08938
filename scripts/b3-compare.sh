#!/usr/bin/env bash
# B3 side by side with an older build: bash scripts/b3-compare.sh OLD_WORKTREE
# (a `git worktree add OLD_WORKTREE <commit>`); replays 1,000,000 events with
# both binaries alternately and prints the time of each and of a bare parse.
set -euo pipefail
cd "$(dirname "$0")/.."
old="$(cd "${1:?usage: scripts/b3-compare.sh OLD_WORKTREE}" && pwd)"
cargo build --release --quiet -p steward-cli --bin steward
cargo build --release --quiet --example gen_events --example parse_jsonl
(cd "$old" && CARGO_TARGET_DIR="$old/target" cargo build --release --quiet -p steward-cli --bin steward)
file="$(mktemp -d)/events.jsonl"
target/release/examples/gen_events 1000000 > "$file"
echo "B3: 1000000 events, $(du -h "$file" | cut -f1)"
measure() {
  local label="$1"; shift
  /usr/bin/time -o /tmp/b3-time -f "%e %M" "$@" > /dev/null 2> /dev/null
  read -r secs mem < /tmp/b3-time
  echo "$label: ${secs}s, peak ${mem} KiB"
}
for run in 1 2 3; do
  echo "run $run"
  measure "  serde_json parse (the limit)" target/release/examples/parse_jsonl "$file"
  measure "  steward replay (this tree)" target/release/steward replay --rules rules/ --events "$file"
  measure "  steward replay (older build)" "$old/target"/release/steward replay --rules "$old/rules/" --events "$file"
  # The same rules on both builds: what the new code costs rules that do
  # not use what it added.
  measure "  steward replay (this tree, the older build's rules)" target/release/steward replay --rules "$old/rules/" --events "$file"
done
rm -f "$file"
