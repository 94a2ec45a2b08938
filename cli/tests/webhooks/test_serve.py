"""`steward serve` end to end, on SQLite and then on PostgreSQL (a database
of this run's own at DATABASE_URL; under CI an unreachable server fails): a tenant is made and given a token, the
repository's `rules/` are deployed with `steward deploy`, events are posted,
an approval asked of the owner is mailed to the role's holder with a link
(the console mail transport prints it), and decided through that link
(opening the page decides nothing; its button's POST decides, once), and the webhook the approved block sends
arrives, verified by the official Standard Webhooks library. A deploy that
does not check with the tenant's other rulesets is refused with the
server's diagnostics, and exit code 1.

The rules deliver `apply_price` to http://127.0.0.1:9000/price (see
rules/declarations.stw), so the receiver listens there.
"""

import base64
import datetime
import http.server
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from standardwebhooks import Webhook

from common import psql

SECRET = "whsec_" + base64.b64encode(b"steward-serve-secret-0123456789a").decode()
STEWARD = os.environ["STEWARD"]
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ADMIN = "admin-" + base64.b16encode(os.urandom(8)).decode()

received = []
failures = []
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = Webhook(SECRET).verify(body, headers)
        except Exception as e:
            with lock:
                failures.append(str(e))
            self.send_response(400)
            self.end_headers()
            return
        with lock:
            received.append((headers["webhook-id"], payload))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, body=None, token=None, form=None):
        data, headers = None, {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        token = token or self.token
        if token:
            headers["authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def json(self, method, path, body=None, token=None):
        status, text = self.call(method, path, body, token)
        return status, json.loads(text) if text else None


def wait_for(what, check, seconds=60):
    """Waits until `check()` is true (the deadline only guards a hang)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def main():
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 9000), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        work = tempfile.mkdtemp(prefix="steward-serve-")
        serve_on(os.path.join(work, "steward.db"), work, "SQLite")
        admin = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
        name = f"steward_serve_{os.getpid()}"
        try:
            psql(admin, f"CREATE DATABASE {name}")
        except (RuntimeError, OSError) as e:
            if os.environ.get("CI"):
                raise SystemExit(f"PostgreSQL at DATABASE_URL is unreachable and CI is set: {e}")
            print(f"serve: PostgreSQL skipped, unreachable at DATABASE_URL: {e}")
            return
        try:
            serve_on(f"{admin.rsplit('/', 1)[0]}/{name}", work, "PostgreSQL")
        finally:
            psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        receiver.shutdown()


def serve_on(database, work, label):
    with lock:
        received.clear()
        failures.clear()
    port = free_port()
    # The receiver is on the loopback, which only an operator opens.
    env = dict(os.environ, STEWARD_WEBHOOK_SECRET=SECRET, STEWARD_ADMIN_TOKEN=ADMIN,
               STEWARD_WEBHOOK_ALLOW="127.0.0.1/32")
    env.pop("DATABASE_URL", None)
    env.pop("STEWARD_SMTP_URL", None)
    serve = subprocess.Popen(
        [STEWARD, "serve", "--database", database,
         "--listen", f"127.0.0.1:{port}", "--poll", "50ms"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    lines = []
    printed = []  # serve's stdout: actions, and mails (no SMTP here)
    threading.Thread(target=lambda: printed.extend(serve.stdout), daemon=True).start()
    try:
        # Wait until it says it listens.
        for line in serve.stderr:
            lines.append(line)
            if "listening on" in line:
                break
        threading.Thread(target=lambda: lines.extend(serve.stderr), daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        admin = Api(base, ADMIN)
        status, _ = admin.json("POST", "/v1/tenants", {"id": "acme"})
        assert status == 201, status
        status, body = admin.json("POST", "/v1/tenants/acme/tokens", {})
        assert status == 201, body
        token = body["token"]
        api = Api(base, token)

        deploy = subprocess.run(
            [STEWARD, "deploy", os.path.join(ROOT, "rules"), "--ruleset", "main",
             "--server", base, "--token", token],
            env=env, capture_output=True, text=True, timeout=120, cwd=ROOT,
        )
        assert deploy.returncode == 0, deploy.stderr
        assert "deployed ruleset `main` version 1" in deploy.stderr, deploy.stderr
        status, body = api.json("GET", "/v1/rulesets/main")
        assert "pricing.stw" in body["files"], list(body["files"])
        # A second ruleset whose rule takes a name `main` has is refused:
        # found here, checked with the tenant's other rulesets...
        clash = os.path.join(work, "clash.stw")
        with open(clash, "w") as f:
            f.write('rule price_changes when pricing.recommended then\n  log "again"\nend\n')
        refused = subprocess.run(
            [STEWARD, "deploy", clash, "--ruleset", "clash", "--server", base, "--token", token],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert refused.returncode == 1, (refused.returncode, refused.stderr)
        assert "declared twice" in refused.stderr, refused.stderr
        # ... or, with a token that cannot read them, by the server: its
        # diagnostics drawn on the local file.
        _, body = admin.json("POST", "/v1/tenants/acme/tokens", {"scopes": ["rulesets:deploy"]})
        with open(clash, "w") as f:
            f.write('event job { id: string }\nrule price_changes when job then\n  log "again"\nend\n')
        refused = subprocess.run(
            [STEWARD, "deploy", clash, "--ruleset", "clash", "--server", base,
             "--token", body["token"]],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert refused.returncode == 1, (refused.returncode, refused.stderr)
        assert "refused the deploy (422" in refused.stderr, refused.stderr
        assert "declared twice" in refused.stderr and "clash.stw:2:6" in refused.stderr, refused.stderr

        status, body = api.json("PUT", "/v1/roles/owner", {"emails": ["owner@example.com"]})
        assert status == 200, body
        status, body = api.json("PUT", "/v1/roles/owner", {"emails": ["not an address"]})
        assert status == 422, body

        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        at = now.isoformat().replace("+00:00", "Z")
        status, body = api.json("POST", "/v1/events", [
            {"id": "p1", "type": "pricing.recommended", "occurred_at": at,
             "payload": {"listing_id": "big", "current": 100, "recommended": 150}},
            {"id": "p2", "type": "pricing.recommended", "occurred_at": at,
             "payload": {"listing_id": "small", "current": 100, "recommended": 105}},
        ])
        assert status == 202, body

        def pending():
            _, body = api.json("GET", "/v1/approvals?status=pending")
            return body["data"]

        approval = wait_for("the approval", pending)[0]
        assert approval["rule"] == "price_changes" and approval["role"] == "owner", approval
        assert approval["on_approve"] == ["apply_price"], approval
        assert approval["on_reject"] == ["notify"], approval
        wait_for("the small change's webhook",
                 lambda: any(p["listing_id"] == "small" for _, p in received))
        status, trace = api.json("GET", "/v1/events/p1/trace")
        assert status == 200, trace
        assert any(r["rule"] == "price_changes" and r["matched"] for r in trace["trace"]["rules"]), trace

        quoted = urllib.parse.quote(approval["id"], safe="")
        # The owner's mail, with its link.
        def mailed():
            for line in list(printed):
                if line.startswith("mail ") and "/approve/" in line:
                    args = json.loads(line.split(": ", 1)[1])
                    if args["to"] == "owner@example.com":
                        return args
            return None

        mail = wait_for("the owner's mail", mailed)
        assert "price_changes" in mail["subject"], mail
        url = re.search(r"http://\S+/approve/\S+", mail["body"]).group(0)
        path = urllib.parse.urlparse(url).path
        # A mail scanner opens the link: a page, and no decision.
        for _ in range(2):
            status, page = api.call("GET", path, token="")
            assert status == 200, page
            assert "Approve" in page and "Reject" in page and "price_changes" in page, page
        assert pending(), "opening the link decided nothing"
        assert not any(p["listing_id"] == "big" for _, p in received)
        status, page = api.call("POST", path, token="", form={"decision": "approve", "by": "Olga"})
        assert status == 200, page
        status, page = api.call("POST", path, token="", form={"decision": "reject", "by": "Olga"})
        assert status == 410, (status, page)
        # The engine takes the decision and the approved block's webhook
        # arrives.
        wid, payload = wait_for(
            "the approved change's webhook",
            lambda: next(((w, p) for w, p in received if p["listing_id"] == "big"), None),
        )
        assert payload["price"] in ("150", "150.00", 150), payload
        _, body = api.json("GET", f"/v1/approvals/{quoted}")
        assert body["decision"]["by"] == "Olga" and body["decision"]["via"] == "link", body
        assert body["decision"]["taken"] is True or body["status"] == "approved", body

        def delivered():
            _, body = api.json("GET", "/v1/actions?status=delivered&rule=price_changes")
            return [a for a in body["data"] if a["action"] == "apply_price"]

        actions = wait_for("the delivered action", lambda: len(delivered()) == 2 and delivered())
        assert wid in {a["id"] for a in actions}, (wid, actions)
        _, audit = api.json("GET", "/v1/audit")
        whats = [e["what"] for e in audit["data"]]
        assert "approval.approved" in whats and "ruleset.deployed" in whats, whats
        status, metrics = api.call("GET", "/metrics", token="")
        assert status == 200, metrics
        assert 'steward_http_requests_total{route="/v1/events"' in metrics, metrics
        assert "steward_events_processed_total" in metrics, metrics

        # A tenant's webhook to the cloud's metadata address, or to a
        # loopback address the operator did not open: dead at once, with why.
        probe = (
            "event probe { id: string }\n"
            'action metadata(id: string) via webhook "http://169.254.169.254/latest/meta-data/"\n'
            'action admin(id: string) via webhook "http://127.0.0.2:9000/internal-admin"\n'
            "rule probe when probe then\n  metadata(id)\n  admin(id)\nend\n"
        )
        status, body = api.json("PUT", "/v1/rulesets/probe", {"files": {"probe.stw": probe}})
        assert status == 201, body
        status, body = api.json("POST", "/v1/events", [
            {"id": "probe1", "type": "probe", "occurred_at": at, "payload": {"id": "probe1"}}])
        assert status == 202, body

        def refused():
            _, body = api.json("GET", "/v1/actions?status=dead&rule=probe")
            return body["data"] if len(body["data"]) == 2 else None

        dead = {a["action"]: a for a in wait_for("the refused webhooks", refused)}
        assert "link-local" in dead["metadata"]["last_error"], dead
        assert "loopback" in dead["admin"]["last_error"], dead
        assert all("is not an allowed destination" in a["last_error"] and a["attempts"] == 1
                   for a in dead.values()), dead
        assert not failures, failures
    finally:
        serve.terminate()
        code = serve.wait(timeout=60)
    assert code == 0, (code, "".join(lines))
    print(f"serve on {label}: deployed, approved by link, {len(received)} webhooks verified; stopped cleanly")


if __name__ == "__main__":
    main()
