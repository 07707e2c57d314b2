//! Renders explanations: the chain from a node back to its root causes.

use hephy_engine::{Explanation, NodeStatus};

/// `manifest-tool@linux/arm64 rebuilds because its dependency curl@linux/arm64 rebuilds`, then
/// each cause indented below, down to the root causes.
pub(crate) fn text(explanation: &Explanation, past: bool) -> String {
    let mut out = String::new();
    line(explanation, past, 0, &mut out);
    // Node names, file names and failure messages reach the terminal escaped.
    crate::style::clean(&out).into_owned()
}

fn line(e: &Explanation, past: bool, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    if e.action == "skip" && past {
        let how = match e.outcome.as_ref().map(|o| o.result) {
            Some(NodeStatus::Cutoff) => "was up to date: its dependencies rebuilt to the same outputs",
            Some(NodeStatus::Cached) => "was found built in the registry",
            _ => "was up to date",
        };
        out.push_str(&format!("{indent}{} {how}\n", e.node));
        return;
    }
    if e.action == "skip" {
        match &e.fresh_since {
            Some((at, key)) => {
                let when = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(*at).unwrap_or(0)),
                );
                out.push_str(&format!(
                    "{indent}{} is up to date since {when} (key {})\n",
                    e.node,
                    &key[..12.min(key.len())]
                ));
            }
            None => out.push_str(&format!("{indent}{} is up to date\n", e.node)),
        }
        return;
    }
    let first_build = e.reasons.iter().all(|r| matches!(r, hephy_engine::Reason::NeverBuilt));
    let outcome = e.outcome.as_ref().map(|o| o.result);
    let verb = match (past, first_build, outcome) {
        (true, _, Some(NodeStatus::Cancelled)) => {
            "was not finished: the run was interrupted; it was to be built"
        }
        (true, _, Some(NodeStatus::Stopped)) => {
            "was stopped halfway: the run was interrupted; it was to be built"
        }
        (true, _, Some(NodeStatus::Skipped)) => "was skipped; it was to be built",
        (true, _, Some(NodeStatus::Failed)) => "failed; it was built",
        (true, true, _) => "was built",
        (true, false, _) => "was rebuilt",
        (false, true, _) => "builds",
        (false, false, _) => "rebuilds",
    };
    let reasons: Vec<String> = e
        .reasons
        .iter()
        .map(|r| match r {
            hephy_engine::Reason::DependencyRebuilt { node } if past => {
                format!("its dependency {node} was rebuilt")
            }
            hephy_engine::Reason::NeverBuilt if past => "it had never been built".to_owned(),
            hephy_engine::Reason::NeverBuilt => "it has never been built".to_owned(),
            other => other.to_string(),
        })
        .collect();
    out.push_str(&format!("{indent}{} {verb} because {}\n", e.node, reasons.join(", and ")));
    if let Some(message) =
        e.outcome.as_ref().filter(|o| o.result != NodeStatus::Built).and_then(|o| o.message.as_ref())
    {
        out.push_str(&format!("{indent}  ({message})\n"));
    }
    if let Some(failure) = &e.last_failure {
        out.push_str(&format!("{indent}  run {} failed: {}\n", failure.run, failure.message));
    }
    for cause in &e.causes {
        line(cause, past, depth + 1, out);
    }
}
