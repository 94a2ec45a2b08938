use serde::Serialize;

use super::Severity;

macro_rules! codes {
    ($($variant:ident = $code:literal, $severity:ident, $title:literal;)*) => {
        /// Every kind of diagnostic, with its stable code. Each is documented,
        /// with a wrong and a right example, in docs/errors.md (a test checks).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The stable code, such as `E0201`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }

            pub fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)*
                }
            }

            /// A short title, used as the heading in docs/errors.md.
            pub fn title(self) -> &'static str {
                match self {
                    $(Code::$variant => $title,)*
                }
            }
        }
    };
}

codes! {
    // Syntax.
    Syntax = "E0101", Error, "syntax error";
    UnterminatedString = "E0102", Error, "unterminated string";
    InvalidEscape = "E0103", Error, "invalid escape in a string";
    InvalidLiteral = "E0104", Error, "invalid literal";
    ExternOutsideStdlib = "E0105", Error, "`extern` outside the standard library";
    NotUtf8 = "E0106", Error, "file is not UTF-8";
    // Names.
    UnknownEvent = "E0201", Error, "unknown event";
    UnknownField = "E0202", Error, "unknown field";
    UnknownMessage = "E0203", Error, "unknown message";
    UnknownFunction = "E0204", Error, "unknown function or action";
    UnknownType = "E0205", Error, "unknown type";
    UnknownName = "E0206", Error, "unknown name";
    Duplicate = "E0207", Error, "duplicate declaration";
    DuplicateField = "E0208", Error, "duplicate field or argument";
    ReservedName = "E0209", Error, "reserved name";
    Shadowed = "E0210", Error, "name already defined";
    Recursive = "E0211", Error, "recursive function or action";
    RecursiveType = "E0212", Error, "type that requires itself";
    UnnamedStatefulRule = "E0213", Error, "rule that holds state has no name";
    // Types.
    TypeMismatch = "E0301", Error, "mismatched types";
    ConditionNotBool = "E0302", Error, "condition is not a `bool`";
    InvalidOperands = "E0303", Error, "operator cannot apply to these types";
    DecimalFloatMix = "E0304", Error, "`decimal` mixed with `float`";
    UncheckedOptional = "E0305", Error, "optional value used without a check";
    NotInUnion = "E0306", Error, "value outside a string union";
    ArgumentCount = "E0307", Error, "wrong number of arguments";
    BadArgument = "E0308", Error, "bad named argument";
    UnboundParameter = "E0309", Error, "message parameter not in scope";
    MessageShape = "E0310", Error, "bad message field";
    EmitPayload = "E0311", Error, "emitted payload does not match its event";
    NoFields = "E0312", Error, "field access on a value without fields";
    WrongKindOfCall = "E0313", Error, "function used as an action, or action as a function";
    TestPayload = "E0314", Error, "test payload does not match its event";
    // Time, schedules and other checked strings.
    InvalidCron = "E0401", Error, "invalid cron expression";
    UnknownTimeZone = "E0402", Error, "unknown time zone";
    UnlessField = "E0403", Error, "`unless ... on` field missing";
    InvalidRegex = "E0404", Error, "invalid regular expression";
    InvalidTiming = "E0405", Error, "invalid count or duration";
    DuplicateClause = "E0406", Error, "duplicate rule clause";
    InvalidUrl = "E0407", Error, "invalid webhook URL";
    RhaiFileMissing = "E0408", Error, "Rhai file not found";
    RhaiSyntax = "E0409", Error, "Rhai script does not compile";
    RhaiFileOutside = "E0410", Error, "Rhai file outside the rules' folders";
    NoHistory = "E0411", Error, "`previous`, `changed` or `count(...)` where no history is kept";
    QuietWithoutStart = "E0412", Error, "`when no` without what starts the clock";
    ScheduleWithoutEvent = "E0413", Error, "schedule statement outside a rule on an event";
    StopOutsideEvent = "E0414", Error, "`stop` where no event is being handled";
    NotInAction = "E0415", Error, "timer, approval or `stop` in an action's block";
    InvalidHeader = "E0416", Error, "invalid webhook header";
    UnknownSecret = "E0417", Error, "secret that is not set";
    // Warnings.
    UnusedLet = "W0101", Warning, "unused `let`";
    AlwaysFalse = "W0102", Warning, "condition is never true";
    AlwaysTrue = "W0103", Warning, "condition is always true";
    NeedlessDefault = "W0104", Warning, "`??` on a value that is never absent";
    RoleNamedLikeValue = "W0105", Warning, "role named like a value in scope";
    LikelyDuplicate = "W0106", Warning, "two rules do the same thing for one event";
    ShadowedRule = "W0107", Warning, "rule that a rule before it always stops";
    EmitCycle = "W0108", Warning, "rules that emit each other's events in a cycle";
    TimerNeverRuns = "W0109", Warning, "timer that is always skipped";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
