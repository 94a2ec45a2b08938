//! B4 (../shared/BENCHMARKS.md): events inserted into the database, rules
//! evaluated, actions recorded, by `steward run` workers; side by side, in
//! the same run and on the same table, a bare SQL loop that claims and
//! acknowledges the same events with no rules (the limit).
//!
//! Run by `scripts/b4.sh`; by hand:
//! `cargo run --release -p steward-db --example b4 -- STEWARD_BINARY [EVENTS]`
//! (PostgreSQL from `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; each run makes a database of
//! its own, and an SQLite file in a temporary folder).
//!
//! Then one PostgreSQL worker draining backlogs of 3,000 and 30,000 events,
//! with the rule above and with rules that also pass a throttle and set a
//! timer for every event.
//!
//! Measured, for PostgreSQL with 1 and 2 workers and for SQLite with 1:
//! - drain: workers started and idle, EVENTS events inserted in one
//!   transaction, the time until none is pending: events per second;
//! - latency: events inserted at a steady 1,000 per second for 10 s (a
//!   transaction of 10 every 10 ms), then the time from each event's
//!   insert (`received_at`) to the commit of its handling, which wrote its
//!   action row (`processed_at`, taken just before that commit): p50, p99.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, Row};

const RULES: &str = r#"
event booking { id: string  risk: float }
rule welcome when booking if risk < 0.5 then
  log "welcome {id}"
end
"#;

/// The stateful workload: every event passes a throttle (its window kept
/// per id) and sets a timer, besides the action.
const STATEFUL_RULES: &str = r#"
event booking { id: string  risk: float }
rule welcome when booking if risk < 0.5 then
  log "welcome {id}"
end
rule remind when booking throttle 1000 per 1h by id then
  after 1h do
    log "remind {id}"
  end
end
"#;

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Fallible<()> {
    let mut args = std::env::args().skip(1);
    let steward = args.next().ok_or("usage: b4 STEWARD_BINARY [EVENTS]")?;
    let events: i64 = args.next().map_or(Ok(20_000), |n| n.parse())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("steward-b4-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rules = dir.join("rules.stw");
    std::fs::write(&rules, RULES)?;
    let rules = rules.to_string_lossy().into_owned();
    let stateful = dir.join("stateful.stw");
    std::fs::write(&stateful, STATEFUL_RULES)?;
    let stateful = stateful.to_string_lossy().into_owned();

    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let name = format!("steward_b4_{}", std::process::id());
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&admin).await?;
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        Ok::<_, sqlx::Error>(())
    })?;
    let pg = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{admin}/{name}"),
    };
    let sqlite = dir.join("b4.db").to_string_lossy().into_owned();
    let db = Db { steward, rules };

    // The peer, on the same database in the same run: Graphile Worker
    // draining as many no-op jobs with concurrency 10 (`B4_GRAPHILE` names
    // benches/b4-graphile/drain.js, installed by scripts/b4.sh).
    // `B4_ONLY=fairness`: fair share alone; `B4_ONLY=stateful`: the
    // stateful workload alone (PostgreSQL, 1 worker), beside Graphile Worker.
    let only = std::env::var("B4_ONLY").ok();
    let fairness_only = only.as_deref() == Some("fairness");
    let stateful_only = only.as_deref() == Some("stateful");
    let graphile = match std::env::var("B4_GRAPHILE").ok().filter(|_| !fairness_only) {
        Some(script) => {
            let out = Command::new("node")
                .args([script.as_str(), pg.as_str(), &events.to_string()])
                .stderr(Stdio::inherit())
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let rate = text
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<f64>().ok())
                .ok_or_else(|| format!("Graphile Worker's drain said {text:?}"))?;
            Some(rate)
        }
        None => None,
    };
    if stateful_only {
        db.stateful_section(&rt, &pg, events, graphile, &stateful)?;
    } else if !fairness_only {
        db.main_sections(&rt, &pg, &sqlite, events, graphile, &stateful)?;
    }
    if !stateful_only {
        db.fair_share_section(&rt, &pg, &sqlite, events)?;
    }
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&admin).await?;
        c.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
        Ok::<_, sqlx::Error>(())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

