//! Tasks: the command, inputs, outputs and environment.

use super::*;

impl Analyzer<'_> {
    pub(super) fn task(&mut self, draft: &TaskDraft) -> Task {
        let run: Vec<String> =
            draft.run.as_ref().map(|r| r.iter().map(|a| a.value.clone()).collect()).unwrap_or_default();
        if run.is_empty() {
            let problem = Problem::new(Code::Missing, format!("task `{}` has no command", draft.name.value));
            let problem = match &draft.run {
                Some(r) => problem.label(r.span, "empty command"),
                None => problem.label(draft.name.span, "no `run` given"),
            };
            self.sink.push(problem.help_for("add `run \"program\" \"arg\"…`", "add `run: [program, arg]`"));
        }
        let inputs = draft.inputs.iter().filter_map(|g| self.relative(g, "input")).collect();
        let outputs = draft.outputs.iter().filter_map(|g| self.relative(g, "output")).collect();
        let env = self.pairs(&draft.env, "environment variable");
        let platforms = draft.platforms.as_ref().map(|l| self.platforms(l)).unwrap_or_default();
        Task {
            name: draft.name.clone(),
            run,
            inputs,
            outputs,
            env,
            platforms,
            deps: Vec::new(),
            timeout: None,
            secrets: Vec::new(),
        }
    }
}
