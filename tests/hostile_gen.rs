//! A generator of hostile repositories and bake files, run through every command.
//!
//! Each case is drawn from a seeded generator (deterministic in CI; `HEPHY_HOSTILE_SEED=N`
//! and `HEPHY_HOSTILE_CASES=N` explore further): names that carry line terminators, control
//! characters, markup and template words; Dockerfiles, ignore files, context files and secret
//! files that are links to a host file outside the repository; archives with hostile entries
//! (loops, `../`, absolute paths, devices, writes through a link); sizes far past what a graph
//! or a Dockerfile should be (matrices, template and variable chains, instruction counts, long
//! names). `check`, `plan`, `run`, `explain`, `graph` (JSON and HTML), `init` and
//! `import --from bake` run on each, and every run must hold:
//! - no panic or abort: the exit code is 0, 1 or 2, within a time limit and under a memory cap
//!   (`prlimit --as`);
//! - no host file's content anywhere: not in stdout or stderr, not in any file the run wrote
//!   (layers decompressed, the state, reports, written graphs);
//! - no raw control character on the terminal (escape sequences, CR, BEL);
//! - no task or image the input did not declare (a written graph is read back by `graph`), and
//!   a graph hephy writes passes its own `check`;
//! - the HTML report has exactly the page's own elements, whatever the names hold.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Repo;

/// What a host file holds: never to be seen in anything hephy prints or writes.
const CANARY: &str = "HOST-CANARY-7b3e9d-never-print-me";
/// The memory a single `hephy` may map (virtual): far above what any of these inputs needs.
const MEMORY_CAP: u64 = 4 << 30;
/// The time a single `hephy` may take on one of these inputs.
const TIME_LIMIT: Duration = Duration::from_secs(30);

/// A small deterministic generator (splitmix64): the cases are the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Fragments a hostile name is made of: every line terminator KDL or YAML knows, C0 and C1
/// controls, terminal escapes, markup that ends a script or opens a comment, template and
/// variable words, quotes and comment starts of both syntaxes.
const FRAGMENTS: &[&str] = &[
    "\r",
    "\n",
    "\r\n",
    "\u{2028}",
    "\u{2029}",
    "\u{85}",
    "\u{c}",
    "\u{b}",
    "\u{1b}[2J",
    "\u{1b}]0;pwned\u{7}",
    "\u{9b}31m",
    "\u{7f}",
    "\u{202e}",
    "\u{feff}",
    "<!--<script>",
    "</script><img src=x onerror=alert(1)>",
    "{{DATA}}",
    "{{TITLE}}",
    "${HOME}",
    "$${X}",
    "{registry}",
    "\"",
    "'",
    "\\",
    "//",
    "/*",
    "#",
    "- x",
    ": y",
    "task \"pwn\" { run \"touch\" \"PWNED\" }",
    "tasks: {pwn: {run: [touch, PWNED]}}",
    " ",
    "é",
    "😀",
];

/// A hostile string of a few fragments around plain letters.
fn hostile(rng: &mut Rng) -> String {
    let mut out = String::from("n");
    for _ in 0..1 + rng.below(4) {
        let fragment: &&str = rng.pick(FRAGMENTS);
        out.push_str(fragment);
        out.push(char::from(b'a' + u8::try_from(rng.below(26)).unwrap()));
    }
    out
}

/// A hostile string that is a valid file name (no `/`, no NUL, not `.` or `..`).
fn hostile_file_name(rng: &mut Rng) -> String {
    let mut name = hostile(rng).replace(['/', '\0'], "_");
    if rng.chance(10) {
        name.push_str(&"L".repeat(200));
    }
    // At most 255 bytes, as file systems take them.
    while name.len() > 255 {
        name.pop();
    }
    name
}

/// `text` as a KDL v2 quoted string of the graph language: every character outside printable
/// ASCII escaped, and `${` written `$${` (a literal, not a variable).
fn kdl_str(text: &str) -> String {
    let text = text.replace("${", "$${");
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => write!(out, "\\u{{{:x}}}", u32::from(c)).unwrap(),
        }
    }
    out.push('"');
    out
}

/// `text` as a YAML double-quoted string of the graph language (JSON's escapes, every non-ASCII
/// character escaped, `${` written `$${`).
fn yaml_str(text: &str) -> String {
    let text = text.replace("${", "$${");
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => write!(out, "\\u{:04x}", u32::from(c)).unwrap(),
            c => write!(out, "\\U{:08x}", u32::from(c)).unwrap(),
        }
    }
    out.push('"');
    out
}

