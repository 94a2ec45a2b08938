"""Two `steward run` workers on one PostgreSQL database while thousands of
events are inserted; one of them is killed with SIGKILL at random moments
and started again, several times. At the end:

- every event was processed exactly once: each is `processed`, each has its
  two actions, and no action was performed twice (the workers print every
  action they commit, so a doubly processed event would print its key twice);
- every action row exists once by key, and all were delivered;
- every webhook was received and verified by the official Standard Webhooks
  library (duplicates, which a kill between a delivery and its record may
  cause, are counted and printed, and always carry the same webhook-id);
- every mail arrived at aiosmtpd with the Message-ID of its key;
- events of one key were handled in the order they occurred;
- a schedule's tick fired once across the two workers;
- what rules remember was kept once per event: each event after the first of
  its key saw the previous one's `n` (`previous n`), and a `count 5 within 1d
  by group` clause (groups that cross keys, so the workers share them) fired
  exactly once per five events of a group, and a `when no booking on group`
  watch left one pending timer per group.

The seed of the kills is printed (STEWARD_CRASH_SEED replays it).
"""

import base64
import datetime
import email
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from aiosmtpd.controller import Controller
from standardwebhooks import Webhook

from common import psql

SECRET = "whsec_" + base64.b64encode(b"steward-crash-secret-0123456789a").decode()
STEWARD = os.environ["STEWARD"]
EVENTS = 2000
KEYS = 40
KILLS = 5
GROUPS = 7
# A hang guard, not a timed assertion: the run fails with its state if the
# work is not done by then.
GIVE_UP_AFTER = 600
BASE = datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.timezone.utc)

received = {}  # webhook-id -> number of deliveries
failures = []
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            Webhook(SECRET).verify(body, headers)
        except Exception as e:  # the verifier refused it
            with lock:
                failures.append(f"{headers.get('webhook-id')}: {e}")
            self.send_response(400)
            self.end_headers()
            return
        wid = headers["webhook-id"]
        with lock:
            if headers.get("idempotency-key") != wid:
                failures.append(f"{wid}: Idempotency-Key {headers.get('idempotency-key')}")
            received[wid] = received.get(wid, 0) + 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Mails:
    def __init__(self):
        self.ids = {}

    async def handle_DATA(self, server, session, envelope):
        mid = email.message_from_bytes(envelope.content)["Message-ID"]
        with lock:
            self.ids[mid] = self.ids.get(mid, 0) + 1
        return "250 OK"


def database():
    admin = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
    name = f"steward_crash_{os.getpid()}"
    try:
        psql(admin, f"CREATE DATABASE {name}")
    except (RuntimeError, OSError) as e:
        if os.environ.get("CI"):
            raise SystemExit(f"PostgreSQL at DATABASE_URL is unreachable and CI is set: {e}")
        print(f"crash: skipped, PostgreSQL at DATABASE_URL is unreachable: {e}")
        sys.exit(0)
    base = admin.rsplit("/", 1)[0]
    return admin, name, f"{base}/{name}"


