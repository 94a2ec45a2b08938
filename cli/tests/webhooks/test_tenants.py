"""Each tenant's webhooks signed with its own secret, verified by the official
Standard Webhooks library (PyPI `standardwebhooks`), through `steward serve`:

- a tenant is made with its signing secret, shown once; acme's webhooks verify
  with acme's secret and not with beta's, and beta's the other way round;
- a rotation with a grace period: the next webhook verifies with the old secret
  and with the new one (both signatures in `webhook-signature`);
- a rotation without grace: the next verifies with the newest only;
- a credential from the tenant's secrets (`header "Authorization" = "Bearer " +
  secret pms_token`): sent to acme's receiver, set again and the next carries
  the new value; beta's rules naming acme's secret do not check;
- the secrets' values appear nowhere else: not in the database files, the
  server's log, or any answer of the API in the run.
"""

import base64
import datetime
import http.server
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from standardwebhooks import Webhook

STEWARD = os.environ["STEWARD"]
ADMIN = "admin-" + base64.b16encode(os.urandom(8)).decode()
KEY = base64.b64encode(os.urandom(32)).decode()

received = []  # (path, body, headers)
lock = threading.Lock()
answers = []  # every API answer's text
TOKEN = "pms-" + base64.b16encode(os.urandom(12)).decode()
TOKEN2 = "pms-" + base64.b16encode(os.urandom(12)).decode()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        with lock:
            received.append((self.path, body, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            answers.append(text)
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        answers.append(text)
        return e.code, json.loads(text or "null")


def wait_for(what, check, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def verifies(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers)
        return True
    except Exception:
        return False


def main():
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="steward-tenants-")
    port = free_port()
    env = dict(os.environ, STEWARD_ADMIN_TOKEN=ADMIN, STEWARD_SECRET_KEY=KEY,
               STEWARD_WEBHOOK_ALLOW="127.0.0.1/32")
    for name in ("DATABASE_URL", "STEWARD_SMTP_URL", "STEWARD_WEBHOOK_SECRET"):
        env.pop(name, None)
    serve = subprocess.Popen(
        [STEWARD, "serve", "--database", os.path.join(work, "steward.db"),
         "--listen", f"127.0.0.1:{port}", "--poll", "50ms", "--delivery-timeout", "1s"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    lines = []
    try:
        for line in serve.stderr:
            lines.append(line)
            if "listening on" in line:
                break
        threading.Thread(target=lambda: lines.extend(serve.stderr), daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        secrets, tokens = {}, {}
        for tenant in ("acme", "beta"):
            status, body = call(base, "POST", "/v1/tenants", ADMIN, {"id": tenant})
            assert status == 201, body
            assert body["signing_secret"].startswith("whsec_"), body
            secrets[tenant] = [body["signing_secret"]]
            status, body = call(base, "POST", f"/v1/tenants/{tenant}/tokens", ADMIN, {})
            assert status == 201, body
            tokens[tenant] = body["token"]
        # acme's webhook carries a credential from its secrets.
        status, body = call(base, "PUT", "/v1/secrets/pms_token", tokens["acme"], {"value": TOKEN})
        assert status == 204, body

        def rules(tenant, credential):
            header = ' with header "Authorization" = "Bearer " + secret pms_token' if credential else ""
            return (
                "event ping { id: string }\n"
                f'action hook(id: string) via webhook "http://127.0.0.1:{hooks.server_port}/{tenant}"{header}\n'
                "rule ping when ping then\n  hook(id)\nend\n"
            )
        # beta cannot name acme's secret: its rules do not check.
        status, body = call(base, "PUT", "/v1/rulesets/main", tokens["beta"], {"files": {"main.stw": rules("beta", True)}})
        assert status == 422, (status, body)
        assert "E0417" in json.dumps(body) and "pms_token" in json.dumps(body), body
        for tenant in ("acme", "beta"):
            status, body = call(base, "PUT", "/v1/rulesets/main", tokens[tenant],
                                {"files": {"main.stw": rules(tenant, tenant == "acme")}})
            assert status == 201, body
        assert secrets["acme"] != secrets["beta"]

        def ping(tenant, id):
            now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
            at = now.isoformat().replace("+00:00", "Z")
            status, body = call(base, "POST", "/v1/events", tokens[tenant],
                                [{"id": id, "type": "ping", "occurred_at": at, "payload": {"id": id}}])
            assert status == 202, body

            def arrived():
                with lock:
                    found = [r for r in received if json.loads(r[1])["id"] == id]
                return found[0] if found else None
            return wait_for(f"{tenant}'s webhook {id}", arrived)

        # Each tenant's webhooks verify with its own secret only.
        path, body, headers = ping("acme", "a1")
        assert path == "/acme"
        assert verifies(secrets["acme"][0], body, headers)
        assert not verifies(secrets["beta"][0], body, headers)
        assert headers["authorization"] == f"Bearer {TOKEN}", headers
        path, body, headers = ping("beta", "b1")
        assert path == "/beta"
        assert verifies(secrets["beta"][0], body, headers)
        assert not verifies(secrets["acme"][0], body, headers)
        assert "authorization" not in headers, headers

        # The credential set again: the next webhook carries the new value.
        status, body = call(base, "PUT", "/v1/secrets/pms_token", tokens["acme"], {"value": TOKEN2})
        assert status == 204, body
        _, _, headers = ping("acme", "a1b")
        assert headers["authorization"] == f"Bearer {TOKEN2}", headers

        # A rotation with a grace: old and new both verify the next one.
        status, body = call(base, "POST", "/v1/secrets/webhook-signing/rotate", tokens["acme"], {"grace": "1h"})
        assert status == 201, body
        assert body["previous_until"], body
        secrets["acme"].append(body["secret"])
        _, body, headers = ping("acme", "a2")
        assert len(headers["webhook-signature"].split(" ")) == 2, headers["webhook-signature"]
        assert verifies(secrets["acme"][0], body, headers), "the old secret, during the grace"
        assert verifies(secrets["acme"][1], body, headers), "the new secret"
        assert not verifies(secrets["beta"][0], body, headers)

        # Without a grace: only the newest.
        status, body = call(base, "POST", "/v1/secrets/webhook-signing/rotate", tokens["acme"], {"grace": "0s"})
        assert status == 201, body
        secrets["acme"].append(body["secret"])
        _, body, headers = ping("acme", "a3")
        assert verifies(secrets["acme"][2], body, headers)
        assert not verifies(secrets["acme"][1], body, headers)
        assert not verifies(secrets["acme"][0], body, headers)

        # Actions an hour: beta has delivered one; with a quota of one, the
        # next waits (claimed again and again, no attempt spent) until the
        # quota is raised, then goes.
        status, body = call(base, "PUT", "/v1/tenants/beta/quotas", ADMIN, {"actions_per_hour": 1})
        assert status == 200, body
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        at = now.isoformat().replace("+00:00", "Z")
        status, body = call(base, "POST", "/v1/events", tokens["beta"],
                            [{"id": "b2", "type": "ping", "occurred_at": at, "payload": {"id": "b2"}}])
        assert status == 202, body

        def held():
            _, body = call(base, "GET", "/v1/actions?rule=ping", tokens["beta"])
            return [a for a in body["data"] if a["event"] == "b2" and a["next_attempt_at"]]

        first = wait_for("b2's delivery claimed", held)[0]
        second = wait_for("b2 claimed again, still held",
                          lambda: [a for a in held() if a["next_attempt_at"] != first["next_attempt_at"]])[0]
        for a in (first, second):
            assert a["status"] == "pending" and a["attempts"] == 0, a
        with lock:
            assert not [r for r in received if json.loads(r[1])["id"] == "b2"], "held back, yet sent"
        status, body = call(base, "GET", "/v1/tenant", tokens["beta"])
        assert body["quotas"]["actions_per_hour"] == 1, body
        status, body = call(base, "PUT", "/v1/tenants/beta/quotas", ADMIN, {"actions_per_hour": 10})
        assert status == 200, body

        def arrived_b2():
            with lock:
                return [r for r in received if json.loads(r[1])["id"] == "b2"]
        wait_for("b2 once the quota allows it", arrived_b2)

        # Secrets are listed by name only, and never to another tenant.
        status, body = call(base, "GET", "/v1/secrets", tokens["beta"])
        assert status == 200 and [s["name"] for s in body["data"]] == ["webhook-signing"], body
        assert secrets["beta"][0] not in json.dumps(body)
        # What a tenant can read of its webhooks: the actions, the event's
        # why, the rulesets, the audit log.
        for path in ("/v1/actions", "/v1/events/a1/trace", "/v1/events/a1", "/v1/rulesets/main", "/v1/audit", "/v1/secrets"):
            status, _ = call(base, "GET", path, tokens["acme"])
            assert status == 200, (path, status)
    finally:
        serve.terminate()
        code = serve.wait(timeout=60)
        hooks.shutdown()
    assert code == 0, (code, "".join(lines))
    # The credentials' values appear nowhere but in the requests they were
    # sent with: not in the database's files, the log, or any answer.
    for value in (TOKEN, TOKEN2):
        for name in os.listdir(work):
            with open(os.path.join(work, name), "rb") as f:
                assert value.encode() not in f.read(), f"{value} in {name}"
        assert value not in "".join(lines), "in the server's log"
        assert not [a for a in answers if value in a], "in an API answer"
    print(f"tenants: each tenant's webhooks verified with its own secret only; "
          f"a rotation's grace signed with both, then the newest alone; a credential from acme's secrets sent, set again, never shown and not usable by beta; a delivery held back by the "
          f"tenant's actions an hour until it was raised ({len(received)} webhooks)")


if __name__ == "__main__":
    main()
