//! `steward replay` and `steward explain`: rules run over recorded events on
//! a virtual clock, printing what they would do. No mail, no HTTP.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use steward::boundary::BuildError;
use steward::boundary::Sources;
use steward::check::Analysis;
use steward::diag::render_human;
use steward::engine::runtime::Trace;
use steward::engine::{
    decode_event, AutoDecide, Engine, Handled, Limits, MemoryStore, Performed, Refused, RuleError,
    Ruleset, Sink, Store,
};
use steward::files;

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_BYTES: u64 = 32 << 20;

/// Checks and compiles the rules; prints diagnostics and returns `None` when
/// they have errors.
pub fn load_rules(paths: &[PathBuf]) -> Result<Option<Arc<Ruleset>>, String> {
    Ok(load(paths)?.map(|(_, rules)| rules))
}

fn load(paths: &[PathBuf]) -> Result<Option<(Analysis, Arc<Ruleset>)>, String> {
    report(steward::boundary::built(files::read_all(paths)?.analyze()))
}

/// Reads and compiles rule files as `load_rules` does, and keeps their
/// sources (the Rhai scripts they read too), to be deployed.
pub fn load_sources(paths: &[PathBuf]) -> Result<Option<(Sources, Arc<Ruleset>)>, String> {
    let loaded = files::read_all(paths)?;
    let (sources, mut analysis) = Sources::read(loaded.sources.clone(), &loaded.host());
    loaded.add_diagnostics(&mut analysis);
    Ok(report(steward::boundary::built(analysis))?.map(|(_, rules)| (sources, rules)))
}

/// The rules, or their diagnostics on stderr.
pub(crate) fn report(
    built: steward::boundary::Built,
) -> Result<Option<(Analysis, Arc<Ruleset>)>, String> {
    match built.rules {
        Ok(rules) => Ok(Some((built.analysis, rules))),
        Err(BuildError::Invalid(diags)) => {
            let color = super::use_color();
            let mut err = std::io::stderr().lock();
            for d in &diags {
                let _ = write!(err, "{}", render_human(d, &built.analysis.sources, color));
            }
            let _ = writeln!(err, "the rules have errors; nothing was run");
            Ok(None)
        }
    }
}

/// Prints each action as a JSON line, and rule errors on stderr.
struct Printer<W: Write> {
    out: W,
    io_error: Option<std::io::Error>,
}

impl<W: Write> Sink for Printer<W> {
    fn action(&mut self, action: Performed<'_>) {
        if self.io_error.is_some() {
            return;
        }
        if let Err(e) = action.write_line(&mut self.out) {
            self.io_error = Some(e);
        }
    }

    fn error(&mut self, error: RuleError) {
        report_error(&error);
    }
}

pub(crate) use steward_worker::report_error;

/// What became of the lines of an events file: `lines` is always
/// `handled + rejected + blank + duplicates.len()`.
#[derive(Default)]
struct Counts {
    lines: u64,
    handled: u64,
    rejected: u64,
    blank: u64,
    decisions: u64,
    /// The line numbers of events whose id was handled before.
    duplicates: Vec<u64>,
}

/// A message cut to a length a terminal can show (a 10 MB line must not be
/// echoed whole).
fn cut(text: &str) -> String {
    const MAX: usize = 300;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} bytes in all)",
        text.get(..end).unwrap_or(""),
        text.len()
    )
}

/// A line of the events file that decides an approval: by its id, or by
/// the rule that asked and the event it asked for (and the tenant, when
/// several have that event id).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionLine {
    decision: Verdict,
    approval: Option<String>,
    rule: Option<String>,
    event: Option<String>,
    tenant: Option<String>,
    /// RFC 3339; the engine's clock when left out.
    at: Option<String>,
    by: Option<String>,
}

#[derive(serde::Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Approve,
    Reject,
}

/// Whether a line that is not a well-formed decision was meant as one: an
/// object with `decision` and no `type`.
fn is_decision(text: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
        .is_ok_and(|m| m.contains_key("decision") && !m.contains_key("type"))
}

/// A decision taken.
struct Decided {
    id: String,
    approved: bool,
    by: String,
    at: DateTime<Utc>,
}

