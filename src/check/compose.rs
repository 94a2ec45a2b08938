//! Block actions: `action escalate(id: string, why: string) do ... end`,
//! an action made of other actions, called like any action.
//!
//! Its statements are checked once where it is declared, in a scope of its
//! own (its parameters, nothing of the rule that calls it), and reported
//! there. Each call is then expanded where it stands: the arguments bound
//! to the parameters as `let`s, then the statements, checked again in that
//! place without reporting (what was wrong was said at the declaration),
//! as a [`hir::Stmt::Inline`]. The statements' step ids are salted with
//! the call's own (see [`hir::Steps`]), so the actions of two calls have
//! keys of their own, stable across restarts like any statement's, and a
//! call inside a timer or an approval runs when its block does.
//!
//! A block holds actions, `let` and `if`; timers, approvals and `stop`
//! belong in the rule around the call (E0415). Calls that come back to the
//! action they started from are refused (E0211, in `rules.rs`).

use std::sync::Arc;

use super::expr::{Ctx, Local};
use super::types::ActionSig;
use super::Checker;
use crate::diag::{Code, Diagnostic, FileId};
use crate::hir;
use crate::syntax::ast::*;

impl<'a> Checker<'a> {
    /// The statements of a block action, where it is declared: what is
    /// wrong in them is reported here, once.
    pub(super) fn action_block(&mut self, file: FileId, d: &ActionDecl) {
        let ActionBody::Block(body) = &d.body else {
            return;
        };
        let Some(sig) = self.program.actions.get(&d.name.text).cloned() else {
            return;
        };
        if sig.loc.file != file || sig.loc.span != d.name.span {
            return; // a duplicate, reported as such
        }
        self.only_actions(file, &d.name.text, &body.stmts);
        let mut cx = self.action_scope(file, &sig, &[], 0);
        let text = self.sources.text(file);
        let mut steps = hir::Steps::new(text);
        self.expanding.push(sig.name.clone());
        self.block(&mut cx, body, &mut steps);
        self.expanding.pop();
    }

    /// A call of a block action at the statement whose id is `step`: its
    /// parameters bound to `given` (in the order declared, checked in the
    /// caller's scope `cx`), then its statements. None for a call back into
    /// an action being expanded (a cycle, reported on its own).
    pub(super) fn inline_call(
        &mut self,
        cx: &Ctx,
        sig: &ActionSig,
        given: Vec<(Arc<str>, hir::Expr)>,
        step: u32,
    ) -> Option<hir::Stmt> {
        if self.expanding.contains(&sig.name) {
            return None;
        }
        let body = self.block_of(sig)?;
        let file = sig.loc.file;
        let mut bcx = self.action_scope(file, sig, &cx.locals, cx.suspended);
        let mut out: Vec<hir::Stmt> = given
            .into_iter()
            .map(|(name, value)| hir::Stmt::Let {
                name: name.to_string(),
                value,
            })
            .collect();
        // Checked again here, quietly: the declaration said what is wrong.
        let marks = (self.diags.len(), self.references.len(), self.lets.len());
        let text = self.sources.text(file);
        let mut steps = hir::Steps::salted(text, step);
        self.expanding.push(sig.name.clone());
        out.extend(self.block(&mut bcx, body, &mut steps));
        self.expanding.pop();
        self.diags.truncate(marks.0);
        self.references.truncate(marks.1);
        self.lets.truncate(marks.2);
        Some(hir::Stmt::Inline {
            action: Arc::from(sig.name.as_str()),
            body: out,
        })
    }

    /// The statements of the block action `sig` declares.
    fn block_of(&self, sig: &ActionSig) -> Option<&'a Block> {
        let files = self.files;
        let file = files.iter().find(|f| f.id == sig.loc.file)?;
        file.tree.items.iter().find_map(|item| match item {
            Item::Action(ActionDecl {
                name,
                body: ActionBody::Block(body),
                ..
            }) if name.span == sig.loc.span => Some(body),
            _ => None,
        })
    }

    /// The scope a block action's statements see: its parameters, after
    /// the caller's locals (kept, so that the numbering of locals goes on
    /// from the caller's, but nameless, so the block cannot read them).
    fn action_scope(&self, file: FileId, sig: &ActionSig, outer: &[Local], suspended: u32) -> Ctx {
        let mut cx = Ctx::new(file);
        cx.suspended = suspended;
        cx.action = Some(sig.name.clone());
        cx.locals = outer
            .iter()
            .map(|l| Local {
                name: String::new(),
                used: true,
                ..l.clone()
            })
            .collect();
        cx.locals.extend(sig.params.iter().map(|p| Local {
            name: p.name.clone(),
            ty: p.ty.clone(),
            loc: p.loc,
            used: false,
            is_param: true,
        }));
        cx
    }

    /// Reports the statements a block action may not hold: timers,
    /// schedules, approvals and `stop`, which belong to the rule.
    fn only_actions(&mut self, file: FileId, action: &str, stmts: &[Stmt]) {
        for stmt in stmts {
            let what = match &stmt.kind {
                StmtKind::Timer { kind, .. } => match kind {
                    TimerKind::After => "`after`",
                    TimerKind::At => "`at`",
                    TimerKind::Every => "`every`",
                },
                StmtKind::Approval { .. } => "`require approval`",
                StmtKind::Stop => {
                    self.report(
                        Diagnostic::new(
                            Code::NotInAction,
                            file,
                            stmt.span,
                            "`stop` is not allowed in an action's block",
                        )
                        .with_label("the rule decides this")
                        .with_help("an action's block holds actions, `let` and `if`; write `stop` in the rule, after the call"),
                    );
                    continue;
                }
                StmtKind::If {
                    branches,
                    otherwise,
                } => {
                    for (_, body) in branches {
                        self.only_actions(file, action, &body.stmts);
                    }
                    if let Some(body) = otherwise {
                        self.only_actions(file, action, &body.stmts);
                    }
                    continue;
                }
                _ => continue,
            };
            let head = self
                .sources
                .text(file)
                .get(stmt.span.range())
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches(" do")
                .to_string();
            self.report(
                Diagnostic::new(
                    Code::NotInAction,
                    file,
                    stmt.span,
                    format!("{what} is not allowed in an action's block"),
                )
                .with_label("the rule decides this")
                .with_help(format!(
                    "an action's block holds actions, `let` and `if`; put {what} in the rule, around the call: `{head} do {action}(...) end`"
                )),
            );
        }
    }
}
