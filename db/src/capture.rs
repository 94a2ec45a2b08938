//! `steward pg capture`: a trigger that turns inserts and updates of an
//! application's own PostgreSQL table into events (`PREFIX.created`,
//! `PREFIX.updated`) in `steward_events`, in the application's transaction:
//! the event exists exactly when the change does. An update carries the
//! row's old values too (`previous`), so `changed` and `previous` know what
//! changed from the first update seen.

/// What to capture.
pub struct Capture<'a> {
    /// The table, `name` or `schema.name`.
    pub table: &'a str,
    /// The events' type prefix: `reservation` makes `reservation.created`.
    pub event: &'a str,
    /// The column whose value is the event's key (per-key order), if any.
    pub key: Option<&'a str>,
    /// The tenant: a column of the table, or else this name.
    pub tenant_column: Option<&'a str>,
    pub tenant: &'a str,
}

/// An identifier as PostgreSQL reads it unquoted: letters, digits and `_`,
/// not starting with a digit. Anything else is refused rather than quoted,
/// so the trigger names exactly what the user typed.
fn identifier<'a>(what: &str, name: &'a str) -> Result<&'a str, String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "{what} `{name}` is not a plain PostgreSQL identifier (letters, digits and `_`, not starting with a digit)"
        ))
    }
}

/// A text as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Capture<'_> {
    /// The SQL that installs the capture: a function and its trigger
    /// (replacing an earlier capture of the same table).
    pub fn sql(&self) -> Result<String, String> {
        let (schema, table) = match self.table.split_once('.') {
            Some((schema, table)) => (Some(identifier("schema", schema)?), table),
            None => (None, self.table),
        };
        let table = identifier("table", table)?;
        let qualified = match schema {
            Some(schema) => format!("\"{schema}\".\"{table}\""),
            None => format!("\"{table}\""),
        };
        if self.event.is_empty() || self.event.contains(char::is_whitespace) {
            return Err(format!(
                "event prefix `{}`: expected a name such as `reservation`",
                self.event
            ));
        }
        let key = match self.key {
            Some(col) => format!("NEW.\"{}\"::text", identifier("key column", col)?),
            None => "NULL".to_string(),
        };
        let tenant = match self.tenant_column {
            Some(col) => format!("NEW.\"{}\"::text", identifier("tenant column", col)?),
            None => literal(self.tenant),
        };
        let function = format!(
            "steward_capture_{}{table}",
            schema.map_or(String::new(), |s| format!("{s}_"))
        );
        let prefix = literal(self.event);
        Ok(format!(
            "-- Turns inserts and updates of {qualified} into `{event}.created` and\n\
             -- `{event}.updated` events, in the same transaction.\n\
             CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $steward$\n\
             BEGIN\n\
             \x20 INSERT INTO steward_events (tenant, id, type, occurred_at, key, payload, previous)\n\
             \x20 VALUES (\n\
             \x20   {tenant},\n\
             \x20   {prefix} || '.' || lower(TG_OP) || ':' || gen_random_uuid()::text,\n\
             \x20   {prefix} || CASE TG_OP WHEN 'INSERT' THEN '.created' ELSE '.updated' END,\n\
             \x20   now(),\n\
             \x20   {key},\n\
             \x20   to_jsonb(NEW),\n\
             \x20   CASE TG_OP WHEN 'UPDATE' THEN to_jsonb(OLD) END\n\
             \x20 );\n\
             \x20 RETURN NEW;\n\
             END;\n\
             $steward$;\n\
             DROP TRIGGER IF EXISTS steward_capture ON {qualified};\n\
             CREATE TRIGGER steward_capture AFTER INSERT OR UPDATE ON {qualified}\n\
             \x20 FOR EACH ROW EXECUTE FUNCTION {function}();\n",
            event = self.event,
        ))
    }
}

/// Runs `sql` (several statements) on the PostgreSQL database at `url`,
/// after its migrations (so `steward_events` exists).
pub fn apply(url: &str, sql: &str) -> Result<(), String> {
    let target = crate::Target::parse(url);
    if !matches!(target, crate::Target::Postgres(_)) {
        return Err(format!(
            "`steward pg capture --apply` needs PostgreSQL, not {target}"
        ));
    }
    target.migrate().map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        use sqlx::{Connection, Executor};
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let mut tx = c.begin().await.map_err(|e| e.to_string())?;
        tx.execute(sql).await.map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())
    })
}
