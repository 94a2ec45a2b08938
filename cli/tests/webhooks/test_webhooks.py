"""Webhook deliveries from `steward run`, received and verified by the
official Standard Webhooks library.

The receiver answers by the listing in the payload: `ok` gets 200, `flaky`
gets 500 once and then 200 (the retry must carry the same webhook-id, with a
new signature), `busy` gets 503 with `Retry-After: 1` once, `gone` gets 410
(dead at once, never tried again), `down` always gets 500 (dead after the last
attempt). `slow` is held unanswered until `ok` and `ok2` have arrived (or
20 s, well under the 30 s delivery timeout): with deliveries made one at a
time it would wait in vain, so it records whether the others overtook it.
Every request must verify. Counted per webhook-id; a duplicate delivery
always carries the same id.

A webhook with a credential from a secret (`steward secret set`, sealed in
the database) carries it in its header; its rules do not check until the
secret is set; the value is in no file and no output of the run.

One `steward run --exit-when-idle` delivers all of it: it waits for the
retries due within `--idle-wait`, then exits 3 and lists what was not
delivered (`gone` and `down`, dead). A retry further off than
`--idle-wait` is left for a later run, listed with its next attempt.
"""

import base64
import http.server
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading

from standardwebhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"steward-test-secret-0123456789ab").decode()
STEWARD = os.environ["STEWARD"]

received = {}  # webhook-id -> list of (listing, signature)
failures = []
lock = threading.Lock()
others_arrived = threading.Event()
overtaken = []  # for `slow`: whether `ok` and `ok2` arrived while it was held
authorizations = {}  # listing -> its Authorization header
internal_hits = []  # requests that reached /internal-admin


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.path == "/redirect":  # sends the webhook on to a private address
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/internal-admin")
            self.end_headers()
            return
        if self.path == "/internal-admin":
            with lock:
                internal_hits.append(body)
        try:
            payload = Webhook(SECRET).verify(body, headers)
        except Exception as e:  # the verifier refused it
            with lock:
                failures.append(f"{headers.get('webhook-id')}: {e}")
            self.send_response(400)
            self.end_headers()
            return
        wid = headers["webhook-id"]
        if headers.get("idempotency-key") != wid:
            with lock:
                failures.append(f"{wid}: Idempotency-Key {headers.get('idempotency-key')}")
        listing = payload["listing_id"]
        with lock:
            authorizations[listing] = headers.get("authorization")
            seen = received.setdefault(wid, [])
            seen.append((listing, headers["webhook-signature"]))
            n = len(seen)
            arrived = {entries[0][0] for entries in received.values()}
            if {"ok", "ok2"} <= arrived:
                others_arrived.set()
        if listing == "slow":
            overtaken.append(others_arrived.wait(timeout=20))
        status, extra = 200, {}
        if listing == "flaky" and n == 1:
            status = 500
        elif listing == "busy" and n == 1:
            status, extra = 503, {"Retry-After": "1"}
        elif listing == "gone":
            status = 410
        elif listing == "down":
            status = 500
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()

    def log_message(self, *args):
        pass


