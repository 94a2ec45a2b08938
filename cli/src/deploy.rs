//! `steward deploy PATH... --ruleset NAME --server URL --token T`: checks
//! the rules here, then deploys them over the HTTP API (`PUT
//! /v1/rulesets/NAME`). A refusal (the rules do not check with the tenant's
//! other rulesets) prints the server's diagnostics the miette way, on the
//! local files where they are local, and exits 1.

use std::collections::BTreeMap;
use std::path::PathBuf;

use miette::{LabeledSpan, MietteDiagnostic, NamedSource, Report};

use steward::boundary::Sources;
use steward::check::{Host, RhaiSourceError};

use super::replay::report;

/// `file` relative to the folder it was found in, if it was found in one.
fn relative(paths: &[PathBuf], file: &str) -> String {
    for p in paths.iter().filter(|p| p.is_dir()) {
        if let Ok(rest) = std::path::Path::new(file).strip_prefix(p) {
            return rest.to_string_lossy().into_owned();
        }
    }
    std::path::Path::new(file)
        .file_name()
        .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The local files' scripts from the file system, the other rulesets'
/// from what the server sent.
struct Both {
    local: steward::files::FsHost,
    /// Each local file's name as sent, and as read.
    names: std::collections::HashMap<String, String>,
    scripts: std::collections::HashMap<String, String>,
    prefixes: Vec<String>,
}

impl Host for Both {
    fn rhai_source(&self, file: &str, path: &str) -> Result<String, RhaiSourceError> {
        if !self.prefixes.iter().any(|p| file.starts_with(p)) {
            let read = self.names.get(file).map_or(file, String::as_str);
            return self.local.rhai_source(read, path);
        }
        self.scripts
            .get(&steward::boundary::script_name(file, path))
            .cloned()
            .ok_or(RhaiSourceError::Missing)
    }
}

/// A ruleset's files by name.
type Files = BTreeMap<String, String>;

/// The tenant's enabled rulesets other than `ruleset`, with their files.
fn others(
    client: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    ruleset: &str,
) -> Result<Vec<(String, Files)>, String> {
    let get = |path: &str| -> Result<serde_json::Value, String> {
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .map_err(|e| format!("cannot reach {base}: {e}"))?;
        let status = r.status();
        let body: serde_json::Value = r.json().map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{path}: {status}: {}",
                field(&body, "detail").as_str().unwrap_or_default()
            ));
        }
        Ok(body)
    };
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(&format!("/v1/rulesets?limit=500{cursor}"))?;
        for r in field(&page, "data").as_array().into_iter().flatten() {
            let name = field(r, "name").as_str().unwrap_or_default();
            if name == ruleset || field(r, "enabled") != true {
                continue;
            }
            let body = get(&format!("/v1/rulesets/{name}"))?;
            let files = serde_json::from_value(field(&body, "files").clone())
                .map_err(|e| format!("the files of `{name}`: {e}"))?;
            out.push((name.to_string(), files));
        }
        match field(&page, "next_cursor").as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    Ok(out)
}

