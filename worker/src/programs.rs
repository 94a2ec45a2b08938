//! The tenants' programs: loaded from the store, rebuilt (by digest) when
//! a deploy, a rollback, an enable or a delete moves their generation, and
//! the engine that runs them.

use std::sync::Arc;
use std::time::Duration;

use steward::engine::store::StoreError;
use steward::engine::{Engine, Ruleset};
use steward_db::api::Api;
use steward_db::control::{Control, ControlError, EVERY_TENANT};
use steward_db::Durable;

use crate::empty_rules;

/// The programs the worker runs: the tenant `*`'s for every tenant without
/// one of its own, and each tenant's own; reloaded when their generation
/// moves (a deploy, a rollback, an enable or disable, a delete).
pub(crate) struct Programs {
    pub(crate) generation: i64,
    pub(crate) every: Arc<Ruleset>,
    pub(crate) own: std::collections::HashMap<Arc<str>, Arc<Ruleset>>,
    /// Tenants whose stored program no longer builds, with why: their
    /// events are rejected with that reason rather than run without rules.
    pub(crate) broken: std::collections::HashMap<String, String>,
    /// Built programs by digest, kept across reloads.
    pub(crate) built: std::collections::HashMap<String, Arc<Ruleset>>,
    pub(crate) checked: std::time::Instant,
    /// A batch found the programs changed: look at once.
    pub(crate) stale: bool,
}

/// How often a worker looks whether a program changed.
pub(crate) const PROGRAMS_EVERY: Duration = Duration::from_secs(1);

impl Programs {
    pub(crate) fn load<S: Durable + Control + Api>(store: &mut S) -> Result<Programs, String> {
        let mut programs = Programs {
            generation: -1,
            every: empty_rules()?,
            own: Default::default(),
            broken: Default::default(),
            built: Default::default(),
            checked: std::time::Instant::now(),
            stale: false,
        };
        programs.reload(store)?;
        Ok(programs)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.own.is_empty() && self.broken.is_empty() && self.every.rules.is_empty()
    }

    /// Loads the programs again if they changed; says whether they did.
    pub(crate) fn reload<S: Durable + Control + Api>(
        &mut self,
        store: &mut S,
    ) -> Result<bool, String> {
        self.checked = std::time::Instant::now();
        self.stale = false;
        // The database unavailable: keep what runs, and look again next
        // round (the batch waits the outage out).
        let unavailable =
            |e: &ControlError| matches!(e, ControlError::Store(StoreError::Unavailable(_)));
        let generation = match store.program_generation() {
            Ok(g) => g,
            Err(e) if unavailable(&e) => {
                self.stale = true;
                return Ok(false);
            }
            Err(e) => return Err(e.to_string()),
        };
        if generation == self.generation {
            return Ok(false);
        }
        let rows = match store.programs() {
            Ok(rows) => rows,
            Err(e) if unavailable(&e) => {
                self.stale = true;
                return Ok(false);
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut every = None;
        let mut own = std::collections::HashMap::new();
        let mut broken = std::collections::HashMap::new();
        let mut in_use = std::collections::HashSet::new();
        for row in rows {
            if let Some((digest, _)) = &row.program {
                in_use.insert(digest.clone());
            }
            let known = row
                .program
                .as_ref()
                .and_then(|(digest, _)| self.built.get(digest).cloned());
            let rules = match (&row.program, known) {
                (None, _) => Ok(empty_rules()?),
                (Some(_), Some(rules)) => Ok(rules),
                (Some((digest, sources)), None) => match sources.build().rules {
                    Ok(rules) if &rules.version == digest => Ok(rules),
                    Ok(_) => Err(
                        "its stored program builds to another version with this Steward"
                            .to_string(),
                    ),
                    Err(e) => Err(format!("its stored program no longer checks: {e}")),
                },
            };
            match rules {
                Ok(rules) => {
                    self.built.insert(rules.version.clone(), rules.clone());
                    store.use_rules(rules.clone());
                    if row.tenant == EVERY_TENANT {
                        every = Some(rules);
                    } else {
                        own.insert(Arc::from(row.tenant.as_str()), rules);
                    }
                }
                Err(why) => {
                    eprintln!("tenant `{}`: {why}; its events are rejected", row.tenant);
                    broken.insert(row.tenant, why);
                }
            }
        }
        if self.generation >= 0 {
            eprintln!("steward run: the deployed rules changed; reloaded");
        }
        self.every = match every {
            Some(rules) => rules,
            None => empty_rules()?,
        };
        self.own = own;
        self.broken = broken;
        self.generation = generation;
        // Only what runs is kept built: a long-running worker's deploys do
        // not pile up (the store keeps the versions stored work needs).
        self.built.retain(|digest, _| in_use.contains(digest));
        Ok(true)
    }

    pub(crate) fn has_schedules(&self) -> bool {
        self.every.has_schedules() || self.own.values().any(|r| r.has_schedules())
    }

    /// Puts the programs into `engine`.
    pub(crate) fn install<S: Durable>(&self, engine: &mut Engine<S>) {
        engine.rules = self.every.clone();
        engine.programs = self.own.clone();
    }
}

/// An engine on `store`, knowing the tenants its schedules fire for.
pub(crate) fn engine_on<S: Durable>(programs: &Programs, store: S) -> Result<Engine<S>, String> {
    let tenants = if programs.has_schedules() {
        store.tenants().map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    let mut engine = Engine::new(programs.every.clone(), store);
    programs.install(&mut engine);
    engine.limits.missed_ticks_once = true;
    // Every event's trace is kept, for `GET /v1/events/{id}/trace`.
    engine.explain_all = true;
    for t in tenants {
        engine.add_tenant(&Arc::from(t.as_str()));
    }
    Ok(engine)
}
