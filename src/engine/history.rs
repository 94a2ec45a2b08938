//! What rules remember between events: the values `previous` and `changed`
//! read, and the windows `count(...)` counts in (see [`hir::Recall`]).
//!
//! Before the rules on an event run, [`History::load`] reads what they
//! need from the store, by recall index; the rules read it through
//! `Root::Recall` like any other place. After them, [`History::record`]
//! adds the event to the history, in the event's own unit of work: the
//! fields any rule remembers (by the envelope's `key`), and a mark in each
//! window that counts its type. Event types nothing remembers or counts
//! cost nothing. Windows are measured on the events' own times
//! (`occurred_at`), so a backlog handled late is counted as it happened.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::HashMap as FastMap;

use super::decode::{Event, Shapes};
use super::lower::conforms;
use super::program::Place;
use super::store::{Change, Store, StoreError};
use super::stored::{stored_to_value, value_to_stored};
use super::value::Value;
use crate::check::types::{RecordId, Type};
use crate::hir::{self, Root};

/// The history a program keeps, by event type.
#[derive(Default)]
pub struct History {
    /// How many recalls the program has: the length of what `load` gives.
    recalls: usize,
    by_type: FastMap<Arc<str>, TypeHistory>,
}

#[derive(Default)]
struct TypeHistory {
    /// The recalls the rules on this type read.
    loads: Vec<Load>,
    /// The fields to remember of each event of this type, by path.
    remember: Vec<(Arc<str>, Place)>,
    /// The windows each event of this type is counted in.
    counted: Vec<Counter>,
}

enum Load {
    Previous {
        index: usize,
        path: Arc<str>,
        ty: Type,
    },
    Count {
        index: usize,
        counter: Counter,
        /// The window this count reads (its counter keeps the longest).
        window_ms: i64,
        /// Whether this event is one of those counted (it is counted in its
        /// own unit, which the store does not answer from yet).
        counts_itself: bool,
    },
}

/// A window of events of one type, per values of some of their fields.
#[derive(Clone)]
struct Counter {
    /// `count(work_order.created by property_id,category)`: the start of
    /// every key of this counter's windows.
    name: Arc<str>,
    /// The fields, in the event being handled (the counted one, or the one
    /// whose rule counts).
    fields: Vec<Place>,
    window_ms: i64,
}

impl Counter {
    fn key(&self, tenant: &str, event: &Event) -> String {
        let mut key = format!("{tenant}\u{1f}{}", self.name);
        for place in &self.fields {
            key.push('\u{1f}');
            key.push_str(&place.get_in(&event.payload).to_string());
        }
        key
    }
}

impl History {
    /// What `recalls` need of each event type, for the rules that read them.
    pub fn build(hir: &hir::Program, shapes: &Shapes) -> History {
        let mut history = History {
            recalls: hir.recalls.len(),
            by_type: FastMap::default(),
        };
        if hir.recalls.is_empty() {
            return history;
        }
        // What is remembered or counted of every event type that has it.
        let mut longest: HashMap<(Arc<str>, Vec<Arc<str>>), i64> = HashMap::new();
        for recall in &hir.recalls {
            if let hir::Recall::Count {
                event_type,
                fields,
                window_ms,
            } = recall
            {
                let w = longest
                    .entry((event_type.clone(), fields.clone()))
                    .or_insert(0);
                *w = (*w).max(*window_ms);
            }
        }
        for (event_type, &record) in &shapes.events {
            let mut th = TypeHistory::default();
            for recall in &hir.recalls {
                if let hir::Recall::Previous { path, .. } = recall {
                    if let Some(place) = field_place(shapes, record, path) {
                        if !th.remember.iter().any(|(p, _)| p == path) {
                            th.remember.push((path.clone(), place));
                        }
                    }
                }
            }
            for ((counted, fields), &window_ms) in &longest {
                if **counted == **event_type {
                    if let Some(counter) = counter(shapes, record, counted, fields, window_ms) {
                        th.counted.push(counter);
                    }
                }
            }
            if !th.remember.is_empty() || !th.counted.is_empty() {
                history.by_type.insert(Arc::from(event_type.as_str()), th);
            }
        }
        // What the rules on each type read.
        for rule in &hir.rules {
            let hir::Trigger::Event { event_type, record } = &rule.trigger else {
                continue;
            };
            for &index in &rule.recalls {
                let Some(recall) = hir.recalls.get(index) else {
                    continue;
                };
                let load = match recall {
                    hir::Recall::Previous { path, ty } => Load::Previous {
                        index,
                        path: path.clone(),
                        ty: ty.clone(),
                    },
                    hir::Recall::Count {
                        event_type: counted,
                        fields,
                        window_ms,
                    } => {
                        let longest = longest
                            .get(&(counted.clone(), fields.clone()))
                            .copied()
                            .unwrap_or(*window_ms);
                        let Some(counter) = counter(shapes, *record, counted, fields, longest)
                        else {
                            continue;
                        };
                        Load::Count {
                            index,
                            counter,
                            window_ms: *window_ms,
                            counts_itself: counted == event_type,
                        }
                    }
                };
                let th = history.by_type.entry(event_type.clone()).or_default();
                let known = th.loads.iter().any(|l| match l {
                    Load::Previous { index: i, .. } | Load::Count { index: i, .. } => *i == index,
                });
                if !known {
                    th.loads.push(load);
                }
            }
        }
        history
    }

