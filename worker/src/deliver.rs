//! Delivering the outbox: what `steward run` does with the actions its
//! rules recorded.
//!
//! - Webhook actions (`action name(...) via webhook "URL"`): an HTTP POST of
//!   the arguments as a JSON object, signed as the Standard Webhooks
//!   specification says (`webhook-id` is the action's key, stable across
//!   retries; `webhook-timestamp`; `webhook-signature` `v1,` and the
//!   base64 HMAC-SHA256 of `id.timestamp.body` with the secret
//!   `STEWARD_WEBHOOK_SECRET` in its `whsec_` form, made again at each
//!   attempt), with an `Idempotency-Key` header of the same value. 2xx is
//!   delivered; `410 Gone` is dead at once; any other status, a timeout or a
//!   connection error is tried again after an exponential backoff with
//!   jitter (`Retry-After` honoured), and dead after the last attempt.
//! - `send`: over SMTP with `lettre` when `STEWARD_SMTP_URL` is set
//!   (`smtp://host:port`, `smtps://...`, credentials in the URL), from
//!   `STEWARD_MAIL_FROM`, with a `Message-ID` made from the action's key, so
//!   a retried mail has the same one. Without it, to the console (printed,
//!   delivered), and a line at start says so.
//! - `notify` to an address (`notify owner_email "..."`): mailed like a
//!   `send`, the text as the body and its first line as the subject.
//! - The other built-in actions (`notify` to a role or a user id,
//!   `create_task`, `log`, `emit`, the approval actions) are records: the
//!   outbox row is what the API will read, so they are delivered where they
//!   are.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use steward_db::tenancy::{SIGNING, SIGNING_PREVIOUS};
use steward_db::{Attempt, Delivery, WebhookHeaders};

use crate::guard::{Destinations, Guarded, REFUSED};

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// How deliveries are made and retried.
pub struct Deliverer {
    http: reqwest::blocking::Client,
    /// The SMTP transport and the sender, when mail is configured.
    smtp: Option<(lettre::SmtpTransport, lettre::message::Mailbox)>,
    /// The webhook secret's key bytes (after `whsec_`), if one is set.
    secret: Option<Vec<u8>>,
    /// Where webhooks may go (see [`crate::guard`]).
    destinations: std::sync::Arc<Destinations>,
    /// What opens tenants' own signing secrets (`STEWARD_SECRET_KEY`).
    pub sealer: Option<steward_db::sealed::Sealer>,
    pub retry_base: Duration,
    pub max_attempts: i32,
    /// How long one attempt may take (an HTTP request, an SMTP session).
    pub timeout: Duration,
}

