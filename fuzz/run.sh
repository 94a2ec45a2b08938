#!/usr/bin/env bash
# Runs one fuzz target for a set time: bash fuzz/run.sh text|events SECONDS
# Seeds its corpus from tests/data and rules/ (text) or examples/ (events),
# then runs cargo fuzz (installed if missing) on the nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")"
target="${1:?usage: fuzz/run.sh text|events SECONDS}"
seconds="${2:-3600}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus="corpus/$target"
mkdir -p "$corpus"
case "$target" in
  text) for f in ../tests/data/*/*.stw ../rules/*.stw; do cp "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"; done ;;
  events) split -l 20 ../examples/events.jsonl "$corpus/seed-" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096
