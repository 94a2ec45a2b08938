//! The control plane's tables: each tenant's rulesets (versions, the
//! active one, enabled or not), the program a tenant runs, and the audit
//! log. Written by `steward run --rules` and by the HTTP API; read by the
//! workers, which reload a tenant's program when its generation moves.
//!
//! A tenant's program is its enabled rulesets' active versions checked and
//! compiled together (files named `ruleset/file`), so rules of one ruleset
//! may use the events another declares, and a name two rulesets give to
//! different rules is refused at deploy. Every change of a program is one
//! transaction: the ruleset's row, the program (kept by digest, the version
//! continuations and idempotency keys name), the tenant's pointer to it, the
//! cancelling of the timers and approvals of rules it no longer has, and the
//! audit entry.

use crate::driver::{Driver, Pooled, Query};
use crate::SqlStore;
use std::collections::BTreeSet;

use chrono::Utc;
use steward::boundary::{diagnostics_json, Sources};
use steward::diag::JsonDiagnostic;

use crate::time_text;

/// The tenant whose programs apply to every tenant without its own: the
/// development ruleset `steward run --rules` deploys.
pub use steward::engine::runtime::EVERY_TENANT;

/// What a change of a ruleset came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployed {
    /// The ruleset's active version after the change.
    pub version: i64,
    /// Whether a version was made (false: the program is unchanged).
    pub new: bool,
    /// The digest of the tenant's program after the change (none: no
    /// ruleset of the tenant is enabled).
    pub digest: Option<String>,
    /// The timers and approvals cancelled, their rules being gone.
    pub cancelled: Vec<String>,
}

/// Why a change of a ruleset was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The tenant's program would not check: the diagnostics, the
    /// ruleset's own files under their own names.
    #[error("the rules have {} error(s)", .0.iter().filter(|d| d.severity == steward::diag::Severity::Error).count())]
    Invalid(Vec<JsonDiagnostic>),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] steward::engine::store::StoreError),
}

/// A tenant's program as the workers load it.
#[derive(Clone, Debug)]
pub struct ProgramRow {
    pub tenant: String,
    /// None: the tenant has rulesets, none enabled (it runs no rules).
    pub program: Option<(String, Sources)>,
}

/// A ruleset of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RulesetHead {
    pub name: String,
    pub version: i64,
    pub enabled: bool,
    pub updated_at: String,
}

/// One version of a ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesetVersion {
    pub version: i64,
    /// The tenant's program's digest when it was deployed.
    pub digest: String,
    pub sources: Sources,
    pub deployed_at: String,
}

/// An entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    /// A token (`token ID`), `admin`, or an approver's name.
    pub who: String,
    /// `ruleset.deployed`, `ruleset.rolled_back`, `ruleset.enabled`,
    /// `ruleset.disabled`, `ruleset.deleted`, `approval.approved`,
    /// `approval.rejected`, `action.retried`, `token.created`,
    /// `tenant.created`.
    pub what: String,
    /// What it was done to: a ruleset, an approval, an action, a token.
    pub subject: String,
    pub detail: serde_json::Value,
}

