//! Dry runs and backtests: rules run on a virtual clock, nothing stored.

use super::*;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRun {
    /// Rule files to run; the tenant's active program if absent.
    pub files: Option<BTreeMap<String, String>>,
    pub events: Vec<Envelope>,
    /// Run the virtual clock on to this time (RFC 3339), firing timers.
    pub until: Option<String>,
    /// `approve` or `reject` every approval at once; else they stay pending.
    pub approvals: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DryRunResult {
    /// The actions that would run, in order.
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<serde_json::Value>,
    /// Events that would be rejected, with the reason.
    pub rejected: Vec<Rejected>,
}

#[derive(Serialize, ToSchema)]
pub struct Rejected {
    pub id: String,
    pub reason: String,
}

/// The tenant's program as it runs: its own, else the tenant `*`'s.
pub(crate) fn active_program(
    db: &dyn crate::Backend,
    programs: &crate::Programs,
    tenant: &str,
) -> Result<Arc<Ruleset>, Problem> {
    let row = match db.program_of(tenant).map_err(Problem::from)? {
        Some(row) => Some(row),
        None => db.program_of(EVERY_TENANT).map_err(Problem::from)?,
    };
    match row.and_then(|r| r.program) {
        Some((digest, sources)) => programs.get(&digest, || Some(sources)).ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "program_broken",
                "the tenant's stored program does not build",
            )
        }),
        None => steward::engine::compile(&steward::check::analyze(&[], &steward::check::NoFiles))
            .map(Arc::new)
            .map_err(|_| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the standard library does not check",
                )
            }),
    }
}

pub(crate) fn program_of(files: &BTreeMap<String, String>) -> Result<Arc<Ruleset>, Problem> {
    let (sources, diagnostics, ok) = check_files(files, None)?;
    if !ok {
        return Err(
            Problem::unprocessable("rules_invalid", "the rules do not check")
                .with("diagnostics", diagnostics),
        );
    }
    sources.build().rules.map_err(|e| {
        Problem::unprocessable("rules_invalid", format!("the rules do not compile: {e}"))
    })
}

/// Runs events through `rules` on a virtual clock and a store in memory
/// (`steward::boundary::simulate`), its rejections as the API shows them.
pub(crate) fn simulate(
    rules: Arc<Ruleset>,
    lines: &[(String, String)],
    until: Option<chrono::DateTime<chrono::Utc>>,
    decide: AutoDecide,
) -> Result<(Collect, Vec<Rejected>), Problem> {
    let (sink, rejected) = steward::boundary::simulate(rules, lines, until, decide)
        .map_err(|e| Problem::unprocessable("invalid_field", format!("`until`: {e}")))?;
    let rejected = rejected
        .into_iter()
        .map(|r| Rejected {
            id: r.id,
            reason: r.reason,
        })
        .collect();
    Ok((sink, rejected))
}

pub(crate) fn time_arg(
    what: &str,
    text: &Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Problem> {
    text.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    Problem::unprocessable("invalid_field", format!("`{what}` `{t}`: {e}"))
                })
        })
        .transpose()
}

