//! Rules: the tenant's rulesets, a ruleset's files highlighted, its
//! versions and the diff between two, Enable, Disable and Roll back (each
//! confirmed with what it would cancel, found by the same change rolled
//! back), and the editor: Validate, Backtest and Deploy.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;
use steward::boundary::Sources;
use steward::diag::JsonDiagnostic;
use steward_db::control::{Change, ControlError, RulesetHead, RulesetVersion, EVERY_TENANT};

use super::session::{Fields, Posted, Viewer};
use super::ui::{self, Fail};
use crate::problem::Problem;
use crate::routes::{backtest_sources, check_files, time_arg, BacktestResult};
use crate::App;

fn name_ok(name: &str) -> Result<(), Fail> {
    if crate::auth::valid_name(name) {
        Ok(())
    } else {
        Err(Fail::Page(
            StatusCode::NOT_FOUND,
            format!("There is no ruleset `{name}`."),
        ))
    }
}

pub async fn list(State(app): State<App>, viewer: Viewer) -> Result<Response, Fail> {
    let tenant = viewer.tenant.clone();
    let (heads, shared) = app
        .db(move |db| {
            let heads = db.rulesets(&tenant, None, 200).map_err(Problem::from)?;
            // Without rulesets of its own, a tenant runs the tenant `*`'s.
            let shared = heads.is_empty()
                && tenant != EVERY_TENANT
                && db
                    .program_of(EVERY_TENANT)
                    .map_err(Problem::from)?
                    .is_some_and(|p| p.program.is_some());
            Ok((heads, shared))
        })
        .await?;
    let body = html! {
        p.lede { "Each ruleset is a set of rule files deployed together; the tenant runs every enabled one." }
        @if viewer.can("rulesets:deploy") {
            div.actions { a.button href="/new-ruleset" { "New ruleset" } }
        }
        @if shared {
            (ui::notice("", html! { "This tenant has no rulesets of its own: it runs the rules every such tenant runs, tenant " code { (EVERY_TENANT) } "'s (what " code { "steward run --rules" } " and " code { "steward serve --rules" } " deploy)." @if viewer.admin { " " a href="/tenant" { "Look at tenant " (EVERY_TENANT) } "." } }))
        }
        @if heads.is_empty() {
            (ui::empty(html! { "No rulesets yet. Write one with " a href="/new-ruleset" { "New ruleset" } ", or deploy a folder with " code { "steward deploy" } "." }))
        } @else {
            table {
                thead { tr { th scope="col" { "Ruleset" } th.num scope="col" { "Active version" } th scope="col" { "State" } th scope="col" { "Changed" } } }
                tbody {
                    @for h in &heads {
                        tr {
                            td { a href=(format!("/rules/{}", ui::seg(&h.name))) { (h.name) } }
                            td.num { (h.version) }
                            td { (ui::badge(if h.enabled { "enabled" } else { "disabled" })) }
                            td { (ui::time(&h.updated_at)) }
                        }
                    }
                }
            }
        }
    };
    Ok(ui::page(&viewer, "Rules", "Rules", body))
}

/// A ruleset's head and versions, or a 404 page.
async fn head_and_versions(
    app: &App,
    tenant: &str,
    name: &str,
) -> Result<(RulesetHead, Vec<RulesetVersion>), Fail> {
    name_ok(name)?;
    let (t, n) = (tenant.to_string(), name.to_string());
    let found = app
        .db(move |db| {
            let Some(head) = db.ruleset(&t, &n).map_err(Problem::from)? else {
                return Ok(None);
            };
            let versions = db
                .ruleset_versions(&t, &n, None, 100)
                .map_err(Problem::from)?;
            Ok(Some((head, versions)))
        })
        .await?;
    found.ok_or_else(|| {
        Fail::Page(
            StatusCode::NOT_FOUND,
            format!("There is no ruleset `{name}`."),
        )
    })
}

/// A version's files by name: its rule files, and the scripts they read
/// under the path they are read by (as the API's `files`).
fn files_of(sources: &Sources) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = sources.files.iter().cloned().collect();
    for (file, path, text) in &sources.scripts {
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
        let name = if dir.is_empty() {
            path.clone()
        } else {
            format!("{dir}/{path}")
        };
        files.insert(name, text.clone());
    }
    files
}

