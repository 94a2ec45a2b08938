//! `steward secret set|list|delete`: the secrets a webhook header names
//! (`header "Authorization" = "Bearer " + secret pms_token`), sealed in the
//! database under `STEWARD_SECRET_KEY`, for `steward run`. A server's
//! tenants set theirs over the API (`PUT /v1/secrets/{name}`); both write
//! the same table, audited by name.

use std::io::BufRead;

use steward_db::sealed::Sealer;
use steward_db::tenancy::{secret_name, Tenancy};
use steward_db::{PgStore, SqliteStore, Target};
use steward_worker::empty_rules;

/// Whose secrets, in which database.
#[derive(clap::Args)]
pub struct Whose {
    /// The tenant: `*` (the default) is the one whose rules `steward run
    /// --rules` deploys; give the tenant `steward run --tenant` names.
    #[arg(long, default_value = "*")]
    tenant: String,
    /// `postgres://...`, `sqlite://PATH` or a path; else `DATABASE_URL`,
    /// else `./steward.db`.
    #[arg(long)]
    database: Option<String>,
}

const WHO: &str = "steward secret";

/// Sets `name` to the first line of stdin, sealed.
pub fn set(name: &str, whose: &Whose) -> Result<bool, String> {
    secret_name(name)?;
    let sealer = Sealer::from_env().map_err(|e| e.to_string())?;
    let mut value = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut value)
        .map_err(|e| format!("cannot read the value from stdin: {e}"))?;
    let value = value.strip_suffix('\n').unwrap_or(&value);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() || value.len() > 8192 {
        return Err("the value (the first line of stdin) has 1 to 8192 bytes".to_string());
    }
    let sealed = sealer
        .seal(&whose.tenant, name, value)
        .map_err(|e| e.to_string())?;
    on_store(whose, |store| {
        store
            .put_secret(&whose.tenant, name, &sealed, WHO)
            .map_err(|e| e.to_string())
    })?;
    eprintln!("set secret `{name}` of tenant `{}`", whose.tenant);
    Ok(true)
}

/// Prints the secrets' names, when each was set and by whom.
pub fn list(whose: &Whose) -> Result<bool, String> {
    let rows = on_store(whose, |store| {
        store.secrets(&whose.tenant).map_err(|e| e.to_string())
    })?;
    for row in rows {
        let until = row
            .expires_at
            .map(|t| format!(", until {t}"))
            .unwrap_or_default();
        println!("{}\tset {} by {}{until}", row.name, row.set_at, row.set_by);
    }
    Ok(true)
}

/// Deletes `name`; an error when there was none.
pub fn delete(name: &str, whose: &Whose) -> Result<bool, String> {
    secret_name(name)?;
    let deleted = on_store(whose, |store| {
        store
            .delete_secret(&whose.tenant, name, WHO)
            .map_err(|e| e.to_string())
    })?;
    if !deleted {
        return Err(format!("tenant `{}` has no secret `{name}`", whose.tenant));
    }
    eprintln!("deleted secret `{name}` of tenant `{}`", whose.tenant);
    Ok(true)
}

fn on_store<T>(
    whose: &Whose,
    f: impl FnOnce(&dyn Tenancy) -> Result<T, String>,
) -> Result<T, String> {
    let target = Target::choose(whose.database.as_deref());
    target.migrate().map_err(|e| e.to_string())?;
    match &target {
        Target::Sqlite(path) => {
            f(&SqliteStore::open(path, empty_rules()?).map_err(|e| e.to_string())?)
        }
        Target::Postgres(url) => f(&PgStore::open(url, empty_rules()?).map_err(|e| e.to_string())?),
    }
}
