//! `cargo bench --bench image`: the built-in `oci` builder and hephy's registry pushes, each
//! measured side by side with its peer in one run (this machine is noisy: compare the ratios).
//! Figures go into notes and the README, never into test assertions.
//!
//! 1. a cold build (no state) of a context of 5,000 files, 212 MB, `FROM scratch` + `COPY . /data/`:
//!    `hephy run` (gzip, and zstd) vs `tar -c ctx | pigz -p2 > /dev/null` (and `| zstd -T2`)
//!    vs `buildah build` + `buildah push` to an OCI layout;
//! 2. pushing the built image from hephy's layout to an empty loopback registry (the blob
//!    lookups, uploads and manifest puts, as the node's log times them) vs `skopeo copy oci:… docker://…` of the same layout
//!    to another empty registry.
//!
//! `HEPHY_BENCH_FILES` (default 5,000) and `HEPHY_BENCH_MB` (default 212) size the context;
//! without `--bench` (`cargo test`) it runs once on a small context. pigz, zstd, buildah, skopeo
//! and docker-registry come from Debian; a peer that is missing is said so and skipped.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn secs(d: Duration) -> String {
    format!("{:>7.2} s", d.as_secs_f64())
}

/// Runs `script` with `sh -c` in `dir`; its wall time.
fn shell(dir: &Path, script: &str) -> Duration {
    let start = Instant::now();
    let out = Command::new("sh").args(["-c", script]).current_dir(dir).output().expect("sh");
    assert!(out.status.success(), "`{script}` failed: {}", String::from_utf8_lossy(&out.stderr));
    start.elapsed()
}

fn best(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

/// `files` files of about `total / files` bytes each, text-like (gzip takes them to about a
/// third), in folders of 500.
fn write_context(ctx: &Path, files: usize, total: usize) {
    let words: Vec<String> = (0..4096_usize)
        .map(|i| format!("w{:x}{}", i * 2_654_435_761 % 100_003, ["", "_x", "-y", "z"][i % 4]))
        .collect();
    let size = total / files;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..files {
        let dir = ctx.join(format!("d{:02}", i / 500));
        if i % 500 == 0 {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        let mut content = Vec::with_capacity(size + 16);
        while content.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            content.extend_from_slice(words[(x % 4096) as usize].as_bytes());
            content.push(if x & 0xf00 == 0 { b'\n' } else { b' ' });
            if x & 0xff == 7 {
                // Some bytes gzip cannot shrink.
                content.extend_from_slice(&x.to_le_bytes());
            }
        }
        content.truncate(size);
        std::fs::write(dir.join(format!("f{i:04}.txt")), &content).expect("write");
    }
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /data/\n").expect("write");
}

fn hephy() -> &'static str {
    env!("CARGO_BIN_EXE_hephy")
}

/// A cold `hephy run` of `graph` in `root` (its state removed first); its wall time.
fn hephy_cold(root: &Path, graph: &str, threads: Option<usize>) -> Duration {
    let _ = std::fs::remove_dir_all(root.join(".hephy"));
    let mut command = Command::new(hephy());
    command.args(["run", "-f", graph]).current_dir(root).stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(n) = threads {
        command.env("RAYON_NUM_THREADS", n.to_string());
    }
    let start = Instant::now();
    let out = command.output().expect("run hephy");
    let took = start.elapsed();
    assert!(out.status.success(), "hephy run -f {graph} failed: {}", String::from_utf8_lossy(&out.stderr));
    took
}

/// A `docker-registry` on a free loopback port with its own storage, stopped on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let config = dir.path().join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry");
        let registry = Registry { child, port, _dir: dir };
        for _ in 0..200 {
            if registry.ready() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the registry did not start");
    }

    fn ready(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let request = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port);
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.split_whitespace().nth(1) == Some("200")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The push time the node's log gives (`hephy oci: published … in 1.234 s`), from the last cold run in `root`.
fn logged_push(root: &Path) -> Duration {
    let runs = std::fs::read_dir(root.join(".hephy/logs")).expect("logs").flatten();
    let logs = runs.flat_map(|run| std::fs::read_dir(run.path()).into_iter().flatten().flatten());
    for entry in logs {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("hephy oci: published")) {
            let seconds =
                line.rsplit(" in ").next().and_then(|s| s.trim_end_matches(" s").parse::<f64>().ok());
            return Duration::from_secs_f64(seconds.expect("a timed push line"));
        }
    }
    panic!("no push in the logs of {}", root.display());
}

/// The size of the largest blob in the layout of the last run in `root` (its one layer).
fn layer_size(root: &Path) -> u64 {
    let blobs = std::fs::read_dir(root.join(".hephy/oci/blobs/sha256")).expect("blobs").flatten();
    blobs.filter_map(|b| b.metadata().ok()).map(|m| m.len()).max().unwrap_or(0)
}

