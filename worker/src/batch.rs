//! One batch, in one transaction: claimed events handled (or rejected with
//! the reason), then what is due; and what a batch that did not commit
//! means for the loop.

use chrono::{DateTime, Utc};
use steward::engine::store::StoreError;
use steward::engine::{decode_event, Collect, Engine, Handled, Refused};
use steward_db::api::Api;
use steward_db::control::{Control, ControlError};
use steward_db::{Durable, StoredTrace};

use crate::programs::Programs;

/// A batch that did not commit: another worker's change conflicted with it
/// (it is done again), or the store failed (the worker stops).
pub(crate) enum Failed {
    Store(StoreError),
    Other(String),
    /// The programs changed since the worker loaded them: it loads them
    /// and does the batch again.
    Reload,
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Failed {
        Failed::Store(e)
    }
}

impl From<ControlError> for Failed {
    fn from(e: ControlError) -> Failed {
        match e {
            ControlError::Store(e) => Failed::Store(e),
            other => Failed::Other(other.to_string()),
        }
    }
}

impl From<Refused> for Failed {
    fn from(e: Refused) -> Failed {
        match e {
            Refused::Store(e) => Failed::Store(e),
            other => Failed::Other(other.to_string()),
        }
    }
}

/// One batch, in one transaction: claimed events handled (or rejected with
/// the reason), then what is due by `now`. Says how many events it claimed.
pub(crate) fn batch<S: Durable + Control + Api>(
    engine: &mut Engine<S>,
    programs: &Programs,
    limit: i64,
    sink: &mut Collect,
    rejected: &mut Vec<(String, String, String)>,
    occurred: &mut Vec<DateTime<Utc>>,
) -> Result<usize, Failed> {
    engine.store.begin_batch()?;
    let claimed = engine.store.claim_events(limit)?;
    // Read after the claims: an event inserted after a deploy committed
    // is run by the programs deployed.
    if engine.store.program_generation()? != programs.generation {
        return Err(Failed::Reload);
    }
    tracing::Span::current().record("claimed", claimed.len());
    for e in &claimed {
        let _span = tracing::debug_span!("event", tenant = %e.tenant, id = %e.id).entered();
        let decoded = match programs.broken.get(&e.tenant) {
            Some(why) => Err(format!("tenant `{}`: {why}", e.tenant)),
            None => decode_event(engine.program_for(&e.tenant).shapes(), &e.line)
                .map_err(|why| why.to_string()),
        };
        let reason = match decoded {
            Err(why) => Some(why),
            Ok(event) => match (event.occurred_at, engine.handle(event, sink)) {
                (at, Ok(Handled::Ran)) => {
                    occurred.push(at);
                    None
                }
                (_, Ok(Handled::Duplicate)) => {
                    Some("an event of this id was handled already".into())
                }
                (_, Err(Refused::Store(err))) => return Err(Failed::Store(err)),
                (_, Err(other)) => Some(other.to_string()),
            },
        };
        if let Some(reason) = reason {
            engine.store.reject(&e.tenant, &e.id, &reason)?;
            rejected.push((e.tenant.clone(), e.id.clone(), reason));
        }
    }
    // Decisions recorded over HTTP (`steward serve`), each taken once.
    for d in engine.store.decision_requests(limit)? {
        let by = format!("{} (via {})", d.by, d.via);
        match engine.decide(&d.approval, d.approved, &by, Utc::now(), sink) {
            Ok(_) => {}
            Err(Refused::Store(e)) => return Err(Failed::Store(e)),
            Err(other) => eprintln!("the decision on `{}` was not taken: {other}", d.approval),
        }
        engine.store.took_decision(&d.tenant, &d.approval)?;
    }
    engine.advance_to(Utc::now(), sink)?;
    let traces = traces_of(engine, sink);
    engine.store.put_traces(&traces)?;
    engine.store.commit_batch()?;
    Ok(claimed.len())
}

/// The batch's explain traces as stored: each with the actions and the
/// errors of its event.
pub fn traces_of<S: Durable>(engine: &mut Engine<S>, sink: &Collect) -> Vec<StoredTrace> {
    let traces = std::mem::take(&mut engine.traces);
    if traces.is_empty() {
        return Vec::new();
    }
    let mut actions: std::collections::HashMap<(&str, &str), Vec<steward::engine::Action>> =
        std::collections::HashMap::new();
    for a in &sink.actions {
        actions
            .entry((&a.tenant, &a.event))
            .or_default()
            .push(a.clone());
    }
    traces
        .iter()
        .map(|t| {
            let key = (t.tenant.as_str(), t.event.as_str());
            let errors: Vec<_> = sink
                .errors
                .iter()
                .filter(|e| *e.event == *t.event)
                .cloned()
                .collect();
            let json = steward::boundary::explain_json(
                t,
                actions.get(&key).map_or(&[][..], Vec::as_slice),
                &errors,
            );
            StoredTrace {
                tenant: t.tenant.clone(),
                event: t.event.clone(),
                trace: json.to_string(),
                errors: errors.len(),
            }
        })
        .collect()
}
