//! The built-in `oci` builder against buildah, case by case: each RUN-less Dockerfile below is
//! built by buildah (vfs, chroot, `--timestamp 0`) and by the real `hephy` binary (`builder
//! "oci"`), and the two images must agree: their configs (what a container runs with) and their
//! merged file systems (type, mode, owner, symlink target, hardlinks, content).
//!
//! Where buildah 1.28 differs from BuildKit's documented behaviour, the case says so
//! (`exception`), follows BuildKit, and checks hephy's image directly.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Repo;
use common::layers::{push_layers, tar_of};
use common::registry::Registry;
use serde_json::Value;

#[path = "fidelity/cases.rs"]
mod cases;

use cases::Case;

/// One entry of a merged file system.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u64,
    gid: u64,
    target: Option<String>,
    content: Option<String>,
}

/// An image as compared: its normalized config and its merged file system (path → line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Image {
    pub(crate) config: BTreeMap<String, Value>,
    pub(crate) fs: BTreeMap<String, String>,
}

impl Image {
    /// The line describing `path`, if the image has it.
    pub(crate) fn at(&self, path: &str) -> Option<&str> {
        self.fs.get(path.trim_start_matches('/')).map(String::as_str)
    }

    fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.config.iter().map(|(k, v)| format!("config {k} = {v}")).collect();
        out.extend(self.fs.iter().map(|(p, l)| format!("/{p} {l}")));
        out
    }
}

/// The config keys compared (Docker's names; BuildKit writes the same into OCI configs).
const KEYS: [&str; 12] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Shell",
    "Healthcheck",
    "OnBuild",
];

fn normalize_config(config: &Value, top: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for key in KEYS {
        let mut value = config.get(key).cloned().unwrap_or(Value::Null);
        if key == "Labels"
            && let Some(map) = value.as_object_mut()
        {
            map.remove("io.buildah.version");
        }
        let empty = match &value {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(key.to_owned(), value);
        }
    }
    for key in ["author", "os", "architecture"] {
        if let Some(v) = top.get(key).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    out
}

fn shown(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.len() <= 80 => format!("{text:?}"),
        _ => {
            // FNV-1a: enough to tell contents apart in a test.
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in bytes {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
            format!("{} bytes fnv {h:016x}", bytes.len())
        }
    }
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_owned()
}

/// Applies the layer blobs of `manifest` in `layout` in order, whiteouts included.
fn merged(layout: &Path, manifest: &Value) -> BTreeMap<String, String> {
    let mut fs: BTreeMap<String, Node> = BTreeMap::new();
    // Hardlink groups: path → the first path of its group.
    let mut group: BTreeMap<String, String> = BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let media = layer["mediaType"].as_str().unwrap_or_default();
        let bytes = std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).unwrap();
        let reader: Box<dyn Read> = if media.ends_with("gzip") {
            Box::new(flate2::read::GzDecoder::new(&bytes[..]))
        } else {
            assert!(media.ends_with(".tar") || media.ends_with("tar"), "layer media type {media}");
            Box::new(&bytes[..])
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = clean(&entry.path().unwrap().to_string_lossy());
            if path.is_empty() {
                continue;
            }
            let (dir, name) = path.rsplit_once('/').map_or(("", path.as_str()), |(d, n)| (d, n));
            if name == ".wh..wh..opq" {
                let prefix = format!("{dir}/");
                fs.retain(|p, _| !(dir.is_empty() || p.starts_with(&prefix)));
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                let gone = if dir.is_empty() { gone.to_owned() } else { format!("{dir}/{gone}") };
                let prefix = format!("{gone}/");
                fs.retain(|p, _| *p != gone && !p.starts_with(&prefix));
                continue;
            }
            let header = entry.header().clone();
            let mode = header.mode().unwrap() & 0o7777;
            let (uid, gid) = (entry.header().uid().unwrap(), entry.header().gid().unwrap());
            let kind = header.entry_type();
            let node = if kind.is_dir() {
                Node { kind: "dir", mode, uid, gid, target: None, content: None }
            } else if kind.is_symlink() {
                let target = entry.link_name().unwrap().unwrap().to_string_lossy().into_owned();
                Node { kind: "symlink", mode: 0o777, uid, gid, target: Some(target), content: None }
            } else if kind.is_hard_link() {
                let target = clean(&entry.link_name().unwrap().unwrap().to_string_lossy());
                let Some(original) = fs.get(&target).cloned() else {
                    panic!("hardlink /{path} to /{target}, which is not there");
                };
                let first = group.get(&target).cloned().unwrap_or_else(|| target.clone());
                group.insert(target, first.clone());
                group.insert(path.clone(), first);
                // A hardlink shares its original's inode: mode and owner included.
                fs.insert(path, original);
                continue;
            } else if kind.is_file() || kind == tar::EntryType::Continuous {
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                Node { kind: "file", mode, uid, gid, target: None, content: Some(shown(&content)) }
            } else {
                Node { kind: "special", mode, uid, gid, target: None, content: None }
            };
            // A directory over a directory keeps what is under it.
            if node.kind != "dir" || fs.get(&path).is_some_and(|n| n.kind != "dir") {
                let prefix = format!("{path}/");
                fs.retain(|p, _| !p.starts_with(&prefix));
            }
            group.remove(&path);
            fs.insert(path, node);
        }
    }
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, first) in &group {
        if fs.contains_key(path) {
            members.entry(first.clone()).or_default().push(path.clone());
        }
    }
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    for list in members.values().filter(|l| l.len() > 1) {
        for path in list {
            links.insert(path.clone(), list.join(","));
        }
    }
    fs.into_iter()
        .map(|(path, n)| {
            let mut line = format!("{} {:04o} {}:{}", n.kind, n.mode, n.uid, n.gid);
            if let Some(t) = &n.target {
                line.push_str(&format!(" -> {t}"));
            }
            if let Some(c) = &n.content {
                line.push_str(&format!(" {c}"));
            }
            if let Some(l) = links.get(&path) {
                line.push_str(&format!(" links={l}"));
            }
            (path, line)
        })
        .collect()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

