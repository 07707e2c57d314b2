//! What a generated pipeline's job does before it runs hephy on a bare runner: install the
//! hephy that wrote the pipeline (cached between jobs and runs, overridable), log in to the
//! graph's registry from the CI platform's own variables (`hephy ci login`), and set up buildah
//! and binfmt emulation only for the jobs whose nodes need them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hephy_dsl::{Builder, Model};
use hephy_engine::{Graph, NodeIndex, NodeKind};
use serde_json::{Map, Value};

/// The version every generated job installs: the one that wrote the pipeline.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where hephy's sources are (`cargo install --git`).
const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

/// The install root, relative to the job's checkout: inside the state folder, which no build
/// context includes, so the cached binary never enters a key. One folder per machine
/// architecture, so runners of several architectures can share one cache.
pub(crate) const CACHE_DIR: &str = ".hephy/install";

/// The install step, as one POSIX shell line. `HEPHY_INSTALL` (a command that puts `hephy` in
/// `$HEPHY_INSTALL_ROOT/bin`), `HEPHY_SOURCE_DIR` (a checkout to `cargo install --path`) or
/// `HEPHY_GIT`/`HEPHY_REF` (a fork, a branch or tag) override the default, `cargo install
/// --locked` of this version's tag. What installed the cached binary is kept beside it, so a
/// changed override installs again.
pub(crate) fn install_script() -> String {
    let default = format!(
        "cargo install --locked --root \"$HEPHY_INSTALL_ROOT\" --git \"${{HEPHY_GIT:-{REPOSITORY}}}\" --tag \"${{HEPHY_REF:-v{VERSION}}}\" hephy"
    );
    format!(
        "export HEPHY_INSTALL_ROOT=\"${{HEPHY_INSTALL_ROOT:-$PWD/{CACHE_DIR}/$(uname -m)}}\"; \
         export PATH=\"$HEPHY_INSTALL_ROOT/bin:$PATH\"; \
         if [ -n \"${{HEPHY_INSTALL:-}}\" ]; then how=\"$HEPHY_INSTALL\"; \
         elif [ -n \"${{HEPHY_SOURCE_DIR:-}}\" ]; then how='cargo install --locked --root \"$HEPHY_INSTALL_ROOT\" --path \"$HEPHY_SOURCE_DIR\"'; \
         else how='{default}'; fi; \
         stamp=\"{VERSION} $how ${{HEPHY_SOURCE_DIR:-}} ${{HEPHY_GIT:-}} ${{HEPHY_REF:-}}\"; \
         if [ -x \"$HEPHY_INSTALL_ROOT/bin/hephy\" ] && [ \"$(cat \"$HEPHY_INSTALL_ROOT/installed-by\" 2>/dev/null)\" = \"$stamp\" ]; then \
         echo \"hephy: installed in $HEPHY_INSTALL_ROOT (cached)\"; \
         else echo \"hephy: installing into $HEPHY_INSTALL_ROOT\"; mkdir -p \"$HEPHY_INSTALL_ROOT\"; \
         if [ -z \"${{HEPHY_INSTALL:-}}\" ] && ! command -v cargo >/dev/null 2>&1; then \
         export PATH=\"$PATH:$HOME/.cargo/bin\"; command -v cargo >/dev/null 2>&1 || \
         curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --no-modify-path || exit 1; fi; \
         ( eval \"$how\" ) || {{ echo \"hephy: installing failed\" >&2; exit 1; }}; \
         printf '%s' \"$stamp\" > \"$HEPHY_INSTALL_ROOT/installed-by\"; fi; \
         hephy --version"
    )
}

/// The login step: hephy writes the CI's credentials for the graph's registry into Docker's
/// `config.json` itself, so no secret passes through the job's script or its log.
pub(crate) fn login_command(graph_file: Option<&str>) -> String {
    match graph_file {
        Some(file) => format!("hephy ci login -f {}", super::shell_word(file)),
        None => "hephy ci login".to_owned(),
    }
}

/// Installs buildah where it is missing (Debian and Ubuntu runners).
pub(crate) const BUILDAH_SCRIPT: &str = "command -v buildah >/dev/null 2>&1 || { s=; [ \"$(id -u)\" = 0 ] || s=sudo; $s apt-get update -qq && $s apt-get install -y -qq buildah; }";