def refused_destinations(work, env, port):
    """Without --allow-loopback, a webhook to the loopback, by address or by
    a name that resolves to it, or to the cloud's metadata address, is dead
    at once with the reason, and nothing reaches the receiver."""
    rules = os.path.join(work, "internal.stw")
    with open(rules, "w") as f:
        f.write(
            "event probe { id: string }\n"
            f'action by_address(id: string) via webhook "http://127.0.0.1:{port}/internal-admin"\n'
            f'action by_name(id: string) via webhook "http://localhost:{port}/internal-admin"\n'
            'action metadata(id: string) via webhook "http://169.254.169.254/latest/meta-data/"\n'
            f'action mapped(id: string) via webhook "http://[::ffff:127.0.0.1]:{port}/internal-admin"\n'
            "rule probe when probe then\n"
            "  by_address(id)\n  by_name(id)\n  metadata(id)\n  mapped(id)\n"
            "end\n"
        )
    events = os.path.join(work, "probe.jsonl")
    with open(events, "w") as f:
        f.write(json.dumps({"id": "probe1", "tenant": "acme", "type": "probe",
                            "occurred_at": "2026-11-20T10:00:00Z", "payload": {"id": "probe1"}}) + "\n")
    db = os.path.join(work, "internal.db")
    subprocess.run([STEWARD, "push", "--database", db, events], check=True, env=env)
    before = len(received)
    run = subprocess.run(
        [STEWARD, "run", "--database", db, "--rules", rules, "--exit-when-idle", "--poll", "20ms"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 3, (run.returncode, run.stderr)
    assert len(received) == before, "a refused destination was reached"
    dead = dict(sqlite3.connect(db).execute(
        "SELECT action, status || ' ' || attempts || ' ' || last_error FROM steward_actions"
    ).fetchall())
    assert set(dead) == {"by_address", "by_name", "metadata", "mapped"}, dead
    for action, kind in [("by_address", "loopback"), ("by_name", "loopback"),
                         ("metadata", "link-local"), ("mapped", "loopback")]:
        assert dead[action].startswith("dead 1 "), (action, dead[action])
        assert "is not an allowed destination" in dead[action] and kind in dead[action], (action, dead[action])


def redirect_not_followed(work, env, port):
    """A receiver that answers with a redirect to an internal address: the
    redirect is not followed (the address is never reached), and the action
    is dead at once with why."""
    rules = os.path.join(work, "redirect.stw")
    with open(rules, "w") as f:
        f.write(
            "event probe { id: string }\n"
            f'action onward(id: string) via webhook "http://127.0.0.1:{port}/redirect"\n'
            "rule probe when probe then\n  onward(id)\nend\n"
        )
    events = os.path.join(work, "redirect.jsonl")
    with open(events, "w") as f:
        f.write(json.dumps({"id": "r1", "tenant": "acme", "type": "probe",
                            "occurred_at": "2026-11-20T10:00:00Z", "payload": {"id": "r1"}}) + "\n")
    db = os.path.join(work, "redirect.db")
    subprocess.run([STEWARD, "push", "--database", db, events], check=True, env=env)
    run = subprocess.run(
        [STEWARD, "run", "--database", db, "--rules", rules, "--exit-when-idle", "--allow-loopback",
         "--poll", "20ms"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 3, (run.returncode, run.stderr)
    assert not internal_hits, "the redirect was followed"
    status, error = sqlite3.connect(db).execute(
        "SELECT status || ' ' || attempts, last_error FROM steward_actions").fetchone()
    assert status == "dead 1", (status, error)
    assert "302" in error and "redirects are not followed" in error and "/internal-admin" in error, error


def credentials(work, env, url):
    """A credential from `steward secret set`: the rules naming it do not
    check until it is set; then the webhook carries it, and it appears in no
    file and no output."""
    token = "pms-" + base64.b16encode(os.urandom(12)).decode()
    env = dict(env, STEWARD_SECRET_KEY=base64.b64encode(os.urandom(32)).decode())
    rules = os.path.join(work, "credentials.stw")
    with open(rules, "w") as f:
        f.write(
            "event price.changed { listing_id: string  price: decimal }\n"
            f'action apply_price(listing_id: string, price: decimal) via webhook "{url}" with\n'
            '  header "Authorization" = "Bearer " + secret pms_token\n'
            "rule forward when price.changed then\n  apply_price(listing_id, price)\nend\n"
        )
    events = os.path.join(work, "credentials.jsonl")
    with open(events, "w") as f:
        f.write(json.dumps({"id": "c1", "tenant": "acme", "type": "price.changed", "occurred_at": "2026-11-20T10:00:00Z",
                            "payload": {"listing_id": "cred", "price": "99.00"}}) + "\n")
    db = os.path.join(work, "credentials.db")
    subprocess.run([STEWARD, "push", "--database", db, events], check=True, env=env)
    command = [STEWARD, "run", "--database", db, "--rules", rules, "--exit-when-idle",
               "--allow-loopback", "--poll", "20ms"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode not in (0, 3), (run.returncode, run.stderr)
    assert "the secret `pms_token` is not set" in run.stderr, run.stderr
    subprocess.run([STEWARD, "secret", "set", "pms_token", "--database", db],
                   input=token + "\n", check=True, env=env, text=True, capture_output=True)
    listed = subprocess.run([STEWARD, "secret", "list", "--database", db], check=True, env=env,
                            text=True, capture_output=True)
    assert listed.stdout.startswith("pms_token\t") and token not in listed.stdout, listed.stdout
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, (run.returncode, run.stderr)
    assert authorizations.get("cred") == f"Bearer {token}", authorizations
    assert token not in run.stdout + run.stderr, "the secret in the run's output"
    for name in os.listdir(work):
        with open(os.path.join(work, name), "rb") as f:
            assert token.encode() not in f.read(), f"the secret in {name}"


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    work = tempfile.mkdtemp(prefix="steward-webhooks-")
    rules = os.path.join(work, "rules.stw")
    with open(rules, "w") as f:
        f.write(
            "event price.changed { listing_id: string  price: decimal }\n"
            f'action apply_price(listing_id: string, price: decimal) via webhook "{url}"\n'
            "rule forward when price.changed then\n"
            "  apply_price(listing_id, price)\n"
            "end\n"
        )
    listings = ["slow", "ok", "flaky", "busy", "gone", "down", "ok2"]
    events = os.path.join(work, "events.jsonl")
    with open(events, "w") as f:
        for i, listing in enumerate(listings):
            f.write(json.dumps({
                "id": f"e{i}", "tenant": "acme", "type": "price.changed",
                # `slow` first, so that it is claimed first.
                "occurred_at": "2026-11-20T09:59:00Z" if listing == "slow" else "2026-11-20T10:00:00Z",
                "payload": {"listing_id": listing, "price": "105.00"},
            }) + "\n")
    db = os.path.join(work, "steward.db")
    env = dict(os.environ, STEWARD_WEBHOOK_SECRET=SECRET)
    env.pop("DATABASE_URL", None)
    env.pop("STEWARD_SMTP_URL", None)
    env.pop("STEWARD_WEBHOOK_ALLOW", None)
    refused_destinations(work, env, server.server_port)
    redirect_not_followed(work, env, server.server_port)
    subprocess.run([STEWARD, "push", "--database", db, events], check=True, env=env)
    # One run: the retries (due within a second) are waited for; what is
    # dead is listed, and the run says so with its exit status.
    run = subprocess.run(
        [STEWARD, "run", "--database", db, "--rules", rules, "--exit-when-idle", "--allow-loopback",
         "--retry-base", "50ms", "--max-attempts", "3", "--poll", "20ms",
         "--delivery-timeout", "30s"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 3, (run.returncode, run.stderr)
    stderr = run.stderr
    waiting = sqlite3.connect(db).execute(
        "SELECT COUNT(*) FROM steward_actions WHERE status IN ('pending', 'failed')"
    ).fetchone()[0]
    assert waiting == 0, stderr
    not_delivered = [l for l in stderr.splitlines() if l.startswith("not delivered: ")]
    assert len(not_delivered) == 2 and all(" dead after " in l for l in not_delivered), stderr
    assert any("410 Gone" in l for l in not_delivered), stderr
    # Run again: nothing is delivered twice, and the dead are still said.
    again = subprocess.run(
        [STEWARD, "run", "--database", db, "--rules", rules, "--exit-when-idle", "--poll", "20ms",
         "--allow-loopback"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert again.returncode == 3, (again.returncode, again.stderr)

    assert not failures, failures
    by_listing = {}
    for wid, seen in received.items():
        assert wid.startswith("stw_"), wid
        listing = seen[0][0]
        assert all(s[0] == listing for s in seen), (wid, seen)
        by_listing[listing] = seen
    counts = {listing: len(seen) for listing, seen in by_listing.items()}
    assert counts == {"ok": 1, "flaky": 2, "busy": 2, "gone": 1, "down": 3, "ok2": 1, "slow": 1}, counts
    # The slow endpoint held one delivery thread; the others went on.
    assert overtaken == [True], overtaken
    # A retry is signed again: its own timestamp and signature are checked.
    duplicates = sum(n - 1 for n in counts.values())

    status = dict(sqlite3.connect(db).execute(
        "SELECT json_extract(args, '$.listing_id'), status || ' ' || attempts FROM steward_actions"
    ).fetchall())
    assert status == {
        "ok": "delivered 1", "flaky": "delivered 2", "busy": "delivered 2",
        "gone": "dead 1", "down": "dead 3", "ok2": "delivered 1", "slow": "delivered 1",
    }, status
    assert "is dead" in stderr, stderr

    # A retry further off than --idle-wait is left for later, and listed.
    later = os.path.join(work, "later.jsonl")
    with open(later, "w") as f:
        f.write(json.dumps({
            "id": "later", "tenant": "acme", "type": "price.changed",
            "occurred_at": "2026-11-20T11:00:00Z",
            "payload": {"listing_id": "flaky", "price": "99.00"},
        }) + "\n")
    subprocess.run([STEWARD, "push", "--database", db, later], check=True, env=env)
    run = subprocess.run(
        [STEWARD, "run", "--database", db, "--rules", rules, "--exit-when-idle", "--allow-loopback",
         "--retry-base", "1h", "--idle-wait", "1m", "--poll", "20ms"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 3, (run.returncode, run.stderr)
    listed = [l for l in run.stderr.splitlines() if l.startswith("not delivered: ")]
    assert any(" failed after 1 attempt(s), next attempt " in l for l in listed), run.stderr
    credentials(work, env, url)
    server.shutdown()
    print(f"webhooks: {len(received)} ids, {sum(counts.values())} deliveries, "
          f"{duplicates} repeats (each with its id), all verified; one run waited for the "
          f"retries due soon and exited 3 listing the dead; a retry an hour off was left, listed; a credential "
          f"from `steward secret set` sent in its header, and nowhere else")


if __name__ == "__main__":
    main()