fn blob(layout: &Path, digest: &str) -> Value {
    json_file(&layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:")))
}

/// The image named `name` in the OCI layout `layout` (an index narrowed to its first manifest).
fn read_layout(layout: &Path, name: &str) -> (Value, Value) {
    let index = json_file(&layout.join("index.json"));
    let found = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {index}"));
    let mut manifest = blob(layout, found["digest"].as_str().unwrap());
    if manifest.get("manifests").is_some() {
        manifest = blob(layout, manifest["manifests"][0]["digest"].as_str().unwrap());
    }
    let config = blob(layout, manifest["config"]["digest"].as_str().unwrap());
    (manifest, config)
}

/// buildah in one storage shared by every case.
struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
}

impl Buildah {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new("buildah")
            .args(["--storage-driver", "vfs", "--root"])
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(args)
            .output()
            .expect("buildah runs (installed by .ci/run)");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!("buildah {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr)))
        }
    }

    /// Builds `ctx` (with `dockerfile`) and reads the image back.
    fn build(&self, case: &Case, ctx: &Path, dockerfile: &str, out: &Path) -> Result<Image, String> {
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let tag = format!("localhost/case-{}:x", case.name.replace('_', "-"));
        let dockerfile_path = ctx.join("Dockerfile").display().to_string();
        let ctx_path = ctx.display().to_string();
        let mut args = vec![
            "build",
            "--isolation",
            "chroot",
            "--timestamp",
            "0",
            "--format",
            "docker",
            "--tls-verify=false",
            "--layers=false",
            "-q",
            "-f",
            &dockerfile_path,
            "-t",
            &tag,
        ];
        let pairs: Vec<String> = case.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for pair in &pairs {
            args.extend(["--build-arg", pair]);
        }
        if let Some(target) = case.target {
            args.extend(["--target", target]);
        }
        args.push(&ctx_path);
        self.run(&args)?;
        let inspected: Value =
            serde_json::from_str(&self.run(&["inspect", "--type", "image", &tag])?).unwrap();
        let docker = &inspected["Docker"];
        let config = normalize_config(&docker["config"], docker);
        let destination = format!("oci:{}:x", out.display());
        self.run(&["push", "-q", &tag, &destination])?;
        let (manifest, _) = read_layout(out, "x");
        Ok(Image { config, fs: merged(out, &manifest) })
    }
}

