//! Conditions as a small tree whose common leaves run inline: a field of the
//! event against a constant number, a text field against a set of constant
//! texts, a bool field. `and`, `or` and `not` are nodes of the tree, so a
//! condition like `(channel == "airbnb" or channel == "vrbo") and total > 300.0
//! and not guest.vip` costs one call and a few loads, not a closure call per
//! operator. Anything else is a compiled closure at a leaf ([`Pred::Other`]).

use std::cmp::Ordering;
use std::sync::Arc;

use super::eval::{fault, test, Cond, Fault, Frame};
use super::program::{slot, Place, Root};
use super::value::{same_text, Value};
use crate::syntax::ast::BinaryOp;

static NONE: Value = Value::None;

/// Where a leaf reads its value: the payload's slots directly for the usual
/// one- and two-step paths (`risk`, `guest.vip`), any [`Place`] otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Slot(usize),
    Slot2(usize, usize),
    Place(Place),
}

impl Access {
    pub fn of(place: Place) -> Access {
        match (place.root, place.path.as_slice()) {
            (Root::Event, [a]) => Access::Slot(*a),
            (Root::Event, [a, b]) => Access::Slot2(*a, *b),
            _ => Access::Place(place),
        }
    }

    #[inline(always)]
    fn get<'f>(&self, f: &Frame<'f>) -> &'f Value {
        match self {
            Access::Slot(a) => slot(&f.event.slots, *a),
            Access::Slot2(a, b) => match slot(&f.event.slots, *a) {
                Value::Record(r) => slot(&r.slots, *b),
                // Through an absent optional record: absent.
                _ => &NONE,
            },
            Access::Place(p) => p.get(f),
        }
    }
}

/// A compiled condition before it becomes a [`Cond`].
pub enum Pred {
    Const(bool),
    All(Box<[Pred]>),
    Any(Box<[Pred]>),
    Not(Box<Pred>),
    /// `field op constant` with a float constant.
    Float {
        at: Access,
        op: BinaryOp,
        k: f64,
    },
    /// `field op constant` with an int constant.
    Int {
        at: Access,
        op: BinaryOp,
        k: i64,
    },
    /// `field == "a"`, `field in ["a", "b"]`, and their negations.
    Text {
        at: Access,
        set: Box<[Arc<str>]>,
        negate: bool,
    },
    /// A bool field, or its negation.
    Bool {
        at: Access,
        want: bool,
    },
    /// `field op constant` for other kinds of constant.
    Compare {
        at: Access,
        op: BinaryOp,
        k: Value,
    },
    Other(Cond),
}

#[inline(always)]
fn holds(op: BinaryOp, o: Ordering) -> bool {
    match op {
        BinaryOp::Lt => o == Ordering::Less,
        BinaryOp::Le => o != Ordering::Greater,
        BinaryOp::Gt => o == Ordering::Greater,
        BinaryOp::Ge => o != Ordering::Less,
        BinaryOp::Eq => o == Ordering::Equal,
        _ => o != Ordering::Equal,
    }
}

impl Pred {
    /// `place op constant`, for a comparison operator.
    pub fn compare(place: Place, op: BinaryOp, k: Value) -> Pred {
        let at = Access::of(place);
        match k {
            Value::Float(k) => Pred::Float { at, op, k },
            Value::Int(k) => Pred::Int { at, op, k },
            Value::Str(k) if matches!(op, BinaryOp::Eq | BinaryOp::Ne) => Pred::Text {
                at,
                set: Box::new([k]),
                negate: op == BinaryOp::Ne,
            },
            k => Pred::Compare { at, op, k },
        }
    }

    /// `place in [texts]`, or `not in`.
    pub fn text_in(place: Place, set: Vec<Arc<str>>, negate: bool) -> Pred {
        Pred::Text {
            at: Access::of(place),
            set: set.into(),
            negate,
        }
    }

    /// `a and b`, flattening nested `and`s.
    pub fn all(a: Pred, b: Pred) -> Pred {
        let mut parts = Vec::new();
        for p in [a, b] {
            match p {
                Pred::All(ps) => parts.extend(ps.into_vec()),
                p => parts.push(p),
            }
        }
        Pred::All(parts.into())
    }

