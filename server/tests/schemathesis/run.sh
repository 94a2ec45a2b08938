#!/usr/bin/env bash
# The HTTP API against its own OpenAPI document, with schemathesis (PyPI) as
# the client: `steward serve` on a fresh SQLite file, a tenant and its token,
# the repository's rules deployed and the example events posted, then every
# operation of /v1/openapi.json generated from the schema. Fails on any 5xx,
# undocumented status code or content type, or a response that does not
# match its schema. A fixed seed makes a run repeatable; SCHEMATHESIS_SEED
# and SCHEMATHESIS_EXAMPLES change it (for a longer soak, say 1000).
set -euo pipefail
cd "$(dirname "$0")/../../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet -p steward-cli --bin steward
venv="$target/schemathesis-venv"
req=server/tests/schemathesis/requirements.txt
if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/requirements.txt"
fi
steward="$(cd "$target/debug" && pwd)/steward"
work=$(mktemp -d)
admin="admin-$RANDOM$RANDOM"
# A server that keeps secrets (its key random for the run), as a
# multi-tenant server runs.
secret_key=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')
STEWARD_ADMIN_TOKEN="$admin" STEWARD_SECRET_KEY="$secret_key" "$steward" serve --database "$work/steward.db" \
  --listen 127.0.0.1:0 --poll 50ms >"$work/out.log" 2>"$work/err.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# Wait until it says where it listens (the loop only guards a hang).
base=""
for _ in $(seq 600); do
  base=$(sed -n 's/^steward serve: listening on \(http:[^ ]*\).*/\1/p' "$work/err.log")
  [ -n "$base" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/err.log"; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "steward serve did not start"; cat "$work/err.log"; exit 1; }
token=$("$venv/bin/python" - "$base" "$admin" <<'PY'
import json, sys, urllib.request
base, admin = sys.argv[1], sys.argv[2]
def post(path, body, token):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())
post("/v1/tenants", {"id": "acme"}, admin)
print(post("/v1/tenants/acme/tokens", {}, admin)["token"])
PY
)
"$steward" deploy rules --ruleset main --server "$base" --token "$token"
"$venv/bin/python" - "$base" "$token" <<'PY'
import json, sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
events = [json.loads(l) for l in open("examples/events.jsonl") if l.strip()]
req = urllib.request.Request(base + "/v1/events", data=json.dumps(events).encode(), method="POST",
                             headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
with urllib.request.urlopen(req) as r:
    assert r.status == 202, r.status
PY
"$venv/bin/schemathesis" run "$base/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" --seed "${SCHEMATHESIS_SEED:-1}" -w 1 \
  --suppress-health-check all
# The server must still be up, and stop cleanly.
kill -TERM "$pid"
wait "$pid"
echo "schemathesis: no 5xx, every status, content type and body as documented"
