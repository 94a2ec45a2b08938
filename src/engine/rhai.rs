//! Functions written in Rhai (`fn f(x: float) -> string from rhai "f.rhai"`).
//!
//! A script that defines a function of the declared name (`fn risk_band(risk)
//! { ... }`, the usual Rhai way) has that function called with the
//! arguments. Otherwise the script's parameters are variables in its scope
//! and the value of its last expression is the result. Scripts run sandboxed: no modules or imports, no
//! clock, `print` and `debug` silenced, and limits on operations, call depth,
//! expression depth and the size of strings, arrays and maps. A result of the
//! wrong type is a fault naming the function.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rhai::{Array, Dynamic, Engine, Map, Scope, AST};

pub(crate) use crate::script::sandbox;

use super::decode::{parse_date, parse_duration, Shape, Shapes};
use super::value::Fault;
use super::value::{show_datetime, Record, Value};
use crate::check::types::quoted_members;

/// One compiled Rhai function.
pub struct RhaiFn {
    pub name: String,
    pub params: Vec<String>,
    pub ret: Shape,
    /// Compiled once, by the checker.
    pub script: Arc<crate::hir::Script>,
}

impl RhaiFn {
    pub fn call(&self, engine: &Engine, shapes: &Shapes, args: &[Value]) -> Result<Value, Fault> {
        let mut scope = Scope::new();
        let ast: &AST = &self.script.ast;
        let result = if self.script.defines_fn {
            // Written the usual Rhai way, `fn name(a, b) { ... }`: called
            // with the arguments.
            let args: Vec<Dynamic> = args.iter().map(|v| to_dynamic(shapes, v)).collect();
            let mut options = rhai::CallFnOptions::new();
            options.eval_ast = false;
            engine.call_fn_with_options::<Dynamic>(options, &mut scope, ast, &self.name, args)
        } else {
            for (name, value) in self.params.iter().zip(args) {
                scope.push_dynamic(name.clone(), to_dynamic(shapes, value));
            }
            engine.eval_ast_with_scope::<Dynamic>(&mut scope, ast)
        };
        let result = result.map_err(|e| {
            Fault::new(format!(
                "Rhai function `{}` ({}) failed: {e}",
                self.name, self.script.path
            ))
        })?;
        from_dynamic(shapes, &self.ret, result).map_err(|found| {
            Fault::new(format!(
                "Rhai function `{}` ({}) returned {found}, but it is declared to return {}",
                self.name,
                self.script.path,
                shape_name(shapes, &self.ret)
            ))
        })
    }
}

/// A Steward value as Rhai sees it: numbers and text as themselves, dates and
/// times as RFC 3339 text, durations as milliseconds, records as maps.
pub fn to_dynamic(shapes: &Shapes, value: &Value) -> Dynamic {
    match value {
        Value::None => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Int(i) => Dynamic::from_int(*i),
        Value::Float(x) => Dynamic::from_float(*x),
        Value::Decimal(d) => Dynamic::from_decimal(*d),
        Value::Str(s) => Dynamic::from(s.to_string()),
        Value::Date(d) => Dynamic::from(d.format("%Y-%m-%d").to_string()),
        Value::DateTime(t) => Dynamic::from(show_datetime(t)),
        Value::Duration(ms) => Dynamic::from_int(*ms),
        Value::List(items) => Dynamic::from_array(
            items
                .iter()
                .map(|v| to_dynamic(shapes, v))
                .collect::<Array>(),
        ),
        Value::Record(r) => {
            let shape = shapes.record(r.shape);
            let mut map = Map::new();
            for ((name, _), v) in shape.fields.iter().zip(r.slots.iter()) {
                map.insert(name.as_ref().into(), to_dynamic(shapes, v));
            }
            Dynamic::from_map(map)
        }
    }
}

