//! The `steward` command line: `check`, `fmt`, `replay`, `explain`, `test`
//! and `lsp`. The one place that touches the terminal and the process exit
//! code; the work is done by the `steward` library and the language server.

mod deploy;
mod replay;
mod run;
mod secret;
mod serve;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use steward::check::Analysis;
use steward::diag::render_human;
use steward::engine::AutoDecide;

/// Exit codes: 0 clean (warnings allowed), 1 problems found, 2 usage or I/O,
/// 3 actions left undelivered by `run --exit-when-idle`.
const PROBLEMS: u8 = 1;
const FAILURE: u8 = 2;
/// `steward run --exit-when-idle`: some actions were not delivered.
const UNDELIVERED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "steward",
    version,
    about = "Steward: business automation rules you can read aloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How a worker runs (`steward run` and `steward serve`).
#[derive(clap::Args)]
struct WorkerArgs {
    /// `postgres://...`, `sqlite://PATH` or a path; else `DATABASE_URL`,
    /// else `./steward.db`.
    #[arg(long)]
    database: Option<String>,
    /// Rule files, or folders searched recursively for `.stw` files:
    /// deployed as a new version of ruleset `default` (unless unchanged)
    /// before running, for every tenant without rules of its own (or
    /// for `--tenant` only). Without it, the rules deployed run.
    #[arg(long, num_args = 1..)]
    rules: Vec<PathBuf>,
    /// Deploy `--rules` as this tenant's ruleset `default`, not every
    /// tenant's.
    #[arg(long, requires = "rules")]
    tenant: Option<String>,
    /// How long to wait between looks at the database when idle (on
    /// PostgreSQL an insert wakes a waiting worker sooner).
    #[arg(long, value_parser = parse_positive_duration, default_value = "500ms")]
    poll: i64,
    /// Do not `LISTEN` for inserted events, only poll (for connection
    /// poolers that do not pass notifications).
    #[arg(long)]
    poll_only: bool,
    /// The wait before a failed delivery's first retry; it doubles at
    /// each attempt (with jitter).
    #[arg(long, value_parser = parse_positive_duration, default_value = "5s")]
    retry_base: i64,
    /// Attempts before a delivery is dead.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=100))]
    max_attempts: i32,
    /// How long one delivery attempt may take (an HTTP request, an SMTP
    /// session); a claimed delivery whose worker is silent for twice
    /// this is taken up again.
    #[arg(long, value_parser = parse_positive_duration, default_value = "10s")]
    delivery_timeout: i64,
    /// Deliveries made at once (threads): a slow endpoint holds one.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    delivery_threads: u16,
    /// How long handled events (and their ids, against duplicates) and
    /// delivered or dead actions are kept before they are pruned.
    #[arg(long, value_parser = parse_positive_duration, default_value = "14d")]
    retain: i64,
    /// Serve Prometheus metrics at this address (`127.0.0.1:9464` or
    /// `127.0.0.1:9464/metrics`).
    #[arg(long)]
    metrics: Option<String>,
    /// Events claimed and handled per transaction.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    batch: i64,
    /// Where approval links point (the `steward serve` that answers
    /// them): an approval asked is mailed to its role's holders with
    /// links. `steward serve` sets it to its own address.
    #[arg(long)]
    public_url: Option<String>,
    /// Let webhooks reach the loopback (127.0.0.0/8, ::1): for a single
    /// team's `steward run` whose receivers run on the same host. Other
    /// private destinations open with `STEWARD_WEBHOOK_ALLOW`.
    #[arg(long)]
    allow_loopback: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check rule files (all given together form one program).
    Check {
        /// Files, or folders searched recursively for `.stw` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Rewrite rule files in the canonical layout.
    Fmt {
        /// Files, or folders searched recursively for `.stw` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Change nothing; list the files that would change and exit 1 if any.
        #[arg(long)]
        check: bool,
    },
    /// Run rules over recorded events (JSONL envelopes) on a virtual clock and
    /// print one JSON line per action they would perform. No mail, no HTTP.
    Replay {
        /// Rule files, or folders searched recursively for `.stw` files.
        #[arg(long, required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// The events, one JSON envelope per line.
        #[arg(long)]
        events: PathBuf,
        /// Run timers and schedules up to this time (RFC 3339); by default
        /// the last event's time.
        #[arg(long, value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        /// What happens to approval requests.
        #[arg(long, value_enum, default_value_t = Approvals::None)]
        approvals: Approvals,
        /// Explain how the rules treated this event (on stderr).
        #[arg(long, value_name = "EVENT_ID")]
        explain: Option<String>,
        /// With `--explain`: the tenant whose event it is (ids are unique
        /// per tenant). Without it, every tenant's event of that id is explained.
        #[arg(long, requires = "explain")]
        tenant: Option<String>,
        /// Refuse an event this far ahead of the clock (a duration such as
        /// `366d`): a wrong year must not move time on by centuries.
        #[arg(long, value_parser = parse_positive_duration, default_value = "366d")]
        horizon: i64,
        /// The most schedule ticks one move of the clock may fire; the rest
        /// are skipped and reported.
        #[arg(long, default_value_t = 100_000)]
        max_ticks: u64,
    },
    /// The secrets a webhook header may name (`secret pms_token`), kept
    /// sealed in the database under STEWARD_SECRET_KEY: for `steward run`
    /// (a server's tenants use `PUT /v1/secrets/{name}`).
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// PostgreSQL tools: `steward pg capture`.
    Pg {
        #[command(subcommand)]
        command: PgCommand,
    },
    /// Create or update the database's tables.
    Migrate {
        /// `postgres://...`, `sqlite://PATH` or a path; else `DATABASE_URL`,
        /// else `./steward.db`.
        #[arg(long)]
        database: Option<String>,
    },
    /// Insert events (JSONL envelopes, as `replay` reads them) as pending.
    Push {
        /// `postgres://...`, `sqlite://PATH` or a path; else `DATABASE_URL`,
        /// else `./steward.db`.
        #[arg(long)]
        database: Option<String>,
        /// The events, one JSON envelope per line, or `-` for stdin.
        file: PathBuf,
    },
    /// Handle pending events and due timers, approvals and schedules on the
    /// wall clock, recording every action in the database's outbox (and
    /// printing it as a JSON line).
    Run {
        #[command(flatten)]
        worker: WorkerArgs,
        /// Exit once no event is pending and nothing is due (future timers
        /// may remain; they are counted). Exits 0 when every action was
        /// delivered, 3 when some were not (listed).
        #[arg(long)]
        exit_when_idle: bool,
        /// With `--exit-when-idle`: wait for deliveries whose next attempt
        /// is due within this long, rather than leave them undelivered.
        #[arg(long, value_parser = parse_positive_duration, default_value = "60s")]
        idle_wait: i64,
    },
    /// Check rule files here, then deploy them as a new version of a
    /// ruleset over the HTTP API of `steward serve`.
    Deploy {
        /// Rule files, or folders searched recursively for `.stw` files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The ruleset's name.
        #[arg(long, default_value = "default")]
        ruleset: String,
        /// The server (`http://127.0.0.1:8080`); else `STEWARD_SERVER`.
        #[arg(long, env = "STEWARD_SERVER")]
        server: String,
        /// A tenant token with the scope `rulesets:deploy`; else
        /// `STEWARD_TOKEN`.
        #[arg(long, env = "STEWARD_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Serve the HTTP API (see docs/api.md) and run the engine, in one
    /// process: tenants deploy their rules, post events and decide
    /// approvals over HTTP.
    Serve {
        #[command(flatten)]
        worker: WorkerArgs,
        /// Where the API listens (`HOST:PORT`; port 0 picks a free one).
        /// Approval links start with `--public-url`, else `http://` and
        /// this address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Run the `test` blocks of rule files against their rules.
    Test {
        /// Files, or folders searched recursively for `.stw` files (rules and
        /// tests together form one program).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the language server on stdin and stdout, for editors (see
    /// docs/editor.md).
    Lsp,
    /// Show which rules an event meets, and each condition's value with the
    /// fields it read.
    Explain {
        /// Rule files, or folders searched recursively for `.stw` files.
        #[arg(long, required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// A file holding one event envelope, or `-` for stdin.
        #[arg(long)]
        event: PathBuf,
        /// How to print the explanation.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Human)]
        format: ExplainFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExplainFormat {
    /// Rendered for people, on stdout.
    Human,
    /// One JSON object on stdout: the rules considered, each condition's
    /// value and the fields it read, and the actions.
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Approvals {
    /// Approve every request at once.
    Approve,
    /// Reject every request at once (the `else` branch runs).
    Reject,
    /// Leave requests pending; they expire at their deadline.
    None,
}

fn parse_positive_duration(text: &str) -> Result<i64, String> {
    match steward::engine::decode::parse_duration(text) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err("expected a positive duration such as 30d or 12h".to_string()),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-11-20T10:00:00Z: {e}"))
}

#[derive(Subcommand)]
enum SecretCommand {
    /// Set a secret, its value read from stdin (one line; the line break
    /// is not part of it).
    Set {
        name: String,
        #[command(flatten)]
        whose: secret::Whose,
    },
    /// List the secrets by name (never their values).
    List {
        #[command(flatten)]
        whose: secret::Whose,
    },
    /// Delete a secret.
    Delete {
        name: String,
        #[command(flatten)]
        whose: secret::Whose,
    },
}

#[derive(Subcommand)]
enum PgCommand {
    /// Print (or, with --apply, install) a trigger that turns inserts and
    /// updates of an application's table into `PREFIX.created` and
    /// `PREFIX.updated` events, in the same transaction.
    Capture {
        /// The table (`name` or `schema.name`).
        #[arg(long)]
        table: String,
        /// The events' type prefix (`reservation` makes `reservation.created`).
        #[arg(long)]
        event: String,
        /// The column whose value is the event's key.
        #[arg(long)]
        key: Option<String>,
        /// The tenant of every event...
        #[arg(long, default_value = "default")]
        tenant: String,
        /// ... or the column that holds it.
        #[arg(long, conflicts_with = "tenant")]
        tenant_column: Option<String>,
        /// Install it on the database (else print the SQL).
        #[arg(long)]
        apply: bool,
        /// `postgres://...`; else `DATABASE_URL`.
        #[arg(long)]
        database: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Rendered for people, on stderr.
    Human,
    /// A JSON array on stdout, one object per diagnostic.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { paths, format } => check(&paths, format),
        Command::Fmt { paths, check } => fmt(&paths, check),
        Command::Replay {
            rules,
            events,
            until,
            approvals,
            explain,
            tenant,
            horizon,
            max_ticks,
        } => replay::replay(replay::ReplayOptions {
            rules: &rules,
            events: &events,
            until,
            approvals: match approvals {
                Approvals::Approve => AutoDecide::Approve,
                Approvals::Reject => AutoDecide::Reject,
                Approvals::None => AutoDecide::None,
            },
            explain,
            tenant,
            limits: steward::engine::Limits {
                horizon: chrono::Duration::milliseconds(horizon),
                max_ticks,
                ..steward::engine::Limits::default()
            },
        })
        .map(ran),
        Command::Test { paths } => replay::test(&paths),
        Command::Pg {
            command:
                PgCommand::Capture {
                    table,
                    event,
                    key,
                    tenant,
                    tenant_column,
                    apply,
                    database,
                },
        } => run::capture(
            &steward_db::capture::Capture {
                table: &table,
                event: &event,
                key: key.as_deref(),
                tenant_column: tenant_column.as_deref(),
                tenant: &tenant,
            },
            apply.then_some(database.as_deref()),
        )
        .map(ran),
        Command::Secret { command } => match command {
            SecretCommand::Set { name, whose } => secret::set(&name, &whose).map(ran),
            SecretCommand::List { whose } => secret::list(&whose).map(ran),
            SecretCommand::Delete { name, whose } => secret::delete(&name, &whose).map(ran),
        },
        Command::Migrate { database } => run::migrate(database.as_deref()).map(ran),
        Command::Push { database, file } => run::push(database.as_deref(), &file).map(ran),
        Command::Run {
            worker,
            exit_when_idle,
            idle_wait,
        } => worker.options(exit_when_idle).and_then(|options| {
            let Some(mut options) = options else {
                return Ok(ExitCode::from(PROBLEMS));
            };
            options.idle_wait = std::time::Duration::from_millis(idle_wait.unsigned_abs());
            steward_worker::run(options).map(|finished| match finished {
                steward_worker::Finished::Clean => ExitCode::SUCCESS,
                steward_worker::Finished::Problems => ExitCode::from(PROBLEMS),
                steward_worker::Finished::Undelivered => ExitCode::from(UNDELIVERED),
            })
        }),
        Command::Deploy {
            paths,
            ruleset,
            server,
            token,
        } => deploy::deploy(&paths, &ruleset, &server, &token).map(ran),
        Command::Serve { worker, listen } if worker.allow_loopback => {
            let _ = (worker, listen);
            Err(
                "`--allow-loopback` is for a single team's `steward run`: a server's tenants \
                 must not reach its loopback; open a trusted destination with \
                 STEWARD_WEBHOOK_ALLOW"
                    .to_string(),
            )
        }
        Command::Serve { worker, listen } => {
            worker.options(false).and_then(|options| match options {
                Some(options) => serve::serve(options, &listen).map(ran),
                None => Ok(ExitCode::from(PROBLEMS)),
            })
        }
        Command::Lsp => steward_lsp::run_stdio().map(|()| ExitCode::SUCCESS),
        Command::Explain {
            rules,
            event,
            format,
        } => replay::explain(&rules, &event, matches!(format, ExplainFormat::Json)).map(ran),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(FAILURE)
        }
    }
}

fn ran(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(PROBLEMS)
    }
}

fn use_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn check(paths: &[PathBuf], format: Format) -> Result<ExitCode, String> {
    let loaded = steward::files::read_all(paths)?;
    let analysis = loaded.analyze();
    match format {
        Format::Human => print_human(&analysis, loaded.sources.len()),
        Format::Json => {
            let json = steward::boundary::diagnostics_json(&analysis, &analysis.diagnostics);
            let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
            println!("{text}");
        }
    }
    Ok(if analysis.has_errors() {
        ExitCode::from(PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_human(analysis: &Analysis, file_count: usize) {
    let color = use_color();
    let mut err = std::io::stderr().lock();
    for diag in &analysis.diagnostics {
        let _ = write!(err, "{}", render_human(diag, &analysis.sources, color));
    }
    let errors = analysis.errors().count();
    let warnings = analysis.diagnostics.len() - errors;
    let files = if file_count == 1 {
        "1 file".to_string()
    } else {
        format!("{file_count} files")
    };
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    let _ = match (errors, warnings) {
        (0, 0) => writeln!(err, "checked {files}: no problems"),
        (0, w) => writeln!(err, "checked {files}: {}", plural(w, "warning")),
        (e, 0) => writeln!(err, "checked {files}: {}", plural(e, "error")),
        (e, w) => writeln!(
            err,
            "checked {files}: {}, {}",
            plural(e, "error"),
            plural(w, "warning")
        ),
    };
}

fn fmt(paths: &[PathBuf], check_only: bool) -> Result<ExitCode, String> {
    let loaded = steward::files::read_all(paths)?;
    let mut changed = Vec::new();
    let mut broken = 0;
    for (index, (name, text)) in loaded.sources.iter().enumerate() {
        if loaded.not_utf8.iter().any(|&(i, _)| i == index) {
            // Rewriting it would replace its bad bytes for good.
            broken += 1;
            eprintln!("not formatted: `{name}` is not valid UTF-8");
            continue;
        }
        match steward::syntax::format::format_source(text) {
            Ok(formatted) => {
                if formatted != *text {
                    if !check_only {
                        std::fs::write(name, &formatted)
                            .map_err(|e| format!("cannot write `{name}`: {e}"))?;
                    }
                    changed.push(name.clone());
                }
            }
            Err(diags) => {
                broken += 1;
                let mut map = steward::diag::SourceMap::new();
                map.add(name.as_str(), text.as_str());
                let mut err = std::io::stderr().lock();
                for d in &diags {
                    let _ = write!(err, "{}", render_human(d, &map, use_color()));
                }
                let _ = writeln!(err, "not formatted: `{name}` has syntax errors");
            }
        }
    }
    let mut out = std::io::stdout().lock();
    for name in &changed {
        let _ = writeln!(
            out,
            "{}{name}",
            if check_only {
                "would reformat "
            } else {
                "formatted "
            }
        );
    }
    Ok(if broken > 0 || (check_only && !changed.is_empty()) {
        ExitCode::from(PROBLEMS)
    } else {
        ExitCode::SUCCESS
    })
}

impl WorkerArgs {
    /// The worker's options; `None` when the rules given do not check
    /// (their diagnostics printed).
    fn options(self, exit_when_idle: bool) -> Result<Option<steward_worker::RunOptions>, String> {
        let rules = if self.rules.is_empty() {
            None
        } else {
            match replay::load_sources(&self.rules)? {
                Some(loaded) => Some(loaded),
                None => return Ok(None),
            }
        };
        let deliverer = steward_worker::Deliverer::from_env(
            std::time::Duration::from_millis(self.retry_base.unsigned_abs()),
            self.max_attempts,
            std::time::Duration::from_millis(self.delivery_timeout.unsigned_abs()),
            self.allow_loopback,
        )?;
        Ok(Some(steward_worker::RunOptions {
            database: self.database,
            rules,
            tenant: self.tenant,
            exit_when_idle,
            idle_wait: std::time::Duration::from_secs(60),
            poll: std::time::Duration::from_millis(self.poll.unsigned_abs()),
            poll_only: self.poll_only,
            batch: self.batch,
            delivery_threads: usize::from(self.delivery_threads),
            retain: chrono::Duration::milliseconds(self.retain),
            metrics: self.metrics,
            deliverer,
            serving: false,
            stop: Default::default(),
            public_url: self.public_url,
        }))
    }
}
