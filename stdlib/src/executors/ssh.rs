//! Remote executors over SSH: an image build of an executor with `ssh="user@host[:port]"` runs
//! on that host, with the built-in `oci` builder of a `hephy` there.
//!
//! Per build, hephy streams one tar over ssh's stdin — a spec (`spec.json`: platform, target,
//! build args with the injected references, repository, tags) and the build context as
//! `.dockerignore` leaves it (upstream checkouts included) — to `hephy remote-build` on the
//! host, which unpacks it into a scratch folder, builds, pushes to the graph's registry (the
//! registry carries results between machines, so an ssh executor needs one), and prints the
//! digest, which hephy reads back. Its output goes to the node's log.
//!
//! The host's `hephy` is this very binary, shipped once (`~/.cache/hephy/bin/hephy-<blake3>`,
//! or under `$HEPHY_REMOTE_DIR` as the host's environment sets it) when the host has this
//! machine's architecture; otherwise the host's own `hephy` on its `PATH`. ssh runs with
//! `BatchMode`, a connect timeout and keep-alives, so a host that goes away fails the node with
//! a clear message instead of hanging it. `HEPHY_SSH_CONFIG` names an ssh config file to use
//! (keys, known hosts); `HEPHY_SSH_CONNECT_TIMEOUT` overrides the 10 s connect timeout.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use hephy_dsl::{Builder, Image, Model, Platform};
use hephy_engine::{Job, Outcome};
use serde_json::{Value, json};

use crate::builders::oci::{self, Oci, build};
use crate::executors::process::{self, Feed, Log};
use crate::registry::reference;

/// The line `hephy remote-build` prints its result on.
const DIGEST_MARKER: &str = "hephy-remote-digest ";

/// The version of the spec a build is shipped with.
const SPEC_VERSION: u64 = 1;

/// Builds on ssh executors.
#[derive(Debug, Default)]
pub(crate) struct Remote {
    /// The `hephy` to run on each host (`Err`: why there is none), found once per run.
    hosts: Mutex<HashMap<String, Result<String, SshError>>>,
}

/// A build on an ssh executor that could not be done (the host side's own failures are in
/// the log and in [`SshError::OnHost`]).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum SshError {
    /// This binary cannot be found or read, to ship it.
    #[error("cannot find hephy's own binary: {0}")]
    NoBinary(Arc<std::io::Error>),
    /// This binary cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable {
        /// The binary.
        path: PathBuf,
        /// Why.
        source: Arc<std::io::Error>,
    },
    /// A probe of the same host panicked.
    #[error("a host lock was poisoned")]
    Poisoned,
    /// ssh exited 255: the connection, not the command, failed.
    #[error("the ssh connection to {target} failed or was lost ({})", why.as_deref().unwrap_or("no message"))]
    Connection {
        /// `user@host[:port]`.
        target: String,
        /// ssh's last line.
        why: Option<String>,
    },
    /// The command on the host failed.
    #[error("on {target}: {failed}")]
    OnHost {
        /// `user@host[:port]`.
        target: String,
        /// How.
        #[source]
        failed: Arc<process::CommandFailed>,
    },
    /// The host has no hephy, and this one is for another architecture.
    #[error(
        "{target} has no hephy, and this one cannot run there ({arch}, not {}): install hephy on {target}",
        local_arch()
    )]
    NoHephy {
        /// `user@host[:port]`.
        target: String,
        /// The host's `uname -m`.
        arch: String,
    },
    /// The image is built with another builder than the built-in one.
    #[error("ssh executors run the built-in oci builder; image `{image}` is built with {builder}")]
    NotOci {
        /// The image.
        image: String,
        /// Its builder.
        builder: Builder,
    },
    /// The graph has no registry to carry the result back.
    #[error(
        "an ssh executor hands its builds back through a registry: give the graph a `registry` to build `{node}` on {target}"
    )]
    NoRegistry {
        /// The node.
        node: String,
        /// `user@host[:port]`.
        target: String,
    },
    /// The host printed no digest, or something else.
    #[error("{target} reported {}", match digest { Some(d) => format!("`{d}`, not a digest"), None => "no digest".to_owned() })]
    NoDigest {
        /// `user@host[:port]`.
        target: String,
        /// What it printed instead, if anything.
        digest: Option<String>,
    },
}