impl Db {
    /// The stateful workload alone: one PostgreSQL worker draining a
    /// backlog of 3,000 and of `events` events, each passing a throttle and
    /// setting a timer.
    fn stateful_section(
        &self,
        rt: &tokio::runtime::Runtime,
        pg: &str,
        events: i64,
        graphile: Option<f64>,
        stateful: &str,
    ) -> Fallible<()> {
        steward_db::Target::parse(pg).migrate()?;
        if let Some(rate) = graphile {
            println!("Graphile Worker 0.18, concurrency 10, same database: {rate:.0} jobs/s");
        }
        println!("PostgreSQL, 1 worker, a throttle and a timer per event:");
        println!("| backlog | steward (events/s) | steward / Graphile Worker |");
        println!("|---|---|---|");
        for backlog in [3_000, events] {
            let rate = self.drain_with(rt, pg, backlog, 1, stateful)?;
            let peer = graphile.map_or("-".to_string(), |g| format!("{:.2}", rate / g));
            println!("| {backlog} | {rate:.0} | {peer} |");
        }
        Ok(())
    }

    /// Fair share: one tenant floods, another sends an event every 50 ms.
    fn fair_share_section(
        &self,
        rt: &tokio::runtime::Runtime,
        pg: &str,
        sqlite: &str,
        events: i64,
    ) -> Fallible<()> {
        let db = self;
        println!();
        println!("Fair share: 1 worker; tenant `flood` inserts {events} events at once, tenant `quiet` one every 50 ms until the flood is drained:");
        println!("| store | flood drained (events/s) | quiet events | quiet p50 | quiet p99 |");
        println!("|---|---|---|---|---|");
        for (store, url) in [("PostgreSQL", pg), ("SQLite", sqlite)] {
            steward_db::Target::parse(url).migrate()?;
            let (rate, p50, p99, n) = db.fairness(rt, url, events)?;
            println!(
                "| {store} | {rate:.0} | {n} | {:.1} ms | {:.1} ms |",
                p50 * 1000.0,
                p99 * 1000.0
            );
        }
        Ok(())
    }

    /// The drains, latencies and backlogs (everything but fair share).
    fn main_sections(
        &self,
        rt: &tokio::runtime::Runtime,
        pg: &str,
        sqlite: &str,
        events: i64,
        graphile: Option<f64>,
        stateful: &str,
    ) -> Fallible<()> {
        let db = self;
        println!("B4: {events} events per drain; latency at 1,000 events/s for 10 s");
        match graphile {
            Some(rate) => {
                println!("Graphile Worker 0.18, concurrency 10, same database: {rate:.0} jobs/s")
            }
            None => println!("Graphile Worker: not run (B4_GRAPHILE unset)"),
        }
        println!("| store | workers | bare loop (events/s) | steward (events/s) | steward / bare | steward / Graphile Worker | p50 | p99 |");
        println!("|---|---|---|---|---|---|---|---|");
        for (store, url, workers) in [
            ("PostgreSQL", pg, 1),
            ("PostgreSQL", pg, 2),
            ("SQLite", sqlite, 1),
        ] {
            steward_db::Target::parse(url).migrate()?;
            let bare = rt.block_on(db.bare(url, events, workers))?;
            let drained = db.drain(rt, url, events, workers)?;
            let (p50, p99) = db.latency(rt, url, workers)?;
            let peer = match (graphile, store) {
                (Some(rate), "PostgreSQL") => format!("{:.2}", drained / rate),
                _ => "-".to_string(),
            };
            println!(
            "| {store} | {workers} | {bare:.0} | {drained:.0} | {:.2} | {peer} | {:.1} ms | {:.1} ms |",
            drained / bare,
            p50 * 1000.0,
            p99 * 1000.0
        );
        }
        // One PostgreSQL worker by backlog and workload: whether the rate
        // holds as the backlog grows, and with state kept for every event.
        println!();
        println!(
        "PostgreSQL, 1 worker, events/s drained by backlog (events inserted at once) and workload:"
    );
        println!("| workload | 3,000 | 30,000 |");
        println!("|---|---|---|");
        for (label, rules) in [
            ("an action per event", db.rules.as_str()),
            ("and a throttle and a timer per event", stateful),
        ] {
            let mut rates = Vec::new();
            for backlog in [3_000, 30_000] {
                rates.push(db.drain_with(rt, pg, backlog, 1, rules)?);
            }
            println!("| {label} | {:.0} | {:.0} |", rates[0], rates[1]);
        }
        Ok(())
    }
}

