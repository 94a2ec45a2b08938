//! The outbox's delivery threads: each claims one due action at a time on
//! a connection of its own, delivers it and records the attempt; a batch
//! that recorded actions rings the bell that wakes them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use chrono::Utc;
use steward_db::api::Api;
use steward_db::tenancy::{Tenancy, SIGNING, SIGNING_PREVIOUS};
use steward_db::{Attempt, Delivery, Durable, PgStore, SqliteStore, Target, WebhookHeaders};

use crate::deliver::Credentials;
use crate::observe::record_delivery;
use crate::work::unavailable_wait;
use crate::{empty_rules, RunOptions};
use chrono::DateTime;
use steward::engine::store::StoreError;

/// What the event loop and the delivery threads share: a bell rung when a
/// batch recorded actions, the deliveries in flight, and the stop signal.
#[derive(Default)]
pub(crate) struct Outbox {
    pub(crate) state: Mutex<(u64, bool)>,
    pub(crate) bell: Condvar,
    pub(crate) in_flight: AtomicUsize,
}

impl Outbox {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn ring(&self) {
        self.lock().0 += 1;
        self.bell.notify_all();
    }

    pub(crate) fn stop(&self) {
        self.lock().1 = true;
        self.bell.notify_all();
    }

    pub(crate) fn stopped(&self) -> bool {
        self.lock().1
    }

    /// Waits for the bell, the stop signal, or `poll`.
    pub(crate) fn wait(&self, rung: u64, poll: Duration) -> u64 {
        let guard = self.lock();
        let (guard, _) = self
            .bell
            .wait_timeout_while(guard, poll, |(n, stop)| *n == rung && !*stop)
            .unwrap_or_else(|e| e.into_inner());
        guard.0
    }
}

/// A delivery thread: claims one due action at a time, delivers it, and
/// records the attempt, on a connection of its own; so a slow endpoint
/// holds one thread, not the others.
pub(crate) fn deliver_loop(
    target: &Target,
    opts: &RunOptions,
    outbox: &Outbox,
) -> Result<(), String> {
    let rules = empty_rules()?;
    match target {
        Target::Sqlite(path) => {
            let store = SqliteStore::open(path, rules).map_err(|e| e.to_string())?;
            deliveries(&store, opts, outbox)
        }
        Target::Postgres(url) => {
            let store = PgStore::open(url, rules).map_err(|e| e.to_string())?;
            deliveries(&store, opts, outbox)
        }
    }
}

