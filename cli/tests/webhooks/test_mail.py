"""Mail from `steward run` over SMTP, received by aiosmtpd (a mail server
someone else wrote): every `send` arrives once, from STEWARD_MAIL_FROM, to
its recipients, with its subject, its body and the Message-ID made from the
action's key; running again sends nothing twice.
"""

import email
import json
import os
import socket
import sqlite3
import subprocess
import tempfile

from aiosmtpd.controller import Controller

STEWARD = os.environ["STEWARD"]


class Keep:
    def __init__(self):
        self.mails = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


def main():
    keep = Keep()
    # A free port: aiosmtpd's controller needs one it can connect to.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(keep, hostname="127.0.0.1", port=port)
    controller.start()
    work = tempfile.mkdtemp(prefix="steward-mail-")
    rules = os.path.join(work, "rules.stw")
    with open(rules, "w") as f:
        f.write(
            "event booking { id: string  email: string  name: string }\n"
            "message welcome {\n"
            "  to: email\n"
            "  cc: [\"desk@example.com\", \"owner@example.com\"]\n"
            "  subject: \"Welcome, {name}!\"\n"
            "  body: \"Booking {id} is confirmed.\"\n"
            "}\n"
            "rule greet when booking then send welcome end\n"
            "rule tell when booking then\n"
            "  notify email \"Booking {id} needs a look\\nThe guest is {name}.\"\n"
            "  notify user name \"Not mailed: a user id\"\n"
            "  notify role desk \"Not mailed: a role\"\n"
            "end\n"
        )
    events = os.path.join(work, "events.jsonl")
    with open(events, "w") as f:
        for i, (mail, name) in enumerate([("ana@example.com", "Ana"), ("bo@example.com", "Bo")]):
            f.write(json.dumps({
                "id": f"b{i}", "tenant": "acme", "type": "booking",
                "occurred_at": "2026-11-20T10:00:00Z",
                "payload": {"id": f"b{i}", "email": mail, "name": name},
            }) + "\n")
    db = os.path.join(work, "steward.db")
    env = dict(os.environ, STEWARD_SMTP_URL=f"smtp://127.0.0.1:{port}",
               STEWARD_MAIL_FROM="Steward <steward@example.com>")
    env.pop("DATABASE_URL", None)
    subprocess.run([STEWARD, "push", "--database", db, events], check=True, env=env)
    for _ in range(2):
        run = subprocess.run(
            [STEWARD, "run", "--database", db, "--rules", rules, "--exit-when-idle"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stderr
    controller.stop()

    # Two welcomes and two notifications to an address; the notifications
    # to a user id and to a role are not mailed.
    assert len(keep.mails) == 4, [m["Subject"] for _, m in keep.mails]
    rows = sqlite3.connect(db).execute(
        "SELECT action, coalesce(json_extract(args, '$.to'), json_extract(args, '$.assignee'), "
        "json_extract(args, '$.role')), key, status FROM steward_actions"
    ).fetchall()
    assert all(status == "delivered" for *_, status in rows), rows
    keys = {(action, to): key for action, to, key, _ in rows}
    welcomes = notes = 0
    for rcpt, mail in keep.mails:
        to = mail["To"]
        body = mail.get_payload(decode=True).decode()
        assert mail["From"] == "Steward <steward@example.com>", mail["From"]
        if mail["Subject"].startswith("Welcome"):
            welcomes += 1
            key = keys[("send", to)]
            assert sorted(rcpt) == sorted([to, "desk@example.com", "owner@example.com"]), rcpt
            assert mail["Subject"] in ("Welcome, Ana!", "Welcome, Bo!"), mail["Subject"]
            assert "is confirmed." in body
        else:
            notes += 1
            key = keys[("notify", to)]
            assert rcpt == [to], rcpt
            assert mail["Subject"] in ("Booking b0 needs a look", "Booking b1 needs a look"), mail["Subject"]
            assert "The guest is " in body and "the rule `tell`" in body, body
        assert mail["Message-ID"] == f"<{key}@steward>", (mail["Message-ID"], key)
    assert (welcomes, notes) == (2, 2), (welcomes, notes)
    print(f"mail: {len(keep.mails)} mails received over SMTP (sends and notifications to an address), each once, with the Message-ID of its key")


if __name__ == "__main__":
    main()
