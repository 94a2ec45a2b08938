//! What the engine hands out: the actions it performs (lent to a [`Sink`]
//! as [`Performed`], with runtime values, or owned as [`Action`] with JSON
//! arguments), their idempotency keys ([`ActionKey`]), and the rule errors.
//! The store and the runtime both use these; neither owns them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Map;

use super::decode::Shapes;
use super::value::{show_datetime, Value};

/// An action the engine performed (in replay and tests: would perform).
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub at: DateTime<Utc>,
    pub tenant: Arc<str>,
    /// The id of the event that triggered the rule.
    pub event: Arc<str>,
    pub rule: Arc<str>,
    pub action: Arc<str>,
    pub args: Map<String, serde_json::Value>,
    /// What the idempotency key is made of; see [`Action::key`].
    pub key_parts: KeyParts,
}

/// The parts of an [`ActionKey`], owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyParts {
    pub tenant: Arc<str>,
    pub rule: Arc<str>,
    pub version: Arc<str>,
    pub source: Arc<str>,
    pub pos: u32,
}

impl KeyParts {
    fn key(&self) -> ActionKey<'_> {
        ActionKey {
            tenant: &self.tenant,
            rule: &self.rule,
            version: &self.version,
            event: &self.source,
            pos: self.pos,
        }
    }
}

impl Action {
    /// The idempotency key, as a header-safe token ([`ActionKey::token`]).
    pub fn key(&self) -> String {
        self.key_parts.key().token()
    }

    /// The idempotency key, readable: `rule/version/source/position`.
    pub fn key_text(&self) -> String {
        self.key_parts.key().to_string()
    }

    /// The JSON line `steward replay` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "at": show_datetime(&self.at),
            "tenant": &*self.tenant,
            "event": &*self.event,
            "rule": &*self.rule,
            "action": &*self.action,
            "args": self.args,
            "key": self.key(),
        })
    }
}

/// An action as the engine performs it, lent to the [`Sink`]: the arguments
/// are runtime values, and become JSON only if the sink wants JSON.
pub struct Performed<'a> {
    pub at: DateTime<Utc>,
    pub tenant: &'a Arc<str>,
    /// The id of the event that triggered the rule.
    pub event: &'a Arc<str>,
    pub rule: &'a Arc<str>,
    pub action: &'a Arc<str>,
    pub args: &'a [(Arc<str>, Value)],
    pub key: ActionKey<'a>,
    pub shapes: &'a Shapes,
    /// Where the action is delivered and with which headers, if it is
    /// declared `via webhook`.
    pub webhook: Option<&'a crate::check::Webhook>,
    /// Whose secrets the webhook's headers name: the tenant's, when the
    /// rule is of its own program, else the program's that every tenant
    /// without one runs ([`crate::engine::runtime::EVERY_TENANT`]).
    pub secrets_of: &'a str,
}

/// (tenant, rule, version, source, position): at most one performance per
/// key. The source is the event handled, or the timer or approval instance
/// a resumed block runs for. Shown as `rule/version/source/position`; see
/// [`ActionKey::token`] for the form used in headers and `Message-ID`s.
#[derive(Clone, Copy, Debug)]
pub struct ActionKey<'a> {
    pub tenant: &'a str,
    pub rule: &'a str,
    pub version: &'a str,
    pub event: &'a str,
    pub pos: u32,
}

impl ActionKey<'_> {
    /// The key as 32 hex digits after `stw_` (128 bits of a SHA-256 of its
    /// parts): the same for the same parts, safe in an HTTP header, a mail
    /// `Message-ID` or a URL, whatever the ids hold.
    pub fn token(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in [self.tenant, self.rule, self.version, self.event] {
            // Length-prefixed, so no two different keys hash the same parts.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.update(self.pos.to_be_bytes());
        let digest = hash.finalize();
        let hex = |nibble: u8| {
            char::from(if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            })
        };
        let mut out = String::with_capacity(36);
        out.push_str("stw_");
        for byte in digest.iter().take(16) {
            out.push(hex(byte >> 4));
            out.push(hex(byte & 0xf));
        }
        out
    }
}