/// Why a build on an ssh executor's host failed: the data; text only when the node's outcome
/// is made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// The host, the connection or the remote build failed.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// The node's log cannot be written.
    #[error(transparent)]
    Log(#[from] process::LogError),
    /// The build context cannot be fetched.
    #[error(transparent)]
    Source(#[from] crate::sources::SourceError),
    /// The build context cannot be listed.
    #[error("{0}")]
    Files(#[from] hephy_engine::FilesError),
    /// The per-platform naming template cannot be rendered whole.
    #[error(transparent)]
    Naming(#[from] crate::registry::reference::NamingError),
}

/// `user@host[:port]` → (`user@host`, port).
fn destination(target: &str) -> (String, Option<String>) {
    match target.rsplit_once(':') {
        Some((left, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() => {
            (left.to_owned(), Some(port.to_owned()))
        }
        _ => (target.to_owned(), None),
    }
}

/// `ssh … DESTINATION -- sh -c SCRIPT`: batch mode, timeouts, keep-alives.
fn ssh(target: &str, script: &str) -> Command {
    let (dest, port) = destination(target);
    let timeout = std::env::var("HEPHY_SSH_CONNECT_TIMEOUT")
        .ok()
        .filter(|t| t.parse::<u32>().is_ok_and(|t| t > 0))
        .unwrap_or_else(|| "10".to_owned());
    let mut command = Command::new("ssh");
    if let Some(config) = std::env::var_os("HEPHY_SSH_CONFIG").filter(|c| !c.is_empty()) {
        command.arg("-F").arg(config);
    }
    command.args(["-o", "BatchMode=yes", "-o", &format!("ConnectTimeout={timeout}")]);
    command.args(["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-T"]);
    if let Some(port) = port {
        command.args(["-p", &port]);
    }
    // The destination was validated (no leading `-`); the script is one shell word.
    command.arg(dest).arg("--").arg(format!("sh -c {}", quote(script)));
    command
}

/// A word for a POSIX shell, single-quoted.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The host's folder for hephy: `$HEPHY_REMOTE_DIR`, else `~/.cache/hephy`.
const REMOTE_DIR: &str = r#"d="${HEPHY_REMOTE_DIR:-$HOME/.cache/hephy}""#;

/// This binary's identity: the first 16 hex digits of its blake3.
fn exe_id() -> Result<(PathBuf, String), SshError> {
    static ID: OnceLock<Result<(PathBuf, String), SshError>> = OnceLock::new();
    ID.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| SshError::NoBinary(Arc::new(e)))?;
        let bytes = std::fs::read(&exe)
            .map_err(|e| SshError::Unreadable { path: exe.clone(), source: Arc::new(e) })?;
        Ok((exe, blake3::hash(&bytes).to_hex()[..16].to_owned()))
    })
    .clone()
}

fn local_arch() -> &'static str {
    std::env::consts::ARCH
}

impl Remote {
    /// The `hephy` to run on `target`, shipping this binary there when it can run it.
    fn prepare(&self, target: &str, job: &Job<'_>, log: &Log) -> Result<String, SshError> {
        let mut hosts = self.hosts.lock().map_err(|_| SshError::Poisoned)?;
        if let Some(found) = hosts.get(target) {
            return found.clone();
        }
        let found = self.find_or_ship(target, job, log);
        hosts.insert(target.to_owned(), found.clone());
        found
    }

    fn find_or_ship(&self, target: &str, job: &Job<'_>, log: &Log) -> Result<String, SshError> {
        let (exe, id) = exe_id()?;
        let shipped = format!("\"$d/bin/hephy-{id}\"");
        let probe = format!(
            "{REMOTE_DIR}; echo \"arch=$(uname -m)\"; if [ -x {shipped} ]; then echo shipped=yes; fi; command -v hephy >/dev/null && echo installed=yes; true"
        );
        let command = ssh(target, &probe);
        log.note(&format!("$ {}", process::shown(&command)));
        process::run_fed(command, job, log, None).map_err(|e| connection_failure(target, e))?;
        let arch = log.marker("arch=").unwrap_or_default();
        if log.marker("shipped=").is_some() {
            return Ok(format!("{REMOTE_DIR}; exec {shipped}"));
        }
        if arch == local_arch() {
            let script = format!(
                "{REMOTE_DIR}; mkdir -p \"$d/bin\" && cat > \"$d/bin/.hephy-{id}.tmp\" && chmod 755 \"$d/bin/.hephy-{id}.tmp\" && mv \"$d/bin/.hephy-{id}.tmp\" {shipped}"
            );
            let command = ssh(target, &script);
            log.note(&format!("$ {}   (shipping {} to {target})", process::shown(&command), exe.display()));
            let feed: Feed = Box::new(move |out: &mut dyn Write| {
                let mut file = std::fs::File::open(&exe)?;
                std::io::copy(&mut file, out).map(|_| ())
            });
            process::run_fed(command, job, log, Some(feed)).map_err(|e| connection_failure(target, e))?;
            return Ok(format!("{REMOTE_DIR}; exec {shipped}"));
        }
        if log.marker("installed=").is_some() {
            log.note(&format!(
                "hephy: {target} is {arch}, this machine {}: using its own hephy",
                local_arch()
            ));
            return Ok("exec hephy".to_owned());
        }
        Err(SshError::NoHephy { target: target.to_owned(), arch })
    }

    /// Builds one platform of `image` on the executor's host.
    pub(crate) fn build(
        &self,
        model: &Model,
        image: &Image,
        job: &Job<'_>,
        target: &str,
        oci: &Oci,
    ) -> Outcome {
        match self.try_build(model, image, job, target, oci) {
            Ok(digest) => Outcome::Built(digest),
            Err(error) => Outcome::failed(error),
        }
    }

    fn try_build(
        &self,
        model: &Model,
        image: &Image,
        job: &Job<'_>,
        target: &str,
        oci: &Oci,
    ) -> Result<String, RemoteError> {
        if !crate::builders::in_process(image.builder) {
            return Err(SshError::NotOci { image: image.name.value.clone(), builder: image.builder }.into());
        }
        if model.registry.is_none() {
            return Err(
                SshError::NoRegistry { node: job.node.id.to_string(), target: target.to_owned() }.into()
            );
        }
        let log = Log::create(job)?;
        let remote_hephy = self.prepare(target, job, &log)?;
        let node = job.node;
        let context = oci.sources().context(job.root, image)?;
        let mut files = oci::context_files(&context, &image.dockerfile)?;
        // The ignore files go along even when they exclude themselves: the host lists the
        // context again, and must take the same one (the Dockerfile's own before `.dockerignore`).
        for ignore in hephy_engine::ignore_files(".", &image.dockerfile) {
            if !files.contains(&ignore) && std::fs::symlink_metadata(context.join(&ignore)).is_ok() {
                files.push(ignore);
            }
        }
        let mut build_args: Vec<(String, String)> =
            image.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        build_args.extend(reference::injected(model, &oci.sources().release, node, &job.deps));
        // The host pushes the build by digest (and under these tags); its key is recorded here.
        let tags: Vec<String> =
            oci.platform_tag(model, job).map_err(RemoteError::Naming)?.into_iter().collect();
        let spec = json!({
            "version": SPEC_VERSION,
            "node": node.id.to_string(),
            "dockerfile": image.dockerfile,
            "platform": node.platform.as_ref().map(ToString::to_string),
            "target": node.target,
            "build_args": build_args,
            "contexts": reference::contexts(model, &oci.sources().release, node, &job.deps),
            "repository": reference::repository(model, &oci.sources().release, node),
            "tags": tags,
            "compression": image.compression.name(),
        });
        let command = ssh(target, &format!("{remote_hephy} remote-build"));
        log.note(&format!("$ {}   ({} context files)", process::shown(&command), files.len()));
        let feed: Feed = Box::new(move |out: &mut dyn Write| bundle(out, &spec, &context, &files));
        process::run_fed(command, job, &log, Some(feed)).map_err(|e| connection_failure(target, e))?;
        let digest = log
            .marker(DIGEST_MARKER)
            .ok_or_else(|| SshError::NoDigest { target: target.to_owned(), digest: None })?;
        if !hephy_oci::layout::valid_digest(&digest) {
            return Err(SshError::NoDigest { target: target.to_owned(), digest: Some(digest) }.into());
        }
        let stop = process::stop(job);
        if let Err(e) = oci.write_record(model, node, job.key, &digest, &stop, &|line: &str| log.note(line)) {
            // Only a later cache lookup misses it: the build itself is pushed.
            log.note(&format!("hephy: the cache record of {} was not written: {e}", node.id));
        }
        Ok(digest)
    }
}

/// ssh exits 255 when the connection (not the command) failed.
fn connection_failure(target: &str, failed: process::CommandFailed) -> SshError {
    match failed {
        process::CommandFailed::Exited { exit_code: Some(255), last_line, .. } => {
            SshError::Connection { target: target.to_owned(), why: last_line }
        }
        failed => SshError::OnHost { target: target.to_owned(), failed: Arc::new(failed) },
    }
}

/// Writes the tar a remote build reads: `spec.json`, then `context/…`.
fn bundle(out: &mut dyn Write, spec: &Value, context: &Path, files: &[String]) -> std::io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let bytes = serde_json::to_vec(spec).map_err(std::io::Error::other)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    tar.append_data(&mut header, "spec.json", &bytes[..])?;
    for file in files {
        tar.append_path_with_name(context.join(file), Path::new("context").join(file))?;
    }
    tar.finish()
}

