//! The engine core: compiled rules and the runtime that runs them, with no
//! IO of its own. Time comes from the caller (a virtual clock in `replay` and
//! `test`), state lives behind [`store::Store`], and what the rules do comes
//! out through [`action::Sink`]. The database-backed engines reuse all of it.
//!
//! The modules, each using only those above it:
//! - [`value`]: runtime values and faults.
//! - [`decode`]: JSON text to slot-laid-out records, by the declared schema.
//! - [`action`]: actions as performed, their keys, rule errors, the sink.
//! - `rhai`: values into and out of Rhai scripts.
//! - [`program`]: the compiled program's shared definitions (rules, ops,
//!   frames, the library).
//! - [`eval`], `builtins`, `pred`, `index`: operators, built-in functions,
//!   conditions with inline leaves, the rule index.
//! - `lower`: the checker's typed tree ([`crate::hir`]) to closures, blocks
//!   and the rule index ([`compile`]).
//! - [`store`]: the store contract, units of work, and [`MemoryStore`].
//! - [`runtime`]: events, timers, approvals and schedules, in time order.
//! - [`stored`], [`testing`]: state as data; `test` blocks.

pub mod action;
pub(crate) mod builtins;
pub(crate) mod calendar;
pub mod decode;
pub mod eval;
pub mod history;
pub(crate) mod index;
pub(crate) mod lower;
pub(crate) mod pred;
pub mod program;
pub mod quiet;
pub mod repeat;
pub(crate) mod rhai;
pub mod runtime;
pub mod store;
pub mod stored;
pub mod testing;
pub mod value;

pub use action::{Action, ActionKey, Collect, Performed, RuleError, Sink};
pub use decode::{decode_event, DecodeError, Event};
pub use lower::{compile, compile_with, conforms, Options, Ruleset};
pub use runtime::{AutoDecide, Engine, Handled, Limits, Refused};
pub use store::{MemoryStore, Store};
pub use value::Value;