/// `text` as an HCL quoted string (its escapes: `\uNNNN`, `\UNNNNNNNN`; `${` and `%{` doubled).
fn hcl_str(text: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => write!(out, "\\u{:04x}", u32::from(c)).unwrap(),
            c => write!(out, "\\U{:08x}", u32::from(c)).unwrap(),
        }
    }
    out.push('"');
    out
}

/// What the generator made: the repository, the graph file's name, the images and tasks it
/// declares (after expansion), whether a `run` is worth trying, and a description for failures.
struct Case {
    repo: Repo,
    graph: &'static str,
    declared: BTreeSet<String>,
    runnable: bool,
    what: Vec<String>,
}

/// A tar archive whose entries are written with raw names and link names (the `tar` crate
/// refuses `..` in `set_path`; hostile archives are made with it anyway).
fn hostile_tar(rng: &mut Rng) -> (Vec<u8>, &'static str) {
    fn entry(out: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, link: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
        header.set_size(data.len() as u64);
        header.set_mtime(0);
        let raw = header.as_old_mut();
        raw.name.fill(0);
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        raw.linkname.fill(0);
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        if kind == tar::EntryType::Char {
            header.set_device_major(1).unwrap();
            header.set_device_minor(3).unwrap();
        }
        header.set_cksum();
        out.append(&header, data).unwrap();
    }
    use tar::EntryType::{Char, Directory, Link, Regular, Symlink};
    let mut out = tar::Builder::new(Vec::new());
    let shape = *rng.pick(&[
        "hardlink loop",
        "self hardlink",
        "dot-dot entry",
        "absolute entry",
        "hardlink out of the archive",
        "write through a link",
        "device node",
        "deep folders",
        "many entries",
    ]);
    match shape {
        "hardlink loop" => {
            entry(&mut out, Link, "h1", "h2", b"");
            entry(&mut out, Link, "h2", "h1", b"");
        }
        "self hardlink" => entry(&mut out, Link, "me", "me", b""),
        "dot-dot entry" => entry(&mut out, Regular, "../../escaped", "", b"x\n"),
        "absolute entry" => entry(&mut out, Regular, "/etc/escaped", "", b"x\n"),
        "hardlink out of the archive" => entry(&mut out, Link, "h", "../../../etc/passwd", b""),
        "write through a link" => {
            entry(&mut out, Directory, "d/", "", b"");
            entry(&mut out, Symlink, "d/lnk", "/tmp", b"");
            entry(&mut out, Regular, "d/lnk/file", "", b"through\n");
        }
        "device node" => entry(&mut out, Char, "null", "", b""),
        "deep folders" => {
            let mut path = String::new();
            for _ in 0..40 {
                path.push_str("d/");
            }
            entry(&mut out, Directory, &path[..99.min(path.len())], "", b"");
        }
        _ => {
            for i in 0..3000 {
                entry(&mut out, Regular, &format!("f{i}"), "", b"");
            }
        }
    }
    (out.into_inner().unwrap(), shape)
}