#[utoipa::path(post, path = "/v1/dry-run", request_body = DryRun, security(("tenant" = ["read"])),
    responses(
        (status = 200, description = "What would run; nothing is stored or sent", body = DryRunResult),
        answers::BadRequest,
        answers::Unauthorized,
        answers::TooLarge,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn dry_run(
    State(app): State<App>,
    who: Tenant,
    Body(body, _): Body<DryRun>,
) -> Result<Json<DryRunResult>, Problem> {
    who.need("read")?;
    if body.events.len() > MAX_EVENTS {
        return Err(Problem::too_large(format!(
            "{} events in one request; at most {MAX_EVENTS}",
            body.events.len()
        )));
    }
    let until = time_arg("until", &body.until)?;
    let decide = match body.approvals.as_deref() {
        None | Some("none") => AutoDecide::None,
        Some("approve") => AutoDecide::Approve,
        Some("reject") => AutoDecide::Reject,
        Some(other) => {
            return Err(Problem::unprocessable(
                "invalid_field",
                format!("`approvals` is `{other}`; it is `approve`, `reject` or `none`"),
            ))
        }
    };
    let mut lines = Vec::new();
    for mut e in body.events {
        e.tenant = Some(who.tenant.clone());
        let line = serde_json::to_string(&e).unwrap_or_default();
        lines.push((e.id, line));
    }
    let tenant = who.tenant.clone();
    let files = body.files;
    let programs = app.programs.clone();
    app.db(move |db| {
        let rules = match &files {
            Some(files) => program_of(files)?,
            None => active_program(db, &programs, &tenant)?,
        };
        let (sink, rejected) = simulate(rules, &lines, until, decide)?;
        Ok(Json(DryRunResult {
            actions: sink
                .actions
                .iter()
                .map(steward::boundary::action_json)
                .collect(),
            errors: sink
                .errors
                .iter()
                .map(steward::boundary::rule_error_json)
                .collect(),
            rejected,
        }))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Backtest {
    /// The candidate files of this ruleset.
    pub files: BTreeMap<String, String>,
    /// Events that occurred at or after this time (RFC 3339).
    pub from: Option<String>,
    /// ... and before this one.
    pub to: Option<String>,
}

/// An action, as backtests compare them (keys differ between versions).
#[derive(Serialize, ToSchema, Clone)]
pub struct ActionSummary {
    pub rule: String,
    pub event: String,
    pub action: String,
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct BacktestResult {
    /// Stored events replayed.
    pub events: usize,
    /// What the candidate would do that the active version does not.
    pub added: Vec<ActionSummary>,
    /// What the active version does that the candidate would not.
    pub removed: Vec<ActionSummary>,
    pub unchanged: usize,
}

/// The most stored events one backtest replays.
pub const MAX_BACKTEST_EVENTS: usize = 20_000;

#[utoipa::path(post, path = "/v1/rulesets/{name}/backtest", request_body = Backtest, security(("tenant" = ["read"])),
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The difference in actions between the candidate and the active version, over the tenant's stored events", body = BacktestResult),
        answers::BadRequest,
        answers::Unauthorized,
        answers::NotFound,
        answers::TooLarge,
        answers::Unprocessable,
        crate::problem::answers::Unavailable,
    ))]
pub(crate) async fn backtest(
    State(app): State<App>,
    who: Tenant,
    Segments(name): Segments<String>,
    Body(body, _): Body<Backtest>,
) -> Result<Json<BacktestResult>, Problem> {
    who.need("read")?;
    ruleset_name(&name)?;
    let from = time_arg("from", &body.from)?;
    let to = time_arg("to", &body.to)?;
    let (candidate, _, _) = checked(body.files, None).await?;
    let tenant = who.tenant.clone();
    let programs = app.programs.clone();
    app.db(move |db| {
        backtest_sources(db, &programs, &tenant, &name, &candidate, from, to).map(Json)
    })
    .await
}

/// Replays the tenant's stored events that occurred in `[from, to)`
/// through its active program and through the candidate (its other enabled
/// rulesets with `candidate` as ruleset `name`), and compares the actions.
pub(crate) fn backtest_sources(
    db: &dyn crate::Backend,
    programs: &crate::Programs,
    tenant: &str,
    name: &str,
    candidate: &Sources,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<BacktestResult, Problem> {
    {
        let active = active_program(db, programs, tenant)?;
        // The candidate program: the tenant's enabled rulesets, this one
        // replaced (or added).
        let composed = db
            .program_with(tenant, name, candidate)
            .map_err(Problem::from)?;
        let candidate = match composed.build().rules {
            Ok(rules) => rules,
            Err(steward::boundary::BuildError::Invalid(_)) => {
                return Err(Problem::unprocessable(
                    "rules_invalid",
                    "the candidate does not check with the tenant's other rulesets",
                )
                .with(
                    "diagnostics",
                    serde_json::to_value(steward_db::control::diagnose(&composed, name, None))
                        .unwrap_or_default(),
                ))
            }
        };
        // The stored events in the range, in the order they arrived.
        let mut lines = Vec::new();
        let mut page = Page {
            after: None,
            limit: 500,
        };
        loop {
            let rows = db
                .events(tenant, None, None, &page)
                .map_err(Problem::from)?;
            let Some(last) = rows.last() else { break };
            page.after = Some(last.seq.to_string());
            for e in rows {
                let Ok(at) = chrono::DateTime::parse_from_rfc3339(&e.occurred_at) else {
                    continue;
                };
                let at = at.with_timezone(&chrono::Utc);
                if from.is_some_and(|f| at < f) || to.is_some_and(|t| at >= t) {
                    continue;
                }
                let envelope = serde_json::json!({
                    "id": e.id, "tenant": tenant, "type": e.event_type,
                    "occurred_at": e.occurred_at, "key": e.key, "payload": e.payload,
                });
                lines.push((e.id, envelope.to_string()));
                if lines.len() > MAX_BACKTEST_EVENTS {
                    return Err(Problem::too_large(format!(
                        "more than {MAX_BACKTEST_EVENTS} stored events in the range; narrow `from` and `to`"
                    )));
                }
            }
        }
        let (old, _) = simulate(active, &lines, to, AutoDecide::None)?;
        let (new, _) = simulate(candidate, &lines, to, AutoDecide::None)?;
        let diff = steward::boundary::diff_actions(old.actions, new.actions);
        let summary = |a: steward::engine::Action| ActionSummary {
            rule: a.rule.to_string(),
            event: a.event.to_string(),
            action: a.action.to_string(),
            args: serde_json::Value::Object(a.args),
        };
        Ok(BacktestResult {
            events: lines.len(),
            added: diff.added.into_iter().map(summary).collect(),
            removed: diff.removed.into_iter().map(summary).collect(),
            unchanged: diff.unchanged,
        })
    }
}