struct Db {
    steward: String,
    rules: String,
}

/// A connection to either store, with the SQL each speaks.
enum Conn {
    Pg(sqlx::PgConnection),
    Lite(sqlx::SqliteConnection),
}

impl Conn {
    async fn open(url: &str) -> Fallible<Conn> {
        Ok(if url.starts_with("postgres") {
            Conn::Pg(sqlx::PgConnection::connect(url).await?)
        } else {
            use sqlx::sqlite::SqliteConnectOptions;
            let options = SqliteConnectOptions::new()
                .filename(url)
                .busy_timeout(Duration::from_secs(30));
            Conn::Lite(sqlx::SqliteConnection::connect_with(&options).await?)
        })
    }

    async fn run(&mut self, sql: &str) -> Fallible<u64> {
        Ok(match self {
            Conn::Pg(c) => c.execute(sql).await?.rows_affected(),
            Conn::Lite(c) => c.execute(sql).await?.rows_affected(),
        })
    }

    async fn count(&mut self, sql: &str) -> Fallible<i64> {
        Ok(match self {
            Conn::Pg(c) => sqlx::query(sql).fetch_one(c).await?.try_get(0)?,
            Conn::Lite(c) => sqlx::query(sql).fetch_one(c).await?.try_get(0)?,
        })
    }

    /// Inserts `n` events numbered from `from`, in one transaction.
    async fn insert(&mut self, from: i64, n: i64) -> Fallible<()> {
        self.insert_as("acme", "e", from, n).await
    }

