//! What compiled code runs on: the frame it reads, the faults it raises, and
//! the operators on values (exact decimal arithmetic, checked integers, time
//! arithmetic).

use std::cmp::Ordering;
use std::sync::Arc;

use rust_decimal::Decimal;

pub use super::program::{Cond, Eval, Frame};
use super::value::Value;
pub use super::value::{fault, Fault};
use crate::syntax::ast::BinaryOp;

/// The most bytes a text computed by a rule may hold (the Rhai sandbox has
/// its own, smaller bound). Values from events are bounded by their line.
pub const MAX_TEXT: usize = 1 << 20;
/// The most items a list computed by a rule may hold.
pub const MAX_LIST: usize = 100_000;

/// Faults when a text of `len` bytes would be more than [`MAX_TEXT`]; called
/// before the text is built.
pub fn text_fits(what: &str, len: usize) -> Result<(), Fault> {
    if len > MAX_TEXT {
        return fault(format!(
            "{what}: the text would be {len} bytes, more than the {MAX_TEXT} a text may hold"
        ));
    }
    Ok(())
}

/// Faults when a list of `len` items would be more than [`MAX_LIST`].
pub fn list_fits(what: &str, len: usize) -> Result<(), Fault> {
    if len > MAX_LIST {
        return fault(format!(
            "{what}: the list would have {len} items, more than the {MAX_LIST} a list may hold"
        ));
    }
    Ok(())
}

/// Equality as the language defines it: numbers by value across `int`,
/// `float` and `decimal`; `none` equals only `none`.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Decimal(x), Value::Decimal(y)) => x == y,
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (Value::Int(x), Value::Decimal(y)) | (Value::Decimal(y), Value::Int(x)) => {
            Decimal::from(*x) == *y
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equal(p, q))
        }
        (Value::Record(x), Value::Record(y)) => {
            x.slots.len() == y.slots.len()
                && x.slots.iter().zip(y.slots.iter()).all(|(p, q)| equal(p, q))
        }
        _ => a == b,
    }
}