/// A Rhai result as the declared type, or what it was instead.
fn from_dynamic(shapes: &Shapes, shape: &Shape, d: Dynamic) -> Result<Value, String> {
    let found = || format!("a {}", d.type_name());
    match shape {
        Shape::Optional(inner) => {
            if d.is_unit() {
                Ok(Value::None)
            } else {
                from_dynamic(shapes, inner, d)
            }
        }
        Shape::Bool => d.as_bool().map(Value::Bool).map_err(|_| found()),
        Shape::Int => d.as_int().map(Value::Int).map_err(|_| found()),
        Shape::Float => match d.as_float() {
            Ok(x) if x.is_finite() => Ok(Value::Float(x)),
            Ok(x) => Err(format!("the float {x}, which is not a finite number")),
            Err(_) => d
                .as_int()
                .map(|i| Value::Float(i as f64))
                .map_err(|_| found()),
        },
        Shape::Decimal => match d.as_decimal() {
            Ok(x) => Ok(Value::Decimal(x)),
            Err(_) => d
                .as_int()
                .map(|i| Value::Decimal(i.into()))
                .map_err(|_| found()),
        },
        Shape::Str => d
            .into_immutable_string()
            .map(|s| Value::Str(Arc::from(s.as_str())))
            .map_err(|t| format!("a {t}")),
        Shape::Union(members) => {
            let s = d.clone().into_immutable_string().map_err(|_| found())?;
            match members.iter().find(|m| ***m == *s.as_str()) {
                Some(m) => Ok(Value::Str(m.clone())),
                None => Err(format!("\"{s}\"")),
            }
        }
        Shape::Date => {
            let s = d.clone().into_immutable_string().map_err(|_| found())?;
            parse_date(&s)
                .map(Value::Date)
                .ok_or_else(|| format!("\"{s}\""))
        }
        Shape::DateTime => {
            let s = d.clone().into_immutable_string().map_err(|_| found())?;
            DateTime::parse_from_rfc3339(&s)
                .map(|t| Value::DateTime(t.with_timezone(&Utc)))
                .map_err(|_| format!("\"{s}\""))
        }
        Shape::Duration => match d.as_int() {
            Ok(ms) => Ok(Value::Duration(ms)),
            Err(_) => {
                let s = d.clone().into_immutable_string().map_err(|_| found())?;
                parse_duration(&s)
                    .map(Value::Duration)
                    .ok_or_else(|| format!("\"{s}\""))
            }
        },
        Shape::List(item) => {
            if !d.is_array() {
                return Err(found());
            }
            let items = d.into_array().map_err(|t| format!("a {t}"))?;
            let values = items
                .into_iter()
                .map(|v| from_dynamic(shapes, item, v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::List(Arc::from(values)))
        }
        Shape::Record(id) => {
            if !d.is_map() {
                return Err(found());
            }
            let map = d.cast::<Map>();
            let rec = shapes.record(*id);
            let mut slots = Vec::with_capacity(rec.fields.len());
            for (name, field) in &rec.fields {
                match map.get(name.as_ref()) {
                    Some(v) => slots.push(from_dynamic(shapes, field, v.clone())?),
                    None if matches!(field, Shape::Optional(_)) => slots.push(Value::None),
                    None => return Err(format!("a map without `{name}`")),
                }
            }
            Ok(Value::Record(Arc::new(Record {
                shape: *id,
                slots: slots.into_boxed_slice(),
            })))
        }
    }
}

fn shape_name(shapes: &Shapes, shape: &Shape) -> String {
    match shape {
        Shape::Bool => "a bool".into(),
        Shape::Int => "an int".into(),
        Shape::Float => "a float".into(),
        Shape::Decimal => "a decimal".into(),
        Shape::Str => "a string".into(),
        Shape::Union(m) => format!("one of {}", quoted_members(m)),
        Shape::Date => "a date".into(),
        Shape::DateTime => "a datetime".into(),
        Shape::Duration => "a duration".into(),
        Shape::List(_) => "a list".into(),
        Shape::Record(id) => format!("a `{}`", shapes.record(*id).name),
        Shape::Optional(inner) => format!("{} or nothing", shape_name(shapes, inner)),
    }
}