pub async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, Fail> {
    let (head, versions) = head_and_versions(&app, &viewer.tenant, &name).await?;
    let active = versions.iter().find(|v| v.version == head.version);
    let base = format!("/rules/{}", ui::seg(&name));
    let body = html! {
        p.lede {
            "Version " strong { (head.version) } " · " (ui::badge(if head.enabled { "enabled" } else { "disabled" }))
            " · changed " (ui::time(&head.updated_at))
        }
        @if viewer.can("rulesets:deploy") {
            div.actions {
                a.button href=(format!("{base}/edit")) { "Edit" }
                @if head.enabled {
                    a.button.secondary href=(format!("{base}/confirm/disable")) { "Disable" }
                } @else {
                    a.button.secondary href=(format!("{base}/confirm/enable")) { "Enable" }
                }
            }
        } @else {
            div.actions { a.button.secondary href=(format!("{base}/edit")) { "Open in the editor (read only)" } }
        }
        @if let Some(v) = active {
            h2 { "Files" }
            (highlighted(&v.sources, &[]))
        }
        h2 { "Versions" }
        (versions_table(&viewer, &name, &head, &versions))
    };
    Ok(ui::page(&viewer, "Rules", &format!("Ruleset {name}"), body))
}

fn versions_table(
    viewer: &Viewer,
    name: &str,
    head: &RulesetHead,
    versions: &[RulesetVersion],
) -> Markup {
    let base = format!("/rules/{}", ui::seg(name));
    html! {
        table {
            thead { tr { th scope="col" { "Version" } th scope="col" { "Deployed" } th scope="col" { "Program" } th scope="col" { span.skip { "Actions" } } } }
            tbody {
                @for v in versions {
                    tr {
                        td.num { a href=(format!("{base}/versions/{}", v.version)) { (v.version) } @if v.version == head.version { " " (ui::badge("active")) } }
                        td { (ui::time(&v.deployed_at)) }
                        td { code { (v.digest.get(..12).unwrap_or(&v.digest)) } }
                        td {
                            @if v.version != head.version {
                                a href=(format!("{base}/diff?from={}&to={}", v.version, head.version)) { "Diff with active" }
                                @if viewer.can("rulesets:deploy") {
                                    " · " a href=(format!("{base}/confirm/rollback?version={}", v.version)) { "Roll back to " (v.version) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if versions.len() > 1 {
            form.filters method="get" action=(format!("{base}/diff")) {
                div { label for="diff-from" { "From version" } select #diff-from name="from" { @for v in versions { option value=(v.version) { (v.version) } } } }
                div { label for="diff-to" { "To version" } select #diff-to name="to" { @for v in versions { option value=(v.version) selected[v.version == head.version] { (v.version) } } } }
                button.secondary type="submit" { "Show the diff" }
            }
        }
    }
}

pub async fn version(
    State(app): State<App>,
    viewer: Viewer,
    Path((name, version)): Path<(String, i64)>,
) -> Result<Response, Fail> {
    let (head, versions) = head_and_versions(&app, &viewer.tenant, &name).await?;
    let v = versions
        .iter()
        .find(|v| v.version == version)
        .ok_or_else(|| {
            Fail::Page(
                StatusCode::NOT_FOUND,
                format!("Ruleset `{name}` has no version {version}."),
            )
        })?;
    let body = html! {
        p.lede { "Deployed " (ui::time(&v.deployed_at)) @if v.version == head.version { " · " (ui::badge("active")) } }
        p { a href=(format!("/rules/{}", ui::seg(&name))) { "Back to ruleset " (name) } }
        h2 { "Files" }
        (highlighted(&v.sources, &[]))
    };
    Ok(ui::page(
        &viewer,
        "Rules",
        &format!("Ruleset {name}, version {version}"),
        body,
    ))
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

pub async fn diff(
    State(app): State<App>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, Fail> {
    let (head, versions) = head_and_versions(&app, &viewer.tenant, &name).await?;
    let to = q.to.unwrap_or(head.version);
    let from = q.from.unwrap_or(to.saturating_sub(1));
    let find = |n: i64| {
        versions.iter().find(|v| v.version == n).ok_or_else(|| {
            Fail::Page(
                StatusCode::NOT_FOUND,
                format!("Ruleset `{name}` has no version {n}."),
            )
        })
    };
    let (a, b) = (files_of(&find(from)?.sources), files_of(&find(to)?.sources));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    let empty = String::new();
    let body = html! {
        p { a href=(format!("/rules/{}", ui::seg(&name))) { "Back to ruleset " (name) } }
        @for file in names {
            @let (old, new) = (a.get(file).unwrap_or(&empty), b.get(file).unwrap_or(&empty));
            h2 { code { (file) } }
            @if old == new {
                p.muted { "Unchanged." }
            } @else {
                (unified(old, new))
            }
        }
    };
    Ok(ui::page(
        &viewer,
        "Rules",
        &format!("Ruleset {name}: version {from} to {to}"),
        body,
    ))
}

/// A unified diff of two texts, lines added and removed marked (by a sign
/// as well as a colour).
fn unified(old: &str, new: &str) -> Markup {
    let diff = similar::TextDiff::from_lines(old, new);
    html! {
        div.code.diff {
            @for group in diff.grouped_ops(3) {
                span.line.hunk { "@@" }
                @for op in group {
                    @for change in diff.iter_changes(&op) {
                        @let (class, sign) = match change.tag() {
                            similar::ChangeTag::Delete => ("line del", "-"),
                            similar::ChangeTag::Insert => ("line add", "+"),
                            similar::ChangeTag::Equal => ("line", " "),
                        };
                        span class=(class) { span.ln { (sign) } (change.value().trim_end_matches('\n')) }
                    }
                }
            }
        }
    }
}

/// Each rule file of `sources`, its text coloured by what the checker
/// found each word to be, with `diagnostics` under their lines.
fn highlighted(sources: &Sources, diagnostics: &[JsonDiagnostic]) -> Markup {
    let built = sources.build();
    let analysis = &built.analysis;
    // The ruleset's own files (the analysis holds the standard library's
    // too), each line's id naming its file.
    let own = |name: &str| sources.files.iter().any(|(n, _)| n == name);
    html! {
        @for (i, parsed) in analysis.files.iter().filter(|f| own(analysis.sources.name(f.id))).enumerate() {
            @let name = analysis.sources.name(parsed.id);
            @let text = analysis.sources.text(parsed.id);
            h3 { code { (name) } }
            (annotated(&format!("f{i}"), text, &spans(analysis, parsed), diagnostics.iter().filter(|d| d.file == name).collect()))
        }
        @for (i, (file, path, text)) in sources.scripts.iter().enumerate() {
            h3 { code { (path) } span.muted { " (a Rhai script of " (file) ")" } }
            (annotated(&format!("s{i}"), text, &[], Vec::new()))
        }
    }
}

/// The classes of a file's words: keywords and comments from the parser,
/// every name by what it refers to (the language server's semantic tokens).
fn spans(
    analysis: &steward::check::Analysis,
    parsed: &steward::check::ParsedFile,
) -> Vec<(usize, usize, &'static str)> {
    use steward::check::DefKind;
    let mut out: Vec<(usize, usize, &'static str)> = Vec::new();
    out.extend(
        parsed
            .tree
            .keywords
            .iter()
            .map(|s| (s.range().start, s.range().end, "tok-keyword")),
    );
    out.extend(
        parsed
            .tree
            .comments
            .iter()
            .map(|s| (s.range().start, s.range().end, "tok-comment")),
    );
    for r in analysis
        .references
        .iter()
        .filter(|r| r.at.file == parsed.id)
    {
        let class = match r.kind {
            DefKind::Type | DefKind::Message => "tok-type",
            DefKind::Event => "tok-event",
            DefKind::Field => "tok-property",
            DefKind::Action => "tok-action",
            DefKind::Function => "tok-function",
            DefKind::Param | DefKind::Let => "tok-variable",
        };
        out.push((r.at.span.range().start, r.at.span.range().end, class));
    }
    out.sort_by_key(|(start, end, _)| (*start, std::cmp::Reverse(*end)));
    out
}

/// A text with line numbers, `spans` coloured, and diagnostics after the
/// line they start on.
fn annotated(
    file: &str,
    text: &str,
    spans: &[(usize, usize, &'static str)],
    diagnostics: Vec<&JsonDiagnostic>,
) -> Markup {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut at = 0usize;
    let push_text = |from: usize,
                     to: usize,
                     class: Option<&str>,
                     current: &mut String,
                     lines: &mut Vec<String>| {
        let Some(piece) = text.get(from..to) else {
            return;
        };
        for (i, part) in piece.split('\n').enumerate() {
            if i > 0 {
                lines.push(std::mem::take(current));
            }
            if part.is_empty() {
                continue;
            }
            match class {
                Some(c) => current.push_str(&format!(
                    "<span class=\"{c}\">{}</span>",
                    crate::page::escape(part)
                )),
                None => current.push_str(&crate::page::escape(part)),
            }
        }
    };
    for &(start, end, class) in spans {
        if start < at || end > text.len() || start >= end {
            continue;
        }
        push_text(at, start, None, &mut current, &mut lines);
        push_text(start, end, Some(class), &mut current, &mut lines);
        at = end;
    }
    push_text(at, text.len(), None, &mut current, &mut lines);
    lines.push(current);
    if text.ends_with('\n') {
        lines.pop();
    }
    let mut by_line: BTreeMap<u32, Vec<&JsonDiagnostic>> = BTreeMap::new();
    for d in diagnostics {
        by_line.entry(d.line).or_default().push(d);
    }
    html! {
        div.code {
            @for (i, line) in lines.iter().enumerate() {
                @let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
                span.line id=(format!("{file}-L{n}")) { span.ln { (n) } (PreEscaped(line)) }
                @for d in by_line.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
                    (diagnostic(d))
                }
            }
        }
    }
}

fn diagnostic(d: &JsonDiagnostic) -> Markup {
    let severity = match d.severity {
        steward::diag::Severity::Error => "error",
        _ => "warning",
    };
    html! {
        span class=(format!("diag {severity}")) role="note" {
            strong { (severity) "[" (d.code) "]" } ": " (d.message)
            " " span.muted { "(line " (d.line) ", column " (d.column) ")" }
            @if let Some(label) = &d.label { br; (label) }
            @if let Some(help) = &d.help { br; "help: " (help) }
        }
    }
}

// ---------------------------------------------------------------------------
// Enable, Disable, Roll back: confirmed with what they would cancel.

#[derive(Deserialize)]
pub struct ConfirmQuery {
    version: Option<i64>,
}

fn proposal<'a>(what: &str, version: Option<i64>) -> Result<(Change<'a>, String), Fail> {
    match (what, version) {
        ("enable", _) => Ok((Change::Enable(true), "Enable".into())),
        ("disable", _) => Ok((Change::Enable(false), "Disable".into())),
        ("rollback", Some(v)) => Ok((Change::Rollback(v), format!("Roll back to version {v}"))),
        ("rollback", None) => Err(Fail::Page(
            StatusCode::BAD_REQUEST,
            "Say which version to roll back to.".into(),
        )),
        _ => Err(Fail::Page(
            StatusCode::NOT_FOUND,
            format!("There is nothing called `{what}` to do to a ruleset."),
        )),
    }
}

pub async fn confirm_page(
    State(app): State<App>,
    viewer: Viewer,
    Path((name, what)): Path<(String, String)>,
    Query(q): Query<ConfirmQuery>,
) -> Result<Response, Fail> {
    viewer.need("rulesets:deploy")?;
    name_ok(&name)?;
    let (change, label) = proposal(&what, q.version)?;
    let (tenant, n) = (viewer.tenant.clone(), name.clone());
    let preview = app
        .db(move |db| {
            db.preview_change(&tenant, &n, &change)
                .map_err(Problem::from)
        })
        .await?;
    let base = format!("/rules/{}", ui::seg(&name));
    let body = html! {
        @if preview.cancelled.is_empty() {
            p { "Nothing pending would be cancelled." }
        } @else {
            (ui::notice("bad", html! { "This cancels " strong { (preview.cancelled.len()) } " pending timer(s) and approval(s), their rules no longer deployed:" }))
            ul { @for c in &preview.cancelled { li { code { (c) } } } }
        }
        @if what == "rollback" {
            p { "A new version is made with version " (q.version.unwrap_or_default()) "'s files." }
        }
        form method="post" action=(format!("{base}/confirm/{what}")) {
            (ui::csrf(&viewer))
            @if let Some(v) = q.version { input type="hidden" name="version" value=(v); }
            div.actions {
                button.danger[what != "enable"] type="submit" { (label) }
                a.button.secondary href=(base) { "Cancel" }
            }
        }
    };
    Ok(ui::page(
        &viewer,
        "Rules",
        &format!("{label}: ruleset {name}?"),
        body,
    ))
}

pub async fn confirm(
    State(app): State<App>,
    Path((name, what)): Path<(String, String)>,
    Posted(viewer, fields): Posted,
) -> Result<Response, Fail> {
    viewer.need("rulesets:deploy")?;
    name_ok(&name)?;
    let version = fields.get("version").and_then(|v| v.parse().ok());
    proposal(&what, version)?;
    let (tenant, n, by) = (viewer.tenant.clone(), name.clone(), viewer.who.clone());
    let w = what.clone();
    let done = app
        .db(move |db| {
            match (w.as_str(), version) {
                ("enable", _) => db.enable_ruleset(&tenant, &n, true, &by),
                ("disable", _) => db.enable_ruleset(&tenant, &n, false, &by),
                (_, Some(v)) => db.rollback_ruleset(&tenant, &n, v, &by),
                _ => Err(ControlError::NotFound("no version".into())),
            }
            .map_err(Problem::from)
        })
        .await?;
    let body = html! {
        (ui::notice("good", html! { "Done: ruleset " (name) " is at version " (done.version) "." }))
        @if !done.cancelled.is_empty() {
            p { "Cancelled:" }
            ul { @for c in &done.cancelled { li { code { (c) } } } }
        }
        p { a href=(format!("/rules/{}", ui::seg(&name))) { "Back to ruleset " (name) } }
    };
    Ok(ui::page(&viewer, "Rules", &format!("Ruleset {name}"), body))
}

// ---------------------------------------------------------------------------
// The editor

pub async fn new_page(viewer: Viewer) -> Result<Response, Fail> {
    viewer.need("rulesets:deploy")?;
    let mut files = BTreeMap::new();
    files.insert("main.stw".to_string(), String::new());
    Ok(editor(&viewer, None, &files, ui::nothing()))
}

pub async fn edit_page(
    State(app): State<App>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Result<Response, Fail> {
    let (head, versions) = head_and_versions(&app, &viewer.tenant, &name).await?;
    let files = versions
        .iter()
        .find(|v| v.version == head.version)
        .map(|v| files_of(&v.sources))
        .unwrap_or_default();
    Ok(editor(&viewer, Some(&name), &files, ui::nothing()))
}

fn editor(
    viewer: &Viewer,
    name: Option<&str>,
    files: &BTreeMap<String, String>,
    result: Markup,
) -> Response {
    let action = match name {
        Some(n) => format!("/rules/{}/edit", ui::seg(n)),
        None => "/new-ruleset".to_string(),
    };
    let title = match name {
        Some(n) => format!("Edit ruleset {n}"),
        None => "New ruleset".to_string(),
    };
    let body = html! {
        (result)
        form method="post" action=(action) {
            (ui::csrf(viewer))
            @if name.is_none() {
                div.field {
                    label for="ruleset-name" { "Ruleset name" }
                    input #ruleset-name name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_-]{0,62}";
                }
            }
            @for (i, (file, text)) in files.iter().enumerate() {
                div.card {
                    div.field {
                        label for=(format!("path-{i}")) { "File name" }
                        input id=(format!("path-{i}")) name="path" value=(file);
                    }
                    label for=(format!("text-{i}")) { "Text of " (file) }
                    textarea id=(format!("text-{i}")) name="text" spellcheck="false" { (text) }
                }
            }
            details.card {
                summary { "Add a file" }
                div.field { label for="path-new" { "File name (.stw, or .rhai for a script)" } input #path-new name="path"; }
                label for="text-new" { "Text" }
                textarea #text-new name="text" spellcheck="false" {}
            }
            div.card {
                h2 { "Backtest" }
                p.muted { "Replays the tenant's stored events of a period through the active rules and through these, and lists the actions that would be added and removed. Times in UTC (RFC 3339); empty: every stored event." }
                div.actions {
                    div.field { label for="bt-from" { "From" } input #bt-from name="from" placeholder="2026-12-01T00:00:00Z"; }
                    div.field { label for="bt-to" { "To" } input #bt-to name="to" placeholder="2026-12-08T00:00:00Z"; }
                }
            }
            div.actions {
                button type="submit" name="do" value="validate" { "Validate" }
                button.secondary type="submit" name="do" value="backtest" { "Backtest" }
                @if viewer.can("rulesets:deploy") {
                    button type="submit" name="do" value="deploy" { "Deploy" }
                }
            }
        }
    };
    ui::page(viewer, "Rules", &title, body)
}

/// The files of an editor's form: each `path` with the `text` after it.
fn form_files(fields: &Fields) -> BTreeMap<String, String> {
    let paths = fields.all("path");
    let texts = fields.all("text");
    paths
        .iter()
        .zip(texts.iter())
        .filter(|(p, t)| !p.trim().is_empty() || !t.trim().is_empty())
        .map(|(p, t)| (p.trim().to_string(), t.replace("\r\n", "\n")))
        .collect()
}

/// The editor's form for a ruleset.
pub async fn edit(
    State(app): State<App>,
    Path(name): Path<String>,
    Posted(viewer, fields): Posted,
) -> Result<Response, Fail> {
    edited(app, viewer, fields, name).await
}

/// The editor's form for a new ruleset (its name a field of the form).
pub async fn create(
    State(app): State<App>,
    Posted(viewer, fields): Posted,
) -> Result<Response, Fail> {
    let name = fields.get("name").unwrap_or("").to_string();
    edited(app, viewer, fields, name).await
}

/// Validate, Backtest or Deploy: the editor again with the outcome, or
/// the ruleset once deployed.
async fn edited(app: App, viewer: Viewer, fields: Fields, name: String) -> Result<Response, Fail> {
    let named = if crate::auth::valid_name(&name) {
        Some(name.as_str())
    } else {
        None
    };
    let files = form_files(&fields);
    let shown = |result: Markup| editor(&viewer, named, &files, result);
    let Some(name) = named else {
        return Ok(shown(ui::notice(
            "bad",
            html! { "A ruleset's name is letters, digits, `_` and `-`, starting with a letter or digit." },
        )));
    };
    if files.is_empty()
        || files
            .keys()
            .any(|f| f.is_empty() || !(f.ends_with(".stw") || f.ends_with(".rhai")))
    {
        return Ok(shown(ui::notice(
            "bad",
            html! { "Every file needs a name ending in .stw (rules) or .rhai (a script)." },
        )));
    }
    let what = fields.get("do").unwrap_or("validate").to_string();
    let from = time_arg("from", &fields.get("from").map(str::to_string));
    let to = time_arg("to", &fields.get("to").map(str::to_string));
    let (from, to) = match (from, to) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(p), _) | (_, Err(p)) => return Ok(shown(ui::notice("bad", html! { (p.detail) }))),
    };
    if what == "deploy" {
        viewer.need("rulesets:deploy")?;
    }
    let quotas = crate::limits::quotas_of(&app, &viewer.tenant).await?;
    let (tenant, n, by, programs, f) = (
        viewer.tenant.clone(),
        name.to_string(),
        viewer.who.clone(),
        app.programs.clone(),
        files.clone(),
    );
    let app2 = app.clone();
    let outcome = app
        .db(move |db| {
            let secrets = crate::routes::secret_names(db, &tenant)?;
            let (sources, _, _) = check_files(&f, Some(&secrets))?;
            let composed = db
                .program_with(&tenant, &n, &sources)
                .map_err(Problem::from)?;
            let mut diagnostics = steward_db::control::diagnose(&composed, &n, Some(&secrets));
            let errors = diagnostics
                .iter()
                .any(|d| d.severity == steward::diag::Severity::Error);
            let done = match what.as_str() {
                "backtest" if !errors => Done::Backtest(backtest_sources(
                    db, &programs, &tenant, &n, &sources, from, to,
                )?),
                "deploy" if !errors => {
                    crate::limits::ruleset_room(db, &quotas, &tenant, &n)?;
                    match db.deploy_ruleset(&tenant, &n, &sources, &by) {
                        Ok(_) => Done::Deployed,
                        // Another ruleset changed since: what it says now.
                        Err(ControlError::Invalid(d)) => {
                            diagnostics = d;
                            Done::Checked
                        }
                        Err(e) => return Err(Problem::from(e)),
                    }
                }
                _ => Done::Checked,
            };
            let refused = if errors {
                Vec::new()
            } else {
                crate::routes::refused_destinations(&app2, &composed)
            };
            Ok((sources, diagnostics, done, refused))
        })
        .await?;
    let (sources, diagnostics, done, refused) = outcome;
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == steward::diag::Severity::Error)
        .count();
    let warnings = diagnostics.len().saturating_sub(errors);
    let result = match done {
        Done::Deployed => {
            return Ok(Redirect::to(&format!("/rules/{}", ui::seg(name))).into_response());
        }
        Done::Checked | Done::Backtest(_) if errors > 0 => html! {
            (ui::notice("bad", html! { "The rules do not check: " (errors) " error(s), " (warnings) " warning(s). Nothing was " (if fields.get("do") == Some("deploy") { "deployed" } else { "run" }) "." }))
            section aria-labelledby="diagnostics" {
                h2 #diagnostics { "Diagnostics" }
                (highlighted(&sources, &diagnostics))
            }
        },
        Done::Checked => html! {
            (ui::notice("good", html! { "The rules check with the tenant's other rulesets" @if warnings > 0 { ", with " (warnings) " warning(s)" } "." }))
            @if !refused.is_empty() {
                (ui::notice("bad", html! {
                    "This server will never deliver these webhooks:"
                    ul { @for r in &refused { li { code { (r.action) } ": " (r.why) } } }
                }))
            }
            @if warnings > 0 {
                section aria-labelledby="diagnostics" {
                    h2 #diagnostics { "Diagnostics" }
                    (highlighted(&sources, &diagnostics))
                }
            }
        },
        Done::Backtest(result) => backtest_result(&result),
    };
    Ok(shown(result))
}

/// What the editor's button came to.
enum Done {
    Checked,
    Backtest(BacktestResult),
    Deployed,
}

fn backtest_result(r: &BacktestResult) -> Markup {
    let table = |rows: &[crate::routes::ActionSummary]| {
        html! {
            table {
                thead { tr { th scope="col" { "Rule" } th scope="col" { "Event" } th scope="col" { "Action" } th scope="col" { "Arguments" } } }
                tbody {
                    @for a in rows {
                        tr {
                            td { code { (a.rule) } }
                            td { (ui::event_link(&a.event)) }
                            td { code { (a.action) } }
                            td { code { (a.args.to_string()) } }
                        }
                    }
                }
            }
        }
    };
    html! {
        section.card aria-labelledby="bt-result" {
            h2 #bt-result { "Backtest" }
            p { (r.events) " stored event(s) replayed: " strong { (r.added.len()) " added" } ", " strong { (r.removed.len()) " removed" } ", " (r.unchanged) " unchanged." }
            h3 { "Added (these rules would do this, the active ones do not)" }
            @if r.added.is_empty() { p.muted { "None." } } @else { (table(&r.added)) }
            h3 { "Removed (the active rules do this, these would not)" }
            @if r.removed.is_empty() { p.muted { "None." } } @else { (table(&r.removed)) }
        }
    }
}