/// Order of two values, when they are ordered.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Decimal(x), Value::Decimal(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Int(x), Value::Decimal(y)) => Some(Decimal::from(*x).cmp(y)),
        (Value::Decimal(x), Value::Int(y)) => Some(x.cmp(&Decimal::from(*y))),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x.cmp(y)),
        (Value::Duration(x), Value::Duration(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Applies a comparison operator.
pub fn test(op: BinaryOp, a: &Value, b: &Value) -> bool {
    match op {
        BinaryOp::Eq => equal(a, b),
        BinaryOp::Ne => !equal(a, b),
        BinaryOp::Lt => compare(a, b) == Some(Ordering::Less),
        BinaryOp::Le => matches!(compare(a, b), Some(Ordering::Less | Ordering::Equal)),
        BinaryOp::Gt => compare(a, b) == Some(Ordering::Greater),
        BinaryOp::Ge => matches!(compare(a, b), Some(Ordering::Greater | Ordering::Equal)),
        _ => false,
    }
}

const DAY_MS: i64 = 86_400_000;

/// `+ - * / %` on values. Integers are checked, decimals exact, and division
/// by zero is a fault for every kind of number.
pub fn arith(op: BinaryOp, a: &Value, b: &Value) -> Result<Value, Fault> {
    use BinaryOp::*;
    use Value as V;
    let overflow = || Fault::new(format!("arithmetic overflow in `{a} {} {b}`", op.as_str()));
    match (a, b) {
        (V::Int(x), V::Int(y)) => int_arith(op, *x, *y, overflow),
        (V::Float(_) | V::Int(_), V::Float(_) | V::Int(_)) => {
            float_arith(op, as_f64(a), as_f64(b), overflow)
        }
        (V::Decimal(_) | V::Int(_), V::Decimal(_) | V::Int(_)) => {
            decimal_arith(op, as_decimal(a), as_decimal(b), overflow)
        }
        (V::Str(x), V::Str(y)) if op == Add => {
            text_fits("+", x.len().saturating_add(y.len()))?;
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(V::Str(Arc::from(s)))
        }
        (V::List(x), V::List(y)) if op == Add => {
            list_fits("+", x.len().saturating_add(y.len()))?;
            Ok(V::List(x.iter().chain(y.iter()).cloned().collect()))
        }
        (V::DateTime(t), V::Duration(d)) | (V::Duration(d), V::DateTime(t))
            if matches!(op, Add | Sub) =>
        {
            if op == Sub && matches!(a, V::Duration(_)) {
                return fault("cannot subtract a datetime from a duration");
            }
            let d = if op == Sub { d.checked_neg() } else { Some(*d) };
            d.and_then(|d| super::value::add_ms(*t, d))
                .map(V::DateTime)
                .ok_or_else(overflow)
        }
        (V::Date(day), V::Duration(d)) | (V::Duration(d), V::Date(day))
            if matches!(op, Add | Sub) =>
        {
            let days = d / DAY_MS;
            let days = if op == Sub { -days } else { days };
            super::value::add_days(*day, days)
                .map(V::Date)
                .ok_or_else(overflow)
        }
        (V::DateTime(x), V::DateTime(y)) if op == Sub => {
            Ok(V::Duration((*x - *y).num_milliseconds()))
        }
        (V::Date(x), V::Date(y)) if op == Sub => Ok(V::Duration((*x - *y).num_days() * DAY_MS)),
        (V::Duration(x), V::Duration(y)) => duration_arith(op, *x, *y, overflow),
        (V::Duration(d), V::Int(_) | V::Float(_)) | (V::Int(_) | V::Float(_), V::Duration(d))
            if matches!(op, Mul | Div) =>
        {
            let n = if matches!(a, V::Duration(_)) {
                as_f64(b)
            } else {
                as_f64(a)
            };
            scale_duration(op, *d, n, overflow)
        }
        _ => fault(format!(
            "cannot apply `{}` to a {} and a {}",
            op.as_str(),
            a.kind(),
            b.kind()
        )),
    }
}

/// `op` on two `int`s, checked.
fn int_arith(op: BinaryOp, x: i64, y: i64, overflow: impl Fn() -> Fault) -> Result<Value, Fault> {
    use BinaryOp::*;
    if matches!(op, Div | Rem) && y == 0 {
        return fault("division by zero");
    }
    let r = match op {
        Add => x.checked_add(y),
        Sub => x.checked_sub(y),
        Mul => x.checked_mul(y),
        Div => x.checked_div(y),
        Rem => x.checked_rem(y),
        _ => None,
    };
    r.map(Value::Int).ok_or_else(overflow)
}

/// `op` on two `float`s (or a `float` and an `int`), a result that is not
/// finite an overflow.
fn float_arith(op: BinaryOp, x: f64, y: f64, overflow: impl Fn() -> Fault) -> Result<Value, Fault> {
    use BinaryOp::*;
    if matches!(op, Div | Rem) && y == 0.0 {
        return fault("division by zero");
    }
    let r = match op {
        Add => x + y,
        Sub => x - y,
        Mul => x * y,
        Div => x / y,
        Rem => x % y,
        _ => return fault("not an arithmetic operator"),
    };
    if r.is_finite() {
        Ok(Value::Float(r))
    } else {
        Err(overflow())
    }
}

/// `op` on two `decimal`s (or a `decimal` and an `int`), exact and checked.
fn decimal_arith(
    op: BinaryOp,
    x: Decimal,
    y: Decimal,
    overflow: impl Fn() -> Fault,
) -> Result<Value, Fault> {
    use BinaryOp::*;
    if matches!(op, Div | Rem) && y.is_zero() {
        return fault("division by zero");
    }
    let r = match op {
        Add => x.checked_add(y),
        Sub => x.checked_sub(y),
        Mul => x.checked_mul(y),
        Div => x.checked_div(y),
        Rem => x.checked_rem(y),
        _ => None,
    };
    r.map(Value::Decimal).ok_or_else(overflow)
}

/// `op` on two durations (in ms): a sum, a difference, or a ratio.
fn duration_arith(
    op: BinaryOp,
    x: i64,
    y: i64,
    overflow: impl Fn() -> Fault,
) -> Result<Value, Fault> {
    use BinaryOp::*;
    match op {
        Add => x.checked_add(y).map(Value::Duration).ok_or_else(overflow),
        Sub => x.checked_sub(y).map(Value::Duration).ok_or_else(overflow),
        Div if y == 0 => fault("division by zero"),
        Div => Ok(Value::Float(x as f64 / y as f64)),
        _ => fault(format!("cannot apply `{}` to two durations", op.as_str())),
    }
}

/// A duration (in ms) multiplied or divided by a number, rounded to the
/// millisecond.
fn scale_duration(
    op: BinaryOp,
    d: i64,
    n: f64,
    overflow: impl Fn() -> Fault,
) -> Result<Value, Fault> {
    if op == BinaryOp::Div && n == 0.0 {
        return fault("division by zero");
    }
    let r = if op == BinaryOp::Mul {
        d as f64 * n
    } else {
        d as f64 / n
    };
    if r.is_finite() && r.abs() < i64::MAX as f64 {
        Ok(Value::Duration(r.round() as i64))
    } else {
        Err(overflow())
    }
}

pub fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(x) => *x,
        Value::Decimal(d) => rust_decimal::prelude::ToPrimitive::to_f64(d).unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

pub fn as_decimal(v: &Value) -> Decimal {
    match v {
        Value::Int(i) => Decimal::from(*i),
        Value::Decimal(d) => *d,
        _ => Decimal::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::from_str(s).unwrap())
    }

    #[test]
    fn decimal_arithmetic_is_exact() {
        let sum = arith(BinaryOp::Add, &dec("0.1"), &dec("0.2")).unwrap();
        assert_eq!(sum, dec("0.3"));
        let ratio = arith(BinaryOp::Div, &dec("10.00"), &Value::Int(4)).unwrap();
        assert_eq!(ratio.to_string(), "2.50");
    }

    #[test]
    fn division_by_zero_is_a_fault_for_every_number() {
        for (a, b) in [
            (Value::Int(1), Value::Int(0)),
            (Value::Float(1.0), Value::Float(0.0)),
            (dec("1"), dec("0")),
        ] {
            assert_eq!(arith(BinaryOp::Div, &a, &b), fault("division by zero"));
        }
    }

    #[test]
    fn integer_overflow_is_a_fault() {
        assert!(arith(BinaryOp::Mul, &Value::Int(i64::MAX), &Value::Int(2)).is_err());
    }

    #[test]
    fn numbers_compare_across_kinds() {
        assert!(equal(&Value::Int(2), &dec("2.00")));
        assert!(test(BinaryOp::Lt, &Value::Int(1), &Value::Float(1.5)));
        assert!(!test(
            BinaryOp::Lt,
            &Value::Float(f64::NAN),
            &Value::Float(1.0)
        ));
        assert!(!equal(&Value::None, &Value::str("")));
    }
}