/// A repository whose graph is mostly ordinary and whose names, files and links are not.
fn hostile_repo(rng: &mut Rng, canary: &Path) -> Case {
    let repo = Repo::new();
    let mut what = Vec::new();
    let mut declared = BTreeSet::new();
    let mut images = Vec::new();
    let mut runnable = true;
    // A graph with a name `check` refuses stops there: such names come in a few cases only, so
    // most cases reach `plan`, `run` and the rest.
    let hostile_names = rng.chance(15);
    let hostile_folders = rng.chance(30);
    for i in 0..1 + rng.below(3) {
        let name = if hostile_names && rng.chance(50) {
            runnable = false;
            what.push("a hostile image name".to_owned());
            hostile(rng)
        } else {
            format!("img{i}")
        };
        let context = if hostile_folders && rng.chance(70) {
            what.push("a hostile context folder".to_owned());
            hostile_file_name(rng)
        } else {
            format!("ctx{i}")
        };
        std::fs::create_dir_all(repo.path().join(&context)).unwrap();
        let mut dockerfile = String::from("FROM scratch\n");
        // Context files with hostile names, and links to the host file.
        for _ in 0..rng.below(3) {
            let file = hostile_file_name(rng);
            std::fs::write(repo.path().join(&context).join(&file), "repository content\n").unwrap();
        }
        if rng.chance(30) {
            std::os::unix::fs::symlink(canary, repo.path().join(&context).join("leak")).unwrap();
            what.push("a context file linked to a host file".to_owned());
        }
        if rng.chance(15) {
            std::os::unix::fs::symlink(canary.parent().unwrap(), repo.path().join(&context).join("hostdir"))
                .unwrap();
            what.push("a context folder linked to a host folder".to_owned());
        }
        match rng.below(9) {
            0 => {
                std::os::unix::fs::symlink(canary, repo.path().join(&context).join("Dockerfile")).unwrap();
                what.push("a Dockerfile linked to a host file".to_owned());
            }
            1 => {
                std::os::unix::fs::symlink(canary, repo.path().join(&context).join(".dockerignore")).unwrap();
                std::os::unix::fs::symlink(
                    canary,
                    repo.path().join(&context).join("Dockerfile.dockerignore"),
                )
                .unwrap();
                dockerfile.push_str("COPY . /\n");
                what.push("ignore files linked to a host file".to_owned());
            }
            2 => {
                let (tar, shape) = hostile_tar(rng);
                std::fs::write(repo.path().join(&context).join("evil.tar"), tar).unwrap();
                dockerfile.push_str("ADD evil.tar /\n");
                what.push(format!("ADD of an archive with a {shape}"));
            }
            3 => {
                let (tar, shape) = hostile_tar(rng);
                std::fs::write(repo.path().join(&context).join("evil.tar"), tar).unwrap();
                dockerfile =
                    "FROM scratch AS unpack\nADD evil.tar /\nFROM scratch\nCOPY --from=unpack / /x/\n"
                        .to_owned();
                what.push(format!("COPY --from= of a stage with a {shape}"));
            }
            4 => {
                dockerfile = format!(
                    "\u{feff}# syntax=docker/dockerfile:1\r\nFROM scratch\r\nENV A={}\r\nLABEL b={}\r\nCOPY . /\r\n",
                    hostile(rng).replace(['\n', '\r'], " "),
                    hostile(rng).replace(['\n', '\r'], " ")
                );
                what.push("a Dockerfile with a BOM, CRLF and hostile values".to_owned());
            }
            5 if rng.chance(40) => {
                dockerfile.push_str(&"LABEL a=b\n".repeat(40_000 + rng.below(10_000)));
                runnable = false;
                what.push("a Dockerfile of 40,000+ instructions".to_owned());
            }
            6 => {
                dockerfile.push_str("COPY leak /leak\nCOPY hostdir /hostdir\n");
                std::os::unix::fs::symlink(canary, repo.path().join(&context).join("leak")).ok();
                std::os::unix::fs::symlink(
                    canary.parent().unwrap(),
                    repo.path().join(&context).join("hostdir"),
                )
                .ok();
                what.push("COPY of links to a host file and folder".to_owned());
            }
            _ => dockerfile.push_str("COPY . /app/\n"),
        }
        let path = repo.path().join(&context).join("Dockerfile");
        if std::fs::symlink_metadata(&path).is_err() {
            std::fs::write(&path, dockerfile).unwrap();
        }
        declared.insert(name.clone());
        images.push((name, context));
    }
    let mut tasks = Vec::new();
    if rng.chance(50) {
        let name = if rng.chance(40) {
            runnable = false;
            what.push("a hostile task name".to_owned());
            hostile(rng)
        } else {
            "task0".to_owned()
        };
        std::os::unix::fs::symlink(canary, repo.path().join("linked-input")).unwrap();
        declared.insert(name.clone());
        tasks.push(name);
        what.push("a task whose input is a link to a host file".to_owned());
    }
    let secret = rng.chance(30);
    if secret {
        std::os::unix::fs::symlink(canary, repo.path().join("secret-link")).unwrap();
        what.push("a secret file that is a link to a host file".to_owned());
    }
    let label = hostile(rng);
    let yaml = rng.chance(50);
    let mut text = String::new();
    if yaml {
        text.push_str("platforms: [linux/amd64]\n");
        if secret {
            text.push_str("secrets:\n  S: { file: secret-link }\n");
        }
        text.push_str("images:\n");
        for (name, context) in &images {
            writeln!(text, "  {}:\n    context: {}", yaml_str(name), yaml_str(context)).unwrap();
            writeln!(text, "    args: {{ NOTE: {} }}", yaml_str(&label)).unwrap();
        }
        if !tasks.is_empty() {
            text.push_str("tasks:\n");
            for name in &tasks {
                writeln!(text, "  {}:\n    run: [\"true\"]\n    inputs: [linked-input]", yaml_str(name))
                    .unwrap();
                if secret {
                    text.push_str("    secrets: [S]\n");
                }
            }
        }
    } else {
        text.push_str("platforms \"linux/amd64\"\n");
        if secret {
            text.push_str("secret \"S\" file=\"secret-link\"\n");
        }
        for (name, context) in &images {
            writeln!(text, "image {} {{\n    context {}", kdl_str(name), kdl_str(context)).unwrap();
            writeln!(text, "    args NOTE={}\n}}", kdl_str(&label)).unwrap();
        }
        for name in &tasks {
            writeln!(text, "task {} {{\n    run \"true\"\n    inputs \"linked-input\"", kdl_str(name))
                .unwrap();
            if secret {
                text.push_str("    secrets \"S\"\n");
            }
            text.push_str("}\n");
        }
    }
    let graph = if yaml { "hephy.yaml" } else { "hephy.kdl" };
    repo.write(graph, &text);
    Case { repo, graph, declared, runnable, what }
}