    /// The recalled values the rules on `event` read, by recall index; `None`
    /// when they read none.
    pub fn load<S: Store + ?Sized>(
        &self,
        store: &S,
        shapes: &Shapes,
        event: &Event,
    ) -> Result<Option<Vec<Value>>, StoreError> {
        if self.by_type.is_empty() {
            return Ok(None);
        }
        let Some(th) = self.by_type.get(&event.event_type) else {
            return Ok(None);
        };
        if th.loads.is_empty() {
            return Ok(None);
        }
        let mut values = vec![Value::None; self.recalls];
        let mut remembered = None;
        for load in &th.loads {
            match load {
                Load::Previous { index, path, ty } => {
                    if let (Some(key), None) = (&event.key, &remembered) {
                        remembered = Some(store.remembered(&event.tenant, key)?);
                    }
                    let kept = remembered
                        .iter()
                        .flatten()
                        .find(|(p, _)| **p == **path)
                        .and_then(|(_, v)| stored_to_value(shapes, v).ok());
                    // Nothing kept for the key yet: the values the event's
                    // source says the entity had before (a captured update).
                    let found = kept
                        .or_else(|| {
                            let before = event.previous.as_ref()?;
                            let (_, place) = th.remember.iter().find(|(p, _)| *p == *path)?;
                            match place.get_in(before) {
                                Value::None => None,
                                v => Some(v.clone()),
                            }
                        })
                        .filter(|v| conforms(v, ty));
                    if let (Some(v), Some(slot)) = (found, values.get_mut(*index)) {
                        *slot = v;
                    }
                }
                Load::Count {
                    index,
                    counter,
                    window_ms,
                    counts_itself,
                } => {
                    let key = counter.key(&event.tenant, event);
                    let stored =
                        store.window_count(&event.tenant, &key, *window_ms, event.occurred_at)?;
                    let n = stored.saturating_add(u64::from(*counts_itself));
                    if let Some(slot) = values.get_mut(*index) {
                        *slot = Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
                    }
                }
            }
        }
        Ok(Some(values))
    }

    /// What handling `event` adds to the history: its remembered fields (when
    /// it has a key) and its marks in the windows that count its type.
    pub fn record(&self, shapes: &Shapes, event: &Event, out: &mut Vec<Change>) {
        if self.by_type.is_empty() {
            return;
        }
        let Some(th) = self.by_type.get(&event.event_type) else {
            return;
        };
        if let Some(key) = &event.key {
            let fields: Vec<(Arc<str>, _)> = th
                .remember
                .iter()
                .filter_map(|(path, place)| match place.get_in(&event.payload) {
                    // An absent optional does not carry the field.
                    Value::None => None,
                    v => Some((path.clone(), value_to_stored(shapes, v))),
                })
                .collect();
            if !fields.is_empty() {
                out.push(Change::Remember {
                    tenant: event.tenant.clone(),
                    key: key.clone(),
                    fields,
                });
            }
        }
        for counter in &th.counted {
            out.push(Change::WindowCount {
                tenant: event.tenant.clone(),
                key: counter.key(&event.tenant, event),
                at: event.occurred_at,
                window_ms: counter.window_ms,
            });
        }
    }

    /// The path a recall reads, for `explain` (`previous stage`, `count(...)`).
    pub fn describe(hir_recall: &hir::Recall) -> String {
        match hir_recall {
            hir::Recall::Previous { path, .. } => format!("previous {path}"),
            hir::Recall::Count {
                event_type, fields, ..
            } => counter_name(event_type, fields),
        }
    }
}

fn counter_name(event_type: &str, fields: &[Arc<str>]) -> String {
    if fields.is_empty() {
        format!("count({event_type})")
    } else {
        let fields: Vec<&str> = fields.iter().map(|f| &**f).collect();
        format!("count({event_type} by {})", fields.join(", "))
    }
}

fn counter(
    shapes: &Shapes,
    record: RecordId,
    counted: &str,
    fields: &[Arc<str>],
    window_ms: i64,
) -> Option<Counter> {
    let places = fields
        .iter()
        .map(|f| field_place(shapes, record, f))
        .collect::<Option<Vec<_>>>()?;
    Some(Counter {
        name: Arc::from(counter_name(counted, fields)),
        fields: places,
        window_ms,
    })
}

/// Where a dotted field path is in an event's payload, if it has it.
fn field_place(shapes: &Shapes, record: RecordId, path: &str) -> Option<Place> {
    use super::decode::Shape;
    let mut slots = Vec::new();
    let mut at = Some(record);
    for name in path.split('.') {
        let shape = shapes.record(at?);
        let slot = shape.slot(name)?;
        slots.push(slot);
        at = match &shape.fields.get(slot)?.1 {
            Shape::Record(id) => Some(*id),
            Shape::Optional(inner) => match &**inner {
                Shape::Record(id) => Some(*id),
                _ => None,
            },
            _ => None,
        };
    }
    Some(Place {
        root: Root::Event,
        path: slots,
    })
}
