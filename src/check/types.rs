//! Types, and the declarations they refer to.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::diag::{FileId, Span};

/// Where something is declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub file: FileId,
    pub span: Span,
}

/// Index of a record (a `type`, or an event's payload) in [`Program::records`].
pub type RecordId = u32;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Int,
    Float,
    Decimal,
    Bool,
    String,
    Date,
    DateTime,
    Duration,
    List(Box<Type>),
    Record(RecordId),
    /// A string-literal union such as `"airbnb" | "vrbo"`, members as declared.
    Union(Arc<[String]>),
    Optional(Box<Type>),
    /// A literal with a fractional part (`0.5`): a `float` or an exact
    /// `decimal`, whichever its use needs.
    Number,
    /// The `none` literal.
    None,
    /// A type parameter of a standard-library function.
    Var(u32),
    /// The type of something already reported as wrong; it fits everywhere,
    /// so one mistake gives one diagnostic.
    Error,
}

impl Type {
    /// The built-in type a name such as `int` or `datetime` names.
    pub fn builtin(name: &str) -> Option<Type> {
        Some(match name {
            "int" => Type::Int,
            "float" => Type::Float,
            "decimal" => Type::Decimal,
            "bool" => Type::Bool,
            "string" => Type::String,
            "date" => Type::Date,
            "datetime" => Type::DateTime,
            "duration" => Type::Duration,
            _ => return None,
        })
    }

    pub fn optional(self) -> Type {
        match self {
            Type::Optional(_) | Type::Error => self,
            other => Type::Optional(Box::new(other)),
        }
    }

    /// The type without its `?`.
    pub fn present(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    pub fn is_optional(&self) -> bool {
        matches!(self, Type::Optional(_))
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Decimal | Type::Number)
    }

    pub fn is_stringy(&self) -> bool {
        matches!(self, Type::String | Type::Union(_))
    }

    /// Whether values of this type can be shown in text (`{expr}` in strings).
    pub fn is_displayable(&self) -> bool {
        matches!(
            self,
            Type::Int
                | Type::Float
                | Type::Decimal
                | Type::Number
                | Type::Bool
                | Type::String
                | Type::Union(_)
                | Type::Date
                | Type::DateTime
                | Type::Duration
                | Type::Error
        )
    }

    /// Whether `<`, `<=`, `>`, `>=` order values of this type.
    pub fn is_ordered(&self) -> bool {
        self.is_numeric()
            || matches!(
                self,
                Type::String | Type::Date | Type::DateTime | Type::Duration | Type::Error
            )
    }

    /// Replaces type parameters by what they were bound to.
    pub fn substitute(&self, bound: &HashMap<u32, Type>) -> Type {
        match self {
            Type::Var(v) => bound.get(v).cloned().unwrap_or(Type::Error),
            Type::List(t) => Type::List(Box::new(t.substitute(bound))),
            Type::Optional(t) => Type::Optional(Box::new(t.substitute(bound))),
            other => other.clone(),
        }
    }
}

/// A record type: a declared `type`, or the payload of an `event`.
#[derive(Clone, Debug)]
pub struct RecordDef {
    pub name: String,
    pub loc: Loc,
    pub fields: Vec<FieldDef>,
    pub is_event: bool,
}

impl RecordDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: String,
    pub ty: Type,
    pub loc: Loc,
}

/// A parameter of a function or action.
#[derive(Clone, Debug)]
pub struct ParamDef {
    pub name: String,
    pub ty: Type,
    pub loc: Loc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FnKind {
    /// Written in Steward, with an expression body.
    Steward,
    /// Written in Rhai, `from rhai "file"`.
    Rhai,
    /// Built in: declared `extern` in `stdlib/`, implemented by the engine.
    Builtin,
}

#[derive(Clone, Debug)]
pub struct FnSig {
    pub name: String,
    pub loc: Loc,
    pub kind: FnKind,
    pub params: Vec<ParamDef>,
    pub ret: Type,
    /// How many type parameters (`Var(0)`..) the signature uses.
    pub type_params: u32,
}

#[derive(Clone, Debug)]
/// A webhook action: `action name(...) via webhook "..."`. (The built-in
/// actions are declared in `check::actions`.)
pub struct ActionSig {
    pub name: String,
    pub loc: Loc,
    pub params: Vec<ParamDef>,
    /// Where its deliveries are POSTed and with which headers; none for a
    /// block action (`do ... end`), whose statements run where it is called.
    pub webhook: Option<Webhook>,
}

/// Where a webhook action's deliveries go: its URL and its headers, as the
/// engine records them with each action (a secret by name, never its value).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Webhook {
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebhookHeader>,
}