/// The bytes `script` writes to its stdout.
fn output_size(dir: &Path, script: &str) -> u64 {
    let out = Command::new("sh").args(["-c", script]).current_dir(dir).output().expect("sh");
    out.stdout.len() as u64
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let env =
        |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let files = env("HEPHY_BENCH_FILES", if quick { 200 } else { 5000 });
    let mb = env("HEPHY_BENCH_MB", if quick { 8 } else { 212 });
    let runs = if quick { 1 } else { 3 };
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path();
    let ctx = root.join("ctx");
    write_context(&ctx, files, mb * 1_000_000);
    std::fs::write(root.join("gzip.kdl"), "image \"big\" {\n    context \"ctx\"\n    builder \"oci\"\n}\n")
        .expect("write");
    std::fs::write(
        root.join("zstd.kdl"),
        "image \"big\" {\n    context \"ctx\"\n    builder \"oci\"\n    compression \"zstd\"\n}\n",
    )
    .expect("write");
    let only = std::env::var("HEPHY_BENCH_ONLY").unwrap_or_else(|_| "build,push".to_owned());
    let mb_of = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    if only.contains("build") {
        println!("\n## cold build: {files} files, {mb} MB, FROM scratch + COPY, best of {runs}");
        let gzip = best(runs, || hephy_cold(root, "gzip.kdl", None));
        println!("hephy run (oci builder, gzip)          {}   layer {}", secs(gzip), mb_of(layer_size(root)));
        let one_thread = best(1, || hephy_cold(root, "gzip.kdl", Some(1)));
        println!("hephy run (gzip, RAYON_NUM_THREADS=1)  {}", secs(one_thread));
        let zstd = best(runs, || hephy_cold(root, "zstd.kdl", None));
        println!("hephy run (oci builder, zstd)          {}   layer {}", secs(zstd), mb_of(layer_size(root)));
        if have("pigz") {
            let pigz = best(runs, || shell(root, "tar -c -C ctx . | pigz -p2 > /dev/null"));
            let size = output_size(root, "tar -c -C ctx . | pigz -p2");
            println!(
                "tar -c ctx | pigz -p2 > /dev/null      {}   output {}; hephy gzip / pigz: {} (goal ≤ 1.2×)",
                secs(pigz),
                mb_of(size),
                ratio(gzip, pigz)
            );
        } else {
            println!("pigz: not installed (apt-get install pigz)");
        }
        if have("zstd") {
            let z = best(runs, || shell(root, "tar -c -C ctx . | zstd -q -T2 -3 > /dev/null"));
            let size = output_size(root, "tar -c -C ctx . | zstd -q -T2 -3");
            println!(
                "tar -c ctx | zstd -T2 > /dev/null      {}   output {}; hephy zstd / zstd: {}",
                secs(z),
                mb_of(size),
                ratio(zstd, z)
            );
        }
        if have("buildah") {
            let buildah = best(runs, || {
                let store = tempfile::tempdir_in(root).expect("temp dir");
                let s = store.path().display();
                let script = format!(
                    "buildah --storage-driver vfs --root {s}/root --runroot {s}/run build -q --isolation chroot --timestamp 0 -f ctx/Dockerfile -t localhost/big:x ctx >/dev/null && \
                 buildah --storage-driver vfs --root {s}/root --runroot {s}/run push -q localhost/big:x oci:{s}/out:x"
                );
                shell(root, &script)
            });
            println!(
                "buildah build + push to an OCI layout  {}   hephy gzip / buildah: {} (goal ≤ 0.35×)",
                secs(buildah),
                ratio(gzip, buildah)
            );
        } else {
            println!("buildah: not installed (apt-get install buildah)");
        }
    }
    if !only.contains("push") {
        return;
    }

    if !have("docker-registry") {
        println!("docker-registry: not installed; no push figures");
        return;
    }
    println!("\n## push of the built image to an empty loopback registry, best of {runs}");
    let mut layout: Option<PathBuf> = None;
    let pushed = best(runs, || {
        let registry = Registry::start();
        let graph = format!(
            "registry \"127.0.0.1:{}/bench\"\nimage \"big\" {{\n    context \"ctx\"\n    builder \"oci\"\n}}\n",
            registry.port
        );
        std::fs::write(root.join("push.kdl"), graph).expect("write");
        hephy_cold(root, "push.kdl", None);
        let keep = root.join("pushed-layout");
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::rename(root.join(".hephy/oci"), &keep).expect("keep the layout");
        std::fs::create_dir_all(root.join(".hephy/oci")).expect("mkdir");
        layout = Some(keep);
        logged_push(root)
    });
    println!("hephy push (from its log)              {}", secs(pushed));
    if have("skopeo") {
        let layout = layout.expect("a layout");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
                .expect("JSON");
        let name = index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .expect("a named image")
            .to_owned();
        let skopeo = best(runs, || {
            let registry = Registry::start();
            let script = format!(
                "skopeo copy -q --dest-tls-verify=false oci:{}:{name} docker://127.0.0.1:{}/skopeo:x",
                layout.display(),
                registry.port
            );
            shell(root, &script)
        });
        println!(
            "skopeo copy oci:… docker://…           {}   hephy / skopeo: {} (goal ≤ 1.0×)",
            secs(skopeo),
            ratio(pushed, skopeo)
        );
    } else {
        println!("skopeo: not installed (apt-get install skopeo)");
    }
}
