//! Schedules: the definitions they rebuild.

use super::*;

impl Analyzer<'_> {
    pub(super) fn schedule(&mut self, draft: &crate::document::ScheduleDraft, names: &Names<'_>) -> Schedule {
        if draft.rebuild.is_empty() && !draft.refresh {
            self.sink.push(
                Problem::new(Code::Missing, format!("schedule `{}` rebuilds nothing", draft.name.value))
                    .label(draft.name.span, "no `rebuild` given")
                    .help_for("add `rebuild \"image\"…`", "add `rebuild: [image]`"),
            );
        }
        for name in &draft.rebuild {
            if !names.positions.contains_key(name.as_str()) {
                let help = self.sink.suggest(name, names.list.iter().copied());
                self.sink.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!("schedule `{}` names unknown `{}`", draft.name.value, name.value),
                    )
                    .label(name.span, "no image or task has this name")
                    .maybe_help(help),
                );
            }
        }
        Schedule { name: draft.name.clone(), rebuild: draft.rebuild.clone(), refresh: draft.refresh }
    }
}