impl std::fmt::Display for ActionKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.rule, self.version, self.event, self.pos
        )
    }
}

impl Performed<'_> {
    /// The line `steward replay` prints (the JSON of [`Action::to_json`]),
    /// written straight from the values.
    pub fn write_line(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        struct Args<'a>(&'a Performed<'a>);
        impl serde::Serialize for Args<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let args = self.0.args;
                // Sorted by name, as a JSON map is.
                let mut order: Vec<&(Arc<str>, Value)> = args.iter().collect();
                order.sort_by(|a, b| a.0.cmp(&b.0));
                let mut map = s.serialize_map(Some(args.len()))?;
                for (name, value) in order {
                    map.serialize_entry(&**name, &self.0.shapes.json(value))?;
                }
                map.end()
            }
        }
        #[derive(serde::Serialize)]
        struct Line<'a> {
            action: &'a str,
            args: Args<'a>,
            at: String,
            event: &'a str,
            key: String,
            rule: &'a str,
            tenant: &'a str,
        }
        serde_json::to_writer(
            &mut *out,
            &Line {
                action: self.action,
                args: Args(self),
                at: show_datetime(&self.at),
                event: self.event,
                key: self.key.token(),
                rule: self.rule,
                tenant: self.tenant,
            },
        )?;
        out.write_all(b"\n")
    }

    /// An owned copy, with the arguments as JSON.
    pub fn to_action(&self) -> Action {
        Action {
            at: self.at,
            tenant: self.tenant.clone(),
            event: self.event.clone(),
            rule: self.rule.clone(),
            action: self.action.clone(),
            args: self
                .args
                .iter()
                .map(|(name, v)| (name.to_string(), self.shapes.to_json(v)))
                .collect(),
            key_parts: KeyParts {
                tenant: Arc::from(self.key.tenant),
                rule: self.rule.clone(),
                version: Arc::from(self.key.version),
                source: Arc::from(self.key.event),
                pos: self.key.pos,
            },
        }
    }
}

/// A runtime error in one rule for one event: recorded, never fatal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub at: DateTime<Utc>,
    pub event: Arc<str>,
    pub rule: Arc<str>,
    pub message: String,
}

/// Where the engine reports what it did.
pub trait Sink {
    fn action(&mut self, action: Performed<'_>);
    fn error(&mut self, error: RuleError);
}

/// Collects everything (tests, explain), up to `limit` actions and as many
/// rule errors; what comes after is counted in `dropped`, not kept.
#[derive(Debug)]
pub struct Collect {
    pub actions: Vec<Action>,
    pub errors: Vec<RuleError>,
    pub limit: usize,
    pub dropped: u64,
}

impl Default for Collect {
    fn default() -> Collect {
        Collect::with_limit(usize::MAX)
    }
}

impl Collect {
    pub fn with_limit(limit: usize) -> Collect {
        Collect {
            actions: Vec::new(),
            errors: Vec::new(),
            limit,
            dropped: 0,
        }
    }
}

impl Sink for Collect {
    fn action(&mut self, action: Performed<'_>) {
        if self.actions.len() < self.limit {
            self.actions.push(action.to_action());
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
    fn error(&mut self, error: RuleError) {
        if self.errors.len() < self.limit {
            self.errors.push(error);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}

/// Where an action leaves Steward by mail, besides a `send`: a notification
/// to a person whose assignee is an e-mail address (`notify owner_email
/// "..."`). None for any other action, and for a notification to a role or
/// to a user id. An address here has one `@` with text on both sides and no
/// space; the mailer parses it fully.
pub fn mailed_to<'a>(action: &str, args: &'a Map<String, serde_json::Value>) -> Option<&'a str> {
    if action != "notify" {
        return None;
    }
    let to = args.get("assignee")?.as_str()?;
    let (local, domain) = to.split_once('@')?;
    let plain = |s: &str| !s.is_empty() && !s.contains(['@', ' ', '<', '>']);
    (plain(local) && plain(domain)).then_some(to)
}