/// Registers qemu-user-static for `machines` (as `uname -m` and binfmt name them) where the
/// runner is not one of them and no handler is registered yet.
pub(crate) fn binfmt_script(machines: &str) -> String {
    format!(
        "need=; for m in {}; do [ \"$(uname -m)\" = \"$m\" ] || [ -e \"/proc/sys/fs/binfmt_misc/qemu-$m\" ] || need=1; done; \
         [ -z \"$need\" ] || {{ s=; [ \"$(id -u)\" = 0 ] || s=sudo; $s apt-get update -qq && $s apt-get install -y -qq qemu-user-static binfmt-support; }}",
        machines
    )
}

/// The machine name (`uname -m`, binfmt's `qemu-NAME`) of an OCI architecture.
fn machine(arch: &str) -> &'static str {
    match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "arm",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => "unknown",
    }
}

/// The machines of `tools`, space-separated, for [`binfmt_script`] (empty: none).
pub(crate) fn machines(tools: &Tools) -> String {
    tools.emulate.iter().copied().collect::<Vec<_>>().join(" ")
}

/// What a job's nodes need on the runner besides hephy.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tools {
    /// An image build whose Dockerfile `RUN`s: buildah (or `auto`, which picks buildah).
    pub(crate) buildah: bool,
    /// The machines whose `RUN` steps may need emulation: builds with `RUN` for an
    /// architecture other than their runner's (when the runner's is known).
    pub(crate) emulate: BTreeSet<&'static str>,
}

/// Whether `builder` runs a Dockerfile's commands with buildah on the job's runner.
fn runs_with_buildah(builder: Builder) -> bool {
    matches!(builder, Builder::Buildah | Builder::Auto)
}

/// What the nodes `nodes` need; `runner_arch` is the architecture of their executor's platform
/// when it names one (`None`: the runner's architecture is not known, so emulation is asked for
/// every platform with `RUN`, and skipped at run time where the runner is that platform).
pub(crate) fn tools(model: &Model, graph: &Graph, nodes: &[NodeIndex]) -> Tools {
    let mut tools = Tools::default();
    for &index in nodes {
        let node = graph.node(index);
        if node.kind != NodeKind::Image {
            continue;
        }
        let Some(image) = model.images.iter().find(|i| i.name.value == node.name()) else { continue };
        if !runs_with_buildah(image.builder) {
            continue;
        }
        tools.buildah = true;
        let runner =
            model.executors.iter().find(|e| *e.name.value == *node.executor).map(|e| e.platform.arch());
        if let Some(platform) = &node.platform
            && runner != Some(platform.arch())
        {
            tools.emulate.insert(machine(platform.arch()));
        }
    }
    tools
}

/// What any job of the graph may need: for the jobs of a pipeline that plans when it runs.
pub(crate) fn graph_tools(model: &Model) -> Tools {
    let mut tools = Tools::default();
    for image in model.images.iter().filter(|i| runs_with_buildah(i.builder)) {
        tools.buildah = true;
        tools.emulate.extend(image.platforms.iter().map(|p| machine(p.arch())));
    }
    tools
}

/// Why `hephy ci login` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("`{}` is not a JSON object", path.display())]
    NotAnObject { path: PathBuf },
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("neither `DOCKER_CONFIG` nor `HOME` is set, so there is no `config.json` to write")]
    NoConfig,
}

/// The registry host of a `HOST/PREFIX` registry setting.
fn host(registry: &str) -> &str {
    registry.split('/').next().unwrap_or(registry)
}

/// Whether `host` is an Amazon ECR registry (`ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]`).
fn is_ecr(host: &str) -> bool {
    let Some((account, rest)) = host.split_once(".dkr.ecr.") else { return false };
    !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && (rest.ends_with(".amazonaws.com") || rest.ends_with(".amazonaws.com.cn"))
}

/// One credential entry to write: under `auths` (base64 `user:password`) or `credHelpers`.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Auth { user: String, secret: String, from: &'static str },
    Helper(&'static str),
}

/// The credential the CI platform's variables (`var`) give for `host`, if any.
fn credential(host: &str, var: &dyn Fn(&str) -> Option<String>) -> Option<Entry> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    if let (Some(registry), Some(user), Some(secret)) =
        (set("CI_REGISTRY"), set("CI_REGISTRY_USER"), set("CI_REGISTRY_PASSWORD"))
        && registry == host
    {
        return Some(Entry::Auth { user, secret, from: "`CI_REGISTRY_USER`, `CI_REGISTRY_PASSWORD`" });
    }
    if host == "ghcr.io"
        && let Some(secret) = set("GITHUB_TOKEN")
    {
        let user = set("GITHUB_ACTOR").unwrap_or_else(|| "x-access-token".to_owned());
        return Some(Entry::Auth { user, secret, from: "`GITHUB_TOKEN`" });
    }
    is_ecr(host).then_some(Entry::Helper("ecr-login"))
}