impl std::fmt::Display for Decided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.approved {
            "approved"
        } else {
            "rejected"
        };
        write!(
            f,
            "{verdict} `{}` by {} at {}",
            self.id,
            self.by,
            steward::engine::value::show_datetime(&self.at)
        )
    }
}

/// Takes the decision a line gives, at its time.
fn decide(
    engine: &mut Engine<MemoryStore>,
    line: &DecisionLine,
    sink: &mut dyn Sink,
) -> Result<Decided, String> {
    let now = engine.now();
    let at = match &line.at {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| format!("`at`: `{}` is not an RFC 3339 time", cut(text)))?,
        None => now.ok_or("a decision before any event needs its time: give `at`")?,
    };
    if let Some(now) = now.filter(|n| at < *n) {
        return Err(format!(
            "the decision at {} is before the engine's clock ({}): lines go in time order",
            steward::engine::value::show_datetime(&at),
            steward::engine::value::show_datetime(&now)
        ));
    }
    let pending = engine
        .store
        .pending_approvals()
        .map_err(|e| e.to_string())?;
    let ids: Vec<String> = match (&line.approval, &line.rule, &line.event) {
        (Some(id), None, None) => pending
            .iter()
            .filter(|a| a.id == *id)
            .map(|a| a.id.clone())
            .collect(),
        (None, Some(rule), Some(event)) => pending
            .iter()
            .filter(|a| {
                let asked = a.cont.rules.rules.get(a.cont.rule).map(|r| &*r.name);
                asked == Some(rule.as_str())
                    && &*a.cont.event.id == event.as_str()
                    && line.tenant.as_deref().is_none_or(|t| *a.cont.event.tenant == *t)
            })
            .map(|a| a.id.clone())
            .collect(),
        _ => {
            return Err(
                "a decision names `approval` (an id), or `rule` and `event` (the rule that asked and the event it asked for)"
                    .into(),
            )
        }
    };
    let what = match (&line.approval, &line.rule, &line.event) {
        (Some(id), _, _) => format!("`{}`", cut(id)),
        (_, Some(rule), Some(event)) => {
            format!("by rule `{}` for event `{}`", cut(rule), cut(event))
        }
        _ => String::new(),
    };
    let id = match ids.as_slice() {
        [id] => id.clone(),
        [] => {
            return Err(format!(
                "no pending approval {what} at this point (decided, expired, or never asked; replay with `--approvals none`, the default, to decide them here)"
            ))
        }
        several => {
            return Err(format!(
                "{} approvals are pending {what}: name one by `approval` ({})",
                several.len(),
                several.join(", ")
            ))
        }
    };
    let approved = line.decision == Verdict::Approve;
    let by = line.by.clone().unwrap_or_else(|| "replay".into());
    match engine.decide(&id, approved, &by, at, sink) {
        Ok(true) => Ok(Decided {
            id,
            approved,
            by,
            at,
        }),
        Ok(false) => Err(format!(
            "the approval `{id}` expired before {}",
            steward::engine::value::show_datetime(&at)
        )),
        Err(refused) => Err(refused.to_string()),
    }
}

pub struct ReplayOptions<'a> {
    pub rules: &'a [PathBuf],
    pub events: &'a Path,
    pub until: Option<DateTime<Utc>>,
    pub approvals: AutoDecide,
    pub explain: Option<String>,
    /// The tenant of the event to explain (any, if none).
    pub tenant: Option<String>,
    pub limits: Limits,
}

