//! Task nodes: run the argv directly (never through a shell) in the graph's folder, in a process
//! group of their own so cancellation reaches every descendant, with stdout and stderr teed to
//! the node's log (and to the reporter with `-v`). The output is the digest of the declared
//! output files.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hephy_dsl::Task;
use hephy_engine::{Exclusions, Job, Outcome, task_outputs_digest};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a cancelled task gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

pub(crate) fn run(task: &Task, job: &Job<'_>, exclusions: &Exclusions) -> Outcome {
    let fail = |message: String| Outcome::Failed { message };
    if let Some(parent) = job.log.parent()
        && let Err(e) = fs::create_dir_all(parent)
    {
        return fail(format!("cannot create the log folder `{}`: {e}", parent.display()));
    }
    let log = match File::create(&job.log) {
        Ok(file) => Arc::new(Mutex::new(file)),
        Err(e) => return fail(format!("cannot create the log `{}`: {e}", job.log.display())),
    };
    let Some((program, args)) = task.run.split_first() else {
        return fail("the task has no command".to_owned());
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(job.root)
        .envs(&task.env)
        .env("HEPHY_NODE", job.node.id.as_str())
        .env("HEPHY_RUN", job.run_id.to_string())
        .env("HEPHY_KEY", job.key.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(platform) = &job.node.platform {
        command.env("HEPHY_PLATFORM", platform.to_string());
    }
    for (dep, output) in &job.deps {
        command.env(format!("HEPHY_DEP_{}", env_name(dep.id.as_str())), output);
    }
    let shown = task.run.join(" ");
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return fail(format!("cannot start `{program}`: {e}")),
    };
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let log = Arc::clone(&log);
        let events = job.events.clone();
        let node = job.node.id.to_string();
        let verbose = job.verbose;
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if let Ok(mut file) = log.lock() {
                    let _ = file.write_all(&line);
                }
                if verbose {
                    let text = String::from_utf8_lossy(&line).trim_end_matches(['\n', '\r']).to_owned();
                    let _ = events.send(hephy_engine::Message::Output { node: node.clone(), line: text });
                }
                line.clear();
            }
        })
    })
    .collect();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let mut terminated_at: Option<Instant> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if job.cancel.load(Ordering::SeqCst) {
            match terminated_at {
                None => {
                    let _ = killpg(pid, Signal::SIGTERM);
                    terminated_at = Some(Instant::now());
                }
                Some(at) if at.elapsed() > GRACE => {
                    let _ = killpg(pid, Signal::SIGKILL);
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Whatever the task left running in its group goes with it.
    let _ = killpg(pid, Signal::SIGKILL);
    for reader in readers {
        let _ = reader.join();
    }
    let status = match status {
        Ok(status) => status,
        Err(e) => return fail(format!("lost track of `{shown}`: {e}")),
    };
    if terminated_at.is_some() {
        return fail(format!("`{shown}` was stopped: the run was cancelled"));
    }
    if !status.success() {
        let how = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_owned(),
        };
        return fail(format!("`{shown}` {how}"));
    }
    match task_outputs_digest(job.root, &task.outputs, exclusions) {
        Ok(output) => Outcome::Built { output },
        Err(e) => fail(format!("cannot hash the outputs: {e}")),
    }
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
