//! The rule index: which rules an event can match, without testing them all.
//!
//! Rules are grouped by event type. Within a type, a rule whose conditions
//! include `field == constant` or `field in [constants]` (on a field that is
//! always present) is filed under those constants, so an event with
//! `channel: "airbnb"` only meets the rules filed under `"airbnb"` plus the
//! rules that have no such test. Cost per event is a few hash lookups,
//! whatever the number of rules.

use foldhash::HashMap;
use std::sync::Arc;

pub use super::program::IndexKey;
use super::program::{Place, Root, Rule, RuleTrigger};
use super::value::{Record, Value};

#[derive(Default)]
struct TypeIndex {
    /// Every rule triggered by this type, in source order.
    all: Vec<usize>,
    /// Rules with no indexable test: always candidates.
    scan: Vec<usize>,
    /// Rules filed by the value of a field.
    keyed: Vec<Keyed>,
}

struct Keyed {
    place: Place,
    rules: HashMap<KeyLookup, Vec<usize>>,
}

/// Hashes like [`IndexKey`] but can be built from a borrowed value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyLookup {
    Str(Arc<str>),
    Int(i64),
    Bool(bool),
}

#[derive(Default)]
pub struct RuleIndex {
    by_type: HashMap<Arc<str>, TypeIndex>,
    /// Rules triggered by `every`.
    pub schedules: Vec<usize>,
}

/// Why the index left a rule out, for `explain`.
pub struct Skipped {
    pub rule: usize,
    pub field: String,
    pub wanted: Vec<IndexKey>,
}

impl RuleIndex {
    pub fn build(rules: &[Rule]) -> RuleIndex {
        let mut index = RuleIndex::default();
        for (i, rule) in rules.iter().enumerate() {
            match &rule.trigger {
                RuleTrigger::Event { event_type, .. } => {
                    let entry = index.by_type.entry(event_type.clone()).or_default();
                    entry.all.push(i);
                    match &rule.index_key {
                        Some((place, _, keys)) if matches!(place.root, Root::Event) => {
                            let keyed = match entry.keyed.iter().position(|k| k.place == *place) {
                                Some(at) => entry.keyed.get_mut(at),
                                None => {
                                    entry.keyed.push(Keyed {
                                        place: place.clone(),
                                        rules: HashMap::default(),
                                    });
                                    entry.keyed.last_mut()
                                }
                            };
                            // Just found or pushed: always there.
                            let Some(keyed) = keyed else {
                                continue;
                            };
                            for key in keys {
                                let lookup = match key {
                                    IndexKey::Str(s) => KeyLookup::Str(s.clone()),
                                    IndexKey::Int(n) => KeyLookup::Int(*n),
                                    IndexKey::Bool(b) => KeyLookup::Bool(*b),
                                };
                                let list = keyed.rules.entry(lookup).or_default();
                                if list.last() != Some(&i) {
                                    list.push(i);
                                }
                            }
                        }
                        _ => entry.scan.push(i),
                    }
                }
                RuleTrigger::Cron { .. } | RuleTrigger::Interval(_) => index.schedules.push(i),
            }
        }
        index
    }

    /// The rules an event of `event_type` with `payload` can match, in
    /// source order, into `out` (cleared first).
    pub fn candidates(&self, event_type: &str, payload: &Record, out: &mut Vec<usize>) {
        out.clear();
        let Some(entry) = self.by_type.get(event_type) else {
            return;
        };
        out.extend_from_slice(&entry.scan);
        for keyed in &entry.keyed {
            let lookup = match keyed.place.get_in(payload) {
                Value::Str(s) => KeyLookup::Str(s.clone()),
                Value::Int(n) => KeyLookup::Int(*n),
                Value::Bool(b) => KeyLookup::Bool(*b),
                _ => continue,
            };
            if let Some(rules) = keyed.rules.get(&lookup) {
                out.extend_from_slice(rules);
            }
        }
        if !entry.keyed.is_empty() {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// The rules of `event_type` the index left out for this payload, and why.
    pub fn skipped(&self, rules: &[Rule], event_type: &str, payload: &Record) -> Vec<Skipped> {
        let mut considered = Vec::new();
        self.candidates(event_type, payload, &mut considered);
        let Some(entry) = self.by_type.get(event_type) else {
            return Vec::new();
        };
        entry
            .all
            .iter()
            .filter(|r| !considered.contains(r))
            .map(|&r| {
                let (field, wanted) = match rules.get(r).and_then(|rule| rule.index_key.as_ref()) {
                    Some((_, text, keys)) => (text.clone(), keys.clone()),
                    None => (String::new(), Vec::new()),
                };
                Skipped {
                    rule: r,
                    field,
                    wanted,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::check::{analyze, NoFiles};
    use crate::engine::{compile, decode_event};

    #[test]
    fn the_index_finds_rules_by_equality_tests() {
        let mut text =
            String::from("type Guest { email: string }\nevent booking { guest: Guest }\n");
        for i in 0..200 {
            text.push_str(&format!(
                "rule r{i} when booking if guest.email == \"c{i}\" then log \"{i}\" end\n"
            ));
        }
        let analysis = analyze(&[("rules.stw".to_string(), text)], &NoFiles);
        assert!(!analysis.has_errors());
        let r = compile(&analysis).unwrap_or_else(|d| panic!("{d:?}"));
        let line = r#"{"id":"e1","tenant":"t","type":"booking","occurred_at":"2026-11-20T10:00:00Z","payload":{"guest":{"email":"c42"}}}"#;
        let event = decode_event(r.shapes(), line).unwrap();
        let mut out = Vec::new();
        r.index.candidates("booking", &event.payload, &mut out);
        assert_eq!(out, vec![42]);
    }
}