def main():
    seed = int(os.environ.get("STEWARD_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    print(f"crash: seed {seed}")
    admin, name, url = database()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mails = Mails()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        smtp_port = s.getsockname()[1]
    controller = Controller(mails, hostname="127.0.0.1", port=smtp_port)
    controller.start()

    work = tempfile.mkdtemp(prefix="steward-crash-")
    rules = os.path.join(work, "rules.stw")
    with open(rules, "w") as f:
        f.write(
            "event booking { id: string  email: string  n: int  group: string }\n"
            f'action record(id: string, n: int) via webhook "http://127.0.0.1:{server.server_port}/hook"\n'
            'message welcome { to: email  subject: "Booking {id}"  body: "Booking {id} is confirmed." }\n'
            "rule book when booking then\n"
            "  record(id, n)\n"
            "  send welcome\n"
            "end\n"
            'rule beat every 1s then log("beat") end\n'
            # What rules remember: the previous event of the key, and a
            # window per group shared by both workers.
            "rule followed when booking if previous n != none then\n"
            '  log "after {id}"\n'
            "end\n"
            f"rule gap when booking if previous n != none and n != (previous n ?? 0) + {KEYS} then\n"
            '  log "gap at {id}"\n'
            "end\n"
            "rule fifth when booking count 5 within 1d by group then\n"
            '  log "fifth of {group} at {id}"\n'
            "end\n"
            # A watch per group, started again by each booking of it.
            "rule idle when no booking on group for 365d since booking on group then\n"
            '  log "no booking in {group} for a year"\n'
            "end\n"
        )
    env = dict(os.environ, STEWARD_WEBHOOK_SECRET=SECRET,
               STEWARD_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
               STEWARD_MAIL_FROM="Steward <steward@example.com>")
    env.pop("DATABASE_URL", None)
    subprocess.run([STEWARD, "migrate", "--database", url], check=True, env=env,
                   capture_output=True)

    outputs = []

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        metrics_port = s.getsockname()[1]

    def start(tag, *extra):
        out = open(os.path.join(work, f"{tag}-{len(outputs)}.out"), "w")
        err = open(os.path.join(work, f"{tag}-{len(outputs)}.err"), "w")
        outputs.append(out.name)
        return subprocess.Popen(
            [STEWARD, "run", "--database", url, "--rules", rules, "--poll", "50ms", "--allow-loopback",
             "--delivery-timeout", "2s", "--retry-base", "200ms", "--batch", "50", *extra],
            stdout=out, stderr=err, env=env,
        )

    steady = start("steady", "--metrics", f"127.0.0.1:{metrics_port}/metrics")
    victim = start("victim")

    def push(chunk):
        lines = "".join(json.dumps({
            "id": f"b{i}", "tenant": "acme", "type": "booking",
            "occurred_at": (BASE + datetime.timedelta(milliseconds=10 * i)).isoformat()
                           .replace("+00:00", "Z"),
            "key": f"k{i % KEYS}",
            "payload": {"id": f"b{i}", "email": f"guest{i}@example.com", "n": i,
                        "group": f"g{i % GROUPS}"},
        }) + "\n" for i in chunk)
        subprocess.run([STEWARD, "push", "--database", url, "-"], input=lines, text=True,
                       check=True, env=env, capture_output=True)

    # Occurred times increase with i, so a key's events occur in the order
    # of their numbers.
    chunks = [range(i, min(i + 100, EVENTS)) for i in range(0, EVENTS, 100)]
    kills_at = sorted(rng.sample(range(1, len(chunks) + 8), KILLS))
    kills = 0
    for n in range(len(chunks) + 8):
        if n < len(chunks):
            push(chunks[n])
        if n in kills_at:
            time.sleep(rng.uniform(0.0, 0.8))
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            victim = start("victim")
        else:
            time.sleep(rng.uniform(0.05, 0.3))

    deadline = time.monotonic() + GIVE_UP_AFTER
    while True:
        state = psql(url, "SELECT (SELECT COUNT(*) FROM steward_events WHERE status <> 'processed') "
                          "|| ' ' || (SELECT COUNT(*) FROM steward_actions WHERE rule = 'book') "
                          "|| ' ' || (SELECT COUNT(*) FROM steward_actions WHERE status <> 'delivered')")
        unprocessed, actions, undelivered = map(int, state.split())
        with lock:
            webhooks, mailed = len(received), len(mails.ids)
        if (unprocessed == 0 and actions == 2 * EVENTS and undelivered == 0
                and webhooks == EVENTS and mailed == EVENTS):
            break
        for p in (steady, victim):
            if p.poll() is not None:
                raise AssertionError(f"a worker exited ({p.returncode}): see {work}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not done: {state}, {webhooks} webhooks, {mailed} mails; see {work}")
        time.sleep(0.2)
    # The steady worker's metrics: what it processed and delivered.
    metrics = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                metric, value = line.rsplit(" ", 1)
                metrics[metric] = float(value)
    total = lambda prefix: sum(v for k, v in metrics.items() if k.split("{")[0] == prefix)
    assert 0 < total("steward_events_processed_total") <= EVENTS, metrics
    assert total("steward_actions_delivered_total") > 0, metrics
    assert total("steward_event_lag_seconds_count") == total("steward_events_processed_total"), metrics
    assert total("steward_delivery_seconds_count") > 0, metrics
    # SIGTERM: each finishes its batch, gives its leases up and exits 0.
    for p in (steady, victim):
        p.terminate()
    for p in (steady, victim):
        assert p.wait() == 0, f"a worker did not stop cleanly ({p.returncode}): see {work}"
    controller.stop()
    server.shutdown()

    # Processed once: every event has its two actions, each key once.
    rows = psql(url, "SELECT event, COUNT(*) FROM steward_actions WHERE rule = 'book' GROUP BY event")
    per_event = dict(line.split("|") for line in rows.splitlines())
    assert len(per_event) == EVENTS and set(per_event.values()) == {"2"}, per_event
    printed = {}
    for path in outputs:
        with open(path) as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            if not line:
                continue
            if not line.endswith("}") and i == len(lines) - 1:
                continue  # cut by a SIGKILL
            key = json.loads(line)["key"]
            printed[key] = printed.get(key, 0) + 1
    twice = {k: n for k, n in printed.items() if n > 1}
    assert not twice, f"performed more than once: {twice}"

    # Delivered: each webhook verified, each mail with its key's Message-ID.
    assert not failures, failures[:5]
    keys = dict(line.split("|") for line in psql(
        url, "SELECT key, action FROM steward_actions WHERE rule = 'book'").splitlines())
    hooks = {k for k, a in keys.items() if a == "record"}
    sends = {k for k, a in keys.items() if a == "send"}
    assert set(received) == hooks, (len(received), len(hooks))
    assert set(mails.ids) == {f"<{k}@steward>" for k in sends}, (len(mails.ids), len(sends))
    hook_repeats = sum(n - 1 for n in received.values())
    mail_repeats = sum(n - 1 for n in mails.ids.values())

    # Per-key order: handled in the order the key's events occurred.
    rows = psql(url, "SELECT key, id FROM steward_events ORDER BY key, processed_at")
    last = {}
    for line in rows.splitlines():
        key, eid = line.split("|")
        n = int(eid[1:])
        assert last.get(key, -1) < n, f"key {key}: b{n} handled after b{last[key]}"
        last[key] = n

    # Ticks: once each across the workers (printed once, rows unique by key).
    ticks = int(psql(url, "SELECT COUNT(*) FROM steward_actions WHERE rule = 'beat'"))
    tick_events = int(psql(url, "SELECT COUNT(DISTINCT event) FROM steward_actions WHERE rule = 'beat'"))
    assert ticks == tick_events and ticks > 0, (ticks, tick_events)

    # Remembered once per event: each event but the first of its key saw the
    # previous one, never a gap; each group's count fired once per five.
    count = lambda rule: int(psql(url, f"SELECT COUNT(*) FROM steward_actions WHERE rule = '{rule}'"))
    assert count("followed") == EVENTS - KEYS, count("followed")
    assert count("gap") == 0, psql(url, "SELECT args FROM steward_actions WHERE rule = 'gap' LIMIT 5")
    per_group = [len(range(g, EVENTS, GROUPS)) for g in range(GROUPS)]
    assert count("fifth") == sum(n // 5 for n in per_group), (count("fifth"), per_group)
    # One pending watch per watched group, never one per booking.
    watches = psql(url, "SELECT key FROM steward_timers WHERE rule = 'idle' ORDER BY key")
    assert watches.split() == [f"g{g}" for g in range(GROUPS)], watches
    assert count("idle") == 0, count("idle")

    psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    print(f"crash: {EVENTS} events on {KEYS} keys, 2 workers, {kills} SIGKILLs: each event processed "
          f"once and in order per key, {len(keys)} actions once each; {len(received)} webhooks verified "
          f"({hook_repeats} delivered again, with the same webhook-id), {len(mails.ids)} mails "
          f"({mail_repeats} again, with the same Message-ID); {ticks} ticks, each once; "
          f"previous values and counts kept once per event")


if __name__ == "__main__":
    main()
