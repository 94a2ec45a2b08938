//! Lists: `?limit=` and `?cursor=`, and the page types.

use super::*;

pub(crate) const DEFAULT_LIMIT: i64 = 50;
pub(crate) const MAX_LIMIT: i64 = 500;

/// `?limit=` (1 to 500, default 50) and `?cursor=` (from `next_cursor`).
pub(crate) fn page(limit: Option<i64>, cursor: &Option<String>) -> Result<Page, Problem> {
    use base64::Engine as _;
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(
            "invalid_query",
            format!("`limit` is {limit}; it must be from 1 to {MAX_LIMIT}"),
        ));
    }
    let after = match cursor.as_deref() {
        None | Some("") => None,
        Some(c) => {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .map_err(|_| {
                    Problem::bad_request("invalid_cursor", "`cursor` is not one this API gave")
                })?;
            Some(String::from_utf8(bytes).map_err(|_| {
                Problem::bad_request("invalid_cursor", "`cursor` is not one this API gave")
            })?)
        }
    };
    Ok(Page {
        after,
        // One more than asked, to know whether there is a next page.
        limit: limit.saturating_add(1),
    })
}

/// A page of rows, and the cursor of the next one (if there are more).
pub(crate) fn paged<T>(
    mut rows: Vec<T>,
    page: &Page,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    use base64::Engine as _;
    let wanted = usize::try_from(page.limit.saturating_sub(1)).unwrap_or(0);
    if rows.len() <= wanted {
        return (rows, None);
    }
    rows.truncate(wanted);
    let next = rows
        .last()
        .map(|r| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key(r)));
    (rows, next)
}

macro_rules! page_of {
    ($name:ident, $row:ty) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            pub data: Vec<$row>,
            /// Give it as `?cursor=` for the next page; null on the last.
            pub next_cursor: Option<String>,
        }
    };
}

page_of!(RulesetPage, RulesetHead);
page_of!(VersionPage, VersionSummary);
page_of!(EventPage, EventRow);
page_of!(ActionPage, OutboxRow);
page_of!(TimerPage, TimerRow);
page_of!(TaskPage, TaskRow);
page_of!(NotificationPage, NotificationRow);
page_of!(ApprovalPage, ApprovalRow);
page_of!(AuditPage, AuditEntry);

pub(crate) const SEP: char = '\u{1f}';

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 500, default 50.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}
