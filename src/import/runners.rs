//! The kaniko-builder layout's CI runners: which GitLab runner tags its `.gitlab-ci.yml` gives
//! the builds of each architecture (`tags: [$CICD_TAG_AMD64]` on the amd64 build job, often
//! through `extends`), so that the imported graph's executors send each platform's jobs to the
//! same runners as before.
//!
//! A job's architecture is read from its name, its `variables` and its tags
//! (`amd64`/`x86_64`/`x64`, `arm64`/`aarch64`, as words); a job that names none, or both, tells
//! nothing. Tags that are CI variables are kept as variables (GitLab expands them in `tags:`).

use std::collections::BTreeMap;
use std::path::Path;

use hephy_dsl::yaml_tree::{self as yaml, Kind, Value};

use super::shown;

/// The CI file the layout's pipeline is defined in.
const CI_FILE: &str = ".gitlab-ci.yml";

/// How deep `extends` is followed (GitLab allows 11 levels).
const MAX_EXTENDS: usize = 11;

/// Runner tags by architecture (`amd64`, `arm64`), as the CI file gives them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Runners {
    pub(crate) by_arch: BTreeMap<String, Vec<String>>,
}

/// One job's own keys (before `extends`).
#[derive(Debug, Default)]
struct Job {
    tags: Option<Vec<String>>,
    extends: Vec<String>,
    variables: Vec<String>,
}

/// Reads `dir/.gitlab-ci.yml`, if there is one; what cannot be read is a warning.
pub(crate) fn read(dir: &Path, warnings: &mut Vec<String>) -> Runners {
    let Ok(text) = std::fs::read_to_string(dir.join(CI_FILE)) else { return Runners::default() };
    let root = match yaml::value(&text) {
        Ok(Some(root)) => root,
        Ok(None) => return Runners::default(),
        Err(problem) => {
            warnings.push(format!(
                "{CI_FILE}: not read ({}): no executors imported",
                shown(&problem.to_string())
            ));
            return Runners::default();
        }
    };
    let Kind::Map(entries) = &root.kind else { return Runners::default() };
    let jobs: BTreeMap<String, Job> =
        entries.iter().filter_map(|(k, v)| Some((scalar(k)?, job(v)?))).collect();
    let mut runners = Runners::default();
    for (name, job) in &jobs {
        if name.starts_with('.') {
            continue; // a template: its tags count through the jobs that extend it
        }
        let Some(tags) = tags_of(&jobs, job, 0) else { continue };
        let mut words: Vec<&str> = vec![name];
        words.extend(job.variables.iter().map(String::as_str));
        words.extend(tags.iter().map(String::as_str));
        let Some(arch) = arch(&words) else { continue };
        let tags: Vec<String> = tags.iter().map(|t| variable_form(t)).collect();
        match runners.by_arch.get(&arch) {
            Some(known) if *known != tags => warnings.push(format!(
                "{CI_FILE}: job `{}` runs {arch} builds on other runners ({}) than an earlier job ({}): the earlier kept",
                shown(name),
                shown(&tags.join(", ")),
                shown(&known.join(", "))
            )),
            Some(_) => {}
            None => {
                runners.by_arch.insert(arch, tags);
            }
        }
    }
    runners
}

fn scalar(value: &Value) -> Option<String> {
    match &value.kind {
        Kind::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    match &value.kind {
        Kind::Seq(items) => items.iter().filter_map(scalar).collect(),
        Kind::Scalar { text, plain } if !(*plain && yaml::is_null(text)) => vec![text.clone()],
        _ => Vec::new(),
    }
}

/// A top-level entry that is a job (or a template of jobs): a map.
fn job(value: &Value) -> Option<Job> {
    let Kind::Map(entries) = &value.kind else { return None };
    let mut job = Job::default();
    for (key, value) in entries {
        match scalar(key).as_deref() {
            Some("tags") => job.tags = Some(strings(value)),
            Some("extends") => job.extends = strings(value),
            Some("variables") => {
                if let Kind::Map(vars) = &value.kind {
                    job.variables.extend(vars.iter().filter_map(|(_, v)| scalar(v)));
                }
            }
            _ => {}
        }
    }
    Some(job)
}

/// A job's tags: its own, else those of the last job it extends that has some (GitLab merges
/// `extends` in order, later ones winning).
fn tags_of<'j>(jobs: &'j BTreeMap<String, Job>, job: &'j Job, depth: usize) -> Option<&'j Vec<String>> {
    if let Some(tags) = &job.tags {
        return Some(tags);
    }
    if depth >= MAX_EXTENDS {
        return None;
    }
    job.extends.iter().rev().find_map(|parent| tags_of(jobs, jobs.get(parent)?, depth + 1))
}

/// The one architecture `words` name (`amd64`, `arm64`), if exactly one.
fn arch(words: &[&str]) -> Option<String> {
    let mut found: Option<&str> = None;
    for word in words {
        let lower = word.to_ascii_lowercase();
        for part in lower.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
            let arch = match part.rsplit('_').next().unwrap_or(part) {
                "amd64" | "x86_64" | "x64" => "amd64",
                "arm64" | "aarch64" => "arm64",
                _ if part.ends_with("x86_64") => "amd64",
                _ => continue,
            };
            match found {
                Some(other) if other != arch => return None,
                _ => found = Some(arch),
            }
        }
    }
    found.map(str::to_owned)
}

/// `${NAME}` written `$NAME` (the same for GitLab; the graph's own variables use `${…}`).
fn variable_form(tag: &str) -> String {
    match tag.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
        Some(name) if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => format!("${name}"),
        _ => tag.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_are_words_of_names_variables_and_tags() {
        assert_eq!(arch(&["build-amd64"]), Some("amd64".to_owned()));
        assert_eq!(arch(&["build", "$CICD_TAG_ARM64"]), Some("arm64".to_owned()));
        assert_eq!(arch(&["build", "linux/arm64"]), Some("arm64".to_owned()));
        assert_eq!(arch(&["build", "x86_64"]), Some("amd64".to_owned()));
        assert_eq!(arch(&["build", "docker"]), None);
        assert_eq!(arch(&["build-amd64", "arm64"]), None);
        assert_eq!(arch(&["farmer64"]), None);
    }

    #[test]
    fn tags_come_through_extends_and_variables_keep_their_form() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(
            dir.path().join(CI_FILE),
            "variables:\n  CICD_TAG_AMD64: aws-amd64\n.build:\n  script: [./build.sh]\n  tags: [docker]\n\
             .amd64:\n  extends: .build\n  tags: [\"${CICD_TAG_AMD64}\"]\n\
             build-amd64:\n  extends: [.build, .amd64]\nbuild-arm64:\n  extends: .build\n  variables:\n    ARCH: arm64\n  tags: [$CICD_TAG_ARM64]\n\
             lint:\n  tags: [docker]\n  script: [hadolint]\n",
        )
        .expect("write");
        let mut warnings = Vec::new();
        let runners = read(dir.path(), &mut warnings);
        assert_eq!(warnings, Vec::<String>::new());
        assert_eq!(runners.by_arch["amd64"], ["$CICD_TAG_AMD64"]);
        assert_eq!(runners.by_arch["arm64"], ["$CICD_TAG_ARM64"]);
        assert_eq!(runners.by_arch.len(), 2);
    }
}