/// Returns whether it ran (false: the rules did not check).
pub fn replay(opts: ReplayOptions) -> Result<bool, String> {
    let Some(rules) = load_rules(opts.rules)? else {
        return Ok(false);
    };
    let file = File::open(opts.events)
        .map_err(|e| format!("cannot open `{}`: {e}", opts.events.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress =
        (std::io::stderr().is_terminal() && size >= PROGRESS_BYTES).then(|| progress_bar(size));
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut engine = Engine::new(rules.clone(), MemoryStore::new());
    engine.auto_decide = opts.approvals;
    engine.limits = opts.limits;
    engine.explain = opts.explain.clone();
    engine.explain_tenant = opts.tenant.clone();
    let stdout = std::io::stdout();
    let mut run = Run {
        engine,
        printer: Printer {
            out: BufWriter::with_capacity(1 << 16, stdout.lock()),
            io_error: None,
        },
        counts: Counts::default(),
        last: None,
    };
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let read_error =
            |e: std::io::Error| format!("cannot read `{}`: {e}", opts.events.display());
        // At most MAX_LINE bytes are kept; a longer line is skipped unread.
        let mut n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(read_error)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        run.counts.lines += 1;
        if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
            n += reader.skip_until(b'\n').map_err(read_error)?;
            if let Some(bar) = &progress {
                bar.inc(n as u64);
            }
            run.counts.rejected += 1;
            eprintln!("rejected: line {line_no}: longer than {MAX_LINE} bytes");
            continue;
        }
        if let Some(bar) = &progress {
            bar.inc(n as u64);
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            run.counts.rejected += 1;
            eprintln!("rejected: line {line_no}: not valid UTF-8");
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            run.counts.blank += 1;
            continue;
        }
        if run.decision_line(line_no, text) {
            continue;
        }
        run.event_line(&rules, opts.until, line_no, text)?;
        if let Some(e) = run.printer.io_error.take() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(true);
            }
            return Err(format!("cannot write the actions: {e}"));
        }
    }
    let Run {
        mut engine,
        mut printer,
        counts,
        last,
    } = run;
    if let Some(until) = opts.until.or(last) {
        run_clock_to(&mut engine, until, &mut printer)?;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    printer
        .out
        .flush()
        .map_err(|e| format!("cannot write the actions: {e}"))?;
    for trace in &engine.traces {
        eprint!("{}", show_trace(trace));
    }
    if let Some(id) = &opts.explain {
        if engine.traces.is_empty() {
            match &opts.tenant {
                Some(t) => eprintln!("explain: no event `{id}` of tenant `{t}` was handled"),
                None => eprintln!("explain: no event `{id}` was handled"),
            }
        }
    }
    eprintln!("{}", summary(&engine, &counts)?);
    // The process ends here: freeing every pending timer, claimed event id
    // and throttle window one by one would only delay the exit (about 5% of
    // a large replay).
    std::mem::forget(engine);
    Ok(true)
}

