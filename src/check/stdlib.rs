//! The standard library: Steward source in `stdlib/`, embedded in the binary
//! so `steward` works from any directory, and loaded before every program.

/// The standard library's files, by name.
pub const FILES: &[(&str, &str)] = &[
    ("envelope.stw", include_str!("../../stdlib/envelope.stw")),
    ("actions.stw", include_str!("../../stdlib/actions.stw")),
    ("functions.stw", include_str!("../../stdlib/functions.stw")),
];

/// The name under which every event-triggered rule sees the event's envelope.
pub const ENVELOPE: &str = "envelope";
/// The name under which every event-triggered rule sees the whole payload.
pub const EVENT: &str = "event";
/// The stdlib type of [`ENVELOPE`].
pub const ENVELOPE_TYPE: &str = "Envelope";