impl Deliverer {
    /// From the environment: `STEWARD_WEBHOOK_SECRET` (a `whsec_` secret;
    /// without it webhooks go unsigned, and a warning says so) and
    /// `STEWARD_WEBHOOK_ALLOW` (the destinations opened beyond the public
    /// internet; `allow_loopback` opens the loopback too).
    pub fn from_env(
        retry_base: Duration,
        max_attempts: i32,
        timeout: Duration,
        allow_loopback: bool,
    ) -> Result<Deliverer, String> {
        let smtp = match std::env::var("STEWARD_SMTP_URL") {
            Ok(url) => {
                let transport = lettre::SmtpTransport::from_url(&url)
                    .map_err(|e| format!("STEWARD_SMTP_URL: {e}"))?
                    .timeout(Some(timeout))
                    .build();
                let from = std::env::var("STEWARD_MAIL_FROM").map_err(|_| {
                    "STEWARD_SMTP_URL is set but STEWARD_MAIL_FROM is not: mails need a sender"
                        .to_string()
                })?;
                let from = from
                    .parse()
                    .map_err(|e| format!("STEWARD_MAIL_FROM `{from}`: {e}"))?;
                Some((transport, from))
            }
            Err(_) => {
                eprintln!("mail: no SMTP configured (STEWARD_SMTP_URL); mails are printed here and marked delivered");
                None
            }
        };
        let secret = match std::env::var("STEWARD_WEBHOOK_SECRET") {
            Ok(s) => Some(decode_secret(&s)?),
            Err(_) => {
                eprintln!("warning: STEWARD_WEBHOOK_SECRET is not set; webhooks are sent unsigned");
                None
            }
        };
        let sealer = match steward_db::sealed::Sealer::from_env() {
            Ok(s) => Some(s),
            Err(steward_db::sealed::SealError::NoKey) => None,
            Err(e) => return Err(e.to_string()),
        };
        let mut destinations = Destinations::from_env()?;
        if allow_loopback {
            destinations = destinations.with_loopback();
        }
        let destinations = std::sync::Arc::new(destinations);
        // Names resolved by the guard, which keeps only the addresses a
        // webhook may reach; redirects not followed (each would need the
        // same check, and a receiver has no reason to send one).
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .dns_resolver(std::sync::Arc::new(Guarded(destinations.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Deliverer {
            http,
            smtp,
            secret,
            destinations,
            sealer,
            retry_base,
            max_attempts,
            timeout,
        })
    }

    /// Delivers one action of the outbox, and says what came of it. A
    /// webhook is signed with each of `creds.keys` (the tenant's signing
    /// secrets, two during a rotation's grace), else with
    /// `STEWARD_WEBHOOK_SECRET`, and carries `creds.headers`.
    pub fn deliver(&self, d: &Delivery, now: DateTime<Utc>, creds: &Credentials) -> Attempt {
        if let Some(url) = &d.url {
            return self.webhook(url, d, now, creds);
        }
        if d.action == "send" {
            return self.send(d, now);
        }
        match notification_mail(d) {
            Some(mail) => self.send(&mail, now),
            None => Attempt::Delivered,
        }
    }

    /// A mail (the arguments of a `send`): over SMTP, or printed.
    pub fn send(&self, d: &Delivery, now: DateTime<Utc>) -> Attempt {
        match &self.smtp {
            Some((transport, from)) => self.mail(transport, from, d, now),
            None => {
                println!("mail {}: {}", d.key, d.args);
                Attempt::Delivered
            }
        }
    }

    /// An approval asked (`approval_requested`): a mail to each holder of
    /// its role, each with a link of its own that `link` makes (a
    /// single-use token kept as a hash, valid until the deadline). With no
    /// holder, nothing is sent.
    pub fn approval(
        &self,
        d: &Delivery,
        holders: &[String],
        link: &mut dyn FnMut(&str) -> Result<String, String>,
        now: DateTime<Utc>,
    ) -> Attempt {
        let args: serde_json::Value = match serde_json::from_str(&d.args) {
            Ok(args) => args,
            Err(e) => return unreadable(d, &e),
        };
        let text = |k: &str| {
            args.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let (approval, role, deadline) = (text("approval"), text("role"), text("deadline"));
        for (i, to) in holders.iter().enumerate() {
            let url = match link(&deadline) {
                Ok(url) => url,
                Err(error) => return self.retry(d, error, None, now),
            };
            let mail = Delivery {
                key: format!("{}-{i}", d.key),
                args: serde_json::json!({
                    "to": to,
                    "subject": format!("A decision is asked of the {role}: {}", d.rule),
                    "body": format!(
                        "The rule `{}` asks the role {role} to decide ({approval}).\n\n\
                         See what it is about, and approve or reject it, at\n{url}\n\n\
                         The link decides once, until {deadline}.\n",
                        d.rule
                    ),
                })
                .to_string(),
                ..d.clone()
            };
            if let failed @ Attempt::Failed { .. } = self.send(&mail, now) {
                return failed;
            }
        }
        Attempt::Delivered
    }

    fn mail(
        &self,
        transport: &lettre::SmtpTransport,
        from: &lettre::message::Mailbox,
        d: &Delivery,
        now: DateTime<Utc>,
    ) -> Attempt {
        use lettre::Transport;
        let message = match mail_message(from, d) {
            Ok(m) => m,
            // A mail that cannot be built never will be: dead at once.
            Err(error) => {
                return Attempt::Failed {
                    error,
                    retry_at: None,
                }
            }
        };
        match transport.send(&message) {
            Ok(_) => Attempt::Delivered,
            Err(e) if e.is_permanent() => Attempt::Failed {
                error: format!("the mail server refused it: {e}"),
                retry_at: None,
            },
            Err(e) => self.retry(d, format!("SMTP: {e}"), None, now),
        }
    }

    /// The attempt failed: try again later, or never once the attempts are spent.
    fn retry(
        &self,
        d: &Delivery,
        error: String,
        retry_after: Option<u64>,
        now: DateTime<Utc>,
    ) -> Attempt {
        let attempt = d.attempts.saturating_add(1);
        if attempt >= self.max_attempts {
            return Attempt::Failed {
                error,
                retry_at: None,
            };
        }
        let wait = match retry_after {
            Some(seconds) => Duration::from_secs(seconds.min(86_400)),
            None => backoff(self.retry_base, attempt, &d.key),
        };
        Attempt::Failed {
            error,
            retry_at: chrono::Duration::from_std(wait)
                .ok()
                .and_then(|w| now.checked_add_signed(w)),
        }
    }

    /// What a webhook of `tenant` is sent with: the key bytes of its own
    /// signing secrets that `signing` (name, sealed value) holds, and the
    /// values of `headers`, their secrets opened from `named` (the secrets
    /// of `headers.secrets_of`). A secret that does not open, is not set,
    /// or cannot be a header's value is an error naming it (never showing
    /// it).
    pub fn credentials(
        &self,
        tenant: &str,
        signing: &[(String, String)],
        named: &[(String, String)],
        headers: &WebhookHeaders,
    ) -> Result<Credentials, String> {
        let open = |owner: &str,
                    sealed: &[(String, String)],
                    name: &str|
         -> Result<Option<String>, String> {
            let Some((_, value)) = sealed.iter().find(|(n, _)| n == name) else {
                return Ok(None);
            };
            let Some(sealer) = &self.sealer else {
                return Ok(None);
            };
            sealer
                .open(owner, name, value)
                .map(Some)
                .map_err(|e| format!("tenant `{owner}`'s secret `{name}`: {e}"))
        };
        let mut keys = Vec::new();
        for name in [SIGNING, SIGNING_PREVIOUS] {
            if let Some(secret) = open(tenant, signing, name)? {
                keys.push(decode_secret(&secret)?);
            }
        }
        let owner = headers.secrets_of.as_str();
        let mut out = Vec::with_capacity(headers.headers.len());
        for h in &headers.headers {
            let mut value = h.text.clone();
            if let Some(name) = &h.secret {
                if self.sealer.is_none() {
                    return Err(format!(
                        "the header `{}` needs the secret `{name}`, and this server keeps no secrets (set STEWARD_SECRET_KEY)",
                        h.name
                    ));
                }
                match open(owner, named, name)? {
                    Some(secret) => value.push_str(&secret),
                    None => {
                        return Err(format!(
                            "the header `{}` needs the secret `{name}`, which tenant `{owner}` has not set (PUT /v1/secrets/{name})",
                            h.name
                        ))
                    }
                }
            }
            let name = reqwest::header::HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("`{}` is not a header name", h.name))?;
            let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                format!(
                    "the value of the header `{}` (with the secret `{}`) has a line break or a character outside ASCII",
                    h.name,
                    h.secret.as_deref().unwrap_or("none")
                )
            })?;
            value.set_sensitive(h.secret.is_some());
            out.push((name, value));
        }
        Ok(Credentials { keys, headers: out })
    }