/// The host side: reads a bundle from `input`, builds it with the `oci` builder (layout under
/// `$HEPHY_REMOTE_DIR` or `~/.cache/hephy`), pushes it, and prints the digest on `output`.
/// Why `hephy remote-build` could not build a bundle.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// There is no folder to work in.
    #[error("neither HEPHY_REMOTE_DIR nor HOME is set")]
    NoHome,
    /// The work folder cannot be created.
    #[error("cannot create `{}`: {source}", path.display())]
    Create {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A scratch folder cannot be created in it.
    #[error("cannot create a folder in `{}`: {source}", path.display())]
    CreateIn {
        /// The work folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bundle cannot be read or unpacked, or has no spec.
    #[error("{step}: {source}")]
    Bundle {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The spec is not JSON.
    #[error("the bundle's spec is not JSON: {0}")]
    SpecJson(serde_json::Error),
    /// The spec is of another version.
    #[error("this hephy reads bundles of version {SPEC_VERSION}, not {found}")]
    Version {
        /// The version it has.
        found: String,
    },
    /// A field the spec must have is missing.
    #[error("the spec has no `{0}`")]
    Missing(String),
    /// A field of the spec is malformed.
    #[error("the spec's {field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The Dockerfile the spec names is not in the bundle.
    #[error("cannot read `{name}` from the bundle: {source}")]
    Dockerfile {
        /// Its name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// The build or the push failed (the `oci` builder's message).
    #[error("{0}")]
    Build(String),
    /// The digest cannot be printed.
    #[error("{0}")]
    Output(std::io::Error),
}

pub fn serve(input: impl Read, mut output: impl Write) -> Result<(), ServeError> {
    let home = std::env::var_os("HEPHY_REMOTE_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("hephy")))
        .ok_or(ServeError::NoHome)?;
    std::fs::create_dir_all(&home).map_err(|source| ServeError::Create { path: home.clone(), source })?;
    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&home)
        .map_err(|source| ServeError::CreateIn { path: home.clone(), source })?;
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    // `unpack_in` refuses entries that would land outside the folder (`..`, absolute paths).
    for entry in
        archive.entries().map_err(|source| ServeError::Bundle { step: "reading the bundle", source })?
    {
        let mut entry = entry.map_err(|source| ServeError::Bundle { step: "reading the bundle", source })?;
        entry
            .unpack_in(scratch.path())
            .map_err(|source| ServeError::Bundle { step: "unpacking the bundle", source })?;
    }
    let spec: Value = serde_json::from_slice(
        &std::fs::read(scratch.path().join("spec.json"))
            .map_err(|source| ServeError::Bundle { step: "the bundle has no spec", source })?,
    )
    .map_err(ServeError::SpecJson)?;
    if spec["version"].as_u64() != Some(SPEC_VERSION) {
        return Err(ServeError::Version { found: spec["version"].to_string() });
    }
    let text =
        |key: &str| spec[key].as_str().map(str::to_owned).ok_or_else(|| ServeError::Missing(key.to_owned()));
    let dockerfile_name = text("dockerfile")?;
    let platform: Platform = match spec["platform"].as_str() {
        Some(p) => p.parse().map_err(|e: hephy_dsl::PlatformError| ServeError::Field {
            field: "platform",
            message: e.to_string(),
        })?,
        None => Platform::host(),
    };
    let build_args: Vec<(String, String)> = serde_json::from_value(spec["build_args"].clone())
        .map_err(|e| ServeError::Field { field: "build args", message: e.to_string() })?;
    let tags: Vec<String> = serde_json::from_value(spec["tags"].clone())
        .map_err(|e| ServeError::Field { field: "tags", message: e.to_string() })?;
    // Absent in a spec of an older hephy: no named contexts.
    let contexts: Vec<(String, String)> =
        serde_json::from_value(spec["contexts"].clone()).unwrap_or_default();
    let repository = text("repository")?;
    let context = scratch.path().join("context");
    // Never through a link out of the bundle: the host's files are not the build's.
    let dockerfile = hephy_os::open::open_below(&context, Path::new(&dockerfile_name))
        .and_then(|mut file| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).map(|_| text)
        })
        .map_err(|source| ServeError::Dockerfile { name: dockerfile_name.clone(), source })?;
    let files =
        oci::context_files(&context, &dockerfile_name).map_err(|e| ServeError::Build(e.to_string()))?;
    let target = spec["target"].as_str().map(str::to_owned);
    let request = build::Request {
        dockerfile: &dockerfile,
        dockerfile_name: &dockerfile_name,
        context: &context,
        files: &files,
        build_args: &build_args,
        target: target.as_deref(),
        platform: &platform,
        contexts: &contexts,
        layers: hephy_oci::compress::Settings {
            codec: match spec["compression"].as_str() {
                Some("zstd") => hephy_oci::compress::Codec::Zstd,
                _ => hephy_oci::compress::Codec::Gzip,
            },
            stop: hephy_os::stop::Stop::never(),
        },
    };
    // Tags and names come in the spec: this host's git is never asked.
    let release = std::sync::Arc::new(crate::release::Release::new(&home));
    let sources = crate::Sources { state_dir: home.clone(), upstreams: Default::default(), release };
    let oci = Oci::new(&home, sources);
    let note = |line: &str| eprintln!("{line}");
    note(&format!(
        "hephy remote-build: {} for {platform} on this host",
        spec["node"].as_str().unwrap_or("?")
    ));
    let manifest = oci.assemble(&request, &note).map_err(|e| ServeError::Build(e.to_string()))?;
    // By digest first: the repository's tag list holds the graph's tags alone.
    let tags: Vec<String> = std::iter::once(manifest.digest.clone()).chain(tags).collect();
    oci.publish_build(&repository, &manifest, &tags, &hephy_os::stop::Stop::never(), &note)
        .map_err(|e| ServeError::Build(e.to_string()))?;
    writeln!(output, "{DIGEST_MARKER}{}", manifest.digest).map_err(ServeError::Output)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_commands_are_batch_with_timeouts_and_one_remote_word() {
        let command = ssh("builder@10.0.0.7:2222", "echo 'hi'");
        let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(args.windows(2).any(|w| w == ["-o", "BatchMode=yes"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["-p", "2222"]), "{args:?}");
        let tail = &args[args.len() - 3..];
        assert_eq!(tail, ["builder@10.0.0.7", "--", r"sh -c 'echo '\''hi'\'''"]);
        assert_eq!(destination("b@h"), ("b@h".to_owned(), None));
    }

    #[test]
    fn a_lost_connection_is_told_from_a_failed_command() {
        let exited = |code| process::CommandFailed::Exited {
            shown: "ssh h -- sh -c x".to_owned(),
            exit_code: Some(code),
            last_line: Some("Connection refused".to_owned()),
        };
        let lost = connection_failure("b@h", exited(255));
        assert!(matches!(&lost, SshError::Connection { why: Some(w), .. } if w == "Connection refused"));
        assert_eq!(lost.to_string(), "the ssh connection to b@h failed or was lost (Connection refused)");
        let failed = connection_failure("b@h", exited(2));
        assert!(matches!(failed, SshError::OnHost { .. }));
        assert_eq!(failed.to_string(), "on b@h: `ssh h -- sh -c x` exited with status 2: Connection refused");
    }
}