/// Builds a case with the real `hephy` binary and reads its image from `.hephy/oci`.
fn hephy(case: &Case, repo: &Repo) -> Result<Image, String> {
    let mut graph = String::from("image \"case\" {\n    context \"ctx\"\n    builder \"oci\"\n");
    if !case.args.is_empty() {
        let args: Vec<String> = case.args.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        graph.push_str(&format!("    args {}\n", args.join(" ")));
    }
    if let Some(target) = case.target {
        graph.push_str(&format!("    target {target:?}\n"));
    }
    graph.push_str("}\n");
    repo.write("hephy.kdl", &graph);
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    if run.code != 0 {
        return Err(format!("hephy run failed ({}):\n{}{}", run.code, run.stdout, run.stderr));
    }
    let layout = repo.path().join(".hephy/oci");
    let name = case.target.map_or_else(|| "case".to_owned(), |t| format!("case-{t}"));
    let (manifest, config) = read_layout(&layout, &name);
    Ok(Image { config: normalize_config(&config["config"], &config), fs: merged(&layout, &manifest) })
}

/// The lines only one side has.
fn difference(hephy: &Image, buildah: &Image) -> String {
    let ours = hephy.lines();
    let theirs = buildah.lines();
    let mut out = String::new();
    for line in theirs.iter().filter(|l| !ours.contains(l)) {
        out.push_str(&format!("    buildah: {line}\n"));
    }
    for line in ours.iter().filter(|l| !theirs.contains(l)) {
        out.push_str(&format!("    hephy:   {line}\n"));
    }
    out
}

/// The base image cases build on, made by buildah from a tar with owners and modes of its
/// own (`/etc/passwd`, `/etc/group`, `/tmp` 1777, `/home/app` 0750 owned by `app`), pushed to
/// the loopback registry.
fn base_image(buildah: &Buildah, registry: &Registry, dir: &Path) -> (String, String) {
    let ctx = dir.join("base");
    std::fs::create_dir_all(&ctx).unwrap();
    let mut tar = tar::Builder::new(std::fs::File::create(ctx.join("rootfs.tar")).unwrap());
    let mut put = |path: &str, mode: u32, uid: u64, content: Option<&str>| {
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(uid);
        header.set_mtime(0);
        match content {
            Some(text) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(text.len() as u64);
                tar.append_data(&mut header, path, text.as_bytes()).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, format!("{path}/"), std::io::empty()).unwrap();
            }
        }
    };
    put("etc", 0o755, 0, None);
    put(
        "etc/passwd",
        0o644,
        0,
        Some(
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n",
        ),
    );
    put("etc/group", 0o644, 0, Some("root:x:0:\napp:x:1001:\nstaff:x:50:app\n"));
    put("tmp", 0o1777, 0, None);
    put("home", 0o755, 0, None);
    put("home/app", 0o750, 1000, None);
    put("srv", 0o755, 0, None);
    put("opt", 0o700, 0, None);
    put("usr", 0o755, 0, None);
    put("usr/bin", 0o755, 0, None);
    put("usr/bin/tool", 0o755, 0, Some("#!/bin/sh\necho tool\n"));
    put("run", 0o755, 0, None);
    put("var", 0o755, 0, None);
    // `/var/run` → `../run`, as Debian has it.
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_mode(0o777);
    header.set_mtime(0);
    header.set_size(0);
    tar.append_link(&mut header, "var/run", "../run").unwrap();
    tar.finish().unwrap();
    drop(tar);
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nADD rootfs.tar /\nENV BASEVAR=base PATH=/usr/bin:/bin\nLABEL base.label=yes\nWORKDIR /srv\nCMD [\"/usr/bin/tool\"]\n",
    )
    .unwrap();
    let ctx_path = ctx.display().to_string();
    buildah
        .run(&[
            "build",
            "--isolation",
            "chroot",
            "--timestamp",
            "0",
            "-q",
            "-t",
            "localhost/base:1",
            &ctx_path,
        ])
        .unwrap();
    let reference = format!("{}/base:1", registry.address());
    buildah
        .run(&["push", "-q", "--tls-verify=false", "localhost/base:1", &format!("docker://{reference}")])
        .unwrap();
    // Pulled once, before the cases build on it in parallel.
    buildah.run(&["pull", "-q", "--tls-verify=false", &reference]).unwrap();
    // An image with ONBUILD triggers (kept by the docker format only), built on the base.
    let onbuild = dir.join("onbuild");
    std::fs::create_dir_all(&onbuild).unwrap();
    std::fs::write(
        onbuild.join("Dockerfile"),
        format!(
            "FROM {reference}\nONBUILD COPY a.txt /onbuild/\nONBUILD ENV TRIGGERED=yes\nLABEL onbuild=yes\n"
        ),
    )
    .unwrap();
    let onbuild_path = onbuild.display().to_string();
    buildah
        .run(&[
            "build",
            "--isolation",
            "chroot",
            "--timestamp",
            "0",
            "--format",
            "docker",
            "--tls-verify=false",
            "-q",
            "-t",
            "localhost/onbuild:1",
            &onbuild_path,
        ])
        .unwrap();
    let triggers = format!("{}/onbuild:1", registry.address());
    buildah
        .run(&["push", "-q", "--tls-verify=false", "localhost/onbuild:1", &format!("docker://{triggers}")])
        .unwrap();
    buildah.run(&["pull", "-q", "--tls-verify=false", &triggers]).unwrap();
    (reference, triggers)
}