/// A graph far past any real one's size: each must be refused quickly, at the construct.
fn oversized_repo(rng: &mut Rng) -> Case {
    let repo = Repo::new().context("app");
    let yaml = rng.chance(50);
    let (text, what) = match rng.below(6) {
        0 => {
            let (a, b, c) = (150 + rng.below(100), 150 + rng.below(100), 40 + rng.below(20));
            let axis = |n: usize| (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>();
            let text = if yaml {
                format!(
                    "images:\n  app-${{a}}-${{b}}-${{c}}:\n    context: app\n    platforms: [linux/amd64]\n    matrix:\n      a: [{}]\n      b: [{}]\n      c: [{}]\n",
                    axis(a).join(", "),
                    axis(b).join(", "),
                    axis(c).join(", ")
                )
            } else {
                let quote =
                    |n: usize| axis(n).iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(" ");
                format!(
                    "image \"app-${{a}}-${{b}}-${{c}}\" {{\n    context \"app\"\n    platforms \"linux/amd64\"\n    matrix {{\n        a {}\n        b {}\n        c {}\n    }}\n}}\n",
                    quote(a),
                    quote(b),
                    quote(c)
                )
            };
            (text, format!("a {a}×{b}×{c} matrix"))
        }
        1 => {
            let depth = 5_000 + rng.below(20_000);
            let mut text = String::new();
            if yaml {
                text.push_str("templates:\n");
                for i in 0..depth {
                    writeln!(text, "  t{i}: {{ inherits: [t{}] }}", i + 1).unwrap();
                }
                writeln!(text, "  t{depth}: {{ platforms: [linux/amd64] }}").unwrap();
                text.push_str("images:\n  app: { context: app, inherits: [t0] }\n");
            } else {
                for i in 0..depth {
                    writeln!(text, "template \"t{i}\" {{\n    inherits \"t{}\"\n}}", i + 1).unwrap();
                }
                writeln!(text, "template \"t{depth}\" {{\n    platforms \"linux/amd64\"\n}}").unwrap();
                text.push_str("image \"app\" {\n    context \"app\"\n    inherits \"t0\"\n}\n");
            }
            (text, format!("a template chain {depth} deep"))
        }
        2 => {
            let size = 3_000 + rng.below(2_000);
            let mut text = String::new();
            if yaml {
                text.push_str("templates:\n");
                for i in 0..size {
                    writeln!(text, "  t{i}: {{ inherits: [t{}] }}", (i + 1) % size).unwrap();
                }
                text.push_str("images:\n  app: { context: app, inherits: [t0] }\n");
            } else {
                for i in 0..size {
                    writeln!(text, "template \"t{i}\" {{\n    inherits \"t{}\"\n}}", (i + 1) % size).unwrap();
                }
                text.push_str("image \"app\" {\n    context \"app\"\n    inherits \"t0\"\n}\n");
            }
            (text, format!("a template cycle of {size}"))
        }
        3 => {
            // Defaults may not use variables: thousands of them that try give thousands of
            // problems, which must still print as a page, not megabytes.
            let size = 3_000 + rng.below(2_000);
            let mut text = String::new();
            if yaml {
                text.push_str("variables:\n  V0: x\n");
                for i in 1..size {
                    writeln!(text, "  V{i}: \"${{V{}}}${{V{}}}\"", i - 1, i - 1).unwrap();
                }
                writeln!(text, "images:\n  app: {{ context: app, platforms: [linux/amd64], labels: {{ v: \"${{V{}}}\" }} }}", size - 1).unwrap();
            } else {
                text.push_str("variables V0=\"x\"\n");
                for i in 1..size {
                    writeln!(text, "variables V{i}=\"${{V{}}}${{V{}}}\"", i - 1, i - 1).unwrap();
                }
                writeln!(text, "image \"app\" {{\n    context \"app\"\n    platforms \"linux/amd64\"\n    labels v=\"${{V{}}}\"\n}}", size - 1).unwrap();
            }
            (text, format!("{size} variables whose defaults use the one before"))
        }
        4 => {
            // One plain kilobyte, filled in thousands of times into one label.
            let times = 5_000 + rng.below(5_000);
            let refs = "${V}".repeat(times);
            let text = if yaml {
                format!(
                    "variables:\n  V: {}\nimages:\n  app: {{ context: app, platforms: [linux/amd64], labels: {{ v: \"{refs}\" }} }}\n",
                    "v".repeat(1024)
                )
            } else {
                format!(
                    "variables V=\"{}\"\nimage \"app\" {{\n    context \"app\"\n    platforms \"linux/amd64\"\n    labels v=\"{refs}\"\n}}\n",
                    "v".repeat(1024)
                )
            };
            (text, format!("a label that fills in a 1 KiB variable {times} times"))
        }
        _ => {
            let name = "n".repeat(5_000_000);
            let text = if yaml {
                format!("images:\n  {name}: {{ context: app, platforms: [linux/amd64] }}\n")
            } else {
                format!("image \"{name}\" {{\n    context \"app\"\n    platforms \"linux/amd64\"\n}}\n")
            };
            (text, "a 5 MB image name".to_owned())
        }
    };
    let graph = if yaml { "hephy.yaml" } else { "hephy.kdl" };
    repo.write(graph, &text);
    Case { repo, graph, declared: BTreeSet::from(["app".to_owned()]), runnable: false, what: vec![what] }
}

/// A bake file whose names, tags, args and labels carry hostile text, with links, and sizes.
fn hostile_bake(rng: &mut Rng, canary: &Path) -> (Repo, usize, Vec<String>) {
    let repo = Repo::new().context("app");
    let mut text = String::new();
    let mut what = Vec::new();
    let mut targets = 0;
    match rng.below(4) {
        0 => {
            let depth = 20_000 + rng.below(5_000);
            for i in 0..depth {
                writeln!(text, "target \"t{i}\" {{\n  inherits = [\"t{}\"]\n}}", i + 1).unwrap();
            }
            writeln!(text, "target \"t{depth}\" {{\n  context = \"app\"\n}}").unwrap();
            targets = depth + 1;
            what.push(format!("an inherits chain {depth} deep"));
        }
        1 => {
            let n = 200 + rng.below(100);
            let axis = (0..n).map(|i| format!("\"v{i}\"")).collect::<Vec<_>>().join(", ");
            writeln!(
                text,
                "target \"m\" {{\n  name = \"m-${{a}}-${{b}}-${{c}}\"\n  matrix = {{\n    a = [{axis}]\n    b = [{axis}]\n    c = [{axis}]\n  }}\n  context = \"app\"\n}}"
            )
            .unwrap();
            targets = n * n * n;
            what.push(format!("a {n}³ matrix"));
        }
        _ => {
            for i in 0..1 + rng.below(3) {
                let name = if rng.chance(50) { hostile(rng) } else { format!("t{i}") };
                let dockerfile = if rng.chance(25) {
                    std::os::unix::fs::symlink(canary, repo.path().join(format!("app/Linked{i}.Dockerfile")))
                        .unwrap();
                    what.push("a dockerfile linked to a host file".to_owned());
                    format!("Linked{i}.Dockerfile")
                } else {
                    "Dockerfile".to_owned()
                };
                writeln!(
                    text,
                    "target {} {{\n  context = \"app\"\n  dockerfile = {}\n  tags = [{}]\n  args = {{ A = {} }}\n  labels = {{ l = {} }}\n  platforms = [\"linux/amd64\"]\n}}",
                    hcl_str(&name),
                    hcl_str(&dockerfile),
                    hcl_str(&format!("x{}", hostile(rng))),
                    hcl_str(&hostile(rng)),
                    hcl_str(&hostile(rng)),
                )
                .unwrap();
                targets += 1;
            }
            if rng.chance(30) {
                writeln!(text, "target {} {{\n  context = \"app\"\n}}", hcl_str(&"x".repeat(5_000_000)))
                    .unwrap();
                targets += 1;
                what.push("a 5 MB target name".to_owned());
            }
            what.push("targets with hostile names, tags, args and labels".to_owned());
        }
    }
    repo.write("docker-bake.hcl", &text);
    (repo, targets, what)
}

/// How one `hephy` ended.
struct Ended {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn hephy(dir: &Path, args: &[&str]) -> Ended {
    let bin: PathBuf = assert_cmd::cargo::cargo_bin("hephy");
    let mut child = Command::new("prlimit")
        .arg(format!("--as={MEMORY_CAP}"))
        .arg("--")
        .arg(bin)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("HEPHY_OFFLINE", "1")
        .env_remove("COLUMNS")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        stdout.read_to_end(&mut text).unwrap();
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).unwrap();
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ended {
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        took: start.elapsed(),
    }
}

/// Every file under `dir` (links not followed), gzip blobs also decompressed.
fn written_bytes(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            written_bytes(&path, out);
        } else if meta.is_file() {
            let raw = std::fs::read(&path).unwrap_or_default();
            if raw.starts_with(&[0x1f, 0x8b]) {
                let mut unzipped = Vec::new();
                let _ = flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut unzipped);
                out.push((path.clone(), unzipped));
            }
            out.push((path, raw));
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The problems of one `hephy` run, as lines for the failure report.
fn judge(what: &str, ended: &Ended, problems: &mut Vec<String>) {
    let text = format!("{}{}", ended.stdout, ended.stderr);
    match ended.code {
        None => problems
            .push(format!("{what}: killed after {:?} (a signal, an abort or the time limit)", ended.took)),
        Some(code) if !(0..=2).contains(&code) => {
            let tail: String =
                ended.stderr.chars().rev().take(600).collect::<Vec<_>>().into_iter().rev().collect();
            problems.push(format!("{what}: exit {code}\n{tail}"));
        }
        Some(_) => {}
    }
    if text.contains("panicked") || text.contains("stack overflow") || text.contains("memory allocation") {
        problems.push(format!("{what}: a panic or abort: {}", &ended.stderr[..ended.stderr.len().min(600)]));
    }
    if text.contains(CANARY) {
        problems.push(format!("{what}: printed the host file's content"));
    }
    // What is meant for the terminal (stderr, and stdout but for JSON and HTML, which are read
    // by programs) holds no control character; JSON and HTML hold no C0 control (their own
    // escapes say them), while DEL and C1 are text there.
    let machine = what.contains("--format json") || what.contains("--format html");
    let shown = if machine { ended.stderr.clone() } else { text.clone() };
    if let Some(c) = shown.chars().find(|&c| c.is_control() && c != '\n' && c != '\t') {
        problems.push(format!("{what}: printed a raw control character U+{:04X}", u32::from(c)));
    }
    if machine && let Some(c) = ended.stdout.chars().find(|&c| c < ' ' && c != '\n' && c != '\t') {
        problems.push(format!("{what}: wrote a raw control character U+{:04X}", u32::from(c)));
    }
    if text.len() > 200_000 {
        problems.push(format!("{what}: printed {} bytes", text.len()));
    }
}

/// The images and the tasks of the graph `graph` in `dir`, as `graph --format json` lists them.
struct Nodes {
    images: BTreeSet<String>,
    tasks: BTreeSet<String>,
}

fn nodes(dir: &Path, graph: &str) -> Option<Nodes> {
    let ended = hephy(dir, &["graph", "-f", graph, "--format", "json"]);
    if ended.code != Some(0) {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&ended.stdout).ok()?;
    let named = |kind: &str| -> Option<BTreeSet<String>> {
        Some(
            json["nodes"]
                .as_array()?
                .iter()
                .filter(|n| n["kind"] == kind)
                .filter_map(|n| n["name"].as_str().map(str::to_owned))
                .collect(),
        )
    };
    Some(Nodes { images: named("image")?, tasks: named("task")? })
}

/// The problems of a graph hephy wrote from `sources` sources (bake targets, folders): it may
/// hold at most one image for each, and no task (neither source has any).
fn written_graph(dir: &Path, graph: &str, what: &str, sources: usize, problems: &mut Vec<String>) {
    match nodes(dir, graph) {
        None => problems.push(format!("`graph` of the {what} failed")),
        Some(found) => {
            if !found.tasks.is_empty() {
                problems.push(format!("the {what} has task(s) its input did not declare: {:?}", found.tasks));
            }
            if found.images.len() > sources {
                problems.push(format!("the {what} has {} images for {sources} sources", found.images.len()));
            }
        }
    }
}

/// The structure of an HTML page: its element and comment openings, in order.
fn html_shape(page: &str) -> Vec<String> {
    let lower = page.to_ascii_lowercase();
    let mut shape = Vec::new();
    for (i, _) in lower.match_indices('<') {
        let rest = &lower[i + 1..];
        if rest.starts_with("!--") {
            shape.push("<!--".to_owned());
        } else if let Some(tag) = rest.strip_prefix('/').or(Some(rest)) {
            let name: String = tag.chars().take_while(char::is_ascii_alphanumeric).collect();
            if !name.is_empty() {
                shape.push(format!("<{}{name}", if rest.starts_with('/') { "/" } else { "" }));
            }
        }
    }
    shape
}

fn cases() -> (u64, usize) {
    let seed = std::env::var("HEPHY_HOSTILE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x4e_9a11);
    let count = std::env::var("HEPHY_HOSTILE_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(24);
    (seed, count)
}

/// The shape of the HTML report of a plain graph: every hostile graph's report must have it.
fn plain_report_shape() -> Vec<String> {
    let repo = Repo::new()
        .context("app")
        .file("hephy.yaml", "images:\n  app: { context: app, platforms: [linux/amd64] }\n");
    let ended = hephy(repo.path(), &["graph", "--format", "html"]);
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    html_shape(&ended.stdout)
}

#[test]
fn hostile_repositories_through_every_command() {
    let (seed, count) = cases();
    let host = tempfile::tempdir().unwrap();
    let canary = host.path().join("secret");
    std::fs::write(&canary, format!("{CANARY}\nroot:*:20228:0:99999:7:::\n")).unwrap();
    let plain = plain_report_shape();
    let mut failures = Vec::new();
    let started = Instant::now();
    let (mut checked, mut ran) = (0, 0);
    for index in 0..count {
        let mut rng = Rng(seed ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let case = if rng.chance(25) { oversized_repo(&mut rng) } else { hostile_repo(&mut rng, &canary) };
        let dir = case.repo.path();
        let mut problems = Vec::new();
        let check = hephy(dir, &["check", "-f", case.graph]);
        judge("check", &check, &mut problems);
        if std::env::var_os("HEPHY_HOSTILE_VERBOSE").is_some() && check.code != Some(0) {
            eprintln!(
                "case {index} ({}): {}",
                case.what.join("; "),
                check.stderr.lines().take(3).collect::<Vec<_>>().join(" | ")
            );
        }
        let plan = hephy(dir, &["plan", "-f", case.graph]);
        judge("plan", &plan, &mut problems);
        let json = hephy(dir, &["graph", "-f", case.graph, "--format", "json"]);
        judge("graph --format json", &json, &mut problems);
        if check.code == Some(0) {
            checked += 1;
            if let Some(found) = nodes(dir, case.graph) {
                let extra: Vec<_> =
                    found.images.union(&found.tasks).filter(|n| !case.declared.contains(*n)).collect();
                if !extra.is_empty() {
                    problems.push(format!("graph: nodes the input did not declare: {extra:?}"));
                }
            }
            let html = hephy(dir, &["graph", "-f", case.graph, "--format", "html"]);
            judge("graph --format html", &html, &mut problems);
            if html.code == Some(0) {
                let shape = html_shape(&html.stdout);
                if shape != plain {
                    problems.push("graph --format html: names changed the page's elements".to_owned());
                }
            }
            if case.runnable {
                ran += 1;
                let run = hephy(dir, &["run", "-f", case.graph]);
                judge("run", &run, &mut problems);
                if run.code == Some(0) {
                    let again = hephy(dir, &["run", "-f", case.graph, "--format", "json"]);
                    judge("second run", &again, &mut problems);
                }
                if let Some(name) = case.declared.iter().next() {
                    let explain = hephy(dir, &["explain", "-f", case.graph, name]);
                    judge("explain", &explain, &mut problems);
                }
                let log = hephy(dir, &["log", "-f", case.graph]);
                judge("log", &log, &mut problems);
                let gc = hephy(dir, &["gc", "-f", case.graph]);
                judge("gc", &gc, &mut problems);
            }
        }
        let mut files = Vec::new();
        written_bytes(dir, &mut files);
        for (path, bytes) in &files {
            if contains(bytes, CANARY) {
                problems.push(format!(
                    "the host file's content is in {}",
                    path.strip_prefix(dir).unwrap().display()
                ));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "case {index} (seed {seed}): {}\n  {}",
                case.what.join("; "),
                problems.join("\n  ")
            ));
        }
    }
    eprintln!("{count} hostile repositories in {:?}: {checked} passed check, {ran} ran", started.elapsed());
    // A generator whose cases all stop at `check` would test nothing past it.
    assert!(checked >= count / 4 && ran >= count / 8, "only {checked} cases passed check and {ran} ran");
    assert!(failures.is_empty(), "{} of {count} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn hostile_bake_files_import_into_graphs_that_declare_only_their_targets() {
    let (seed, count) = cases();
    let host = tempfile::tempdir().unwrap();
    let canary = host.path().join("secret");
    std::fs::write(&canary, format!("{CANARY}\n")).unwrap();
    let mut failures = Vec::new();
    let started = Instant::now();
    for index in 0..count / 2 {
        let mut rng = Rng(!seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
        let (repo, targets, what) = hostile_bake(&mut rng, &canary);
        let dir = repo.path();
        let mut problems = Vec::new();
        for (format, graph) in [("kdl", "hephy.kdl"), ("yaml", "hephy.yaml")] {
            let import =
                hephy(dir, &["import", "--from", "bake", "docker-bake.hcl", "--format", format, "-o", graph]);
            judge(&format!("import ({format})"), &import, &mut problems);
            if import.code != Some(0) {
                continue;
            }
            let check = hephy(dir, &["check", "-f", graph]);
            judge(&format!("check of the imported {format}"), &check, &mut problems);
            if check.code != Some(0) {
                problems.push(format!("the imported {format} graph fails its own check"));
                continue;
            }
            written_graph(dir, graph, &format!("imported {format} graph"), targets, &mut problems);
        }
        let mut files = Vec::new();
        written_bytes(dir, &mut files);
        for (path, bytes) in &files {
            if contains(bytes, CANARY) {
                problems.push(format!(
                    "the host file's content is in {}",
                    path.strip_prefix(dir).unwrap().display()
                ));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "bake case {index} (seed {seed}): {}\n  {}",
                what.join("; "),
                problems.join("\n  ")
            ));
        }
    }
    eprintln!("{} hostile bake files in {:?}", count / 2, started.elapsed());
    assert!(failures.is_empty(), "{} bake cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn init_on_hostile_folders_writes_only_graphs_that_pass_check() {
    let (seed, count) = cases();
    let host = tempfile::tempdir().unwrap();
    let canary = host.path().join("secret");
    std::fs::write(&canary, format!("{CANARY}\n")).unwrap();
    let mut failures = Vec::new();
    for index in 0..count / 2 {
        let mut rng = Rng(seed.rotate_left(17) ^ index as u64);
        let repo = Repo::new();
        let mut what = Vec::new();
        for i in 0..1 + rng.below(3) {
            let folder = match rng.below(4) {
                0 => hostile_file_name(&mut rng),
                1 => format!("my.app{i}"),
                2 => "x".repeat(130 + i),
                _ => format!("svc{i}"),
            };
            what.push(format!("{folder:?}"));
            std::fs::create_dir_all(repo.path().join(&folder)).unwrap();
            if rng.chance(20) {
                std::os::unix::fs::symlink(&canary, repo.path().join(&folder).join("Dockerfile")).unwrap();
            } else {
                let base =
                    if i > 0 && rng.chance(50) { "ARG BASE=svc0\nFROM ${BASE}\n" } else { "FROM scratch\n" };
                std::fs::write(repo.path().join(&folder).join("Dockerfile"), base).unwrap();
            }
        }
        let dir = repo.path();
        let mut problems = Vec::new();
        let format = if rng.chance(50) { "kdl" } else { "yaml" };
        let init = hephy(dir, &["init", "--format", format]);
        judge("init", &init, &mut problems);
        let graph = if format == "kdl" { "hephy.kdl" } else { "hephy.yaml" };
        if dir.join(graph).exists() {
            let check = hephy(dir, &["check", "-f", graph]);
            judge("check of init's graph", &check, &mut problems);
            if check.code == Some(0) {
                written_graph(dir, graph, "graph init wrote", what.len(), &mut problems);
            } else {
                problems.push(format!("init left a graph its own check rejects:\n{}", check.stderr));
            }
        } else if init.code == Some(0) {
            problems.push("init exited 0 and wrote no graph".to_owned());
        }
        let stdout = hephy(dir, &["init", "--stdout", "--format", format]);
        judge("init --stdout", &stdout, &mut problems);
        let mut files = Vec::new();
        written_bytes(dir, &mut files);
        for (path, bytes) in &files {
            if contains(bytes, CANARY) {
                problems.push(format!(
                    "the host file's content is in {}",
                    path.strip_prefix(dir).unwrap().display()
                ));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "init case {index} (seed {seed}): {}\n  {}",
                what.join(", "),
                problems.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{} init cases failed:\n{}", failures.len(), failures.join("\n"));
}
