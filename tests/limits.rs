//! Every recursion has a depth bound and every expansion a size bound (SPEC, "Limits"): a
//! graph or a bake file past one is a `hephy::limit` diagnostic at the construct, in seconds,
//! never a stack overflow, an hour of work or gigabytes; chains within the limits take linear
//! time. And `hephy init` writes only graphs its own `check` accepts.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{Repo, Run, run_within};

/// `hephy ARGS` in `repo`, which must end within 60 s (a debug build on a busy machine; the
/// inputs here took minutes, or crashed, before their limits).
fn run(repo: &Repo, args: &[&str]) -> Run {
    run_within(repo, args, &[], Duration::from_secs(60))
}

/// Exit 2 with a `hephy::limit` diagnostic saying `what`, and no crash.
fn refused(run: &Run, what: &str) {
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(!run.stderr.contains("overflow") && !run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(run.stderr.contains("hephy::limit"), "{}", run.stderr);
    assert!(run.stderr.contains(what), "{what:?} not in:\n{}", run.stderr);
}

#[test]
fn template_cycles_and_chains_are_bounded_not_a_crash() {
    // A cycle of 4,000 templates (a stack overflow once).
    let n = 4_000;
    let mut kdl = String::new();
    for i in 0..n {
        let _ = writeln!(kdl, "template \"t{i}\" {{\n    inherits \"t{}\"\n}}", (i + 1) % n);
    }
    kdl.push_str("image \"app\" {\n    context \"app\"\n    inherits \"t0\"\n}\n");
    let repo = Repo::new().context("app").file("hephy.kdl", &kdl);
    let check = run(&repo, &["check"]);
    refused(&check, "templates deep");
    assert!(check.stderr.contains("template cycle: t0 → t1 → t2"), "{}", check.stderr);

    // A chain of 20,000 in YAML, each template with an arg of its own (a stack overflow, and
    // at 10,000 minutes of merging).
    let n = 20_000;
    let mut yaml = String::from("templates:\n");
    for i in 0..n - 1 {
        let _ = writeln!(yaml, "  t{i}: {{ inherits: [t{}], args: {{ A{i}: x }} }}", i + 1);
    }
    let _ = writeln!(yaml, "  t{}: {{ context: app }}", n - 1);
    yaml.push_str("images:\n  app: { inherits: [t0] }\n");
    let repo = Repo::new().context("app").file("hephy.yaml", &yaml);
    let check = run(&repo, &["check"]);
    refused(&check, "inherits more than 64 templates deep");

    // 64 deep is within the limit: every arg of the chain reaches the image.
    let n = 64;
    let mut yaml = String::from("templates:\n");
    for i in 0..n - 1 {
        let _ = writeln!(yaml, "  t{i}: {{ inherits: [t{}], args: {{ A{i}: x }} }}", i + 1);
    }
    let _ = writeln!(yaml, "  t{}: {{ context: app, args: {{ BASE: scratch }} }}", n - 1);
    yaml.push_str("images:\n  app: { inherits: [t0] }\n");
    let repo = Repo::new().context("app").file("hephy.yaml", &yaml);
    let show = run(&repo, &["show", "app", "--format", "json"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let json: serde_json::Value = serde_json::from_str(&show.stdout).expect("json");
    assert_eq!(json["templates"].as_array().map(Vec::len), Some(64), "{}", show.stdout);
}

#[test]
fn matrices_are_counted_before_they_are_made() {
    // 200 × 200 × 50 is two million images: refused at the matrix, before one is made.
    let values = |key: &str, n: usize| (0..n).map(|i| format!("\"{key}{i}\"")).collect::<Vec<_>>().join(" ");
    let kdl = format!(
        "image \"x-${{a}}-${{b}}-${{c}}\" {{\n    matrix {{\n        a {}\n        b {}\n        c {}\n    }}\n    context \"app\"\n}}\n",
        values("a", 200),
        values("b", 200),
        values("c", 50)
    );
    let repo = Repo::new().context("app").file("hephy.kdl", &kdl);
    let check = run(&repo, &["check"]);
    refused(&check, "the matrix makes 200 × 200 × 50 copies, more than 100000");
    // 1000³ overflows nothing either.
    let kdl = format!(
        "task \"t-${{a}}-${{b}}-${{c}}\" {{\n    matrix {{\n        a {}\n        b {}\n        c {}\n    }}\n    run \"true\"\n}}\n",
        values("a", 1000),
        values("b", 1000),
        values("c", 1000)
    );
    repo.write("hephy.kdl", &kdl);
    refused(&run(&repo, &["check"]), "1000 × 1000 × 1000 copies");
}

#[test]
fn templates_copied_into_many_images_are_counted_before_they_are_copied() {
    // A template of 10,000 args inherited by 5,000 matrix copies: 100 million strings, counted
    // (and refused) before one copy is made.
    let args: String = (0..10_000).map(|i| format!(" A{i}=\"x\"")).collect();
    let values: String = (0..5_000).map(|i| format!(" \"{i}\"")).collect();
    let kdl = format!(
        "template \"big\" {{\n    args{args}\n}}\nimage \"i-${{n}}\" {{\n    matrix {{\n        n{values}\n    }}\n    inherits \"big\"\n    context \"app\"\n}}\n"
    );
    let repo = Repo::new().context("app").file("hephy.kdl", &kdl);
    let check = run(&repo, &["check"]);
    refused(&check, "makes the graph hold more than 10000000 strings");

    // And one `inherits` lists at most 64 templates.
    let names: String = (0..100).map(|i| format!(" \"t{i}\"")).collect();
    let templates: String =
        (0..100).map(|i| format!("template \"t{i}\" {{\n    args A{i}=\"x\"\n}}\n")).collect();
    repo.write(
        "hephy.kdl",
        &format!("{templates}image \"app\" {{\n    context \"app\"\n    inherits{names}\n}}\n"),
    );
    refused(&run(&repo, &["check"]), "`app` inherits 100 templates, more than 64");
}

#[test]
fn variables_fill_in_bounded_text() {
    // A 100 KB value used twenty times in one string: 2 MB, more than a string may grow to.
    let value = "v".repeat(100_000);
    let uses = "${BIG}".repeat(20);
    let repo = Repo::new().context("app").file(
        "hephy.yaml",
        &format!(
            "variables: {{ BIG: {value} }}\nimages:\n  app: {{ context: app, args: {{ A: \"{uses}\" }} }}\n"
        ),
    );
    let check = run(&repo, &["check"]);
    refused(&check, "filling in `${BIG}` makes a string longer than 1048576 bytes");
}

#[test]
fn a_chain_of_groups_is_walked_in_linear_time() {
    // 20,000 groups, each naming the next (minutes once: each group walked the rest anew).
    let n = 20_000;
    let mut yaml = String::from("groups:\n");
    for i in 0..n - 1 {
        let _ = writeln!(yaml, "  g{i}: [g{}]", i + 1);
    }
    let _ = writeln!(yaml, "  g{}: [t]\ntasks:\n  t: {{ run: [\"true\"] }}", n - 1);
    let repo = Repo::new().file("hephy.yaml", &yaml);
    let check = run(&repo, &["check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let plan = run(&repo, &["plan", "--group", "g0", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    // And a cycle through all of them is found, once.
    repo.write("hephy.yaml", &yaml.replace("[t]", "[g0]"));
    let check = run(&repo, &["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert_eq!(check.stderr.matches("group cycle: g0 → g1 → g2").count(), 1, "{}", check.stderr);
}

#[test]
fn thousands_of_unknown_names_are_reported_in_seconds() {
    // Each unknown name was compared with every name for "did you mean" (a minute and more),
    // and each unknown template's help listed every template.
    let n = 5_000;
    let mut yaml = String::from("templates:\n");
    for i in 0..n {
        let _ = writeln!(yaml, "  t{i}: {{ inherits: [q{i}x], context: app }}");
    }
    yaml.push_str("images:\n");
    for i in 0..n {
        let _ = writeln!(yaml, "  i{i}: {{ inherits: [t{i}], after: [q{i}x] }}");
    }
    let repo = Repo::new().context("app").file("hephy.yaml", &yaml);
    let check = run(&repo, &["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("the templates are `t0`, `t1`, `t10`"), "{}", check.stderr);
    assert!(check.stderr.contains("`t1003` and 4992"), "{}", check.stderr);
    // Every problem is counted; the first 50 are drawn, so the page stays readable.
    assert!(
        check.stderr.contains(&format!("has {} problems", 2 * n)),
        "{}",
        &check.stderr[check.stderr.len() - 300..]
    );
    assert!(
        check.stderr.contains(&format!("… and {} more problems, not shown", 2 * n - 50)),
        "{}",
        &check.stderr[..2_000]
    );
    assert_eq!(
        check.stderr.matches("\nhephy::").count() + usize::from(check.stderr.starts_with("hephy::")),
        50
    );
}

#[test]
fn kdl_nesting_is_counted_through_raw_strings() {
    // A raw string ending in `\` once hid the braces after it from the count, and the KDL
    // parser's recursion overflowed the stack.
    let n = 20_000;
    let kdl = format!("image \"a\" #\"\\\"# {}\"q\"{}\n", "{ n ".repeat(n), " }".repeat(n));
    let repo = Repo::new().file("hephy.kdl", &kdl);
    let check = run(&repo, &["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(check.stderr.contains("blocks are nested more than 64 levels deep"), "{}", check.stderr);
}

/// `hephy import --from bake docker-bake.hcl` of `hcl`, in a repository with a Dockerfile.
fn import_bake(hcl: &str) -> Run {
    let repo =
        Repo::new().file("Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n").file("docker-bake.hcl", hcl);
    run(&repo, &["import", "--from", "bake", "docker-bake.hcl"])
}

#[test]
fn bake_imports_are_bounded_and_linear() {
    // 3,000 variables, each using the one declared after it (minutes of re-evaluation once).
    let n = 3_000;
    let mut hcl = String::new();
    for i in (1..n).rev() {
        let _ = writeln!(hcl, "variable \"V{i}\" {{\n  default = \"${{V{}}}x\"\n}}", i - 1);
    }
    hcl.push_str("variable \"V0\" {\n  default = \"a\"\n}\n");
    let _ = writeln!(hcl, "target \"app\" {{\n  context = \".\"\n  args = {{ A = \"${{V{}}}\" }}\n}}", n - 1);
    let import = import_bake(&hcl);
    assert_eq!(import.code, 0, "{}", import.stderr);
    // `V0` is a graph variable; the chain above it is written as the template it makes.
    assert!(import.stdout.contains(&format!("A=\"${{V0}}{}\"", "x".repeat(n - 1))), "{}", import.stdout);

    // A matrix of two million targets: refused before one is made.
    let list = |key: &str, n: usize| (0..n).map(|i| format!("\"{key}{i}\"")).collect::<Vec<_>>().join(", ");
    let hcl = format!(
        "target \"app\" {{\n  matrix = {{\n    a = [{}]\n    b = [{}]\n    c = [{}]\n  }}\n  name = \"app-${{a}}-${{b}}-${{c}}\"\n  context = \".\"\n}}\n",
        list("a", 200),
        list("b", 200),
        list("c", 50)
    );
    refused(&import_bake(&hcl), "its `matrix` makes 200 × 200 × 50 targets");

    // A chain of 20,000 `inherits` (a stack overflow once).
    let n = 20_000;
    let mut hcl = String::new();
    for i in 0..n - 1 {
        let _ = writeln!(hcl, "target \"t{i}\" {{\n  inherits = [\"t{}\"]\n}}", i + 1);
    }
    let _ = writeln!(hcl, "target \"t{}\" {{\n  context = \".\"\n}}", n - 1);
    refused(&import_bake(&hcl), "its chain of `inherits` is more than 64 targets deep");
}

/// A bake file's functions cannot recurse, nest past 64, make 2^60 calls or double a string
/// into gigabytes: each such target is left out with a warning naming the bound, in seconds,
/// and the rest imports.
#[test]
fn bake_functions_are_bounded() {
    let mut hcl = String::from(
        "function \"loop\" {\n  params = [n]\n  result = try(loop(n), n)\n}\n\
         target \"app\" {\n  context = \".\"\n  args = { A = md5(\"x\") }\n}\n\
         target \"recursive\" {\n  context = \".\"\n  args = { A = loop(1) }\n}\n",
    );
    for i in 0..100 {
        let _ = writeln!(hcl, "function \"deep{i}\" {{\n  params = []\n  result = deep{}()\n}}", i + 1);
        // 2^30 calls, within the depth bound.
        if i < 30 {
            let _ = writeln!(
                hcl,
                "function \"wide{i}\" {{\n  params = []\n  result = wide{0}() + wide{0}()\n}}",
                i + 1
            );
        }
        let _ = writeln!(
            hcl,
            "function \"grow{i}\" {{\n  params = [s]\n  result = grow{}(\"${{s}}${{s}}\")\n}}",
            i + 1
        );
    }
    hcl.push_str("function \"deep100\" {\n  params = []\n  result = 1\n}\n");
    hcl.push_str("function \"wide30\" {\n  params = []\n  result = 1\n}\n");
    hcl.push_str("function \"grow100\" {\n  params = [s]\n  result = s\n}\n");
    for (name, call) in [("deep", "deep0()"), ("wide", "wide0()"), ("grow", "grow0(\"x\")")] {
        let _ = writeln!(hcl, "target \"{name}\" {{\n  context = \".\"\n  args = {{ A = {call} }}\n}}");
    }
    let import = import_bake(&hcl);
    assert_eq!(import.code, 0, "{}", import.stderr);
    assert!(import.stdout.contains("A=\"9dd4e461268c8034f5c8564e155c67a6\""), "{}", import.stdout);
    for expected in [
        "function `loop` calls itself (loop → loop)",
        "calls of user functions nest more than 64 deep",
        "calls user functions more than 10000 times",
        "its arguments or result are larger than 1048576 bytes",
    ] {
        assert!(import.stderr.contains(expected), "{expected}: {}", import.stderr);
    }
}

#[test]
fn init_names_what_check_accepts() {
    // A folder named `my.app`, and two over 128 characters that differ only past the cut.
    let long = "d".repeat(200);
    let repo = Repo::new()
        .file("my.app/Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n")
        .file(&format!("{long}/Dockerfile"), "FROM scratch\nCOPY Dockerfile /x\n")
        .file(&format!("{long}e/Dockerfile"), "FROM scratch\nCOPY Dockerfile /x\n");
    let init = run(&repo, &["init"]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    assert!(init.stdout.contains("3 image(s)"), "{}", init.stdout);
    let check = run(&repo, &["check"]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let text = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("written");
    assert!(text.contains("image \"my-app\""), "{text}");
}

#[test]
fn init_leaves_no_graph_check_refuses() {
    // `init` now wires what it once could not (a sibling image read by `COPY --from`, a cycle it
    // leaves unwired with a note); whatever it meets, a graph it writes passes `check`, and one
    // that would not is reported and never left on disk (`--stdout` prints nothing then).
    let cases = [
        vec![
            ("curl/Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n"),
            ("tool/Dockerfile", "FROM scratch\nCOPY --from=curl /x /y\n"),
        ],
        vec![
            ("a/Dockerfile", "FROM scratch\nCOPY --from=b /x /y\n"),
            ("b/Dockerfile", "FROM scratch\nCOPY --from=a /x /y\n"),
        ],
        vec![("alpine/Dockerfile", "FROM alpine\nCOPY Dockerfile /x\n"), ("app/Dockerfile", "FROM alpine\n")],
    ];
    for files in cases {
        let mut repo = Repo::new();
        for (path, text) in &files {
            repo = repo.file(path, text);
        }
        let init = run(&repo, &["init"]);
        let written = repo.path().join("hephy.kdl");
        match init.code {
            0 => {
                let check = run(&repo, &["check"]);
                assert_eq!(check.code, 0, "{files:?}: init wrote a graph check refuses:\n{}", check.stderr);
            }
            2 => {
                assert!(!written.exists(), "{files:?}: a graph that fails `check` was left on disk");
                let stdout = run(&repo, &["init", "--stdout"]);
                assert_eq!(stdout.code, 2, "{}{}", stdout.stdout, stdout.stderr);
                assert!(stdout.stdout.is_empty(), "{}", stdout.stdout);
            }
            other => panic!("{files:?}: init exited {other}:\n{}{}", init.stdout, init.stderr),
        }
    }
    // The sibling is wired: the graph builds `tool` from `curl`.
    let repo = Repo::new()
        .file("curl/Dockerfile", "FROM scratch\nCOPY Dockerfile /x\n")
        .file("tool/Dockerfile", "FROM scratch\nCOPY --from=curl /x /y\n");
    assert_eq!(run(&repo, &["init"]).code, 0);
    let text = std::fs::read_to_string(repo.path().join("hephy.kdl")).expect("written");
    assert!(text.contains("from \"curl\" context=\"curl\""), "{text}");
}
