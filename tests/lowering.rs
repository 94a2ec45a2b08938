//! The typed tree is the one path from the checker to the engine: what the
//! checker decided is what runs.
//!
//! - Statically: in every program of the corpus and the examples, every
//!   node has a decided type (no undecided number, no type parameter, no
//!   error node), and every typed operator's operands have the operator's
//!   kind (`AddDecimal` adds two decimals).
//! - At run time: the example rules, lowered with `check_types` (every
//!   expression checks its value against the checker's type), pass their
//!   `test` blocks and replay the example events with no rule error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "a test or a benchmark fails by panicking"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use steward::check::{Analysis, Type};
use steward::engine::decode::decode_event;
use steward::engine::testing::run_tests;
use steward::engine::{compile_with, Collect, Engine, MemoryStore, Options};
use steward::hir::{self, ExprKind, Lit, Operands};
use steward::syntax::ast::BinaryOp;

fn analyze(paths: &[PathBuf]) -> Analysis {
    steward::files::read_all(paths).unwrap().analyze()
}

fn example_rules() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("rules")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "stw"))
        .collect();
    paths.sort();
    paths
}

/// Every program the repository holds that checks clean.
fn programs() -> Vec<(String, Analysis)> {
    let mut out = vec![("rules/".to_string(), analyze(&example_rules()))];
    let mut cases: Vec<PathBuf> = std::fs::read_dir("tests/data/check-pass")
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    for case in cases {
        let paths = vec![
            PathBuf::from("rules/declarations.stw"),
            PathBuf::from("rules/functions.stw"),
            case.clone(),
        ];
        out.push((case.display().to_string(), analyze(&paths)));
    }
    for (name, analysis) in &out {
        let errors: Vec<&str> = analysis.errors().map(|d| d.message.as_str()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    out
}

fn decided(ty: &Type) -> bool {
    match ty {
        Type::Number | Type::Var(_) | Type::Error => false,
        Type::List(t) | Type::Optional(t) => decided(t),
        _ => true,
    }
}

fn number_kind(ty: &Type) -> Option<Operands> {
    match ty.present() {
        Type::Int => Some(Operands::Int),
        Type::Float => Some(Operands::Float),
        Type::Decimal => Some(Operands::Decimal),
        _ => None,
    }
}

fn problems(analysis: &Analysis) -> Vec<String> {
    let mut out = Vec::new();
    analysis.hir.walk(&mut |e: &hir::Expr| {
        let text = analysis
            .sources
            .text(e.at.file)
            .get(e.at.span.range())
            .unwrap_or("")
            .to_string();
        // `[]` has no item type to decide.
        let empty_list = matches!(&e.kind, ExprKind::List(items) if items.is_empty());
        if !decided(&e.ty) && !empty_list && !matches!(e.ty, Type::None) {
            out.push(format!("`{text}` has the undecided type {:?}", e.ty));
        }
        match &e.kind {
            ExprKind::Lit(Lit::Number(_)) => out.push(format!("`{text}` is an undecided number")),
            ExprKind::Error => out.push(format!("`{text}` is an error node")),
            ExprKind::Binary(op, l, r) => {
                let numeric = matches!(op.on, Operands::Int | Operands::Float | Operands::Decimal);
                let arith = matches!(
                    op.op,
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem
                );
                if numeric && (arith || op.op.is_comparison()) {
                    for side in [l, r] {
                        if number_kind(&side.ty) != Some(op.on) {
                            out.push(format!(
                                "`{text}` is {:?} on {:?}, but one side is {:?}",
                                op.op, op.on, side.ty
                            ));
                        }
                    }
                    if arith && number_kind(&e.ty) != Some(op.on) {
                        out.push(format!("`{text}` is {:?} but typed {:?}", op.on, e.ty));
                    }
                }
            }
            _ => {}
        }
    });
    out
}

#[test]
fn every_node_of_every_program_has_a_decided_type() {
    for (name, analysis) in programs() {
        assert!(!analysis.hir.rules.is_empty() || name.contains("check-pass"));
        let found = problems(&analysis);
        assert!(found.is_empty(), "{name}:\n{}", found.join("\n"));
    }
}

#[test]
fn the_checks_find_an_undecided_literal() {
    // The checks above must be able to fail: a tree with `0.5` left open.
    let analysis = analyze(&example_rules());
    let mut hir = steward::hir::Program::default();
    let at = analysis.hir.rules[0]
        .conditions
        .first()
        .map(|c| c.at)
        .unwrap_or(steward::check::Loc {
            file: 0,
            span: steward::diag::Span::new(0, 0),
        });
    hir.detached.push(hir::Expr::new(
        Type::Number,
        at,
        ExprKind::Lit(Lit::Number("0.5".into())),
    ));
    let mut open = analysis;
    open.hir = hir;
    assert_eq!(problems(&open).len(), 2, "{:?}", problems(&open));
}

#[test]
fn the_example_rules_run_with_the_checkers_types() {
    let analysis = analyze(&example_rules());
    let rules = Arc::new(
        compile_with(&analysis, Options { check_types: true }).unwrap_or_else(|d| panic!("{d:?}")),
    );
    let results = run_tests(&analysis, &rules);
    assert!(!results.is_empty());
    for result in &results {
        assert!(
            result.passed(),
            "{} ({}): {:?}",
            result.name,
            result.location,
            result.failures
        );
    }

    let text = std::fs::read_to_string(Path::new("examples/events.jsonl")).unwrap();
    let mut engine = Engine::new(rules.clone(), MemoryStore::new());
    let mut sink = Collect::default();
    let mut handled = 0;
    let mut last = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // Lines the example holds on purpose to be rejected stay rejected.
        let Ok(event) = decode_event(rules.shapes(), line) else {
            continue;
        };
        last = Some(event.occurred_at);
        engine.handle(event, &mut sink).unwrap();
        handled += 1;
    }
    if let Some(t) = last {
        engine
            .advance_to(t + chrono::Duration::days(30), &mut sink)
            .unwrap();
    }
    assert!(handled > 3);
    assert!(!sink.actions.is_empty());
    let mismatches: Vec<String> = sink
        .errors
        .iter()
        .map(|e| e.message.clone())
        .filter(|m| m.contains("to the checker"))
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:?}");
}