    fn webhook(&self, url: &str, d: &Delivery, now: DateTime<Utc>, creds: &Credentials) -> Attempt {
        let keys = &creds.keys;
        // A destination refused now is refused at every attempt: dead.
        if let Err(why) = self.destinations.check_url(url) {
            return Attempt::Failed {
                error: why,
                retry_at: None,
            };
        }
        let timestamp = now.timestamp().to_string();
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.key)
            .header("webhook-timestamp", &timestamp)
            .header("idempotency-key", &d.key)
            .body(d.args.clone());
        for (name, value) in &creds.headers {
            request = request.header(name.clone(), value.clone());
        }
        // Every signature in one header, space separated, as Standard
        // Webhooks allows (a receiver accepts the message if one verifies).
        let signatures: Vec<String> = if keys.is_empty() {
            self.secret
                .iter()
                .map(|key| sign(key, &d.key, &timestamp, &d.args))
                .collect()
        } else {
            keys.iter()
                .map(|key| sign(key, &d.key, &timestamp, &d.args))
                .collect()
        };
        if !signatures.is_empty() {
            request = request.header("webhook-signature", signatures.join(" "));
        }
        let (error, retry_after) = match request.send() {
            Ok(response) if response.status().is_success() => return Attempt::Delivered,
            Ok(response) if response.status() == reqwest::StatusCode::GONE => {
                return Attempt::Failed {
                    error: format!("{url} answered 410 Gone"),
                    retry_at: None,
                }
            }
            Ok(response) if response.status().is_redirection() => {
                return Attempt::Failed {
                    error: format!(
                        "{url} answered {} to {}: redirects are not followed (give the webhook its final URL)",
                        response.status(),
                        response
                            .headers()
                            .get("location")
                            .and_then(|l| l.to_str().ok())
                            .unwrap_or("nowhere")
                    ),
                    retry_at: None,
                }
            }
            Ok(response) => {
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                (format!("{url} answered {}", response.status()), after)
            }
            Err(e) => {
                // The guard's refusal, deep in the client's error.
                let chain = error_chain(&e);
                if chain.contains(REFUSED) {
                    return Attempt::Failed {
                        error: format!("{url}: {chain}"),
                        retry_at: None,
                    };
                }
                (format!("{url}: {chain}"), None)
            }
        };
        self.retry(d, error, retry_after, now)
    }
}

