//! The built-in actions, declared once.
//!
//! Each action is declared here with its parameters: their names, in the
//! order they are documented, their types, and what each one is. An action's
//! arguments appear in its output (replay lines, the outbox, `expect` in
//! tests) under exactly these names. The checker types the statements
//! (`send`, `notify role`, `create task`, `emit`, `log`) against them, the
//! checker's typed tree names the arguments by them, the test runner matches
//! expectations against them, `docs/stdlib.md` and the editor's completion
//! are made from them, and a test runs the engine over the examples to see
//! that what it performs has these arguments and no others.
//!
//! Two conventions, one each: the first parameter is what `expect ACTION
//! TARGET` names (`expect send welcome` is the `message` `welcome`); and the
//! fields given to `expect emit EVENT { ... }` are the fields of the
//! [`ParamType::Payload`] argument.

use super::types::Type;

/// A built-in action.
#[derive(Debug)]
pub struct Builtin {
    /// The action's name in output and in `expect`.
    pub name: &'static str,
    /// How a rule runs it (or that the engine does).
    pub form: &'static str,
    pub doc: &'static str,
    pub params: &'static [Param],
    /// Performed by the engine (an approval asked for or cancelled), not
    /// written as a statement.
    pub by_engine: bool,
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub doc: &'static str,
}

/// What a parameter holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    Text,
    OptionalText,
    /// An address, or a list of them.
    Addresses,
    OptionalAddresses,
    DateTime,
    OptionalDateTime,
    /// The payload of an emitted event: a record of that event's type.
    Payload,
}

impl ParamType {
    /// The type a value given for it must have (a list of addresses is
    /// allowed besides, see [`ParamType::takes_list`]).
    pub fn ty(self) -> Type {
        match self {
            ParamType::Text | ParamType::Addresses => Type::String,
            ParamType::OptionalText | ParamType::OptionalAddresses => Type::String.optional(),
            ParamType::DateTime => Type::DateTime,
            ParamType::OptionalDateTime => Type::DateTime.optional(),
            ParamType::Payload => Type::Error,
        }
    }

    /// Whether a list of strings is accepted too.
    pub fn takes_list(self) -> bool {
        matches!(self, ParamType::Addresses | ParamType::OptionalAddresses)
    }

    pub fn is_optional(self) -> bool {
        matches!(
            self,
            ParamType::OptionalText | ParamType::OptionalAddresses | ParamType::OptionalDateTime
        )
    }

    /// As the reference shows it.
    pub fn shown(self) -> &'static str {
        match self {
            ParamType::Text => "string",
            ParamType::OptionalText => "string?",
            ParamType::Addresses => "string | list<string>",
            ParamType::OptionalAddresses => "(string | list<string>)?",
            ParamType::DateTime => "datetime",
            ParamType::OptionalDateTime => "datetime?",
            ParamType::Payload => "the event's payload",
        }
    }
}

const fn param(name: &'static str, ty: ParamType, doc: &'static str) -> Param {
    Param { name, ty, doc }
}

use ParamType::*;

/// Every built-in action.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "send",
        form: "send MESSAGE",
        doc: "Sends a declared `message`: `send welcome`. The message's fields are rendered in \
              the scope of the rule that sends it, and are the action's arguments.",
        params: &[
            param("message", Text, "the message's name"),
            param("to", Addresses, "whom it goes to"),
            param("subject", Text, "its subject line"),
            param("body", Text, "its text"),
            param("cc", OptionalAddresses, "copied to"),
            param("bcc", OptionalAddresses, "copied to, unseen"),
            param("reply_to", OptionalText, "where replies go"),
        ],
        by_engine: false,
    },
    Builtin {
        name: "notify",
        form: "notify role ROLE \"TEXT\" | notify [user] PERSON \"TEXT\"",
        doc: "Notifies everyone with a role (`notify role owner \"Price change for {listing_id}\"`) \
              or one person, a user id or an e-mail address held in an expression \
              (`notify owner_email \"...\"`, `notify user owner_id \"...\"`). A notification to an \
              address is also mailed, through the outbox like `send`.",
        params: &[
            param("role", OptionalText, "the role notified (`notify role NAME`)"),
            param(
                "assignee",
                OptionalText,
                "the person notified: a user id, or an address (mailed)",
            ),
            param("text", Text, "what they are told"),
        ],
        by_engine: false,
    },
    Builtin {
        name: "create_task",
        form: "create task \"TITLE\" for (role ROLE | [user] PERSON) [due TIME]",
        doc: "Creates a task for a role or for one person (a user id or an e-mail address held in \
              an expression), with an optional due time: \
              `create task \"Call the guest\" for role ops_admin due now() + 2h`, \
              `create task \"Follow up on {name}\" for owner_id due now() + 2d`.",
        params: &[
            param("role", OptionalText, "the role the task is for"),
            param("assignee", OptionalText, "the person the task is for"),
            param("title", Text, "what is to be done"),
            param("due", OptionalDateTime, "when it is due"),
        ],
        by_engine: false,
    },
    Builtin {
        name: "emit",
        form: "emit EVENT { FIELD: VALUE, ... }",
        doc: "Emits a new event, handled like any other: `emit digest.requested { team: \"ops\" }`. \
              Chains of events that emit each other are bounded by the engine.",
        params: &[
            param("event_type", Text, "the type of the event emitted"),
            param("payload", Payload, "its payload, the fields as given"),
        ],
        by_engine: false,
    },
    Builtin {
        name: "log",
        form: "log \"TEXT\"",
        doc: "Writes a line to the engine's log, visible in `explain` and traces: `log \"skipped {id}\"`.",
        params: &[param("text", Text, "the line")],
        by_engine: false,
    },
    Builtin {
        name: "approval_requested",
        form: "require approval from role ROLE within DURATION do ... else ... end",
        doc: "Performed when a rule asks for an approval: who may decide, and by when. \
              A decision runs the approval's blocks; the deadline passing runs its `else`.",
        params: &[
            param("role", Text, "who may decide"),
            param("approval", Text, "the approval's id, for deciding it"),
            param("deadline", DateTime, "when it expires"),
        ],
        by_engine: true,
    },
    Builtin {
        name: "approval_cancelled",
        form: "(by the engine)",
        doc: "Performed when a pending approval is cancelled, such as when its rule asks again \
              for the same key and the new request supersedes it.",
        params: &[
            param("approval", Text, "the approval's id"),
            param("reason", Text, "why it was cancelled"),
        ],
        by_engine: true,
    },
];

/// The built-in action `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

impl Builtin {
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The parameter `expect ACTION TARGET` names.
    pub fn target(&self) -> Option<&'static Param> {
        self.params.first()
    }
}

/// The Markdown reference of the built-in actions, for `docs/stdlib.md`.
pub fn reference() -> String {
    let mut out = String::new();
    for b in BUILTINS {
        out.push_str(&format!("### `{}`\n\n", b.name));
        out.push_str(&format!("```\n{}\n```\n\n{}\n\n", b.form, b.doc));
        out.push_str("| argument | type | |\n|---|---|---|\n");
        for p in b.params {
            let shown = p.ty.shown().replace('|', "\\|");
            out.push_str(&format!("| `{}` | `{shown}` | {} |\n", p.name, p.doc));
        }
        out.push('\n');
    }
    out
}

/// The send's message fields: its parameters after `message`, and whether
/// each is required.
pub fn message_fields() -> impl Iterator<Item = &'static Param> {
    builtin("send").map_or(&[][..], |b| b.params).iter().skip(1)
}
