//! Hostile archives and layers against the real binary and the built-in `oci` builder: a layer
//! hephy writes is a layer other tools unpack. `ADD` refuses, at its line, the archive entries
//! it would otherwise drop or write broken (`../` names, hardlinks out of the archive, to
//! themselves or in a loop, entries under one of its symlinks, devices, FIFOs); a base image
//! whose layer links in a loop is refused, never a crash; and what it does write, `umoci`
//! unpacks.

#![expect(clippy::unwrap_used, reason = "a test fails loudly on unexpected output")]

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::process::Command;

use common::layers::{push_layers, tar_of};
use common::{Repo, Run};
use tar::EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};

/// An entry of a tar: name, kind, data (a link's target).
type Item<'a> = (&'a str, tar::EntryType, &'a str);

/// A repository whose image `app` builds `dockerfile` with the `oci` builder, `slip.tar` (made
/// of `entries`) in its context.
fn repo_with(dockerfile: &str, entries: &[Item]) -> Repo {
    let repo = Repo::new()
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n")
        .file("app/Dockerfile", dockerfile);
    std::fs::write(repo.path().join("app/slip.tar"), tar_of(entries)).unwrap();
    repo
}

fn no_crash(run: &Run) {
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("overflow") && run.code != 134,
        "crashed ({}):\n{}{}",
        run.code,
        run.stdout,
        run.stderr
    );
}