/// The progress bar of a replay of a file of `size` bytes.
fn progress_bar(size: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// A replay under way: the engine, where its actions go, and what became of
/// the lines read so far.
struct Run<W: Write> {
    engine: Engine<MemoryStore>,
    printer: Printer<W>,
    counts: Counts,
    /// The latest time of an event or a decision taken.
    last: Option<DateTime<Utc>>,
}

impl<W: Write> Run<W> {
    /// A decision line (`{"decision": "approve", ...}`) decides a pending
    /// approval; only a line that names one is read as such. Whether the
    /// line was a decision (taken or rejected).
    fn decision_line(&mut self, line_no: u64, text: &str) -> bool {
        if !text.contains("\"decision\"") {
            return false;
        }
        let line = match serde_json::from_str::<DecisionLine>(text) {
            Ok(line) => line,
            Err(e) if is_decision(text) => {
                self.counts.rejected += 1;
                eprintln!(
                    "rejected: line {line_no}: a decision: {}",
                    cut(&e.to_string())
                );
                return true;
            }
            Err(_) => return false,
        };
        match decide(&mut self.engine, &line, &mut self.printer) {
            Ok(done) => {
                self.counts.decisions += 1;
                eprintln!("decided: line {line_no}: {done}");
                self.last = Some(self.last.map_or(done.at, |l| l.max(done.at)));
            }
            Err(e) => {
                self.counts.rejected += 1;
                eprintln!("rejected: line {line_no}: {e}");
            }
        }
        true
    }

    /// An event line: the event handled, or rejected; an error when it
    /// occurred after `--until`.
    fn event_line(
        &mut self,
        rules: &Ruleset,
        until: Option<DateTime<Utc>>,
        line_no: u64,
        text: &str,
    ) -> Result<(), String> {
        let event = match decode_event(rules.shapes(), text) {
            Ok(event) => event,
            Err(e) => {
                self.counts.rejected += 1;
                let id = id_of(text);
                let e = cut(&e.to_string());
                match id {
                    Some(id) => eprintln!("rejected: line {line_no} (event `{}`): {e}", cut(&id)),
                    None => eprintln!("rejected: line {line_no}: {e}"),
                }
                return Ok(());
            }
        };
        if let Some(until) = until.filter(|u| event.occurred_at > *u) {
            return Err(format!(
                "line {line_no} (event `{}`) occurred at {}, after --until {}: \
                 --until must not be earlier than the last event",
                event.id,
                steward::engine::value::show_datetime(&event.occurred_at),
                steward::engine::value::show_datetime(&until)
            ));
        }
        let id = event.id.clone();
        let at = event.occurred_at;
        match self.engine.handle(event, &mut self.printer) {
            Ok(Handled::Ran) => {
                self.counts.handled += 1;
                self.last = Some(self.last.map_or(at, |l| l.max(at)));
            }
            Ok(Handled::Duplicate) => {
                self.counts.duplicates.push(line_no);
                eprintln!("duplicate: line {line_no} (event `{id}`): an event with this id was handled before; skipped");
            }
            Err(refused) => {
                self.counts.rejected += 1;
                eprintln!("rejected: line {line_no} (event `{id}`): {refused}");
            }
        }
        Ok(())
    }
}

/// Runs the engine's clock to `until` (`--until`, or the last time read),
/// firing the timers due by then.
fn run_clock_to(
    engine: &mut Engine<MemoryStore>,
    until: DateTime<Utc>,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    match engine.advance_to(until, sink) {
        Ok(()) => Ok(()),
        Err(Refused::BeyondHorizon { clock, horizon, .. }) => Err(format!(
            "cannot run the clock to --until {}: it is more than {} after the engine's clock ({clock}), \
             the horizon; raise it with --horizon (such as `--horizon 3650d`)",
            steward::engine::value::show_datetime(&until),
            steward::engine::value::show_duration(horizon.num_milliseconds()),
        )),
        Err(refused) => Err(format!("cannot run the clock to {until}: {refused}")),
    }
}

/// The line a replay ends with: what became of the lines, what the rules
/// did, and what is left pending.
fn summary(engine: &Engine<MemoryStore>, counts: &Counts) -> Result<String, String> {
    let s = &engine.stats;
    let pending_timers = engine.store.pending_timers().map_err(|e| e.to_string())?;
    let pending_approvals = engine
        .store
        .pending_approvals()
        .map_err(|e| e.to_string())?
        .len();
    let duplicates = match counts.duplicates.len() {
        0 => String::new(),
        n => {
            let shown: Vec<String> = counts
                .duplicates
                .iter()
                .take(10)
                .map(u64::to_string)
                .collect();
            let more = if n > 10 { ", ..." } else { "" };
            format!(", {n} duplicates (lines {}{more})", shown.join(", "))
        }
    };
    Ok(format!(
        "read {} lines: {} events handled, {} rejected, {} blank{duplicates}{}; \
         {} events emitted by rules; {} actions, {} rule errors, {} timers fired, {} cancelled, {} schedule ticks{}; \
         pending: {} timers, {} approvals",
        counts.lines,
        counts.handled,
        counts.rejected,
        counts.blank,
        if counts.decisions > 0 {
            format!(", {} decisions", counts.decisions)
        } else {
            String::new()
        },
        s.emitted,
        s.actions,
        s.errors,
        s.timers_fired,
        s.timers_cancelled,
        s.ticks,
        if s.ticks_skipped > 0 {
            format!(" ({} skipped)", s.ticks_skipped)
        } else {
            String::new()
        },
        pending_timers,
        pending_approvals,
    ))
}

/// `steward explain`: one event against the rules, on an empty store.
pub fn explain(rules: &[PathBuf], event: &Path, json: bool) -> Result<bool, String> {
    let Some(rules) = load_rules(rules)? else {
        return Ok(false);
    };
    let mut text = String::new();
    if event == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the event: {e}"))?;
    } else {
        text = std::fs::read_to_string(event)
            .map_err(|e| format!("cannot read `{}`: {e}", event.display()))?;
    }
    let event = decode_event(rules.shapes(), text.trim())
        .map_err(|e| format!("the event is rejected: {e}"))?;
    let mut engine = Engine::new(rules, MemoryStore::new());
    engine.explain = Some(event.id.to_string());
    let mut sink = steward::engine::Collect::default();
    engine
        .handle(event, &mut sink)
        .map_err(|e| format!("the event is rejected: {e}"))?;
    let trace = engine.traces.pop().unwrap_or_default();
    if json {
        let value = steward::boundary::explain_json(&trace, &sink.actions, &sink.errors);
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", show_trace(&trace));
        for a in &sink.actions {
            println!(
                "  would {}: {}",
                a.action,
                serde_json::Value::Object(a.args.clone())
            );
        }
        for e in &sink.errors {
            println!("  error in `{}`: {}", e.rule, e.message);
        }
    }
    Ok(true)
}