/// A layer entry of the distribution-like base: path, what it is, mode, owner.
enum Put<'a> {
    Dir(&'a str, u32, u64, u64),
    File(&'a str, u32, u64, u64, &'a str),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    /// A file whiteout (`.wh.NAME`) or an opaque one (`DIR/.wh..wh..opq`), by its tar path.
    Whiteout(&'a str),
}

/// A gzipped layer of `entries`, as a registry stores it: (blob, diff id).
fn layer(entries: &[Put<'_>]) -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        header.set_size(0);
        header.set_uid(0);
        header.set_gid(0);
        match *entry {
            Put::Dir(path, mode, uid, gid) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(mode);
                header.set_uid(uid);
                header.set_gid(gid);
                tar.append_data(&mut header, format!("{path}/"), std::io::empty()).unwrap();
            }
            Put::File(path, mode, uid, gid, text) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                header.set_uid(uid);
                header.set_gid(gid);
                header.set_size(text.len() as u64);
                tar.append_data(&mut header, path, text.as_bytes()).unwrap();
            }
            Put::Link(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                tar.append_link(&mut header, path, target).unwrap();
            }
            Put::Hard(path, target) => {
                // As tar writes them: the mode of the file linked to (every target here is 0755).
                header.set_entry_type(tar::EntryType::Link);
                header.set_mode(0o755);
                tar.append_link(&mut header, path, target).unwrap();
            }
            Put::Whiteout(path) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o600);
                tar.append_data(&mut header, path, std::io::empty()).unwrap();
            }
        }
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    (gz.finish().unwrap(), sha256_of(&raw))
}

fn sha256_of(bytes: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let out = Command::new("sha256sum").arg(file.path()).output().unwrap();
    format!("sha256:{}", String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap())
}

