//! Task nodes: run the argv directly (never through a shell) in the graph's folder. The output
//! is the digest of the declared output files.

use std::process::Command;

use hephy_dsl::{Model, Task};
use hephy_engine::{Exclusions, FileSource, Job, Outcome, collect, secret_value, task_outputs_digest};

use crate::executors::process::{self, Log};

pub(crate) fn run(model: &Model, task: &Task, job: &Job<'_>, exclusions: &Exclusions) -> Outcome {
    let log = match Log::create(job) {
        Ok(log) => log,
        Err(e) => return Outcome::failed(e),
    };
    let Some((program, args)) = task.run.split_first() else {
        return Outcome::failed(TaskError::NoCommand);
    };
    // Inputs that cannot be listed (a FIFO or a device among them) fail the task, as they fail
    // an image's build: its key could not say what it was built from.
    if !task.inputs.is_empty()
        && let Err(e) = collect(job.root, &FileSource::Globs(task.inputs.clone()), exclusions)
    {
        return Outcome::failed(TaskError::Inputs(e));
    }
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(job.root)
        .envs(&task.env)
        .env("HEPHY_NODE", job.node.id.as_str())
        .env("HEPHY_RUN", job.run_id.to_string())
        .env("HEPHY_KEY", job.key.hex().as_str());
    if let Some(platform) = &job.node.platform {
        command.env("HEPHY_PLATFORM", platform.to_string());
    }
    for (dep, output) in &job.deps {
        command.env(format!("HEPHY_DEP_{}", env_name(dep.id.as_str())), output);
    }
    // Secrets reach the task in its environment only: never its argv, never the log.
    for name in &task.secrets {
        match secret_value(model, name) {
            Ok(value) => {
                command.env(name, value);
            }
            Err(e) => return Outcome::failed(crate::SecretError::Value(e)),
        }
    }
    if let Err(e) = process::run(command, job, &log) {
        return Outcome::failed(e);
    }
    match task_outputs_digest(job.root, &task.outputs, exclusions) {
        Ok(output) => Outcome::Built(output),
        Err(e) => Outcome::failed(TaskError::Outputs(e)),
    }
}

/// Why a task failed before or after its command (its command's own failure is a
/// [`CommandFailed`](process::CommandFailed)).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TaskError {
    /// `run` is empty.
    #[error("the task has no command")]
    NoCommand,
    /// Its inputs cannot be listed.
    #[error("its inputs cannot be read: {0}")]
    Inputs(hephy_engine::FilesError),
    /// Its declared outputs cannot be hashed.
    #[error("cannot hash the outputs: {0}")]
    Outputs(hephy_engine::FilesError),
}

/// `curl@linux/amd64` → `CURL_LINUX_AMD64`.
fn env_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::env_name;

    #[test]
    fn dependency_env_names() {
        assert_eq!(env_name("curl@linux/amd64"), "CURL_LINUX_AMD64");
        assert_eq!(env_name("kaniko.debug:v1.2"), "KANIKO_DEBUG_V1_2");
    }
}