pub(crate) fn deliveries<S: Durable + Api + Tenancy>(
    store: &S,
    opts: &RunOptions,
    outbox: &Outbox,
) -> Result<(), String> {
    let deliverer = &opts.deliverer;
    // A claim is held for the attempt's timeout and as long again: past
    // that, the worker that claimed it is taken to be dead.
    let hold = chrono::Duration::from_std(deliverer.timeout.saturating_mul(2))
        .unwrap_or(chrono::Duration::minutes(1));
    let mut rung = 0;
    let mut unavailable = 0u32;
    while !outbox.stopped() {
        outbox.in_flight.fetch_add(1, Ordering::SeqCst);
        let now = Utc::now();
        let until = now
            .checked_add_signed(hold)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let claimed = store.claim_deliveries(now, until, 1);
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(StoreError::Unavailable(why)) => {
                outbox.in_flight.fetch_sub(1, Ordering::SeqCst);
                unavailable_wait(&mut unavailable, "claiming a delivery", &why, &|| {
                    outbox.stopped()
                });
                continue;
            }
            Err(e) => {
                outbox.in_flight.fetch_sub(1, Ordering::SeqCst);
                return Err(e.to_string());
            }
        };
        unavailable = 0;
        let mut failed = None;
        for d in &claimed {
            // Past the tenant's actions an hour, the delivery waits: its
            // claim is left to run out (no attempt spent), and it is
            // claimed again then.
            match hour_used_up(store, d) {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(tenant = %d.tenant, key = %d.key, "held back: the tenant's actions an hour are used up");
                    metrics::counter!("steward_deliveries_held_total").increment(1);
                    continue;
                }
                Err(steward_db::control::ControlError::Store(StoreError::Unavailable(why))) => {
                    unavailable_wait(&mut unavailable, "a tenant's quota", &why, &|| {
                        outbox.stopped()
                    });
                    break;
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
            let span = tracing::info_span!("delivery", key = %d.key, action = %d.action);
            let started = std::time::Instant::now();
            let outcome = span.in_scope(|| {
                if d.action == "approval_requested" {
                    approval_mail(store, opts, d)
                } else {
                    match credentials(store, deliverer, d) {
                        Ok(creds) => deliverer.deliver(d, Utc::now(), &creds),
                        // A tenant's secret that does not open (another
                        // STEWARD_SECRET_KEY) or a header's secret not set:
                        // not sent unsigned, signed with the server's or
                        // without the header; tried again (setting the
                        // secret mends it).
                        Err(why) => Attempt::Failed {
                            error: why,
                            retry_at: Utc::now().checked_add_signed(chrono::Duration::minutes(1)),
                        },
                    }
                }
            });
            record_delivery(d, &outcome, started);
            if let Attempt::Failed { error, retry_at } = &outcome {
                match retry_at {
                    Some(t) => eprintln!(
                        "delivery of {} ({}) failed: {error}; trying again at {}",
                        d.key,
                        d.action,
                        steward::engine::value::show_datetime(t)
                    ),
                    None => eprintln!("delivery of {} ({}) is dead: {error}", d.key, d.action),
                }
            }
            match store.attempted(d, &outcome) {
                Ok(()) => {}
                // Not recorded: its claim runs out and it is delivered
                // again, with the same key (the receiver drops the repeat).
                Err(StoreError::Unavailable(why)) => {
                    unavailable_wait(&mut unavailable, "recording a delivery", &why, &|| {
                        outbox.stopped()
                    });
                    break;
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        outbox.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(e) = failed {
            return Err(e);
        }
        if claimed.is_empty() {
            rung = outbox.wait(rung, opts.poll);
        }
    }
    Ok(())
}

/// An approval asked, mailed with links to the holders of its role (see
/// `PUT /v1/roles/{role}`), when links can be made (`--public-url`, which
/// `steward serve` sets).
/// Whether `d` is a webhook or a mail of a tenant that has delivered as
/// many of them in the last hour as its quota allows.
fn hour_used_up<S: Tenancy>(
    store: &S,
    d: &Delivery,
) -> Result<bool, steward_db::control::ControlError> {
    if d.url.is_none() && d.action != "send" {
        return Ok(false);
    }
    let Some(max) = store.quotas(&d.tenant)?.actions_per_hour else {
        return Ok(false);
    };
    let since = Utc::now()
        .checked_sub_signed(chrono::Duration::hours(1))
        .map_or_else(String::new, |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        });
    Ok(store.delivered_since(&d.tenant, &since)? >= max)
}

/// What a webhook needs of its tenant's secrets: the signing keys (its own
/// secret, and the one a rotation replaced while it signs; none for a
/// tenant without its own) and the values of the headers its rule declared
/// (a secret read now, by name). Nothing for another action.
fn credentials<S: Tenancy>(
    store: &S,
    deliverer: &crate::Deliverer,
    d: &Delivery,
) -> Result<Credentials, String> {
    if d.url.is_none() {
        return Ok(Credentials::default());
    }
    let headers: WebhookHeaders = match &d.headers {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| format!("the stored headers of {} cannot be read: {e}", d.key))?,
        None => WebhookHeaders {
            secrets_of: d.tenant.clone(),
            headers: Vec::new(),
        },
    };
    let Some(_) = &deliverer.sealer else {
        return deliverer.credentials(&d.tenant, &[], &[], &headers);
    };
    let now = steward_db::control::now_text();
    let signing = store
        .sealed_secrets(&d.tenant, &[SIGNING, SIGNING_PREVIOUS], &now)
        .map_err(|e| e.to_string())?;
    let names: Vec<&str> = headers
        .headers
        .iter()
        .filter_map(|h| h.secret.as_deref())
        .collect();
    let named = if names.is_empty() {
        Vec::new()
    } else {
        store
            .sealed_secrets(&headers.secrets_of, &names, &now)
            .map_err(|e| e.to_string())?
    };
    deliverer.credentials(&d.tenant, &signing, &named, &headers)
}

pub(crate) fn approval_mail<S: Durable + Api>(
    store: &S,
    opts: &RunOptions,
    d: &Delivery,
) -> Attempt {
    let now = Utc::now();
    let Some(base) = &opts.public_url else {
        return Attempt::Delivered;
    };
    let args: serde_json::Value = match serde_json::from_str(&d.args) {
        Ok(args) => args,
        Err(e) => return crate::deliver::unreadable(d, &e),
    };
    let text = |k: &str| args.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    let role = text("role");
    let approval = text("approval").to_string();
    let holders = match store.roles(&d.tenant) {
        Ok(roles) => roles
            .into_iter()
            .find(|(r, _)| r == role)
            .map(|(_, emails)| emails)
            .unwrap_or_default(),
        Err(e) => {
            return Attempt::Failed {
                error: e.to_string(),
                retry_at: now.checked_add_signed(chrono::Duration::seconds(5)),
            }
        }
    };
    let tenant = d.tenant.clone();
    let mut link = |deadline: &str| -> Result<String, String> {
        steward_db::links::mint(store, &tenant, &approval, deadline, base)
            .map_err(|e| e.to_string())
    };
    opts.deliverer.approval(d, &holders, &mut link, now)
}
