//! The example images are runnable: every image of an example graph that names a program
//! (`ENTRYPOINT`/`CMD`) holds it, as an executable file for the image's own platform, and the
//! program does what the example says. The quickstart is built (with nothing installed), each
//! image read back from the OCI layout and its layers merged; the web server of the runner's
//! platform is started and asked for its page, the other platform's under qemu-user-static.
//! (The kaniko-builder example pulls alpine and downloads releases: it cannot build offline.)

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Repo;
use serde_json::Value;

/// One entry of an image's merged filesystem.
#[derive(Debug, Clone)]
enum Entry {
    File { mode: u32, bytes: Vec<u8> },
    Link(String),
    Folder,
}

/// One platform's image, read from an OCI layout.
struct Image {
    config: Value,
    files: BTreeMap<String, Entry>,
}

fn json_blob(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&blob(layout, digest)).unwrap()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
}

/// The image `index.json` names `name` (`web.linux-amd64`), its layers applied in order, with
/// OCI whiteouts (`.wh.NAME` removes `NAME`, `.wh..wh..opq` empties its folder).
fn image(layout: &Path, name: &str) -> Image {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let manifest = json_blob(layout, &digest);
    let config = json_blob(layout, manifest["config"]["digest"].as_str().unwrap());
    let mut files = BTreeMap::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let media = layer["mediaType"].as_str().unwrap();
        assert!(media.ends_with("tar+gzip"), "{name}: a layer of type {media}");
        let bytes = blob(layout, layer["digest"].as_str().unwrap());
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = format!("/{}", entry.path().unwrap().display()).trim_end_matches('/').to_owned();
            let (folder, base) = path.rsplit_once('/').unwrap();
            if base == ".wh..wh..opq" {
                files.retain(|p: &String, _| !p.starts_with(&format!("{folder}/")));
                continue;
            }
            if let Some(gone) = base.strip_prefix(".wh.") {
                let gone = format!("{folder}/{gone}");
                files.retain(|p: &String, _| *p != gone && !p.starts_with(&format!("{gone}/")));
                continue;
            }
            let kind = entry.header().entry_type();
            let value = if kind.is_dir() {
                Entry::Folder
            } else if kind.is_symlink() {
                Entry::Link(entry.link_name().unwrap().unwrap().display().to_string())
            } else if kind.is_file() {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                Entry::File { mode: entry.header().mode().unwrap(), bytes }
            } else {
                panic!("{name}: {path} is a {kind:?}")
            };
            files.insert(path, value);
        }
    }
    Image { config, files }
}

impl Image {
    /// The program the image runs and its arguments: `Entrypoint` then `Cmd`, as a runtime
    /// joins them; empty if it names none.
    fn command(&self) -> Vec<String> {
        let list = |key: &str| -> Vec<String> {
            self.config["config"][key]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default()
        };
        [list("Entrypoint"), list("Cmd")].concat()
    }

    /// The file at `path`, following symlinks inside the image (at most 40).
    fn resolve(&self, path: &str) -> Option<(&str, &Entry)> {
        let mut path = path.to_owned();
        for _ in 0..40 {
            let (key, entry) = self.files.get_key_value(&path)?;
            match entry {
                Entry::Link(target) if target.starts_with('/') => path = target.clone(),
                Entry::Link(target) => {
                    path = format!("{}/{target}", path.rsplit_once('/').unwrap().0);
                }
                _ => return Some((key, entry)),
            }
        }
        None
    }

    /// The program as a runtime finds it: a path, or a name looked up in the image's `PATH`.
    fn program(&self, name: &str) -> Option<(&str, &Entry)> {
        if name.contains('/') {
            return self.resolve(name);
        }
        let env = self.config["config"]["Env"].as_array().cloned().unwrap_or_default();
        let path = env.iter().filter_map(|v| v.as_str()?.strip_prefix("PATH=").map(str::to_owned)).next()?;
        path.split(':').find_map(|folder| self.resolve(&format!("{folder}/{name}")))
    }
}

/// The ELF machine (`e_machine`) of an image's platform.
fn machine(arch: &str) -> u16 {
    match arch {
        "amd64" => 62,
        "arm64" => 183,
        other => panic!("no ELF machine known for {other}"),
    }
}

/// The architecture this test runs on, as OCI names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("the examples' programs are built for amd64 and arm64, not {other}"),
    }
}