/// A base image shaped like a real distribution, written layer by layer (Docker's v2 schema 2,
/// so its healthcheck and triggers survive) and pushed with `skopeo copy dir:`: merged `/usr`
/// (`/bin`, `/lib`, `/sbin` are links into `/usr`), `/usr/local/bin -> /opt/bin`, a user `app`
/// (1001) whose group is 1002, hardlinks within a layer and across layers, a file whiteout and
/// an opaque one, and a config with `USER`, `WORKDIR`, a healthcheck, a volume and `ONBUILD`.
fn distro_image(buildah: &Buildah, registry: &Registry, dir: &Path) -> String {
    let first = layer(&[
        Put::Dir("etc", 0o755, 0, 0),
        Put::File(
            "etc/passwd",
            0o644,
            0,
            0,
            "root:x:0:0:root:/root:/bin/sh\napp:x:1001:1002:app:/home/app:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n",
        ),
        Put::File("etc/group", 0o644, 0, 0, "root:x:0:\napp:x:1002:\nwww-data:x:33:\nstaff:x:50:app\n"),
        Put::File("etc/os-release", 0o644, 0, 0, "ID=distro\nVERSION_ID=1\n"),
        Put::File("etc/old.conf", 0o644, 0, 0, "removed by the next layer\n"),
        Put::Dir("usr", 0o755, 0, 0),
        Put::Dir("usr/bin", 0o755, 0, 0),
        Put::File("usr/bin/tool", 0o755, 0, 0, "#!/bin/sh\necho tool\n"),
        Put::File("usr/bin/python3.11", 0o755, 0, 0, "python\n"),
        Put::Hard("usr/bin/python3", "usr/bin/python3.11"),
        Put::Dir("usr/lib", 0o755, 0, 0),
        Put::File("usr/lib/libc.so.6", 0o755, 0, 0, "libc\n"),
        Put::Dir("usr/sbin", 0o755, 0, 0),
        Put::Dir("usr/local", 0o755, 0, 0),
        Put::Link("usr/local/bin", "/opt/bin"),
        Put::Link("bin", "usr/bin"),
        Put::Link("lib", "usr/lib"),
        Put::Link("sbin", "usr/sbin"),
        Put::Dir("opt", 0o755, 0, 0),
        Put::Dir("opt/bin", 0o755, 0, 0),
        Put::Dir("home", 0o755, 0, 0),
        Put::Dir("home/app", 0o750, 1001, 1002),
        Put::Dir("tmp", 0o1777, 0, 0),
        Put::Dir("run", 0o755, 0, 0),
        Put::Dir("srv", 0o755, 0, 0),
        Put::Dir("var", 0o755, 0, 0),
        Put::Link("var/run", "../run"),
        Put::Dir("var/cache", 0o755, 0, 0),
        Put::Dir("var/cache/apt", 0o755, 0, 0),
        Put::File("var/cache/apt/pkgcache.bin", 0o644, 0, 0, "old cache\n"),
        Put::Dir("var/cache/apt/archives", 0o755, 0, 0),
        Put::File("var/cache/apt/archives/lock", 0o640, 0, 0, ""),
    ]);
    let second = layer(&[
        Put::Dir("etc", 0o755, 0, 0),
        Put::Whiteout("etc/.wh.old.conf"),
        Put::File("etc/new.conf", 0o600, 1001, 1002, "added\n"),
        Put::Dir("usr", 0o755, 0, 0),
        Put::Dir("usr/bin", 0o755, 0, 0),
        // A hardlink to a file of the layer below.
        Put::Hard("usr/bin/tool-link", "usr/bin/tool"),
        Put::Dir("var", 0o755, 0, 0),
        Put::Dir("var/cache", 0o755, 0, 0),
        Put::Dir("var/cache/apt", 0o755, 0, 0),
        Put::Whiteout("var/cache/apt/.wh..wh..opq"),
        Put::File("var/cache/apt/fresh.bin", 0o644, 0, 0, "fresh cache\n"),
    ]);
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
            "User": "app",
            "WorkingDir": "/home/app",
            "Cmd": ["/bin/sh"],
            "Healthcheck": {"Test": ["CMD", "/usr/bin/tool", "--health"], "Interval": 30_000_000_000_u64, "Retries": 3},
            "Volumes": {"/data": {}},
            "Labels": {"org.opencontainers.image.title": "distro"},
            "OnBuild": ["LABEL built.on.distro=yes"],
        },
        "rootfs": {"type": "layers", "diff_ids": [first.1, second.1]},
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": "rootfs"},
            {"created": "1970-01-01T00:00:00Z", "created_by": "cleanup"},
        ],
    });
    let out = dir.join("distro-dir");
    std::fs::create_dir_all(&out).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256_of(bytes);
        std::fs::write(out.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        serde_json::json!({"size": bytes.len(), "digest": digest})
    };
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let mut config_desc = put(&config_bytes);
    config_desc["mediaType"] = "application/vnd.docker.container.image.v1+json".into();
    let mut layers = Vec::new();
    for (blob, _) in [&first, &second] {
        let mut desc = put(blob);
        desc["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
        layers.push(desc);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": config_desc,
        "layers": layers,
    });
    std::fs::write(out.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    std::fs::write(out.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let reference = format!("{}/distro:1", registry.address());
    let copied = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("dir:{}", out.display()))
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(copied.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&copied.stderr));
    buildah.run(&["pull", "-q", "--tls-verify=false", &reference]).unwrap();
    reference
}

