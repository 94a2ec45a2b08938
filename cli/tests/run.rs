//! `steward migrate`, `push` and `run` end to end, on a SQLite file and on
//! PostgreSQL (a database of this run's own at `DATABASE_URL`; under `CI`
//! an unreachable server fails the test).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::path::Path;
use std::process::{Command, Output};

/// The repository root, where `rules/` and `examples/` are.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn steward(database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steward"))
        .current_dir(ROOT)
        .args(args)
        .args(["--database", database])
        .env_remove("DATABASE_URL")
        .env_remove("STEWARD_SMTP_URL")
        .output()
        .unwrap()
}

/// A worker process, killed if a test fails before it stops it.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `steward push` of one envelope, from stdin.
fn push_line(url: &str, line: &str) {
    use std::io::Write;
    let mut push = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["push", "--database", url, "-"])
        .env_remove("DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    push.stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    assert!(push.wait().unwrap().success());
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Actions that an event (not a schedule's tick) caused, by key. The
/// schedules (`daily_task_digest`, and the per-user digests of
/// `rules/digest.stw`) fire on the wall clock, whenever a run crosses 8:00.
fn event_actions(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter(|l| !l.contains("\"event\":\"daily_task_digest@"))
        .filter(|l| !l.contains("\"rule\":\"user_digest"))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.get("key").and_then(|k| k.as_str()).map(String::from)
        })
        .collect()
}

/// Pushes the example events, runs the example rules until idle, and runs
/// again: the second run handles nothing and repeats no action.
fn push_run_and_run_again(database: &str) {
    let events = Path::new(ROOT).join("examples/events.jsonl");
    let out = steward(database, &["push", events.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains("pushed 19 events"),
        "{}",
        text(&out.stderr)
    );

    let again = steward(database, &["push", events.to_str().unwrap()]);
    assert!(again.status.success());
    assert!(
        text(&again.stderr).contains("pushed 0 events"),
        "{}",
        text(&again.stderr)
    );
    assert!(text(&again.stderr).contains("19 already there"));

    let first = steward(database, &["run", "--rules", "rules", "--exit-when-idle"]);
    assert!(first.status.success(), "{first:?}");
    let stderr = text(&first.stderr);
    assert!(stderr.contains("18 events handled, 1 rejected"), "{stderr}");
    // The README's first command ends clean: every action delivered.
    assert!(stderr.contains("0 to be retried, 0 dead"), "{stderr}");
    assert!(!stderr.contains("not delivered"), "{stderr}");
    assert!(
        stderr.contains(
            "rejected event `evt_02` of tenant `acme`: payload.risk: expected float, found string"
        ),
        "{stderr}"
    );
    let done = event_actions(&text(&first.stdout));
    assert!(done.len() >= 8, "{}", text(&first.stdout));
    let mut unique = done.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), done.len(), "an action was performed twice");

    let second = steward(database, &["run", "--rules", "rules", "--exit-when-idle"]);
    assert!(second.status.success(), "{second:?}");
    assert!(
        text(&second.stderr).contains("0 events handled, 0 rejected"),
        "{}",
        text(&second.stderr)
    );
    assert!(
        event_actions(&text(&second.stdout)).is_empty(),
        "{}",
        text(&second.stdout)
    );
}

