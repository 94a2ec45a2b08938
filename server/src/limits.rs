//! A tenant's quotas as this server enforces them: events accepted per
//! second (per tenant) and API requests per minute (per token), as token
//! buckets in this process's memory (each `steward serve` its own: with N
//! servers, a tenant gets up to N times the rate); events stored and
//! rulesets, counted in the store. Quotas are read from the store at most
//! every [`Limits::FRESH`] per tenant.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use steward_db::tenancy::Quotas;

use crate::problem::Problem;

/// A token bucket: `rate` tokens a second, holding at most `burst`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
pub struct Limits {
    buckets: Mutex<HashMap<String, Bucket>>,
    quotas: Mutex<HashMap<String, (Instant, Quotas)>>,
}

impl Limits {
    /// How long quotas read from the store are used before being read again.
    pub const FRESH: Duration = Duration::from_secs(5);
    /// The most buckets kept; past it the full ones (idle) are dropped.
    const KEEP: usize = 10_000;

    /// The tenant's quotas as last read, if read within [`Limits::FRESH`].
    fn cached(&self, tenant: &str) -> Option<Quotas> {
        let cache = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(tenant)
            .filter(|(at, _)| at.elapsed() < Limits::FRESH)
            .map(|(_, q)| *q)
    }

    /// Keeps the tenant's quotas as just read.
    fn keep(&self, tenant: &str, quotas: Quotas) {
        let mut cache = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= Limits::KEEP {
            cache.clear();
        }
        cache.insert(tenant.to_string(), (Instant::now(), quotas));
    }

    /// Forgets a tenant's quotas (the admin changed them).
    pub fn forget(&self, tenant: &str) {
        let mut cache = self.quotas.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(tenant);
    }

    /// Takes `cost` from the bucket `key` (`rate` a second, holding one
    /// second's or one minute's worth, `burst`): the seconds to wait if it
    /// holds too few.
    pub fn take(&self, key: &str, rate: f64, burst: f64, cost: f64) -> Result<(), u64> {
        self.take_at(key, rate, burst, cost, Instant::now())
    }

    /// [`Limits::take`] at `now`.
    fn take_at(
        &self,
        key: &str,
        rate: f64,
        burst: f64,
        cost: f64,
        now: Instant,
    ) -> Result<(), u64> {
        if rate <= 0.0 {
            return Err(u64::MAX);
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= Limits::KEEP && !buckets.contains_key(key) {
            buckets.retain(|_, b| b.tokens < burst);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            return Ok(());
        }
        // Ceiling of the wait, in whole seconds, at least one.
        let wait = ((cost - bucket.tokens) / rate).ceil();
        Err(if wait.is_finite() && wait >= 1.0 {
            wait.min(86_400.0) as u64
        } else {
            1
        })
    }
}

/// 429 unless `n` more events may be accepted now by a tenant allowed
/// `per_second` (a second's worth held).
pub fn events_rate(
    limits: &Limits,
    tenant: &str,
    per_second: Option<i64>,
    n: usize,
) -> Result<(), Problem> {
    let Some(rate) = per_second else {
        return Ok(());
    };
    let rate = rate as f64;
    let cost = n as f64;
    if cost > rate {
        return Err(Problem::rate_limited(
            format!("{n} events at once is more than this tenant's {rate} events a second: send fewer at a time"),
            1,
        ));
    }
    limits
        .take(&format!("events\u{1f}{tenant}"), rate, rate, cost)
        .map_err(|wait| {
            Problem::rate_limited(
                format!("this tenant may send {rate} events a second; try again in {wait} s"),
                wait,
            )
        })
}

/// 429 unless the token may make one more request now, its tenant allowing
/// `per_minute` (a minute's worth held).
pub fn requests_rate(
    limits: &Limits,
    tenant: &str,
    token: &str,
    per_minute: Option<i64>,
) -> Result<(), Problem> {
    let Some(per_minute) = per_minute else {
        return Ok(());
    };
    let burst = per_minute as f64;
    limits
        .take(
            &format!("requests\u{1f}{tenant}\u{1f}{token}"),
            burst / 60.0,
            burst,
            1.0,
        )
        .map_err(|wait| {
            Problem::rate_limited(
                format!(
                    "this token may make {per_minute} requests a minute; try again in {wait} s"
                ),
                wait,
            )
        })
}

/// The tenant's quotas, read from the store at most every [`Limits::FRESH`].
pub async fn quotas_of(app: &crate::App, tenant: &str) -> Result<Quotas, Problem> {
    if let Some(q) = app.limits.cached(tenant) {
        return Ok(q);
    }
    let t = tenant.to_string();
    let q = app
        .db(move |db| db.quotas(&t).map_err(Problem::from))
        .await?;
    app.limits.keep(tenant, q);
    Ok(q)
}

/// 429 unless the tenant may have ruleset `name` (one it has, or room for
/// one more).
pub fn ruleset_room(
    db: &dyn crate::Backend,
    quotas: &Quotas,
    tenant: &str,
    name: &str,
) -> Result<(), Problem> {
    let Some(max) = quotas.rulesets else {
        return Ok(());
    };
    if db.ruleset(tenant, name).map_err(Problem::from)?.is_some() {
        return Ok(());
    }
    let used = db.usage(tenant).map_err(Problem::from)?.rulesets;
    if used >= max {
        return Err(Problem::quota_exceeded(format!(
            "this tenant may have {max} rulesets and has {used}: delete one, or ask for more"
        )));
    }
    Ok(())
}

/// 429 unless `n` more events fit in what the tenant may store.
pub fn events_room(
    db: &dyn crate::Backend,
    quotas: &Quotas,
    tenant: &str,
    n: usize,
) -> Result<(), Problem> {
    let Some(max) = quotas.events_stored else {
        return Ok(());
    };
    let used = db.usage(tenant).map_err(Problem::from)?.events_stored;
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    if used.saturating_add(n) > max {
        return Err(Problem::quota_exceeded(format!(
            "this tenant may store {max} events and stores {used}: {n} more do not fit until retention prunes old ones"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_burst_through_then_says_how_long_to_wait() {
        let l = Limits::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for _ in 0..3 {
            assert_eq!(l.take_at("k", 1.0, 3.0, 1.0, at(0)), Ok(()));
        }
        assert_eq!(l.take_at("k", 1.0, 3.0, 1.0, at(0)), Err(1));
        assert_eq!(
            l.take_at("k", 1.0, 3.0, 1.0, at(500)),
            Err(1),
            "half a token"
        );
        assert_eq!(
            l.take_at("k", 1.0, 3.0, 1.0, at(1000)),
            Ok(()),
            "one more after a second"
        );
        assert_eq!(
            l.take_at("k2", 1.0, 3.0, 1.0, at(0)),
            Ok(()),
            "another key has its own"
        );
        assert_eq!(l.take_at("m", 1.0 / 60.0, 1.0, 1.0, at(0)), Ok(()));
        assert_eq!(l.take_at("m", 1.0 / 60.0, 1.0, 1.0, at(0)), Err(60));
        assert_eq!(l.take_at("m", 1.0 / 60.0, 1.0, 1.0, at(30_000)), Err(30));
        assert!(
            events_rate(&l, "t", Some(2), 3).is_err(),
            "more than a second's worth"
        );
        assert!(events_rate(&l, "t", None, 1_000_000).is_ok());
    }
}
