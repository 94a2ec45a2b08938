#!/usr/bin/env bash
# Every statement the stores hold has run on both databases. Each
# `Query::new(` in db/src is one statement (its text may differ by dialect or
# by the filters asked for); one that only a dialect runs says so on the line
# above (`// Only on SQLite` or `// Only on PostgreSQL`). The test suite, run
# with STEWARD_STATEMENTS_LOG=DIR, recorded in DIR where each statement that
# ran is written and on which database (db/src/driver/record.rs).
#
#   STEWARD_STATEMENTS_LOG=/tmp/st cargo test --workspace && bash scripts/statements.sh /tmp/st
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: statements.sh DIR (the folder the tests recorded into)}
sites=$(mktemp) ran=$(mktemp)
trap 'rm -f "$sites" "$ran"' EXIT
grep -rl --include='*.rs' 'Query::new(' db/src | sort | while read -r f; do
  awk -v f="$f" '
    /Query::new\(/ {
      need = "both"
      if (prev ~ /Only on SQLite/) need = "SQLite"
      else if (prev ~ /Only on PostgreSQL/) need = "PostgreSQL"
      print f ":" FNR, need
    }
    { prev = $0 }' "$f"
done > "$sites"
cat "$dir"/*.txt 2>/dev/null | sort -u > "$ran"
failed=0
for db in SQLite PostgreSQL; do
  other=$([ "$db" = SQLite ] && echo PostgreSQL || echo SQLite)
  ran_here=$(grep "^$db " "$ran" | cut -d' ' -f2 | sort -u)
  not_run=$(awk -v db="$db" '$2 == "both" || $2 == db { print $1 }' "$sites" | sort -u \
    | comm -23 - <(echo "$ran_here"))
  if [ -n "$not_run" ]; then
    echo "statements that never ran on $db:"
    echo "$not_run" | sed 's/^/  /'
    failed=1
  fi
  wrong=$(awk -v o="$other" '$2 == o { print $1 }' "$sites" | sort -u | comm -12 - <(echo "$ran_here"))
  if [ -n "$wrong" ]; then
    echo "statements marked \"Only on $other\" that ran on $db:"
    echo "$wrong" | sed 's/^/  /'
    failed=1
  fi
done
if [ "$failed" = 0 ]; then
  echo "all $(wc -l < "$sites") statements ran on every database they are written for"
fi
exit "$failed"