/// The control plane, on either store.
pub trait Control {
    /// A number that grows with every change of any tenant's program (read
    /// in the open batch, if there is one).
    fn program_generation(&self) -> Result<i64, ControlError>;
    /// Every tenant's program (the tenant `*` included).
    fn programs(&self) -> Result<Vec<ProgramRow>, ControlError>;
    /// One tenant's program; none if the tenant has no row (it runs the
    /// tenant `*`'s).
    fn program_of(&self, tenant: &str) -> Result<Option<ProgramRow>, ControlError>;
    /// Deploys `sources` as a new version of ruleset `name` of `tenant`
    /// (made if new, enabled or not as it was), unless the tenant's program
    /// would be the same.
    fn deploy_ruleset(
        &self,
        tenant: &str,
        name: &str,
        sources: &Sources,
        who: &str,
    ) -> Result<Deployed, ControlError>;
    /// Deploys version `version`'s sources as a new version.
    fn rollback_ruleset(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
        who: &str,
    ) -> Result<Deployed, ControlError>;
    /// Enables or disables a ruleset.
    fn enable_ruleset(
        &self,
        tenant: &str,
        name: &str,
        enabled: bool,
        who: &str,
    ) -> Result<Deployed, ControlError>;
    /// What `change` would come to (the version, the program, what it
    /// would cancel), found by making it in a transaction that is then
    /// rolled back: the same logic as the change itself.
    fn preview_change(
        &self,
        tenant: &str,
        name: &str,
        change: &Change<'_>,
    ) -> Result<Deployed, ControlError>;
    /// Deletes a ruleset (its versions are kept for the audit).
    fn delete_ruleset(&self, tenant: &str, name: &str, who: &str)
        -> Result<Deployed, ControlError>;
    /// The sources the tenant's program would have with `sources` as
    /// ruleset `name` (its other enabled rulesets, that one replaced or
    /// added), as a deploy composes them; for checks and backtests.
    fn program_with(
        &self,
        tenant: &str,
        name: &str,
        sources: &Sources,
    ) -> Result<Sources, ControlError>;
    fn rulesets(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<RulesetHead>, ControlError>;
    fn ruleset(&self, tenant: &str, name: &str) -> Result<Option<RulesetHead>, ControlError>;
    /// Versions of a ruleset, newest first, before `before` if given.
    fn ruleset_versions(
        &self,
        tenant: &str,
        name: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<RulesetVersion>, ControlError>;
    fn ruleset_version(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<RulesetVersion>, ControlError>;
    /// Appends to the audit log (in a transaction of its own).
    fn audit(
        &self,
        tenant: &str,
        who: &str,
        what: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), ControlError>;
    /// The audit log, newest first, before `before` if given.
    fn audit_log(
        &self,
        tenant: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, ControlError>;
}

/// The sources of a tenant's program: each enabled ruleset's files (and
/// the scripts they read) under `ruleset/`, rulesets in name order.
pub fn compose(rulesets: &[(String, Sources)]) -> Sources {
    let mut out = Sources::default();
    for (name, s) in rulesets {
        for (file, text) in &s.files {
            out.files.push((format!("{name}/{file}"), text.clone()));
        }
        for (file, path, text) in &s.scripts {
            out.scripts
                .push((format!("{name}/{file}"), path.clone(), text.clone()));
        }
    }
    out
}

/// Diagnostics of a composed program, the files of ruleset `name` under
/// their own names again.
fn own_names(mut diagnostics: Vec<JsonDiagnostic>, name: &str) -> Vec<JsonDiagnostic> {
    let prefix = format!("{name}/");
    let strip = |file: &mut String| {
        if let Some(rest) = file.strip_prefix(&prefix) {
            *file = rest.to_string();
        }
    };
    for d in &mut diagnostics {
        strip(&mut d.file);
        for l in &mut d.labels {
            strip(&mut l.file);
        }
    }
    diagnostics
}

/// A program built from composed sources: its digest and rule names, or
/// the diagnostics (for ruleset `name`, see [`diagnose`]).
pub(crate) fn build_program(
    sources: &Sources,
    name: &str,
    secrets: &BTreeSet<String>,
) -> Result<(String, BTreeSet<String>), ControlError> {
    if let Ok(rules) = sources.build_knowing(Some(secrets)).rules {
        return Ok((
            rules.version.clone(),
            rules.rules.iter().map(|r| r.name.to_string()).collect(),
        ));
    }
    Err(ControlError::Invalid(diagnose(
        sources,
        name,
        Some(secrets),
    )))
}

/// Every diagnostic of a composed program, as ruleset `name` would be told
/// them: checked with its files last (so what clashes with another ruleset
/// is reported in its own files), and its files under their own names;
/// knowing the tenant's `secrets` when given.
pub fn diagnose(
    sources: &Sources,
    name: &str,
    secrets: Option<&BTreeSet<String>>,
) -> Vec<JsonDiagnostic> {
    let prefix = format!("{name}/");
    let (own, others): (Vec<_>, Vec<_>) = sources
        .files
        .iter()
        .cloned()
        .partition(|(file, _)| file.starts_with(&prefix));
    let last = Sources {
        files: others.into_iter().chain(own).collect(),
        scripts: sources.scripts.clone(),
    };
    let built = last.build_knowing(secrets);
    own_names(
        diagnostics_json(&built.analysis, &built.analysis.diagnostics),
        name,
    )
}

pub fn parse_sources(text: &str, what: &str) -> Result<Sources, ControlError> {
    serde_json::from_str(text).map_err(|e| {
        ControlError::Store(steward::engine::store::StoreError::Corrupt(format!(
            "the sources of {what}: {e}"
        )))
    })
}

pub(crate) fn sources_text(sources: &Sources) -> Result<String, ControlError> {
    serde_json::to_string(sources).map_err(|e| {
        ControlError::Store(steward::engine::store::StoreError::Corrupt(format!(
            "the sources: {e}"
        )))
    })
}

pub(crate) fn db(e: sqlx::Error) -> ControlError {
    ControlError::Store(crate::unavailable(e))
}

pub fn now_text() -> String {
    time_text(&Utc::now())
}

/// What a change of a ruleset would make of the tenant's rulesets, as read
/// before its transaction: checked with no lock held, then applied if the
/// tenant's rulesets and secrets are still as read.
pub struct Plan {
    /// The tenant's program generation when read (none: never changed).
    pub(crate) generation: Option<i64>,
    /// The ruleset's head: active version, enabled.
    pub(crate) head: Option<(i64, bool)>,
    /// The digest of the tenant's program now.
    pub(crate) current: Option<String>,
    /// The sources of the version the change makes, if it makes one.
    pub(crate) new_sources: Option<Sources>,
    pub(crate) enabled: bool,
    pub(crate) deleted: bool,
    /// The tenant's enabled rulesets, composed, as the change leaves them.
    pub(crate) composed: Sources,
    /// No ruleset enabled: no program.
    pub(crate) empty: bool,
    /// A deploy of the sources the ruleset's active version has.
    pub(crate) same_sources: bool,
    /// The names of the tenant's secrets.
    pub(crate) secrets: BTreeSet<String>,
    /// What the checker made of `composed`: the program's digest and rule
    /// names (none when no ruleset is enabled), set by [`check_plan`].
    pub(crate) program: Option<(String, BTreeSet<String>)>,
}

/// Checks the program `plan` makes, keeping it in the plan, or the
/// diagnostics for ruleset `name`.
pub(crate) fn check_plan(mut plan: Plan, name: &str) -> Result<Plan, ControlError> {
    if !plan.empty {
        plan.program = Some(build_program(&plan.composed, name, &plan.secrets)?);
    }
    Ok(plan)
}

/// What a change does to a ruleset's head.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// A new version with these sources (unless the program is unchanged).
    Deploy(&'a Sources),
    /// A new version with an old version's sources.
    Rollback(i64),
    Enable(bool),
    Delete,
}

/// A change of a ruleset as the audit log keeps it: what, and the detail
/// (the version, the program, and the work it cancelled with why).
fn change_audit(
    change: &Change<'_>,
    tenant: &str,
    name: &str,
    version: i64,
    digest: &Option<String>,
    cancelled: &[String],
) -> (&'static str, serde_json::Value) {
    let what = match change {
        Change::Deploy(_) => "ruleset.deployed",
        Change::Rollback(_) => "ruleset.rolled_back",
        Change::Enable(true) => "ruleset.enabled",
        Change::Enable(false) => "ruleset.disabled",
        Change::Delete => "ruleset.deleted",
    };
    let mut detail = serde_json::Map::new();
    detail.insert("version".into(), serde_json::json!(version));
    detail.insert("program".into(), serde_json::json!(digest));
    if let Change::Rollback(v) = change {
        detail.insert("from_version".into(), serde_json::json!(v));
    }
    if !cancelled.is_empty() {
        detail.insert("cancelled".into(), serde_json::json!(cancelled));
        detail.insert(
            "reason".into(),
            serde_json::json!(format!(
                "their rules are no longer deployed for tenant `{tenant}` (ruleset `{name}` {})",
                what.trim_start_matches("ruleset.").replace('_', " ")
            )),
        );
    }
    (what, serde_json::Value::Object(detail))
}

/// The control plane, for both databases.
impl<D: Driver> SqlStore<D> {
    /// Changes a ruleset and the tenant's program, in one
    /// transaction; a conflicting writer makes it try again.
    fn change_ruleset(
        &self,
        tenant: &str,
        name: &str,
        change: &crate::control::Change<'_>,
        who: &str,
        preview: bool,
    ) -> Result<crate::control::Deployed, crate::control::ControlError> {
        let mut tries = 0;
        loop {
            // Planned and checked with no transaction open; the
            // transaction confirms what was checked is still so.
            let attempt = self
                .block(self.plan_change(tenant, name, change))
                .and_then(|plan| crate::control::check_plan(plan, name))
                .and_then(|plan| {
                    self.block(self.apply_change(tenant, name, change, who, preview, plan))
                });
            // A conflict means another change of the tenant landed
            // in between: each try is lost to one that succeeded.
            match attempt {
                Err(crate::control::ControlError::Store(
                    steward::engine::store::StoreError::Conflict(_)
                    | steward::engine::store::StoreError::Duplicate(_),
                )) if tries < 20 => tries += 1,
                done => return done,
            }
        }
    }

    /// What a change would make of the tenant's rulesets, read
    /// outside any transaction (the checker then runs on it with
    /// no lock held).
    async fn plan_change(
        &self,
        tenant: &str,
        name: &str,
        change: &crate::control::Change<'_>,
    ) -> Result<crate::control::Plan, crate::control::ControlError> {
        use crate::control::{db, Change, ControlError, Plan};
        let mut c = self.pool.acquire().await.map_err(db)?;
        let generation: Option<i64> =
            Query::new("SELECT generation FROM steward_tenant_programs WHERE tenant = ?")
                .bind(tenant)
                .scalar_optional(&mut *c)
                .await
                .map_err(db)?;
        let head: Option<(i64, bool)> = Query::new(
            "SELECT version, enabled FROM steward_ruleset_heads WHERE tenant = ? AND name = ?",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *c)
        .await
        .map_err(db)?;
        let missing = || ControlError::NotFound(format!("no ruleset `{name}`"));
        let current: Option<String> =
            Query::new("SELECT digest FROM steward_tenant_programs WHERE tenant = ?")
                .bind(tenant)
                .scalar_optional(&mut *c)
                .await
                .map_err(db)?
                .flatten();
        // The ruleset's new head, and the sources of a new version.
        let (new_sources, enabled, deleted) = match change {
            Change::Deploy(s) => (Some((*s).clone()), head.is_none_or(|h| h.1), false),
            Change::Rollback(v) => {
                let Some(h) = head else { return Err(missing()) };
                let text = self.version_sources(&mut c, tenant, name, *v).await?;
                let Some(text) = text else {
                    return Err(ControlError::NotFound(format!(
                        "ruleset `{name}` has no version {v}"
                    )));
                };
                let s = crate::control::parse_sources(&text, &format!("`{name}` version {v}"))?;
                (Some(s), h.1, false)
            }
            Change::Enable(on) => {
                if head.is_none() {
                    return Err(missing());
                }
                (None, *on, false)
            }
            Change::Delete => {
                if head.is_none() {
                    return Err(missing());
                }
                (None, false, true)
            }
        };
        // The tenant's enabled rulesets as they will be.
        let mut rulesets = self.other_rulesets(&mut c, tenant, name).await?;
        let active: Option<String> = match head {
            Some((v, _)) => self.version_sources(&mut c, tenant, name, v).await?,
            None => None,
        };
        let active = match active {
            Some(text) => Some(crate::control::parse_sources(&text, &format!("`{name}`"))?),
            None => None,
        };
        let own: Option<Sources> = match (&new_sources, &active) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(a)) if !deleted => Some(a.clone()),
            _ => None,
        };
        if let (true, Some(s)) = (enabled, &own) {
            rulesets.push((name.to_string(), s.clone()));
            rulesets.sort_by(|a, b| a.0.cmp(&b.0));
        }
        // A deploy of the sources a disabled ruleset has makes no
        // version (an enabled one's is judged by the program).
        let same_sources = match (change, &active) {
            (Change::Deploy(s), Some(a)) => a == *s,
            _ => false,
        };
        let secrets = self.secret_names(&mut c, tenant).await?;
        Ok(Plan {
            generation,
            head,
            current,
            new_sources,
            enabled,
            deleted,
            empty: rulesets.is_empty(),
            composed: crate::control::compose(&rulesets),
            same_sources,
            secrets,
            program: None,
        })
    }

    /// Makes the change `plan` says, in one transaction, with the
    /// program the checker made of it: only if the tenant's
    /// rulesets and secrets are still those the plan read (else a
    /// conflict: it is planned and checked again).
    async fn apply_change(
        &self,
        tenant: &str,
        name: &str,
        change: &crate::control::Change<'_>,
        who: &str,
        preview: bool,
        plan: crate::control::Plan,
    ) -> Result<crate::control::Deployed, crate::control::ControlError> {
        use crate::control::{db, Change, ControlError, Deployed};
        let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
        // Serializes the changes of programs (and numbers them).
        let generation: i64 = Query::new(
            "UPDATE steward_seq SET value = value + 1 WHERE name = 'programs' RETURNING value",
        )
        .scalar(&mut *tx)
        .await
        .map_err(db)?;
        let seen: Option<i64> =
            Query::new("SELECT generation FROM steward_tenant_programs WHERE tenant = ?")
                .bind(tenant)
                .scalar_optional(&mut *tx)
                .await
                .map_err(db)?;
        let secrets = self.secret_names(&mut tx, tenant).await?;
        if seen != plan.generation || secrets != plan.secrets {
            tx.rollback().await.map_err(db)?;
            return Err(ControlError::Store(steward::engine::store::StoreError::Conflict(
                format!("tenant `{tenant}`'s rulesets or secrets changed while the change was checked").into(),
            )));
        }
        let digest = plan.program.as_ref().map(|p| p.0.clone());
        let now = crate::control::now_text();
        // A deploy that changes neither the program nor (for a
        // disabled ruleset) the sources makes no version.
        if let (Change::Deploy(_), Some((v, on))) = (change, plan.head) {
            let unchanged = if on {
                digest == plan.current
            } else {
                plan.same_sources
            };
            if unchanged {
                tx.rollback().await.map_err(db)?;
                return Ok(Deployed {
                    version: v,
                    new: false,
                    digest,
                    cancelled: Vec::new(),
                });
            }
        }
        let version = self
            .write_heads(&mut tx, tenant, name, &plan, digest.as_deref(), &now)
            .await?;
        // The program, and the tenant's pointer to it.
        if let Some(d) = &digest {
            Query::new(
                "INSERT INTO steward_programs (tenant, digest, sources, created_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(d)
            .bind(crate::control::sources_text(&plan.composed)?)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        Query::new(
            "INSERT INTO steward_tenant_programs (tenant, digest, generation, changed_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (tenant) DO UPDATE SET \
             digest = excluded.digest, generation = excluded.generation, changed_at = excluded.changed_at",
        )
        .bind(tenant)
        .bind(&digest)
        .bind(generation)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // Work of rules the program no longer has is cancelled
        // (the tenant `*`'s work is checked as it comes due).
        let cancelled = if tenant == crate::control::EVERY_TENANT {
            Vec::new()
        } else {
            let keep = plan
                .program
                .as_ref()
                .map(|p| p.1.clone())
                .unwrap_or_default();
            self.cancel_work(&mut tx, tenant, &keep).await?
        };
        let (what, detail) = change_audit(change, tenant, name, version, &digest, &cancelled);
        let done = Deployed {
            version,
            new: plan.new_sources.is_some(),
            digest,
            cancelled,
        };
        if preview {
            // What the change would do, undone.
            tx.rollback().await.map_err(db)?;
            return Ok(done);
        }
        self.audit_on(&mut tx, tenant, who, what, name, &detail)
            .await?;
        tx.commit().await.map_err(db)?;
        Ok(done)
    }

    /// The names of the tenant's secrets, which its rules' webhook
    /// headers may name.
    async fn secret_names(
        &self,
        c: &mut D::Conn,
        tenant: &str,
    ) -> Result<std::collections::BTreeSet<String>, crate::control::ControlError> {
        let names: Vec<String> = Query::new("SELECT name FROM steward_secrets WHERE tenant = ?")
            .bind(tenant)
            .scalars(&mut *c)
            .await
            .map_err(crate::control::db)?;
        Ok(names.into_iter().collect())
    }

    /// The ruleset's new version (if the change makes one) and its
    /// head (or none, deleted); the head's version.
    async fn write_heads(
        &self,
        tx: &mut D::Conn,
        tenant: &str,
        name: &str,
        plan: &crate::control::Plan,
        digest: Option<&str>,
        now: &str,
    ) -> Result<i64, crate::control::ControlError> {
        use crate::control::db;
        let mut version = plan.head.map_or(0, |h| h.0);
        if let Some(s) = &plan.new_sources {
            let last: Option<i64> = Query::new(
                "SELECT MAX(version) FROM steward_rulesets WHERE tenant = ? AND name = ?",
            )
            .bind(tenant)
            .bind(name)
            .scalar(&mut *tx)
            .await
            .map_err(db)?;
            version = last.unwrap_or(0).saturating_add(1);
            Query::new(
                "INSERT INTO steward_rulesets (tenant, name, version, digest, sources, deployed_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(tenant)
            .bind(name)
            .bind(version)
            .bind(digest.unwrap_or(""))
            .bind(crate::control::sources_text(s)?)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        if plan.deleted {
            Query::new("DELETE FROM steward_ruleset_heads WHERE tenant = ? AND name = ?")
                .bind(tenant)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        } else {
            Query::new(
                "INSERT INTO steward_ruleset_heads (tenant, name, version, enabled, updated_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO UPDATE SET \
                 version = excluded.version, enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(name)
            .bind(version)
            .bind(plan.enabled)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        Ok(version)
    }

    /// Deletes the tenant's timers and approvals of rules not in
    /// `keep`; what was cancelled, as the audit entry lists it.
    async fn cancel_work(
        &self,
        tx: &mut D::Conn,
        tenant: &str,
        keep: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<String>, crate::control::ControlError> {
        use crate::control::db;
        let mut cancelled = Vec::new();
        let timers: Vec<(String, String, i64)> =
            Query::new("SELECT rule, key, pos FROM steward_timers WHERE tenant = ?")
                .bind(tenant)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        for (rule, key, pos) in timers {
            if keep.contains(&rule) {
                continue;
            }
            for table in ["steward_timers", "steward_timer_cancels"] {
                Query::new(format!(
                    "DELETE FROM {table} WHERE tenant = ? AND rule = ? AND key = ? AND pos = ?"
                ))
                .bind(tenant)
                .bind(&rule)
                .bind(&key)
                .bind(pos)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            }
            cancelled.push(format!("timer {key}~{rule}~{pos}"));
        }
        let approvals: Vec<(String, String)> =
            Query::new("SELECT id, rule FROM steward_approvals WHERE tenant = ?")
                .bind(tenant)
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        for (id, rule) in approvals {
            if keep.contains(&rule) {
                continue;
            }
            Query::new("DELETE FROM steward_approvals WHERE tenant = ? AND id = ?")
                .bind(tenant)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            cancelled.push(format!("approval {id}"));
        }
        Ok(cancelled)
    }

    /// The programs of every tenant, or of `only`.
    async fn program_rows(
        &self,
        only: Option<&str>,
    ) -> Result<Vec<crate::control::ProgramRow>, crate::control::ControlError> {
        use crate::control::db;
        let rows: Vec<(String, Option<String>, Option<String>)> = Query::new(
            "SELECT t.tenant, t.digest, p.sources FROM steward_tenant_programs t \
             LEFT JOIN steward_programs p ON p.tenant = t.tenant AND p.digest = t.digest \
             WHERE (? OR t.tenant = ?) ORDER BY t.tenant",
        )
        .bind(only.is_none())
        .bind(only.unwrap_or(""))
        .fetch_all(&mut Pooled(&self.pool))
        .await
        .map_err(db)?;
        let mut out = Vec::new();
        for (tenant, digest, text) in rows {
            let program = match (digest, text) {
                (Some(d), Some(t)) => {
                    let s = crate::control::parse_sources(
                        &t,
                        &format!("the program of tenant `{tenant}`"),
                    )?;
                    Some((d, s))
                }
                _ => None,
            };
            out.push(crate::control::ProgramRow { tenant, program });
        }
        Ok(out)
    }

    /// The tenant's enabled rulesets other than `name`, by name, with
    /// their active versions' sources.
    async fn other_rulesets(
        &self,
        c: &mut D::Conn,
        tenant: &str,
        name: &str,
    ) -> Result<Vec<(String, Sources)>, crate::control::ControlError> {
        use crate::control::db;
        let rows: Vec<(String, String)> = Query::new(
            "SELECT h.name, r.sources FROM steward_ruleset_heads h \
             JOIN steward_rulesets r ON r.tenant = h.tenant AND r.name = h.name AND r.version = h.version \
             WHERE h.tenant = ? AND h.enabled = ? AND h.name <> ? ORDER BY h.name",
        )
        .bind(tenant)
        .bind(true)
        .bind(name)
        .fetch_all(&mut *c)
        .await
        .map_err(db)?;
        let mut out = Vec::new();
        for (other, text) in rows {
            let s = crate::control::parse_sources(&text, &format!("ruleset `{other}`"))?;
            out.push((other, s));
        }
        Ok(out)
    }

    /// The stored sources of version `version` of a ruleset.
    async fn version_sources(
        &self,
        tx: &mut D::Conn,
        tenant: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<String>, crate::control::ControlError> {
        Query::new(
            "SELECT sources FROM steward_rulesets WHERE tenant = ? AND name = ? AND version = ?",
        )
        .bind(tenant)
        .bind(name)
        .bind(version)
        .scalar_optional(&mut *tx)
        .await
        .map_err(crate::control::db)
    }

    pub(crate) async fn audit_on(
        &self,
        tx: &mut D::Conn,
        tenant: &str,
        who: &str,
        what: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> Result<(), crate::control::ControlError> {
        use crate::control::db;
        Query::new(
            "INSERT INTO steward_audit (tenant, seq, at, who, what, subject, detail) \
             SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ? FROM steward_audit WHERE tenant = ?",
        )
        .bind(tenant)
        .bind(crate::control::now_text())
        .bind(who)
        .bind(what)
        .bind(subject)
        .bind(detail.to_string())
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// A version as `steward_rulesets` keeps it: `(version, digest,
    /// sources, deployed_at)`.
    fn version_of(
        (version, digest, text, deployed_at): (i64, String, String, String),
        name: &str,
    ) -> Result<crate::control::RulesetVersion, crate::control::ControlError> {
        Ok(crate::control::RulesetVersion {
            version,
            digest,
            sources: crate::control::parse_sources(&text, &format!("`{name}` version {version}"))?,
            deployed_at,
        })
    }
}

impl<D: Driver> crate::control::Control for SqlStore<D> {
    fn program_generation(&self) -> Result<i64, crate::control::ControlError> {
        // On the open batch's transaction, if any: a batch checks
        // after its claims that it runs the programs deployed.
        self.block(async {
            let mut c = self.conn().await.map_err(crate::control::db)?;
            Query::new("SELECT value FROM steward_seq WHERE name = 'programs'")
                .scalar_optional(c.get())
                .await
                .map(|v| v.unwrap_or(0))
                .map_err(crate::control::db)
        })
    }

    fn programs(&self) -> Result<Vec<crate::control::ProgramRow>, crate::control::ControlError> {
        self.block(self.program_rows(None))
    }

    fn program_of(
        &self,
        tenant: &str,
    ) -> Result<Option<crate::control::ProgramRow>, crate::control::ControlError> {
        Ok(self.block(self.program_rows(Some(tenant)))?.pop())
    }

    fn deploy_ruleset(
        &self,
        tenant: &str,
        name: &str,
        sources: &Sources,
        who: &str,
    ) -> Result<crate::control::Deployed, crate::control::ControlError> {
        self.change_ruleset(
            tenant,
            name,
            &crate::control::Change::Deploy(sources),
            who,
            false,
        )
    }

    fn rollback_ruleset(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
        who: &str,
    ) -> Result<crate::control::Deployed, crate::control::ControlError> {
        self.change_ruleset(
            tenant,
            name,
            &crate::control::Change::Rollback(version),
            who,
            false,
        )
    }

    fn enable_ruleset(
        &self,
        tenant: &str,
        name: &str,
        enabled: bool,
        who: &str,
    ) -> Result<crate::control::Deployed, crate::control::ControlError> {
        self.change_ruleset(
            tenant,
            name,
            &crate::control::Change::Enable(enabled),
            who,
            false,
        )
    }

    fn delete_ruleset(
        &self,
        tenant: &str,
        name: &str,
        who: &str,
    ) -> Result<crate::control::Deployed, crate::control::ControlError> {
        self.change_ruleset(tenant, name, &crate::control::Change::Delete, who, false)
    }

    fn preview_change(
        &self,
        tenant: &str,
        name: &str,
        change: &crate::control::Change<'_>,
    ) -> Result<crate::control::Deployed, crate::control::ControlError> {
        self.change_ruleset(tenant, name, change, "preview", true)
    }

    fn program_with(
        &self,
        tenant: &str,
        name: &str,
        sources: &Sources,
    ) -> Result<Sources, crate::control::ControlError> {
        self.block(async {
            let mut c = self.pool.acquire().await.map_err(crate::control::db)?;
            let mut rulesets = self.other_rulesets(&mut c, tenant, name).await?;
            rulesets.push((name.to_string(), sources.clone()));
            rulesets.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(crate::control::compose(&rulesets))
        })
    }

    fn rulesets(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<crate::control::RulesetHead>, crate::control::ControlError> {
        self.block(async {
            Query::new(
                "SELECT name, version, enabled, updated_at FROM steward_ruleset_heads \
                 WHERE tenant = ? AND name > ? ORDER BY name LIMIT ?",
            )
            .bind(tenant)
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)
        })
    }

    fn ruleset(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<crate::control::RulesetHead>, crate::control::ControlError> {
        self.block(async {
            Query::new(
                "SELECT name, version, enabled, updated_at FROM steward_ruleset_heads \
                 WHERE tenant = ? AND name = ?",
            )
            .bind(tenant)
            .bind(name)
            .fetch_optional(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)
        })
    }

    fn ruleset_versions(
        &self,
        tenant: &str,
        name: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<crate::control::RulesetVersion>, crate::control::ControlError> {
        self.block(async {
            let rows: Vec<(i64, String, String, String)> = Query::new(
                "SELECT version, digest, sources, deployed_at FROM steward_rulesets \
                 WHERE tenant = ? AND name = ? AND version < ? ORDER BY version DESC LIMIT ?",
            )
            .bind(tenant)
            .bind(name)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)?;
            rows.into_iter()
                .map(|r| Self::version_of(r, name))
                .collect()
        })
    }

    fn ruleset_version(
        &self,
        tenant: &str,
        name: &str,
        version: i64,
    ) -> Result<Option<crate::control::RulesetVersion>, crate::control::ControlError> {
        self.block(async {
            let row: Option<(i64, String, String, String)> = Query::new(
                "SELECT version, digest, sources, deployed_at FROM steward_rulesets \
                 WHERE tenant = ? AND name = ? AND version = ?",
            )
            .bind(tenant)
            .bind(name)
            .bind(version)
            .fetch_optional(&mut Pooled(&self.pool))
            .await
            .map_err(crate::control::db)?;
            row.map(|r| Self::version_of(r, name)).transpose()
        })
    }

    fn audit(
        &self,
        tenant: &str,
        who: &str,
        what: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<(), crate::control::ControlError> {
        use crate::control::db;
        let mut tries = 0;
        loop {
            let done = self.block(async {
                let mut tx = self.pool.begin_with(D::BEGIN).await.map_err(db)?;
                self.audit_on(&mut tx, tenant, who, what, subject, &detail)
                    .await?;
                tx.commit().await.map_err(db)
            });
            match done {
                Err(crate::control::ControlError::Store(
                    steward::engine::store::StoreError::Conflict(_)
                    | steward::engine::store::StoreError::Duplicate(_),
                )) if tries < 5 => tries += 1,
                done => return done,
            }
        }
    }

    fn audit_log(
        &self,
        tenant: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<crate::control::AuditEntry>, crate::control::ControlError> {
        use crate::control::db;
        self.block(async {
            let rows: Vec<(i64, String, String, String, String, String)> = Query::new(
                "SELECT seq, at, who, what, subject, detail FROM steward_audit \
                 WHERE tenant = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
            )
            .bind(tenant)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&mut Pooled(&self.pool))
            .await
            .map_err(db)?;
            Ok(rows
                .into_iter()
                .map(
                    |(seq, at, who, what, subject, detail)| crate::control::AuditEntry {
                        seq,
                        at,
                        who,
                        what,
                        subject,
                        detail: serde_json::from_str(&detail)
                            .unwrap_or(serde_json::Value::String(detail)),
                    },
                )
                .collect())
        })
    }
}