#[derive(Debug)]
enum Verdict {
    Identical,
    Exception,
    Failed(String),
}

/// Base images whose first layer has `/usr/bin/python3.11` with two more names
/// (`python3`, `python`: hardlinks), as Debian's python packages have it, and whose second
/// layer upgrades `python3.11` (`%LINKED%`) or removes it (`%UNLINKED%`): the other names keep
/// the first layer's bytes, and each other.
fn linked_bases(buildah: &Buildah, registry: &Registry, dir: &Path) -> (String, String) {
    use tar::EntryType::{Directory, Link, Regular};
    let first = tar_of(&[
        ("usr/", Directory, ""),
        ("usr/bin/", Directory, ""),
        ("usr/bin/python3.11", Regular, "python 3.11.2\n"),
        ("usr/bin/python3", Link, "usr/bin/python3.11"),
        ("usr/bin/python", Link, "usr/bin/python3.11"),
    ]);
    let upgraded = tar_of(&[("usr/bin/python3.11", Regular, "python 3.11.9\n")]);
    let removed = tar_of(&[("usr/bin/.wh.python3.11", Regular, "")]);
    let linked = format!("{}/linked:1", registry.address());
    let unlinked = format!("{}/unlinked:1", registry.address());
    push_layers(dir, &linked, &[first.clone(), upgraded]);
    push_layers(dir, &unlinked, &[first, removed]);
    for reference in [&linked, &unlinked] {
        buildah.run(&["pull", "-q", "--tls-verify=false", reference]).unwrap();
    }
    (linked, unlinked)
}