    /// `a or b`, flattening nested `or`s and merging equality tests of one
    /// text field into one set (`channel == "a" or channel == "b"`).
    pub fn any(a: Pred, b: Pred) -> Pred {
        let mut parts: Vec<Pred> = Vec::new();
        for p in [a, b] {
            let ps = match p {
                Pred::Any(ps) => ps.into_vec(),
                p => vec![p],
            };
            for p in ps {
                if let (
                    Some(Pred::Text {
                        at,
                        set,
                        negate: false,
                    }),
                    Pred::Text {
                        at: at2,
                        set: set2,
                        negate: false,
                    },
                ) = (parts.last_mut(), &p)
                {
                    if at == at2 {
                        let mut merged = set.to_vec();
                        merged.extend(set2.iter().cloned());
                        *set = merged.into();
                        continue;
                    }
                }
                parts.push(p);
            }
        }
        if let [_] = parts.as_slice() {
            if let Some(one) = parts.pop() {
                return one;
            }
        }
        Pred::Any(parts.into())
    }

    pub fn eval(&self, f: &Frame) -> Result<bool, Fault> {
        match self {
            Pred::All(ps) => {
                for p in ps.iter() {
                    if !p.step(f)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Pred::Any(ps) => {
                for p in ps.iter() {
                    if p.step(f)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Pred::Not(p) => Ok(!p.step(f)?),
            leaf => leaf.step(f),
        }
    }

    /// A leaf, inline in the loop of its parent; a node, by a call.
    #[inline(always)]
    fn step(&self, f: &Frame) -> Result<bool, Fault> {
        match self {
            Pred::Const(b) => Ok(*b),
            Pred::Float { at, op, k } => Ok(float(at.get(f), *op, *k)),
            Pred::Int { at, op, k } => Ok(int(at.get(f), *op, *k)),
            Pred::Text { at, set, negate } => Ok(text(at.get(f), set) != *negate),
            Pred::Bool { at, want } => boolean(at.get(f), *want),
            Pred::Compare { at, op, k } => Ok(test(*op, at.get(f), k)),
            Pred::Other(c) => c(f),
            node => node.eval(f),
        }
    }

    /// The closure the engine calls: a leaf gets a closure of its own kind,
    /// a tree one closure that walks it.
    pub fn into_cond(self) -> Cond {
        match self {
            Pred::Const(b) => Box::new(move |_| Ok(b)),
            // The shape of `risk < 0.5`: straight to the slot, the operator fixed.
            Pred::Float {
                at: Access::Slot(at),
                op,
                k,
            } => match op {
                BinaryOp::Lt => {
                    Box::new(move |f| Ok(float(slot(&f.event.slots, at), BinaryOp::Lt, k)))
                }
                BinaryOp::Le => {
                    Box::new(move |f| Ok(float(slot(&f.event.slots, at), BinaryOp::Le, k)))
                }
                BinaryOp::Gt => {
                    Box::new(move |f| Ok(float(slot(&f.event.slots, at), BinaryOp::Gt, k)))
                }
                BinaryOp::Ge => {
                    Box::new(move |f| Ok(float(slot(&f.event.slots, at), BinaryOp::Ge, k)))
                }
                op => Box::new(move |f| Ok(float(slot(&f.event.slots, at), op, k))),
            },
            Pred::Float { at, op, k } => Box::new(move |f| Ok(float(at.get(f), op, k))),
            Pred::Int { at, op, k } => Box::new(move |f| Ok(int(at.get(f), op, k))),
            Pred::Text { at, set, negate } => {
                Box::new(move |f| Ok(text(at.get(f), &set) != negate))
            }
            Pred::Bool { at, want } => Box::new(move |f| boolean(at.get(f), want)),
            Pred::Other(c) => c,
            tree => Box::new(move |f| tree.eval(f)),
        }
    }
}

/// `not`, folded into the leaves that can take it.
impl std::ops::Not for Pred {
    type Output = Pred;

    fn not(self) -> Pred {
        match self {
            Pred::Const(b) => Pred::Const(!b),
            Pred::Not(inner) => *inner,
            Pred::Text { at, set, negate } => Pred::Text {
                at,
                set,
                negate: !negate,
            },
            Pred::Bool { at, want } => Pred::Bool { at, want: !want },
            other => Pred::Not(Box::new(other)),
        }
    }
}

#[inline(always)]
fn float(v: &Value, op: BinaryOp, k: f64) -> bool {
    match v {
        Value::Float(x) => x.partial_cmp(&k).is_some_and(|o| holds(op, o)),
        other => mixed(op, other, &Value::Float(k)),
    }
}

#[inline(always)]
fn int(v: &Value, op: BinaryOp, k: i64) -> bool {
    match v {
        Value::Int(x) => holds(op, x.cmp(&k)),
        other => mixed(op, other, &Value::Int(k)),
    }
}

/// Whether a text is in the set; anything that is not a text (an absent
/// optional) is in no set.
#[inline(always)]
fn text(v: &Value, set: &[Arc<str>]) -> bool {
    match v {
        Value::Str(s) => set.iter().any(|k| same_text(k.as_bytes(), s.as_bytes())),
        _ => false,
    }
}

#[inline(always)]
fn boolean(v: &Value, want: bool) -> Result<bool, Fault> {
    match v {
        Value::Bool(b) => Ok(*b == want),
        other => not_bool(other),
    }
}

/// A number of another kind, or an absent optional: the general comparison,
/// out of the way of the common case.
#[cold]
#[inline(never)]
fn mixed(op: BinaryOp, v: &Value, k: &Value) -> bool {
    test(op, v, k)
}

#[cold]
#[inline(never)]
fn not_bool(v: &Value) -> Result<bool, Fault> {
    fault(format!("expected a bool, found a {}", v.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::program::Library;
    use crate::engine::value::Record;

    fn frame_with<R>(slots: Vec<Value>, run: impl FnOnce(&Frame) -> R) -> R {
        let event = Arc::new(Record {
            shape: 0,
            slots: slots.into(),
        });
        let envelope = Arc::new(Record {
            shape: 0,
            slots: Box::new([]),
        });
        let lib = Library::empty();
        let frame = Frame {
            event: &event,
            envelope: &envelope,
            locals: &[],
            recalled: &[],
            now: Default::default(),
            lib: &lib,
        };
        run(&frame)
    }

    fn at(slot: usize) -> Place {
        Place {
            root: Root::Event,
            path: vec![slot],
        }
    }

    #[test]
    fn equality_tests_of_one_field_merge_into_a_set() {
        let eq = |slot, k: &str| Pred::compare(at(slot), BinaryOp::Eq, Value::str(k));
        let p = Pred::any(eq(0, "airbnb"), eq(0, "vrbo"));
        let Pred::Text { set, negate, .. } = &p else {
            panic!("one set")
        };
        assert_eq!(set.len(), 2);
        assert!(!negate);
        // Different fields stay apart.
        assert!(matches!(Pred::any(eq(0, "a"), eq(1, "b")), Pred::Any(ps) if ps.len() == 2));
        let cond = p.into_cond();
        for (channel, want) in [("vrbo", true), ("airbnb", true), ("booking", false)] {
            assert_eq!(frame_with(vec![Value::str(channel)], |f| cond(f)), Ok(want));
        }
        // An absent optional is equal to no text, so `!=` holds.
        let ne = Pred::compare(at(0), BinaryOp::Ne, Value::str("a")).into_cond();
        assert_eq!(frame_with(vec![Value::None], |f| ne(f)), Ok(true));
    }

    #[test]
    fn not_folds_into_leaves_and_numbers_keep_mixed_kinds() {
        let vip = Pred::Bool {
            at: Access::of(at(0)),
            want: true,
        };
        let cond = (!vip).into_cond();
        assert_eq!(frame_with(vec![Value::Bool(false)], |f| cond(f)), Ok(true));
        assert!(frame_with(vec![Value::None], |f| cond(f)).is_err());

        // A float constant against an int field compares by value.
        let gt = Pred::compare(at(0), BinaryOp::Gt, Value::Float(2.5)).into_cond();
        assert_eq!(frame_with(vec![Value::Int(3)], |f| gt(f)), Ok(true));
        assert_eq!(
            frame_with(vec![Value::Float(f64::NAN)], |f| gt(f)),
            Ok(false)
        );

        let tree = Pred::all(
            Pred::compare(at(0), BinaryOp::Ge, Value::Int(2)),
            !Pred::compare(at(1), BinaryOp::Lt, Value::Float(0.5)),
        )
        .into_cond();
        assert_eq!(
            frame_with(vec![Value::Int(2), Value::Float(0.7)], |f| tree(f)),
            Ok(true)
        );
        assert_eq!(
            frame_with(vec![Value::Int(1), Value::Float(0.7)], |f| tree(f)),
            Ok(false)
        );
    }
}
