//! The first pass: every declaration of every file into the [`Program`], with
//! types resolved, duplicates and reserved names reported.

use std::collections::HashMap;
use std::sync::Arc;

use super::stdlib;
use super::suggest::did_you_mean;
use super::types::*;
use super::{Checker, DefKind};
use crate::diag::{Code, Diagnostic, FileId};
use crate::syntax::ast::{self, Item, TypeExprKind};

const BUILTIN_TYPES: &[&str] = &[
    "int", "float", "decimal", "bool", "string", "date", "datetime", "duration",
];

impl Checker<'_> {
    pub(super) fn collect_declarations(&mut self) {
        let files = self.files;
        // Names first, so declarations may refer to each other in any order.
        let mut seen: HashMap<(&str, String), Loc> = HashMap::new();
        for f in files {
            for (index, item) in f.tree.items.iter().enumerate() {
                let (space, name) = match item {
                    Item::Type(d) => ("type", &d.name),
                    Item::Event(d) => ("event", &d.name),
                    Item::Message(d) => ("message", &d.name),
                    Item::Action(d) => ("action", &d.name),
                    Item::Fn(d) => ("function", &d.name),
                    // Built-in functions may be overloaded.
                    Item::ExternFn(_) => continue,
                    Item::Rule(r) => match &r.name {
                        Some(name) => ("rule", name),
                        None => continue,
                    },
                    Item::Error(_) | Item::Test(_) => continue,
                };
                let loc = Loc {
                    file: f.id,
                    span: name.span,
                };
                if space == "action" && super::actions::builtin(&name.text).is_some() {
                    self.report(
                        Diagnostic::new(Code::Duplicate, f.id, name.span, format!("`{}` is a built-in action", name.text))
                            .with_label("declared again here")
                            .with_help("give the webhook action another name; the built-in actions are listed in docs/stdlib.md"),
                    );
                    continue;
                }
                if let Some(first) = seen.get(&(space, name.text.clone())) {
                    let first = *first;
                    self.report(
                        Diagnostic::new(Code::Duplicate, f.id, name.span, format!("the {space} `{}` is declared twice", name.text))
                            .with_label("declared again here")
                            .with_secondary(first.file, first.span, "first declared here")
                            .with_help(format!("rename one of them, or remove one; {space} names are shared by all files of the program")),
                    );
                    continue;
                }
                seen.insert((space, name.text.clone()), loc);
                match item {
                    Item::Type(d) => {
                        let id = self.new_record(&d.name.text, loc, false);
                        self.program.types.insert(d.name.text.clone(), id);
                    }
                    Item::Event(d) => {
                        let id = self.new_record(&d.name.text, loc, true);
                        self.program.events.insert(d.name.text.clone(), id);
                    }
                    Item::Message(d) => {
                        self.program
                            .messages
                            .insert(d.name.text.clone(), (f.id, index));
                    }
                    _ => {}
                }
            }
        }
        // Then the shapes.
        for f in files {
            for item in &f.tree.items {
                self.declaration(f.id, f.stdlib, item);
            }
        }
        self.recursive_types();
    }

    /// Reports each `type` that requires a value of itself: through fields
    /// that are neither optional nor lists, so no finite value has the type.
    fn recursive_types(&mut self) {
        let records = &self.program.records;
        let required = |id: RecordId| -> Vec<(RecordId, String)> {
            records
                .get(id as usize)
                .into_iter()
                .flat_map(|r| r.fields.iter())
                .filter_map(|f| match f.ty {
                    Type::Record(to) => Some((to, f.name.clone())),
                    _ => None,
                })
                .collect()
        };
        let mut found = Vec::new();
        let mut in_cycle = std::collections::HashSet::new();
        for (start, record) in records.iter().enumerate() {
            let start = start as RecordId;
            if record.is_event || in_cycle.contains(&start) {
                continue;
            }
            // Depth-first search for a path of required fields back to `start`.
            let mut stack = vec![(start, Vec::<(RecordId, String)>::new())];
            let mut visited = std::collections::HashSet::new();
            'search: while let Some((at, trail)) = stack.pop() {
                for (next, field) in required(at) {
                    let mut path = trail.clone();
                    path.push((at, field));
                    if next == start {
                        in_cycle.extend(path.iter().map(|(at, _)| *at));
                        found.push((start, path));
                        break 'search;
                    }
                    if visited.insert(next) {
                        stack.push((next, path));
                    }
                }
            }
        }
        for (id, path) in found {
            let record = self.program.record(id);
            let loc = record.loc;
            let name = record.name.clone();
            let cycle = path
                .iter()
                .enumerate()
                .map(|(i, (at, field))| {
                    let next = path.get(i + 1).map_or(id, |(n, _)| *n);
                    format!(
                        "`{}.{field}` is a `{}`",
                        self.program.record(*at).name,
                        self.program.record(next).name
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            self.report(
                Diagnostic::new(Code::RecursiveType, loc.file, loc.span, format!("the type `{name}` requires a value of itself"))
                    .with_label(cycle)
                    .with_help("no value can have this type; make one of these fields optional (`field: T?`) or a list (`field: list<T>`)"),
            );
        }
    }

    fn new_record(&mut self, name: &str, loc: Loc, is_event: bool) -> RecordId {
        self.program.records.push(RecordDef {
            name: name.to_string(),
            loc,
            fields: Vec::new(),
            is_event,
        });
        (self.program.records.len() - 1) as RecordId
    }

    fn declaration(&mut self, file: FileId, stdlib: bool, item: &Item) {
        match item {
            Item::Type(d) => {
                if let Some(&id) = self.program.types.get(&d.name.text) {
                    if self.program.record(id).loc.span == d.name.span
                        && self.program.record(id).loc.file == file
                    {
                        let fields = self.fields(file, &d.fields, false);
                        if let Some(record) = self.program.records.get_mut(id as usize) {
                            record.fields = fields;
                        }
                    }
                }
            }
            Item::Event(d) => {
                if let Some(&id) = self.program.events.get(&d.name.text) {
                    if self.program.record(id).loc.span == d.name.span
                        && self.program.record(id).loc.file == file
                    {
                        let fields = self.fields(file, &d.fields, true);
                        if let Some(record) = self.program.records.get_mut(id as usize) {
                            record.fields = fields;
                        }
                    }
                }
            }
            Item::Action(d) => {
                if self.program.actions.contains_key(&d.name.text) {
                    return;
                }
                let webhook = match &d.body {
                    ast::ActionBody::Webhook(hook) => {
                        self.check_url(file, &hook.url);
                        Some(Webhook {
                            url: hook.url.value.clone(),
                            headers: self.headers(file, &hook.headers),
                        })
                    }
                    ast::ActionBody::Block(_) => None,
                };
                self.add_action(file, &d.name, &d.params, webhook);
            }
            Item::Fn(d) => {
                if self.program.functions.contains_key(&d.name.text) {
                    return;
                }
                let params = self.params(file, &d.params, &[]);
                let ret = self.resolve_type(file, &d.ret, &[]);
                let kind = match d.body {
                    ast::FnBody::Expr(_) => FnKind::Steward,
                    ast::FnBody::Rhai(_) => FnKind::Rhai,
                };
                let loc = Loc {
                    file,
                    span: d.name.span,
                };
                let sig = FnSig {
                    name: d.name.text.clone(),
                    loc,
                    kind,
                    params,
                    ret,
                    type_params: 0,
                };
                self.program
                    .functions
                    .insert(d.name.text.clone(), vec![sig]);
            }
            Item::ExternFn(d) => {
                if !stdlib {
                    self.extern_outside_stdlib(file, d.span);
                    return;
                }
                let params = self.params(file, &d.params, &d.type_params);
                let ret = self.resolve_type(file, &d.ret, &d.type_params);
                let loc = Loc {
                    file,
                    span: d.name.span,
                };
                let sig = FnSig {
                    name: d.name.text.clone(),
                    loc,
                    kind: FnKind::Builtin,
                    params,
                    ret,
                    type_params: d.type_params.len() as u32,
                };
                self.program
                    .functions
                    .entry(d.name.text.clone())
                    .or_default()
                    .push(sig);
            }
            Item::Message(_) | Item::Rule(_) | Item::Test(_) | Item::Error(_) => {}
        }
    }

    fn add_action(
        &mut self,
        file: FileId,
        name: &ast::Name,
        params: &[ast::Param],
        webhook: Option<Webhook>,
    ) {
        let params = self.params(file, params, &[]);
        let loc = Loc {
            file,
            span: name.span,
        };
        let sig = ActionSig {
            name: name.text.clone(),
            loc,
            params,
            webhook,
        };
        self.program.actions.insert(name.text.clone(), sig);
    }

    fn extern_outside_stdlib(&mut self, file: FileId, span: crate::diag::Span) {
        self.report(
            Diagnostic::new(Code::ExternOutsideStdlib, file, span, "only the standard library declares `extern` functions and actions")
                .with_help("write the function in Steward (`fn f(x: int) -> int = ...`), in Rhai (`fn f(x: int) -> int from rhai \"f.rhai\"`), or declare a webhook action (`action a(x: int) via webhook \"https://...\"`)"),
        );
    }

    fn fields(&mut self, file: FileId, decls: &[ast::FieldDecl], event: bool) -> Vec<FieldDef> {
        let mut out: Vec<FieldDef> = Vec::new();
        for d in decls {
            let ty = self.resolve_type(file, &d.ty, &[]);
            if let Some(first) = out.iter().find(|f| f.name == d.name.text) {
                let first = first.loc;
                self.report(
                    Diagnostic::new(
                        Code::DuplicateField,
                        file,
                        d.name.span,
                        format!("the field `{}` is declared twice", d.name.text),
                    )
                    .with_secondary(first.file, first.span, "first declared here")
                    .with_help("remove one of them"),
                );
                continue;
            }
            if event && (d.name.text == stdlib::EVENT || d.name.text == stdlib::ENVELOPE) {
                self.report(
                    Diagnostic::new(Code::ReservedName, file, d.name.span, format!("`{}` cannot be the name of an event field", d.name.text))
                        .with_label("reserved name")
                        .with_help("in a rule, `event` is the whole payload and `envelope` the event's id, tenant, type and time; rename the field"),
                );
                continue;
            }
            out.push(FieldDef {
                name: d.name.text.clone(),
                ty,
                loc: Loc {
                    file,
                    span: d.name.span,
                },
            });
        }
        out
    }

    fn params(
        &mut self,
        file: FileId,
        decls: &[ast::Param],
        type_params: &[ast::Name],
    ) -> Vec<ParamDef> {
        let mut out: Vec<ParamDef> = Vec::new();
        for p in decls {
            let ty = self.resolve_type(file, &p.ty, type_params);
            if out.iter().any(|q| q.name == p.name.text) {
                self.report(
                    Diagnostic::new(
                        Code::DuplicateField,
                        file,
                        p.name.span,
                        format!("the parameter `{}` is declared twice", p.name.text),
                    )
                    .with_help("give each parameter its own name"),
                );
                continue;
            }
            out.push(ParamDef {
                name: p.name.text.clone(),
                ty,
                loc: Loc {
                    file,
                    span: p.name.span,
                },
            });
        }
        out
    }

    /// The type a type expression names; unknown names are reported.
    pub(super) fn resolve_type(
        &mut self,
        file: FileId,
        texpr: &ast::TypeExpr,
        type_params: &[ast::Name],
    ) -> Type {
        let base = match &texpr.kind {
            TypeExprKind::Named(name) => {
                let n = name.text.as_str();
                if let Some(i) = type_params.iter().position(|p| p.text == n) {
                    Type::Var(i as u32)
                } else {
                    match Type::builtin(n) {
                        Some(ty) => ty,
                        None => match self.program.types.get(n) {
                            Some(&id) => {
                                let target = self.program.record(id).loc;
                                self.refer(file, name.span, target, DefKind::Type);
                                Type::Record(id)
                            }
                            None => {
                                self.unknown_type(file, name);
                                Type::Error
                            }
                        },
                    }
                }
            }
            TypeExprKind::List(inner) => {
                Type::List(Box::new(self.resolve_type(file, inner, type_params)))
            }
            TypeExprKind::Paren(inner) => self.resolve_type(file, inner, type_params),
            TypeExprKind::Union(members) => {
                let mut names: Vec<String> = Vec::new();
                for m in members {
                    if names.contains(&m.value) {
                        self.report(
                            Diagnostic::new(
                                Code::DuplicateField,
                                file,
                                m.span,
                                format!("`\"{}\"` appears twice in this union", m.value),
                            )
                            .with_help("list each member once"),
                        );
                    } else {
                        names.push(m.value.clone());
                    }
                }
                Type::Union(Arc::from(names))
            }
        };
        if texpr.optional {
            base.optional()
        } else {
            base
        }
    }

    fn unknown_type(&mut self, file: FileId, name: &ast::Name) {
        let mut diag = Diagnostic::new(
            Code::UnknownType,
            file,
            name.span,
            format!("no type `{}`", name.text),
        )
        .with_label("unknown type");
        let declared: Vec<String> = self.program.types.keys().cloned().collect();
        let candidates = BUILTIN_TYPES
            .iter()
            .copied()
            .chain(declared.iter().map(String::as_str));
        let help = if self.program.events.contains_key(&name.text) {
            Some(format!(
                "`{}` is an event; to hold its fields, declare a `type` with them",
                name.text
            ))
        } else if name.text == "list" {
            Some("a list needs its element type: `list<string>`".to_string())
        } else {
            did_you_mean(&name.text, candidates).or_else(|| {
                Some("the types are `int`, `float`, `decimal`, `bool`, `string`, `date`, `datetime`, `duration`, `list<T>`, string unions such as `\"a\" | \"b\"`, and declared `type`s".to_string())
            })
        };
        if let Some(help) = help {
            diag = diag.with_help(help);
        }
        self.report(diag);
    }

    /// A webhook's headers: names that are HTTP tokens, set once and not
    /// one of the headers Steward sets itself; values that are valid header
    /// text; secrets the tenant has (when the host can say).
    fn headers(&mut self, file: FileId, headers: &[ast::Header]) -> Vec<WebhookHeader> {
        let mut out: Vec<WebhookHeader> = Vec::new();
        for h in headers {
            let name = &h.name.value;
            let problem = if name.is_empty() || !name.bytes().all(is_token_byte) {
                Some(format!(
                    "`{name}` is not a header name (letters, digits and `-`, no spaces)"
                ))
            } else if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                Some(format!("Steward sets `{name}` itself (the body's type and length, and the Standard Webhooks signature)"))
            } else if out.iter().any(|o| o.name.eq_ignore_ascii_case(name)) {
                Some(format!("the header `{name}` is set twice"))
            } else {
                None
            };
            if let Some(problem) = problem {
                self.report(
                    Diagnostic::new(Code::InvalidHeader, file, h.name.span, format!("invalid webhook header: {problem}"))
                        .with_help("write a header such as `header \"Authorization\" = \"Bearer \" + secret pms_token` or `header \"X-Api-Version\" = \"2\"`"),
                );
            }
            let (text, secret) = match &h.value {
                ast::HeaderValue::Text(text) => (Some(text), None),
                ast::HeaderValue::Secret { prefix, secret } => {
                    self.check_secret(file, secret);
                    (prefix.as_ref(), Some(secret.text.clone()))
                }
            };
            let text = match text {
                Some(t)
                    if !t
                        .value
                        .bytes()
                        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) =>
                {
                    self.report(
                        Diagnostic::new(Code::InvalidHeader, file, t.span, "invalid webhook header: the value has a line break, a control character or a character outside ASCII")
                            .with_help("header values are printable ASCII; a value with other characters goes in the body"),
                    );
                    String::new()
                }
                Some(t) => t.value.clone(),
                None => String::new(),
            };
            out.push(WebhookHeader {
                name: name.clone(),
                text,
                secret,
            });
        }
        out
    }

    fn check_secret(&mut self, file: FileId, secret: &ast::Name) {
        if self.host.has_secret(&secret.text) == Some(false) {
            self.report(
                Diagnostic::new(Code::UnknownSecret, file, secret.span, format!("the secret `{}` is not set", secret.text))
                    .with_help(format!("set it first (`PUT /v1/secrets/{}`, or `steward secret set {}` for `steward run`); secrets are the tenant's own, and another tenant's are not seen", secret.text, secret.text)),
            );
        }
    }

    fn check_url(&mut self, file: FileId, url: &ast::StrLit) {
        let problem = match url::Url::parse(&url.value) {
            Ok(u) if u.scheme() != "http" && u.scheme() != "https" => Some(format!(
                "the scheme `{}` is not `http` or `https`",
                u.scheme()
            )),
            Ok(u) if u.host().is_none() => Some("it has no host".to_string()),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(problem) = problem {
            self.report(
                Diagnostic::new(Code::InvalidUrl, file, url.span, format!("invalid webhook URL: {problem}"))
                    .with_help("write a full `http://` or `https://` URL, such as `\"https://pms.example.com/price\"`"),
            );
        }
    }
}

/// A byte of an HTTP token (RFC 9110, `tchar`): what a header name is made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The headers Steward sets on every webhook, which a rule cannot replace.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "idempotency-key",
];