/// The base images cases name: `%BASE%`, `%ONBUILD%`, `%LINKED%`, `%UNLINKED%`, `%DISTRO%`.
struct Bases(Vec<(&'static str, String)>);

impl Bases {
    fn fill(&self, dockerfile: &str) -> String {
        self.0.iter().fold(dockerfile.to_owned(), |text, (name, reference)| text.replace(name, reference))
    }
}

fn run_case(case: &Case, buildah: &Buildah, bases: &Bases, dir: &Path) -> Verdict {
    let repo = Repo::new().online();
    let ctx = repo.path().join("ctx");
    let dockerfile = bases.fill(case.dockerfile);
    cases::write_context(&ctx, case.ctx);
    std::fs::write(ctx.join("Dockerfile"), &dockerfile).unwrap();
    for (path, text) in case.extra {
        let full = ctx.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    // buildah gets its own copy: hephy leaves `.hephy` in the repository, not in `ctx`, but the
    // two builds should not see each other's leftovers at all.
    let buildah_ctx = dir.join(format!("ctx-{}", case.name));
    copy_tree(&ctx, &buildah_ctx);
    if let Some(refusal) = case.refused {
        // BuildKit refuses this Dockerfile: so must hephy, saying why at the instruction's line.
        return match hephy(case, &repo) {
            Ok(_) => Verdict::Failed(format!("    expected the build to be refused with `{refusal}`\n")),
            Err(output) if output.contains("(1)") && output.contains(refusal) => Verdict::Exception,
            Err(output) => Verdict::Failed(format!("    expected `{refusal}` (exit 1), got:\n{output}\n")),
        };
    }
    let ours = match hephy(case, &repo) {
        Ok(image) => image,
        Err(e) => return Verdict::Failed(e),
    };
    let mut problems = String::new();
    if let Some(expect) = case.expect {
        for problem in expect(&ours) {
            problems.push_str(&format!("    expected: {problem}\n"));
        }
    }
    let oracle = case.buildah.map(|d| bases.fill(d)).unwrap_or(dockerfile);
    if case.exception.is_none() || case.buildah.is_some() || case.fix.is_some() {
        let out = dir.join(format!("oci-{}", case.name));
        match buildah.build(case, &buildah_ctx, &oracle, &out) {
            Ok(mut theirs) => {
                if let Some(fix) = case.fix {
                    fix(&mut theirs);
                }
                problems.push_str(&difference(&ours, &theirs));
            }
            Err(e) => return Verdict::Failed(format!("buildah failed: {e}")),
        }
    }
    if !problems.is_empty() {
        Verdict::Failed(problems)
    } else if case.exception.is_some() {
        Verdict::Exception
    } else {
        Verdict::Identical
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

#[test]
#[ignore = "needs buildah, skopeo, umoci (installed by .ci/run)"]
fn the_oci_builder_builds_what_buildah_builds() {
    let all = cases::all();
    assert!(all.len() >= 80, "the suite has {} cases", all.len());
    let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names are unique");
    let only = std::env::var("FIDELITY_CASES").ok();
    let selected: Vec<&Case> = all
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| o.split(',').any(|n| c.name.contains(n))))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let buildah = Buildah { root: dir.path().join("root"), runroot: dir.path().join("runroot") };
    let registry = Registry::start();
    let (base, onbuild) = base_image(&buildah, &registry, dir.path());
    let (linked, unlinked) = linked_bases(&buildah, &registry, dir.path());
    let distro = distro_image(&buildah, &registry, dir.path());
    let bases = Bases(vec![
        ("%BASE%", base),
        ("%ONBUILD%", onbuild),
        ("%LINKED%", linked),
        ("%UNLINKED%", unlinked),
        ("%DISTRO%", distro),
    ]);

    let next = AtomicUsize::new(0);
    let verdicts: Mutex<Vec<(&str, Verdict)>> = Mutex::new(Vec::new());
    let jobs: usize = std::env::var("FIDELITY_JOBS").ok().and_then(|j| j.parse().ok()).unwrap_or(3);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = selected.get(i) else { break };
                    let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_case(case, &buildah, &bases, dir.path())
                    }))
                    .unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_default();
                        Verdict::Failed(format!("the case panicked: {message}"))
                    });
                    verdicts.lock().unwrap().push((case.name, verdict));
                }
            });
        }
    });
    let mut verdicts = verdicts.into_inner().unwrap();
    verdicts.sort_by_key(|(name, _)| *name);
    let identical = verdicts.iter().filter(|(_, v)| matches!(v, Verdict::Identical)).count();
    let exceptions = verdicts.iter().filter(|(_, v)| matches!(v, Verdict::Exception)).count();
    let mut report = String::new();
    for (name, verdict) in &verdicts {
        if let Verdict::Failed(why) = verdict {
            report.push_str(&format!("--- {name}\n{why}\n"));
        }
    }
    let failed = verdicts.len() - identical - exceptions;
    eprintln!(
        "{} cases: {identical} identical to buildah, {exceptions} BuildKit-vs-buildah exceptions (hephy asserted), {failed} failed",
        verdicts.len()
    );
    for case in selected.iter().filter(|c| c.exception.is_some()) {
        eprintln!("  exception {}: {}", case.name, case.exception.unwrap_or_default());
    }
    assert!(failed == 0, "{failed} of {} cases differ:\n{report}", verdicts.len());
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_pass_check() {
    // BuildKit discards the BOM and reads CRLF as LF; so do check, wiring and the builder.
    let repo = Repo::new()
        .file(
            "hephy.kdl",
            "image \"base\" {\n    context \"base\"\n    builder \"oci\"\n}\nimage \"app\" {\n    context \"app\"\n    builder \"oci\"\n    from \"base\" arg=\"BASE\"\n}\n",
        )
        .file("base/Dockerfile", "\u{feff}FROM scratch\r\nCOPY a.txt /\r\n")
        .file("base/a.txt", "a\n")
        .file("app/Dockerfile", "\u{feff}ARG BASE\r\nFROM ${BASE}\r\nENV A=1 \\\r\n  B=2\r\n");
    let run = without_tools(&repo, &["check", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("ARG BASE"), "{}", run.stderr);
}

/// `hephy ARGS` in `repo` with nothing on `PATH` (no buildah).
fn without_tools(repo: &Repo, args: &[&str]) -> common::Run {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    repo.run_with(args, &[("PATH", path.as_str())])
}

#[test]
fn auto_builds_a_runless_dockerfile_with_the_oci_builder() {
    let repo = Repo::new()
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n}\n")
        .file("app/Dockerfile", "FROM scratch\nCOPY a.txt /\n")
        .file("app/a.txt", "a\n");
    let run = without_tools(&repo, &["run", "--format", "json", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(repo.path().join(".hephy/oci/index.json").is_file(), "built into the layout by the oci builder");
    // Keyed as `builder "oci"` is: graphs that relied on the old default keep their keys.
    let auto = key_of(&repo, "image \"app\" {\n    context \"app\"\n}\n", true);
    let oci = key_of(&repo, "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n", true);
    assert_eq!(auto, oci);
}

#[test]
fn auto_names_the_install_step_when_a_dockerfile_runs_commands_and_buildah_is_missing() {
    let repo = Repo::new()
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n}\n")
        .file("app/Dockerfile", "FROM scratch\nCOPY a.txt /\n  RUN make\n");
    let run = without_tools(&repo, &["check", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("apt-get install buildah"), "{}", run.stderr);
    assert!(run.stderr.contains("app/Dockerfile:3:3"), "at the RUN's line and column:\n{}", run.stderr);
}

#[test]
#[ignore = "needs buildah (installed by .ci/run)"]
fn auto_builds_a_dockerfile_that_runs_commands_with_buildah() {
    let repo = Repo::new()
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n}\n")
        .file("app/Dockerfile", "FROM scratch\nRUN [\"/bin/true\"]\n");
    let run = repo.run(&["check", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "buildah is installed, so auto picks it:\n{}", run.stderr);
    let auto = key_of(&repo, "image \"app\" {\n    context \"app\"\n}\n", false);
    let buildah = key_of(&repo, "image \"app\" {\n    context \"app\"\n    builder \"buildah\"\n}\n", false);
    assert_eq!(auto, buildah, "keyed on the resolved builder");
}

/// The key `hephy plan` gives `app@…` under `graph`.
fn key_of(repo: &Repo, graph: &str, bare: bool) -> String {
    repo.write("hephy.kdl", graph);
    let plan = if bare {
        without_tools(repo, &["plan", "--format", "json", "-f", "hephy.kdl"])
    } else {
        repo.run(&["plan", "--format", "json", "-f", "hephy.kdl"])
    };
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    plan.json()["nodes"][0]["key"].as_str().unwrap().to_owned()
}

#[test]
fn what_the_oci_builder_cannot_build_fails_at_check_at_its_line() {
    let repo = Repo::new()
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n")
        .file(
            "app/Dockerfile",
            "FROM scratch\nCOPY a.txt /\nADD https://example.com/x.tar.gz /x/\nCOPY --parents a.txt /p/\nFROBNICATE now\nSHELL /bin/sh -c\nHEALTHCHECK --every=5s CMD true\nCOPY --chmod=999 a.txt /\n",
        );
    let run = without_tools(&repo, &["check", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for (at, what) in [
        ("app/Dockerfile:3:1", "does not download"),
        ("app/Dockerfile:4:6", "--parents"),
        ("app/Dockerfile:5:1", "FROBNICATE"),
        ("app/Dockerfile:6:1", "JSON array"),
        ("app/Dockerfile:7:13", "--every"),
        ("app/Dockerfile:8:1", "octal"),
    ] {
        assert!(run.stderr.contains(at) && run.stderr.contains(what), "{at} {what}:\n{}", run.stderr);
    }
    // A Dockerfile the old parser refused reads now: JSON-form COPY with spaces, `# escape=`,
    // here-documents, `ENV a\ b`, `ARG E=`.
    repo.write(
        "app/Dockerfile",
        "# escape=`\nFROM scratch\nARG E=\nENV A=a\\ b\nCOPY [\"a b.txt\", \"/d/\"]\nCOPY <<EOF /h\nhi\nEOF\n",
    );
    let run = without_tools(&repo, &["check", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}