/// Checks that the image's program exists and is an executable static ELF file of the image's
/// architecture; returns its bytes (empty when the image names no program).
fn check_program(name: &str, image: &Image) -> Option<Vec<u8>> {
    let command = image.command();
    let program = command.first()?;
    let (path, entry) = image
        .program(program)
        .unwrap_or_else(|| panic!("{name}: its program `{program}` is not in the image"));
    let Entry::File { mode, bytes } = entry else { panic!("{name}: {path} is not a file: {entry:?}") };
    assert!(mode & 0o111 != 0, "{name}: {path} is not executable (mode {mode:o})");
    assert_eq!(bytes.get(..4), Some(&b"\x7fELF"[..]), "{name}: {path} is not an ELF file");
    let arch = image.config["architecture"].as_str().unwrap();
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), machine(arch), "{name}: {path} is not for {arch}");
    // A static program: no program header asks for an interpreter (PT_INTERP) that the image
    // would need to hold.
    let phoff = usize::try_from(u64::from_le_bytes(bytes[32..40].try_into().unwrap())).unwrap();
    let (size, count) =
        (u16::from_le_bytes([bytes[54], bytes[55]]), u16::from_le_bytes([bytes[56], bytes[57]]));
    for i in 0..usize::from(count) {
        let at = phoff + i * usize::from(size);
        let kind = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_ne!(kind, 3, "{name}: {path} needs a dynamic loader");
    }
    Some(bytes.clone())
}

/// The quickstart built from a clean copy with an empty `PATH`, and its OCI layout.
fn quickstart() -> (Repo, PathBuf) {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let repo = Repo::example("quickstart");
    let run = repo.run_with(&["run", "-f", "hephy.kdl"], &[("PATH", path.as_str())]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let layout = repo.path().join(".hephy/oci");
    (repo, layout)
}

/// A child process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts web's program (`launcher` first, e.g. qemu) the way its entrypoint says, but on a
/// free port and with its file inside `root`, then fetches a page: what the server sends.
fn serve_web_page(web: &Image, launcher: &[&str]) -> String {
    let command = web.command();
    assert_eq!(command, ["/usr/bin/httpd", "8080", "/srv/www/index.html"]);
    assert!(web.config["config"]["ExposedPorts"]["8080/tcp"].is_object(), "{}", web.config);
    let dir = tempfile::tempdir().unwrap();
    let Some((_, Entry::File { bytes, .. })) = web.resolve(&command[0]) else { panic!("no {}", command[0]) };
    let program = dir.path().join("httpd");
    std::fs::write(&program, bytes).unwrap();
    std::fs::set_permissions(&program, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let Some((_, Entry::File { bytes: page, .. })) = web.resolve(&command[2]) else {
        panic!("no {}", command[2])
    };
    let file = dir.path().join("index.html");
    std::fs::write(&file, page).unwrap();

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut argv: Vec<String> = launcher.iter().map(|s| (*s).to_owned()).collect();
    argv.extend([program.display().to_string(), port.to_string(), file.display().to_string()]);
    let _server = Server(
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}")),
    );
    let start = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the server never listened on {port}: {e}"),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn every_quickstart_image_holds_its_program_for_its_platform() {
    let (_repo, layout) = quickstart();
    let mut programs = Vec::new();
    for name in ["base", "web", "docs"] {
        for arch in ["amd64", "arm64"] {
            let image = image(&layout, &format!("{name}.linux-{arch}"));
            assert_eq!(image.config["architecture"], arch);
            if check_program(name, &image).is_some() {
                programs.push(format!("{name}@{arch}: {}", image.command()[0]));
            }
        }
    }
    // Only web runs a program; base and docs are a root filesystem and a folder of pages.
    assert_eq!(programs, ["web@amd64: /usr/bin/httpd", "web@arm64: /usr/bin/httpd"]);
}

#[test]
fn the_quickstart_web_server_serves_its_page_on_this_platform() {
    let (_repo, layout) = quickstart();
    let web = image(&layout, &format!("web.linux-{}", host_arch()));
    let answer = serve_web_page(&web, &[]);
    assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
    assert!(
        answer
            .ends_with("\r\n\r\n<!doctype html>\n<title>hephy quickstart</title>\n<h1>Built by hephy</h1>\n"),
        "{answer}"
    );
}

#[test]
#[ignore = "needs qemu-user-static (installed by .ci/run)"]
fn the_quickstart_web_server_of_the_other_platform_serves_its_page_under_qemu() {
    let (_repo, layout) = quickstart();
    for (arch, qemu) in [("amd64", "qemu-x86_64-static"), ("arm64", "qemu-aarch64-static")] {
        let web = image(&layout, &format!("web.linux-{arch}"));
        let answer = serve_web_page(&web, &[qemu]);
        assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{arch}: {answer}");
        assert!(answer.ends_with("<h1>Built by hephy</h1>\n"), "{arch}: {answer}");
    }
}

#[test]
#[ignore = "needs binutils-x86-64-linux-gnu and binutils-aarch64-linux-gnu (installed by .ci/run)"]
fn the_committed_web_servers_are_assembled_from_their_sources() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/web/httpd");
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(here.join("build.sh")).arg(out.path()).status().unwrap();
    assert!(status.success(), "build.sh failed");
    for arch in ["amd64", "arm64"] {
        assert!(
            std::fs::read(out.path().join(arch)).unwrap() == std::fs::read(here.join(arch)).unwrap(),
            "examples/quickstart/web/httpd/{arch} is not what build.sh assembles from {arch}.S: run it"
        );
    }
}