/// `hephy ci login`: writes the credential the CI's variables give for the graph's registry
/// into Docker's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`), keeping what the file
/// already holds, readable by its owner only. Returns what it did, naming no secret.
pub(crate) fn login(model: &Model, var: &dyn Fn(&str) -> Option<String>) -> Result<String, LoginError> {
    let Some(registry) = &model.registry else {
        return Ok("hephy: the graph names no registry; no login\n".to_owned());
    };
    let host = host(registry);
    let Some(entry) = credential(host, var) else {
        return Ok(format!(
            "hephy: no CI variables give a login for `{host}` (`CI_REGISTRY*` on GitLab, `GITHUB_TOKEN` for `ghcr.io`, ECR's credential helper); `config.json` left as it is\n"
        ));
    };
    let dir = match var("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(var("HOME").filter(|h| !h.is_empty()).ok_or(LoginError::NoConfig)?).join(".docker")
        }
    };
    let path = dir.join("config.json");
    let mut config = read_config(&path)?;
    let said = match &entry {
        Entry::Auth { user, secret, from } => {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
            section(&mut config, "auths").insert(host.to_owned(), serde_json::json!({ "auth": auth }));
            // A credential helper named for the host would be asked first, hiding this login.
            if let Some(Value::Object(helpers)) = config.get_mut("credHelpers") {
                helpers.remove(host);
            }
            format!("hephy: logged in to `{host}` with {from} (in `{}`)\n", path.display())
        }
        Entry::Helper(helper) => {
            section(&mut config, "credHelpers").insert(host.to_owned(), Value::from(*helper));
            format!(
                "hephy: `{host}` uses the credential helper `docker-credential-{helper}` (in `{}`)\n",
                path.display()
            )
        }
    };
    write_config(&dir, &path, &config)?;
    Ok(said)
}

fn read_config(path: &Path) -> Result<Map<String, Value>, LoginError> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(LoginError::NotAnObject { path: path.to_owned() }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(source) => Err(LoginError::Read { path: path.to_owned(), source }),
    }
}

/// The object under `key`, made one if it is missing or not an object.
fn section<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let value = config.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("made an object above"),
    }
}

/// Replaces `path` whole (a temporary file renamed over it), mode 0600.
fn write_config(dir: &Path, path: &Path, config: &Map<String, Value>) -> Result<(), LoginError> {
    use std::io::Write as _;
    let write = |source| LoginError::Write { path: path.to_owned(), source };
    std::fs::create_dir_all(dir).map_err(write)?;
    let mut file = tempfile::Builder::new().prefix(".config.json").tempfile_in(dir).map_err(write)?;
    let text = serde_json::to_string_pretty(config).unwrap_or_default();
    file.write_all(text.as_bytes()).map_err(write)?;
    file.persist(path).map_err(|e| write(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn credentials_come_from_the_platforms_variables_for_its_own_registry_only() {
        let gitlab = vars(&[
            ("CI_REGISTRY", "registry.gitlab.com"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "s3cret"),
        ]);
        assert!(matches!(
            credential("registry.gitlab.com", &gitlab),
            Some(Entry::Auth { ref user, ref secret, .. }) if user == "gitlab-ci-token" && secret == "s3cret"
        ));
        assert_eq!(credential("registry.example.com", &gitlab), None);
        let github = vars(&[("GITHUB_TOKEN", "ghs_x"), ("GITHUB_ACTOR", "octocat")]);
        assert!(
            matches!(credential("ghcr.io", &github), Some(Entry::Auth { ref user, .. }) if user == "octocat")
        );
        assert_eq!(credential("registry.gitlab.com", &github), None);
        assert_eq!(
            credential("123456789012.dkr.ecr.eu-west-1.amazonaws.com", &vars(&[])),
            Some(Entry::Helper("ecr-login"))
        );
        assert!(!is_ecr("evil.dkr.ecr.eu-west-1.amazonaws.com.example.com"));
    }

    #[test]
    fn the_install_step_pins_this_version() {
        let script = install_script();
        assert!(script.contains(&format!("--tag \"${{HEPHY_REF:-v{VERSION}}}\" hephy")), "{script}");
        assert!(script.contains(REPOSITORY), "{script}");
    }
}