#[test]
fn push_and_run_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("steward-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("steward.db");
    let url = format!("sqlite://{}", db.display());
    let out = steward(&url, &["migrate"]);
    assert!(out.status.success(), "{out:?}");
    push_run_and_run_again(&url);

    // A line that is not an envelope is reported with its number.
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": 1}\n").unwrap();
    let out = steward(&url, &["push", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("line 1: not an envelope"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn push_and_run_on_postgres() {
    let Some(db) = steward_test_support::Scratch::create("cli") else {
        return;
    };
    let url = db.url();
    push_run_and_run_again(&url);
    capture_turns_rows_into_events(&url);
    an_insert_wakes_an_idle_worker(&url);
    a_worker_waits_out_an_outage(&url, db.admin());
}

/// `steward pg capture --apply`: inserts and updates of the application's
/// table become events in the same transaction, handled like any other.
fn capture_turns_rows_into_events(url: &str) {
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([url, "-qAtc", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    psql("CREATE TABLE bookings (ref text PRIMARY KEY, guest text, nights int)");
    // A row from before the capture: its first event will be an update.
    psql("INSERT INTO bookings VALUES ('r0', 'Di', 1)");
    let out = steward(
        url,
        &[
            "pg", "capture", "--table", "bookings", "--event", "booking", "--key", "ref",
            "--tenant", "acme", "--apply",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    psql("INSERT INTO bookings VALUES ('r1', 'Ana', 2), ('r2', 'Bo', 3)");
    psql("UPDATE bookings SET nights = 4 WHERE ref = 'r1'");
    psql("UPDATE bookings SET nights = 5 WHERE ref = 'r0'");
    // A rolled-back change makes no event.
    psql("BEGIN; INSERT INTO bookings VALUES ('r3', 'Cy', 1); ROLLBACK");
    let rows = psql(
        "SELECT tenant || ' ' || type || ' ' || key || ' ' || (payload->>'nights') \
         || ' ' || coalesce(previous->>'nights', '-') \
         FROM steward_events WHERE type LIKE 'booking.%' ORDER BY seq",
    );
    assert_eq!(
        rows,
        "acme booking.created r1 2 -\nacme booking.created r2 3 -\nacme booking.updated r1 4 2\n\
         acme booking.updated r0 5 1"
    );
    // The update of a row from before the capture still knows what changed.
    let rules = std::env::temp_dir().join(format!("steward-capture-{}.stw", std::process::id()));
    std::fs::write(
        &rules,
        "event booking.created { ref: string  guest: string  nights: int }\n\
         event booking.updated { ref: string  guest: string  nights: int }\n\
         when booking.updated if nights changed then log \"{ref}: {previous nights ?? 0} to {nights}\"\n",
    )
    .unwrap();
    let out = steward(
        url,
        &[
            "run",
            "--rules",
            rules.to_str().unwrap(),
            "--exit-when-idle",
        ],
    );
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(printed.contains(r#""text":"r1: 2 to 4""#), "{printed}");
    assert!(printed.contains(r#""text":"r0: 1 to 5""#), "{printed}");
    let _ = std::fs::remove_file(&rules);
    // A name that is not a plain identifier is refused, never spliced in.
    let out = steward(
        url,
        &[
            "pg",
            "capture",
            "--table",
            "bookings; DROP TABLE x",
            "--event",
            "b",
            "--apply",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not a plain PostgreSQL identifier"),
        "{}",
        text(&out.stderr)
    );
}

/// On PostgreSQL an idle worker is woken by the insert (`LISTEN`), not by
/// its poll: with `--poll 1h`, an event pushed while it waits is handled.
/// (The deadline below only stops a broken run from hanging; a working one
/// is woken at once.)
fn an_insert_wakes_an_idle_worker(url: &str) {
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .args([url, "-qAtc", sql])
            .output()
            .unwrap();
        text(&out.stdout).trim().to_string()
    };
    let mut worker = Worker(
        Command::new(env!("CARGO_BIN_EXE_steward"))
            .current_dir(ROOT)
            .args([
                "run",
                "--database",
                url,
                "--rules",
                "rules/",
                "--poll",
                "1h",
            ])
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The worker is in its loop once it holds the scheduler lease.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        while !done() {
            assert!(std::time::Instant::now() < give_up, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for("the worker did not start", &|| {
        psql("SELECT COUNT(*) FROM steward_leases WHERE name = 'scheduler'") == "1"
    });
    let line = r#"{"id":"wake-1","tenant":"acme","type":"reservation.created","occurred_at":"2026-11-20T10:00:00Z","key":"res_42","payload":{"id":"res_42","listing_id":"l1","guest":{"email":"ana@example.com","first_name":"Ana","country":"US","vip":true},"risk":0.2,"nights":3,"total":412.5,"channel":"airbnb","check_in":"2026-12-01T15:00:00Z","check_out":"2026-12-04T11:00:00Z"}}"#;
    push_line(url, line);
    wait_for("the worker was not woken by the insert", &|| {
        psql("SELECT status FROM steward_events WHERE id = 'wake-1'") == "processed"
    });
    let _ = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status();
    assert!(
        worker.0.wait().unwrap().success(),
        "SIGTERM stops it cleanly"
    );
}

/// `--rules --tenant T` deploys for T alone; other tenants run the rules
/// deployed for every tenant (here, first none, then some).
#[test]
fn rules_for_one_tenant_and_for_every_tenant() {
    let dir = std::env::temp_dir().join(format!("steward-tenant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("steward.db").display());
    let own = dir.join("own.stw");
    std::fs::write(
        &own,
        "event job { id: string }\nrule own when job then\n  log \"own {id}\"\nend\n",
    )
    .unwrap();
    let every = dir.join("every.stw");
    std::fs::write(
        &every,
        "event job { id: string }\nrule shared when job then\n  log \"every {id}\"\nend\n",
    )
    .unwrap();
    let events = dir.join("events.jsonl");
    let job = |tenant: &str, id: &str| {
        format!(
            "{{\"id\":\"{id}\",\"tenant\":\"{tenant}\",\"type\":\"job\",\"occurred_at\":\"2026-11-20T10:00:00Z\",\"payload\":{{\"id\":\"{id}\"}}}}\n"
        )
    };
    let logs = |out: &Output| -> Vec<String> {
        let mut v: Vec<String> = text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| format!("{} {}", v["tenant"].as_str().unwrap(), v["args"]["text"]))
            .collect();
        v.sort();
        v
    };
    std::fs::write(&events, job("acme", "1") + &job("beta", "2")).unwrap();
    assert!(steward(&url, &["push", events.to_str().unwrap()])
        .status
        .success());
    let out = steward(
        &url,
        &[
            "run",
            "--rules",
            own.to_str().unwrap(),
            "--tenant",
            "acme",
            "--exit-when-idle",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains("for tenant `acme`"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(logs(&out), ["acme \"own 1\""]);
    std::fs::write(&events, job("acme", "3") + &job("beta", "4")).unwrap();
    assert!(steward(&url, &["push", events.to_str().unwrap()])
        .status
        .success());
    let out = steward(
        &url,
        &[
            "run",
            "--rules",
            every.to_str().unwrap(),
            "--exit-when-idle",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(logs(&out), ["acme \"own 3\"", "beta \"every 4\""]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The database drops a worker's connections and takes no new ones for a
/// while (as a restart would): the worker says so and waits, then connects
/// again and goes on, and stops cleanly.
fn a_worker_waits_out_an_outage(url: &str, admin: &str) {
    let db = url.rsplit('/').next().unwrap_or_default().to_string();
    let log = std::env::temp_dir().join(format!("steward-outage-{}.log", std::process::id()));
    let psql = |on: &str, sql: &str| {
        let out = Command::new("psql")
            .args([on, "-qAtc", sql])
            .output()
            .unwrap();
        text(&out.stdout).trim().to_string()
    };
    let mut worker = Worker(
        Command::new(env!("CARGO_BIN_EXE_steward"))
            .current_dir(ROOT)
            .args([
                "run",
                "--database",
                url,
                "--rules",
                "rules/",
                "--poll",
                "50ms",
            ])
            .env_remove("DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        while !done() {
            assert!(std::time::Instant::now() < give_up, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let said = |what: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(what)
    };
    wait_for("the worker did not start", &|| {
        psql(
            url,
            "SELECT COUNT(*) FROM steward_leases WHERE name = 'scheduler'",
        ) == "1"
    });
    psql(
        admin,
        &format!(
            "ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false; \
             SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{db}' AND pid <> pg_backend_pid()"
        ),
    );
    let noticed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("the worker did not say the database was gone", &|| {
            said("the database is unavailable")
        })
    }));
    psql(
        admin,
        &format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"),
    );
    assert!(
        noticed.is_ok(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(worker.0.try_wait().unwrap().is_none(), "the worker waits");
    let line = r#"{"id":"outage-1","tenant":"acme","type":"reservation.created","occurred_at":"2026-11-20T10:00:00Z","key":"res_77","payload":{"id":"res_77","listing_id":"l1","guest":{"email":"ana@example.com","first_name":"Ana","country":"US","vip":false},"risk":0.2,"nights":3,"total":412.5,"channel":"airbnb","check_in":"2026-12-01T15:00:00Z","check_out":"2026-12-04T11:00:00Z"}}"#;
    push_line(url, line);
    wait_for("the worker did not go on after the outage", &|| {
        psql(
            url,
            "SELECT status FROM steward_events WHERE id = 'outage-1'",
        ) == "processed"
    });
    let _ = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status();
    assert!(
        worker.0.wait().unwrap().success(),
        "SIGTERM stops it cleanly"
    );
    let _ = std::fs::remove_file(&log);
}