pub fn deploy(paths: &[PathBuf], ruleset: &str, server: &str, token: &str) -> Result<bool, String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let base = server.trim_end_matches('/');
    let loaded = steward::files::read_all(paths)?;
    // Checked here as the server will: with the tenant's other enabled
    // rulesets, whose declarations these files may use.
    let others = match others(&client, base, token, ruleset) {
        Ok(others) => others,
        Err(why) => {
            eprintln!("note: checking the files alone ({why})");
            Vec::new()
        }
    };
    let mut all: Vec<(String, String)> = Vec::new();
    let mut scripts = std::collections::HashMap::new();
    for (name, files) in &others {
        for (file, text) in files {
            let key = format!("{name}/{file}");
            if file.ends_with(".rhai") {
                scripts.insert(key, text.clone());
            } else {
                all.push((key, text.clone()));
            }
        }
    }
    let theirs = all.len();
    // Named as in the folders given (`rules/` gives `pricing.stw`).
    let local: Vec<(String, String)> = loaded
        .sources
        .iter()
        .map(|(file, text)| (relative(paths, file), text.clone()))
        .collect();
    all.extend(local);
    let host = Both {
        local: loaded.host(),
        names: loaded
            .sources
            .iter()
            .map(|(file, _)| (relative(paths, file), file.clone()))
            .collect(),
        scripts,
        prefixes: others.iter().map(|(n, _)| format!("{n}/")).collect(),
    };
    let (read, mut analysis) = Sources::read(all, &host);
    loaded.add_diagnostics(&mut analysis);
    if report(steward::boundary::built(analysis))?.is_none() {
        return Ok(false);
    }
    let sources = Sources {
        files: read.files.into_iter().skip(theirs).collect(),
        scripts: read
            .scripts
            .into_iter()
            .filter(|(file, _, _)| !host.prefixes.iter().any(|p| file.starts_with(p)))
            .collect(),
    };
    let files = sources.to_files();
    let url = format!("{base}/v1/rulesets/{ruleset}");
    let response = client
        .put(&url)
        .bearer_auth(token)
        .json(&serde_json::json!({ "files": files }))
        .send()
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .map_err(|e| format!("{url} answered {status} with no JSON: {e}"))?;
    if status.is_success() {
        let version = field(&body, "version");
        if status.as_u16() == 201 {
            eprintln!(
                "deployed ruleset `{ruleset}` version {version} ({} files) to {server}",
                files.len()
            );
        } else {
            eprintln!("ruleset `{ruleset}` version {version} on {server} is unchanged");
        }
        if let Some(cancelled) = field(&body, "cancelled")
            .as_array()
            .filter(|c| !c.is_empty())
        {
            eprintln!(
                "cancelled, their rules no longer deployed: {}",
                cancelled
                    .iter()
                    .filter_map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for refused in field(&body, "destinations")
            .as_array()
            .into_iter()
            .flatten()
        {
            eprintln!(
                "warning: webhook action `{}` will never be delivered by {server}: {}",
                field(refused, "action").as_str().unwrap_or("?"),
                field(refused, "why")
                    .as_str()
                    .unwrap_or("its destination is refused")
            );
        }
        return Ok(true);
    }
    let detail = field(&body, "detail").as_str().unwrap_or("refused");
    if let Some(diagnostics) = field(&body, "diagnostics").as_array() {
        for d in diagnostics {
            eprintln!("{}", render(d, &files));
        }
    }
    eprintln!("{server} refused the deploy ({status}): {detail}");
    Ok(false)
}

/// A diagnostic the server sent, drawn on the local file it names (or as
/// one line, for another ruleset's file).
fn render(d: &serde_json::Value, files: &BTreeMap<String, String>) -> String {
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    let n = |k: &str| d[k].as_u64().unwrap_or(1);
    let file = text("file");
    let Some(source) = files.get(&file) else {
        return format!(
            "{file}:{}:{}: {} [{}]",
            n("line"),
            n("column"),
            text("message"),
            text("code")
        );
    };
    let start = offset(source, n("line"), n("column"));
    let end = offset(source, n("end_line"), n("end_column")).max(start);
    let mut diag = MietteDiagnostic::new(text("message")).with_code(text("code"));
    if let Some(help) = d["help"].as_str() {
        diag = diag.with_help(help);
    }
    diag = diag.with_label(LabeledSpan::new(
        d["label"].as_str().map(str::to_string),
        start,
        end.saturating_sub(start),
    ));
    let report = Report::new(diag).with_source_code(NamedSource::new(&file, source.clone()));
    format!("{report:?}")
}

/// The byte offset of a 1-based line and column (columns count characters).
fn offset(text: &str, line: u64, column: u64) -> usize {
    let mut at = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if (i as u64).saturating_add(1) == line {
            let col = usize::try_from(column.saturating_sub(1)).unwrap_or(0);
            return at + l.char_indices().nth(col).map_or(l.len(), |(b, _)| b);
        }
        at += l.len();
    }
    text.len()
}

/// A field of a JSON object (null when absent, or not an object).
fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v.get(name).unwrap_or(&serde_json::Value::Null)
}