/// One header of a webhook: `text`, then the value of the tenant's secret
/// `secret` when there is one (`"Bearer " + secret pms_token`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookHeader {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Where the declarations of one program are and what types they have:
/// the checker's symbol table, also read by the compiler and the editor.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub records: Vec<RecordDef>,
    pub types: HashMap<String, RecordId>,
    pub events: HashMap<String, RecordId>,
    /// Message name to (file, index of the item in that file).
    pub messages: HashMap<String, (FileId, usize)>,
    pub actions: HashMap<String, ActionSig>,
    /// Function name to its signatures (built-ins may have several).
    pub functions: HashMap<String, Vec<FnSig>>,
}

/// What [`Program::record`] answers for an id it did not hand out (none
/// reaches it): a record of no fields, nowhere.
static NO_RECORD: RecordDef = RecordDef {
    name: String::new(),
    loc: Loc {
        file: 0,
        span: Span { start: 0, end: 0 },
    },
    fields: Vec::new(),
    is_event: false,
};

impl Program {
    pub fn record(&self, id: RecordId) -> &RecordDef {
        self.records.get(id as usize).unwrap_or(&NO_RECORD)
    }

    /// Shows a type the way users write it.
    pub fn show(&self, ty: &Type) -> String {
        ShowType { program: self, ty }.to_string()
    }

    /// Whether a value of type `from` (with the constant string `konst`, if it
    /// is one) may be used where `to` is expected.
    pub fn assignable(&self, from: &Type, konst: Option<&str>, to: &Type) -> bool {
        match (from, to) {
            (Type::Error, _) | (_, Type::Error) => true,
            (a, b) if a == b => true,
            (Type::Int, Type::Float | Type::Decimal)
            | (Type::Number, Type::Float | Type::Decimal) => true,
            (Type::None, Type::Optional(_)) => true,
            (Type::Optional(a), Type::Optional(b)) => self.assignable(a, konst, b),
            (a, Type::Optional(b)) => self.assignable(a, konst, b),
            (Type::Union(_), Type::String) => true,
            (Type::Union(a), Type::Union(b)) => a.iter().all(|m| b.contains(m)),
            (Type::String, Type::Union(b)) => konst.is_some_and(|k| b.iter().any(|m| m == k)),
            (Type::List(a), Type::List(b)) => self.assignable(a, None, b),
            _ => false,
        }
    }
}

/// Union members as written in messages: `"airbnb", "vrbo"`.
pub fn quoted_members<S: AsRef<str>>(members: &[S]) -> String {
    members
        .iter()
        .map(|m| format!("\"{}\"", m.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

struct ShowType<'a> {
    program: &'a Program,
    ty: &'a Type,
}

impl fmt::Display for ShowType<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |ty| ShowType {
            program: self.program,
            ty,
        };
        match self.ty {
            Type::Int => f.write_str("int"),
            Type::Float | Type::Number => f.write_str("float"),
            Type::Decimal => f.write_str("decimal"),
            Type::Bool => f.write_str("bool"),
            Type::String => f.write_str("string"),
            Type::Date => f.write_str("date"),
            Type::DateTime => f.write_str("datetime"),
            Type::Duration => f.write_str("duration"),
            Type::List(t) => write!(f, "list<{}>", show(t)),
            Type::Record(id) => f.write_str(&self.program.record(*id).name),
            Type::Union(members) => {
                let quoted: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
                f.write_str(&quoted.join(" | "))
            }
            Type::Optional(t) => match **t {
                Type::Union(_) => write!(f, "({})?", show(t)),
                _ => write!(f, "{}?", show(t)),
            },
            Type::None => f.write_str("none"),
            Type::Var(v) => write!(f, "{}", (b'T' + *v as u8) as char),
            Type::Error => f.write_str("{unknown}"),
        }
    }
}