#[test]
fn archive_entries_it_would_drop_or_write_broken_are_refused_at_their_line() {
    let cases: [(&str, &[Item], &str); 10] = [
        (
            "a hardlink out of the archive",
            &[("a", Regular, "a"), ("h", Link, "../../etc/passwd")],
            "`h` is a hardlink to `../../etc/passwd`, outside it",
        ),
        (
            "a hardlink to a file of the image, not of the archive",
            &[("h", Link, "etc/passwd")],
            "`h` is a hardlink to `etc/passwd`, which is not an entry before it",
        ),
        ("a self-link", &[("h", Link, "h")], "`h` is a hardlink to itself"),
        (
            "a hardlink loop",
            &[("h1", Link, "h2"), ("h2", Link, "h1")],
            "`h1` is a hardlink to `h2`, which is not an entry before it",
        ),
        ("a `../` name", &[("../evil", Regular, "x")], "`../evil` leaves it"),
        ("a name `..` takes out", &[("a/../../evil", Regular, "x")], "`a/../../evil` leaves it"),
        ("a character device", &[("dev/null", Char, "")], "`dev/null` is a character device"),
        ("a block device", &[("dev/sda", Block, "")], "`dev/sda` is a block device"),
        ("a FIFO", &[("p", Fifo, "")], "`p` is a FIFO (named pipe)"),
        (
            "a file written through a symlink of the archive",
            &[("d/", Directory, ""), ("d/lnk", Symlink, "/srv/x"), ("d/lnk/file", Regular, "x")],
            "`d/lnk/file` lies under `d/lnk`, a symlink of the archive",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, entries, expected) in cases {
        let repo = repo_with("FROM scratch\nADD slip.tar /x/\n", entries);
        let run = repo.run(&["run", "-f", "hephy.kdl"]);
        no_crash(&run);
        let said = run.stdout.contains("Dockerfile, line 2: cannot unpack `slip.tar`: ")
            && run.stdout.contains(expected)
            && !run.stdout.contains("outside the build context");
        if run.code != 1 || !said {
            wrong.push(format!("{what} (exit {}): not refused with {expected:?}\n{}", run.code, run.stdout));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

#[test]
fn a_hardlink_loop_copied_from_a_stage_is_an_error_not_a_crash() {
    let repo = repo_with(
        "FROM scratch AS a\nADD slip.tar /x/\nFROM scratch\nCOPY --from=a /x /y\n",
        &[("h1", Link, "h2"), ("h2", Link, "h1")],
    );
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    no_crash(&run);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "line 2: cannot unpack `slip.tar`: `h1` is a hardlink to `h2`, which is not an entry before it; add the file before the link and link to that, or store a copy"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn a_symlink_out_of_the_context_says_where_it_leads() {
    let repo = Repo::new()
        .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n")
        .file("app/Dockerfile", "FROM scratch\nCOPY link /l\n")
        .file("outside.txt", "not in the context\n");
    std::os::unix::fs::symlink("../outside.txt", repo.path().join("app/link")).unwrap();
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    no_crash(&run);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains(
            "`link` is a symlink to `../outside.txt`, and links are followed inside the build context"
        ),
        "{}",
        run.stdout
    );
}

#[test]
#[ignore = "needs skopeo and docker-registry (installed by .ci/run)"]
fn a_registry_image_whose_layer_links_in_a_loop_is_refused_not_a_crash() {
    common::require(&["skopeo", "docker-registry"], "apt-get install skopeo docker-registry");
    let registry = common::registry::Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/loop:1", registry.address());
    push_layers(
        dir.path(),
        &reference,
        &[tar_of(&[("bin/", Directory, ""), ("bin/h1", Link, "bin/h2"), ("bin/h2", Link, "bin/h1")])],
    );
    for (dockerfile, line) in [
        (format!("FROM scratch\nCOPY --from={reference} /bin/h1 /h\n"), 2),
        (format!("FROM {reference}\nCOPY h /h\n"), 1),
    ] {
        let repo = Repo::new()
            .online()
            .file("hephy.kdl", "image \"app\" {\n    context \"app\"\n    builder \"oci\"\n}\n")
            .file("app/Dockerfile", &dockerfile)
            .file("app/h", "h\n");
        let run = repo.run(&["run", "-f", "hephy.kdl"]);
        no_crash(&run);
        assert_eq!(run.code, 1, "{dockerfile}\n{}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains(&format!("Dockerfile, line {line}: cannot read layer sha256:"))
                && run.stdout.contains("`bin/h1` is a hardlink to `bin/h2`, which is not an entry before it; rebuild the image (no unpacker applies such a layer)"),
            "{dockerfile}\n{}",
            run.stdout
        );
    }
}

#[test]
#[ignore = "needs umoci (installed by .ci/run)"]
fn every_layer_it_writes_from_an_archive_unpacks_with_umoci() {
    common::require(&["umoci"], "apt-get install umoci");
    // What an archive may hold and BuildKit writes: absolute and `./` names (under the
    // destination), hardlink chains, a name replaced after another was linked to it, symlinks
    // that point anywhere (they are not followed).
    let entries: &[Item] = &[
        ("./", Directory, ""),
        ("./etc/", Directory, ""),
        ("/etc/abs.conf", Regular, "absolute\n"),
        ("./usr/bin/tool", Regular, "tool v1\n"),
        ("usr/bin/tool-link", Link, "./usr/bin/tool"),
        ("usr/bin/tool-chain", Link, "usr/bin/tool-link"),
        ("usr/bin/tool", Regular, "tool v2\n"),
        ("etc/passwd-link", Symlink, "/etc/passwd"),
        ("up", Symlink, "../../.."),
    ];
    let repo = repo_with(
        "FROM scratch AS a\nADD slip.tar /x/\nFROM scratch\nCOPY --from=a /x /y\nADD slip.tar /\n",
        entries,
    );
    let run = repo.run(&["run", "-f", "hephy.kdl"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let bundle = repo.path().join("bundle");
    let output = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:app", repo.path().join(".hephy/oci").display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(output.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&output.stderr));
    let rootfs = bundle.join("rootfs");
    for top in ["", "y/"] {
        let read = |path: &str| std::fs::read_to_string(rootfs.join(format!("{top}{path}"))).unwrap();
        assert_eq!(read("etc/abs.conf"), "absolute\n");
        assert_eq!(read("usr/bin/tool"), "tool v2\n", "the name replaced last");
        assert_eq!(read("usr/bin/tool-link"), "tool v1\n", "the links keep what they linked to");
        assert_eq!(read("usr/bin/tool-chain"), "tool v1\n");
        let inode = |path: &str| std::fs::metadata(rootfs.join(format!("{top}{path}"))).unwrap().ino();
        assert_eq!(inode("usr/bin/tool-link"), inode("usr/bin/tool-chain"), "still one file");
        assert_ne!(inode("usr/bin/tool"), inode("usr/bin/tool-link"));
        let link = |path: &str| std::fs::read_link(rootfs.join(format!("{top}{path}"))).unwrap();
        assert_eq!(link("etc/passwd-link").to_str(), Some("/etc/passwd"));
        assert_eq!(link("up").to_str(), Some("../../.."));
    }
}