    /// [`Conn::insert`] for `tenant`, ids starting with `prefix`.
    async fn insert_as(&mut self, tenant: &str, prefix: &str, from: i64, n: i64) -> Fallible<()> {
        let to = from + n - 1;
        match self {
            Conn::Pg(c) => {
                c.execute(
                    format!(
                        "INSERT INTO steward_events (tenant, id, type, occurred_at, key, payload) \
                         SELECT '{tenant}', '{prefix}' || g, 'booking', clock_timestamp(), 'k' || (g % 1000), \
                         jsonb_build_object('id', '{prefix}' || g, 'risk', 0.1) \
                         FROM generate_series({from}, {to}) g"
                    )
                    .as_str(),
                )
                .await?;
            }
            Conn::Lite(c) => {
                c.execute(
                    format!(
                        "WITH RECURSIVE g(n) AS (SELECT {from} UNION ALL SELECT n + 1 FROM g WHERE n < {to}) \
                         INSERT INTO steward_events (tenant, id, type, occurred_at, key, payload) \
                         SELECT '{tenant}', '{prefix}' || n, 'booking', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), \
                         'k' || (n % 1000), json_object('id', '{prefix}' || n, 'risk', 0.1) FROM g"
                    )
                    .as_str(),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// The bare loop's one round: claim up to 100 pending events and mark
    /// them processed, in one transaction.
    async fn claim_and_ack(&mut self) -> Fallible<u64> {
        match self {
            Conn::Pg(c) => {
                let mut tx = c.begin().await?;
                let done = tx
                    .execute(
                        "UPDATE steward_events SET status = 'processed', processed_at = clock_timestamp() \
                         WHERE (tenant, id) IN (SELECT tenant, id FROM steward_events \
                         WHERE status = 'pending' ORDER BY occurred_at, seq LIMIT 100 \
                         FOR UPDATE SKIP LOCKED)",
                    )
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(done)
            }
            Conn::Lite(c) => {
                c.execute("BEGIN IMMEDIATE").await?;
                let done = c
                    .execute(
                        "UPDATE steward_events SET status = 'processed', \
                         processed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                         WHERE rowid IN (SELECT rowid FROM steward_events \
                         WHERE status = 'pending' ORDER BY occurred_at, rowid LIMIT 100)",
                    )
                    .await?
                    .rows_affected();
                c.execute("COMMIT").await?;
                Ok(done)
            }
        }
    }
}

/// Forgets every event and everything the rules did, between measures.
const RESET: &[&str] = &[
    "DELETE FROM steward_events",
    "DELETE FROM steward_handled",
    "DELETE FROM steward_actions",
    "DELETE FROM steward_timer_cancels",
    "DELETE FROM steward_timers",
    "DELETE FROM steward_throttles",
    "DELETE FROM steward_traces",
];

impl Db {
    async fn reset(&self, url: &str) -> Fallible<Conn> {
        let mut c = Conn::open(url).await?;
        for sql in RESET {
            c.run(sql).await?;
        }
        Ok(c)
    }

    /// The bare loop on `workers` threads, a connection each: events per
    /// second.
    async fn bare(&self, url: &str, events: i64, workers: usize) -> Fallible<f64> {
        let mut c = self.reset(url).await?;
        c.insert(0, events).await?;
        let start = Instant::now();
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                let url = url.to_string();
                std::thread::spawn(move || -> Result<(), String> {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(async {
                        let mut c = Conn::open(&url).await?;
                        while c.claim_and_ack().await? > 0 {}
                        Ok::<_, Box<dyn std::error::Error>>(())
                    })
                    .map_err(|e| e.to_string())
                })
            })
            .collect();
        for t in threads {
            t.join().map_err(|_| "a bare worker panicked")??;
        }
        Ok(events as f64 / start.elapsed().as_secs_f64())
    }

    fn workers(&self, url: &str, n: usize, rules: &str) -> Fallible<Vec<Child>> {
        (0..n)
            .map(|_| {
                Command::new(&self.steward)
                    .args(["run", "--database", url, "--rules", rules])
                    .args(["--poll", "5ms", "--retain", "30d"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(Into::into)
            })
            .collect()
    }

    /// Workers started, EVENTS inserted at once: events per second drained.
    fn drain(
        &self,
        rt: &tokio::runtime::Runtime,
        url: &str,
        events: i64,
        workers: usize,
    ) -> Fallible<f64> {
        self.drain_with(rt, url, events, workers, &self.rules)
    }

    /// [`Db::drain`] with the rules file `rules`.
    fn drain_with(
        &self,
        rt: &tokio::runtime::Runtime,
        url: &str,
        events: i64,
        workers: usize,
        rules: &str,
    ) -> Fallible<f64> {
        let mut c = rt.block_on(self.reset(url))?;
        let mut children = self.workers(url, workers, rules)?;
        // Ready once the rules are deployed and a worker has run a round.
        std::thread::sleep(Duration::from_secs(2));
        rt.block_on(c.insert(0, events))?;
        let start = Instant::now();
        let pending = "SELECT COUNT(*) FROM steward_events WHERE status = 'pending'";
        while rt.block_on(c.count(pending))? > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let rate = events as f64 / start.elapsed().as_secs_f64();
        stop(&mut children);
        Ok(rate)
    }

    /// Fair share: one worker, `flood` events of tenant `flood` inserted at
    /// once, and meanwhile one event of tenant `quiet` every 50 ms until the
    /// flood is drained: the flood's rate, and the quiet tenant's p50 and
    /// p99 seconds from insert to the handling's commit, and its count.
    fn fairness(
        &self,
        rt: &tokio::runtime::Runtime,
        url: &str,
        flood: i64,
    ) -> Fallible<(f64, f64, f64, usize)> {
        let mut c = rt.block_on(self.reset(url))?;
        let mut children = self.workers(url, 1, &self.rules)?;
        std::thread::sleep(Duration::from_secs(2));
        rt.block_on(c.insert_as("flood", "f", 0, flood))?;
        let start = Instant::now();
        let flooding =
            "SELECT COUNT(*) FROM steward_events WHERE status = 'pending' AND tenant = 'flood'";
        let mut quiet = 0i64;
        loop {
            let due = start + Duration::from_millis(50 * quiet as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            rt.block_on(c.insert_as("quiet", "q", quiet, 1))?;
            quiet += 1;
            if rt.block_on(c.count(flooding))? == 0 {
                break;
            }
        }
        let rate = flood as f64 / start.elapsed().as_secs_f64();
        let pending = "SELECT COUNT(*) FROM steward_events WHERE status = 'pending'";
        while rt.block_on(c.count(pending))? > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop(&mut children);
        let mut lags = lags(rt, &mut c, "WHERE tenant = 'quiet'")?;
        lags.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((lags.len() as f64 - 1.0) * q).round() as usize;
            lags.get(i).copied().unwrap_or(f64::NAN)
        };
        Ok((rate, at(0.5), at(0.99), lags.len()))
    }

    /// At 1,000 events/s for 10 s: p50 and p99 seconds from insert to the
    /// handling's commit.
    fn latency(
        &self,
        rt: &tokio::runtime::Runtime,
        url: &str,
        workers: usize,
    ) -> Fallible<(f64, f64)> {
        let mut c = rt.block_on(self.reset(url))?;
        let mut children = self.workers(url, workers, &self.rules)?;
        std::thread::sleep(Duration::from_secs(2));
        let start = Instant::now();
        for tick in 0..1000i64 {
            let due = start + Duration::from_millis(10 * tick as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            rt.block_on(c.insert(tick * 10, 10))?;
        }
        let pending = "SELECT COUNT(*) FROM steward_events WHERE status = 'pending'";
        while rt.block_on(c.count(pending))? > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop(&mut children);
        let mut lags = lags(rt, &mut c, "")?;
        lags.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let i = ((lags.len() as f64 - 1.0) * q).round() as usize;
            lags.get(i).copied().unwrap_or(f64::NAN)
        };
        Ok((at(0.5), at(0.99)))
    }
}

/// Seconds from each event's insert to the commit of its handling, of the
/// events `filter` (a `WHERE` clause, or nothing) keeps.
fn lags(rt: &tokio::runtime::Runtime, c: &mut Conn, filter: &str) -> Fallible<Vec<f64>> {
    Ok(match c {
        Conn::Pg(c) => rt.block_on(
            sqlx::query_scalar::<_, f64>(&format!(
                "SELECT EXTRACT(EPOCH FROM processed_at - received_at)::float8 FROM steward_events {filter}"
            ))
            .fetch_all(c),
        )?,
        Conn::Lite(c) => rt.block_on(
            sqlx::query_scalar::<_, f64>(&format!(
                "SELECT (julianday(processed_at) - julianday(received_at)) * 86400.0 FROM steward_events {filter}"
            ))
            .fetch_all(c),
        )?,
    })
}

/// Stops the workers as an operator would (SIGTERM: each finishes its
/// batch and gives its leases up), so the next measure starts at once.
fn stop(children: &mut [Child]) {
    for child in children.iter_mut() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for child in children.iter_mut() {
        let _ = child.wait();
    }
}
