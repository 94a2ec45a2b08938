//! The engine core: compiled rules and the runtime that runs them, with no
//! IO of its own. Time comes from the caller (a virtual clock in `replay` and
//! `test`), state lives behind [`store::Store`], and what the rules do comes
//! out through [`runtime::Sink`]. The database-backed engines reuse all of it.
//!
//! - [`decode`]: JSON text to slot-laid-out records, by the declared schema.
//! - [`program`]: the compiled program's shared definitions (rules, ops,
//!   frames, the library).
//! - [`lower`]: the checker's typed tree to closures, blocks and the rule index.
//! - [`pred`]: conditions as trees with inline leaves.
//! - [`eval`], [`builtins`], [`rhai`]: what compiled code runs on.
//! - [`index`]: which rules an event can match.
//! - [`store`]: timers, approvals, throttles, schedules; in memory here.
//! - [`runtime`]: events, timers, approvals and schedules, in time order.
//! - [`testing`]: `test` blocks.

pub(crate) mod builtins;
pub mod decode;
pub mod eval;
pub(crate) mod index;
pub(crate) mod lower;
pub(crate) mod pred;
pub mod program;
pub(crate) mod rhai;
pub mod runtime;
pub mod store;
pub mod stored;
pub mod testing;
pub mod value;

pub use decode::{decode_event, DecodeError, Event};
pub use lower::{compile, compile_with, conforms, Options, Ruleset};
pub use runtime::{
    Action, ActionKey, AutoDecide, Collect, Engine, Handled, Limits, Performed, Refused, RuleError,
    Sink,
};
pub use store::{MemoryStore, Store};
pub use value::Value;
