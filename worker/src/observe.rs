//! What the worker tells operators: `tracing` spans (a batch, each event
//! in it, each rule, each delivery) written to stderr when `STEWARD_LOG`
//! sets a filter (`STEWARD_LOG=steward=debug`, `info`, ...), and Prometheus
//! metrics served at `--metrics ADDR`.

use std::net::SocketAddr;

use chrono::{DateTime, Utc};
use steward_db::{Attempt, Delivery};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Spans and events to stderr, filtered by `STEWARD_LOG`; nothing without it.
pub fn init_logging() {
    let Ok(filter) = std::env::var("STEWARD_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("warning: STEWARD_LOG `{filter}`: {e}; logging at `info`");
        tracing_subscriber::EnvFilter::new("info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
}

/// Seconds, from a millisecond to ten minutes: the lag from an event's
/// `occurred_at` to its handling, and how long a delivery took.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

/// Serves the metrics at `addr` (`HOST:PORT`, or `HOST:PORT/metrics`: any
/// path answers), from a thread of its own.
pub fn serve_metrics(addr: &str) -> Result<(), String> {
    let host = addr.split_once('/').map_or(addr, |(host, _)| host);
    let socket: SocketAddr = host
        .parse()
        .map_err(|e| format!("--metrics `{addr}`: expected HOST:PORT ({e})"))?;
    PrometheusBuilder::new()
        .with_http_listener(socket)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), BUCKETS)
        .map_err(|e| format!("--metrics: {e}"))?
        .install()
        .map_err(|e| format!("--metrics `{addr}`: {e}"))?;
    describe();
    eprintln!("metrics: http://{socket}/metrics");
    Ok(())
}

/// Records the metrics for rendering on demand (`steward serve`'s
/// `/metrics`).
pub fn install_metrics() -> Result<metrics_exporter_prometheus::PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), BUCKETS)
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "steward_events_processed_total",
        "Events handled by the rules"
    );
    describe_counter!(
        "steward_events_rejected_total",
        "Events stored as rejected, with the reason (a payload that does not match its schema, ...)"
    );
    describe_counter!(
        "steward_batches_total",
        "Batches committed (each one transaction)"
    );
    describe_counter!(
        "steward_batch_conflicts_total",
        "Batches done again because another worker changed what they read"
    );
    describe_counter!(
        "steward_actions_delivered_total",
        "Actions of the outbox delivered"
    );
    describe_counter!(
        "steward_actions_failed_total",
        "Delivery attempts that failed and will be tried again"
    );
    describe_counter!(
        "steward_actions_dead_total",
        "Actions given up: 410 Gone, a permanent refusal, or the last attempt failed"
    );
    describe_counter!(
        "steward_rule_errors_total",
        "Rule errors (a rule that faulted)"
    );
    describe_histogram!(
        "steward_event_lag_seconds",
        Unit::Seconds,
        "From an event's occurred_at to the commit of its handling"
    );
    describe_histogram!(
        "steward_batch_seconds",
        Unit::Seconds,
        "How long a batch took, from its claim to its commit"
    );
    describe_histogram!(
        "steward_delivery_seconds",
        Unit::Seconds,
        "How long one delivery attempt took"
    );
    describe_counter!("steward_rows_pruned_total", "Rows forgotten by retention");
}

/// The metrics of a committed batch.
pub(crate) fn record_batch(
    started: std::time::Instant,
    occurred: &[DateTime<Utc>],
    rejected: usize,
    errors: usize,
) {
    if occurred.is_empty() && rejected == 0 {
        return;
    }
    let now = Utc::now();
    metrics::counter!("steward_batches_total").increment(1);
    metrics::histogram!("steward_batch_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("steward_events_processed_total").increment(occurred.len() as u64);
    metrics::counter!("steward_events_rejected_total").increment(rejected as u64);
    metrics::counter!("steward_rule_errors_total").increment(errors as u64);
    let lag = metrics::histogram!("steward_event_lag_seconds");
    for t in occurred {
        let ms = now.signed_duration_since(*t).num_milliseconds().max(0);
        lag.record(ms as f64 / 1000.0);
    }
}

/// The metrics of a delivery attempt, labelled by action.
pub(crate) fn record_delivery(d: &Delivery, outcome: &Attempt, started: std::time::Instant) {
    let action = d.action.clone();
    metrics::histogram!("steward_delivery_seconds", "action" => action.clone())
        .record(started.elapsed().as_secs_f64());
    let name = match outcome {
        Attempt::Delivered => "steward_actions_delivered_total",
        Attempt::Failed {
            retry_at: Some(_), ..
        } => "steward_actions_failed_total",
        Attempt::Failed { retry_at: None, .. } => "steward_actions_dead_total",
    };
    metrics::counter!(name, "action" => action).increment(1);
}