/// An action whose stored arguments cannot be read: dead, with why (no
/// attempt can mend it).
pub(crate) fn unreadable(d: &Delivery, e: &serde_json::Error) -> Attempt {
    Attempt::Failed {
        error: format!("the stored arguments of {} cannot be read: {e}", d.key),
        retry_at: None,
    }
}

/// What a webhook is sent with from its tenant's secrets.
#[derive(Default)]
pub struct Credentials {
    /// The tenant's signing keys (none: `STEWARD_WEBHOOK_SECRET`'s).
    pub keys: Vec<Vec<u8>>,
    /// The headers its rule declared, with their secrets' values (marked
    /// sensitive, so the HTTP client never shows them).
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
}

/// The mail a notification to an address makes (`notify owner_email
/// "..."`): the text as the body, its first line as the subject, under the
/// action's key (so its `Message-ID` is the same at every attempt). None
/// for a notification to a role or to a user id (not an address).
fn notification_mail(d: &Delivery) -> Option<Delivery> {
    let args: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&d.args).ok()?;
    let to = steward::engine::action::mailed_to(&d.action, &args)?;
    let text = args
        .get("text")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    let first = text.lines().next().unwrap_or_default();
    let subject = match first.char_indices().nth(78) {
        Some((cut, _)) => format!("{}…", first.get(..cut).unwrap_or("")),
        None => first.to_string(),
    };
    let body = format!("{text}\n\n(A notification from the rule `{}`.)\n", d.rule);
    Some(Delivery {
        args: serde_json::json!({"to": to, "subject": subject, "body": body}).to_string(),
        ..d.clone()
    })
}

/// The mail a `send` action's arguments make: `to`, `cc` and `bcc` (an
/// address or a list), `reply_to`, `subject` and a plain-text `body`, with
/// the `Message-ID` `<KEY@steward>`.
fn mail_message(from: &lettre::message::Mailbox, d: &Delivery) -> Result<lettre::Message, String> {
    let args: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&d.args).map_err(|e| format!("the arguments: {e}"))?;
    let text = |name: &str| {
        args.get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let addresses = |name: &str| -> Result<Vec<lettre::message::Mailbox>, String> {
        let list: Vec<&str> = match args.get(name) {
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|v| v.as_str()).collect()
            }
            _ => Vec::new(),
        };
        list.iter()
            .map(|a| {
                a.parse()
                    .map_err(|e| format!("{name}: `{a}` is not an address ({e})"))
            })
            .collect()
    };
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .message_id(Some(format!("<{}@steward>", d.key)))
        .subject(text("subject"));
    let to = addresses("to")?;
    if to.is_empty() {
        return Err("the mail has no `to`".into());
    }
    for a in to {
        builder = builder.to(a);
    }
    for a in addresses("cc")? {
        builder = builder.cc(a);
    }
    for a in addresses("bcc")? {
        builder = builder.bcc(a);
    }
    if let Some(a) = addresses("reply_to")?.into_iter().next() {
        builder = builder.reply_to(a);
    }
    builder
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(text("body"))
        .map_err(|e| format!("the mail cannot be built: {e}"))
}

/// The wait before attempt `attempt + 1`: the base doubled per attempt (at
/// most a day), plus up to a quarter of it as jitter, taken from the key so
/// that retries of many actions spread out.
fn backoff(base: Duration, attempt: i32, key: &str) -> Duration {
    let doubled = base.saturating_mul(1u32 << attempt.clamp(0, 20));
    let capped = doubled.min(Duration::from_secs(86_400));
    let spread = key
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let jitter = capped.mul_f64((spread % 1000) as f64 / 4000.0);
    capped.saturating_add(jitter)
}

/// The key bytes of a `whsec_` secret.
fn decode_secret(secret: &str) -> Result<Vec<u8>, String> {
    let body = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("STEWARD_WEBHOOK_SECRET is not a `whsec_` base64 secret: {e}"))
}

/// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`.
fn sign(key: &[u8], id: &str, timestamp: &str, body: &str) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's test vectors.
    #[test]
    fn signatures_match_the_specification() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(5);
        let first = backoff(base, 0, "stw_a");
        let second = backoff(base, 1, "stw_a");
        assert!(first >= base && first <= base.mul_f64(1.25));
        assert!(second >= base * 2 && second <= (base * 2).mul_f64(1.25));
        assert!(backoff(base, 40, "stw_a") <= Duration::from_secs(86_400).mul_f64(1.25));
    }
}
