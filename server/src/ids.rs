//! Ids as the API shows them: opaque and safe in a URL path as they are.
//!
//! An approval's id in the engine names where it was asked
//! (`acme/price_changes/p1/136309451`: tenant, rule, event, step) and holds
//! `/`; a timer's (`key~rule~step`) holds whatever the event's key holds.
//! The API shows them as a prefix and the URL-safe base64 of that text
//! (`apr_YWNtZS9...`, `tmr_...`), which a client can put in a path as it
//! is. A path may still give an approval's engine id, percent-encoded (the
//! form earlier releases showed), for a release.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

const APPROVAL: &str = "apr_";
const TIMER: &str = "tmr_";

/// An approval's id as the API shows it.
pub fn approval(engine_id: &str) -> String {
    format!("{APPROVAL}{}", URL_SAFE_NO_PAD.encode(engine_id))
}

/// The engine's id of the approval a path names: its API id, or the
/// engine's id itself (percent-encoded in the path, decoded by then).
pub fn approval_from_path(given: &str) -> String {
    given
        .strip_prefix(APPROVAL)
        .and_then(|rest| URL_SAFE_NO_PAD.decode(rest).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| given.to_string())
}

/// A timer's id as the API shows it.
pub fn timer(engine_id: &str) -> String {
    format!("{TIMER}{}", URL_SAFE_NO_PAD.encode(engine_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_ids_go_into_paths_as_they_are_and_come_back() {
        let engine = "acme/price_changes/p1/136309451";
        let shown = approval(engine);
        assert!(shown
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        assert_eq!(approval_from_path(&shown), engine);
        // The engine's own id, as earlier releases showed it.
        assert_eq!(approval_from_path(engine), engine);
        // Not base64 after the prefix: taken as given (and not found).
        assert_eq!(approval_from_path("apr_!!"), "apr_!!");
    }
}