/// A trace for people.
pub fn show_trace(trace: &Trace) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "explain {} of tenant {} ({} at {}): {} rule(s) for this type",
        trace.event,
        trace.tenant,
        trace.event_type,
        trace.at,
        trace.rules.len()
    );
    for restarted in &trace.restarted {
        let _ = writeln!(out, "  {restarted}");
    }
    for r in &trace.rules {
        if !r.considered {
            let _ = writeln!(
                out,
                "  rule {}: not considered ({})",
                r.rule,
                r.skipped.as_deref().unwrap_or("")
            );
            continue;
        }
        let verdict = if r.matched {
            "matched"
        } else {
            "did not match"
        };
        let _ = writeln!(out, "  rule {}: {verdict}", r.rule);
        for c in &r.conditions {
            let reads: Vec<String> = c.reads.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            // An `unless` clause is shown as written.
            let keyword = if c.condition.starts_with("unless ") {
                ""
            } else {
                "if "
            };
            let _ = writeln!(
                out,
                "    {keyword}{}  =>  {}{}",
                c.condition,
                c.value,
                if reads.is_empty() {
                    String::new()
                } else {
                    format!("   ({})", reads.join(", "))
                }
            );
        }
        if let Some(t) = r.throttled {
            let _ = writeln!(
                out,
                "    throttle  =>  {}",
                if t {
                    "limit reached, skipped"
                } else {
                    "within the limit"
                }
            );
        }
        if let Some(w) = &r.watch {
            let _ = writeln!(out, "    {w}");
        }
        for s in &r.scheduled {
            let _ = writeln!(out, "    scheduled: {s}");
        }
        if let Some(c) = &r.counted {
            let _ = writeln!(
                out,
                "    count  =>  {} of {} within {}{}",
                c.seen,
                c.of,
                c.window,
                if c.reached {
                    ", reached (counting starts again)"
                } else {
                    ", waiting"
                }
            );
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "    error: {e}");
        }
    }
    out
}

/// `steward test`: every `test` block; the last line is `N passed, N failed`.
pub fn test(paths: &[PathBuf]) -> Result<ExitCode, String> {
    let Some((analysis, rules)) = load(paths)? else {
        return Ok(ExitCode::from(super::PROBLEMS));
    };
    let results = steward::engine::testing::run_tests(&analysis, &rules);
    let mut out = std::io::stdout().lock();
    let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
    for r in &results {
        let verdict = if r.passed() { "ok" } else { "FAILED" };
        let _ = writeln!(out, "test {} \"{}\" ... {verdict}", r.location, r.name);
    }
    if !failed.is_empty() {
        let _ = writeln!(out, "\nfailures:");
        for r in &failed {
            let _ = writeln!(out, "\n  {} \"{}\"", r.location, r.name);
            for f in &r.failures {
                let _ = writeln!(out, "    {f}");
            }
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "{} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::PROBLEMS)
    })
}

/// The longest line of an events file that is read (16 MiB): an event is
/// rarely over a few kilobytes.
const MAX_LINE: usize = 16 << 20;

/// The `id` of an envelope that was rejected, when the line has one: every
/// other value is skipped unread, so a number out of range elsewhere does
/// not hide it.
fn id_of(line: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    serde_json::from_str::<Id>(line)
        .ok()
        .map(|e| e.id.into_owned())
}
