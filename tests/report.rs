//! `hephy graph --format html`: one self-contained page, checked as a person sees it, in headless
//! Chromium (Debian's, driven by playwright-core from npm; `.ci/run` installs both): every node
//! drawn, coloured by what the plan will do, with its last run and duration, the critical path, hover
//! and search; a click on a node shows why it builds; and the geometry of the picture (edges
//! around cards, arrowheads, fit to screen) on the quickstart and on a 200-image graph.

mod common;

use std::path::Path;
use std::process::Command;

use common::Repo;

#[test]
#[ignore = "needs chromium and playwright-core (installed by .ci/run)"]
fn the_html_report_draws_every_node_and_a_click_shows_its_reasons() {
    common::require(&["chromium", "node"], "apt-get install chromium nodejs");
    let playwright = std::env::var("PLAYWRIGHT_CORE").unwrap_or_else(|_| {
        format!("{}/target/ci-tools/node_modules/playwright-core", env!("CARGO_MANIFEST_DIR"))
    });
    assert!(
        Path::new(&playwright).is_dir(),
        "this test needs playwright-core: npm install --prefix target/ci-tools playwright-core@1.64.1 (.ci/run does)"
    );

    let repo = Repo::example("quickstart");
    assert_eq!(repo.run(&["run"]).code, 0);
    repo.write("web/site/index.html", "<p>changed</p>\n");
    let graph = repo.run(&["graph", "--format", "html", "-o", "report.html"]);
    assert_eq!(graph.code, 0, "{}", graph.stderr);
    let page = std::fs::read_to_string(repo.path().join("report.html")).expect("the report");
    for outside in ["src=\"http", "href=\"http", "<link", "@import", "url(http"] {
        assert!(!page.contains(outside), "nothing is fetched at view time: `{outside}`");
    }
    let json = repo.run(&["graph", "--format", "json"]).json();
    let expected = json["nodes"].as_array().expect("nodes").len();

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hephy-report.png");
    let output = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report/browse.cjs"))
        .arg(&playwright)
        .arg(repo.path().join("report.html"))
        .arg("web@linux/amd64")
        .arg(&screenshot)
        .output()
        .expect("run node");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the page's facts as JSON");
    eprintln!("the page showed: {seen:#}\nscreenshot: {}", screenshot.display());

    assert_eq!(seen["errors"], serde_json::json!([]), "no script error");
    assert_eq!(seen["requests"], serde_json::json!([]), "no request leaves the file");
    assert_eq!(seen["nodes"], expected, "every node of the graph is drawn");
    assert!(seen["counts"].as_str().unwrap_or("").contains("to build"), "{seen}");
    assert!(seen["before"].as_str().unwrap_or("").contains("Click a node"), "{seen}");
    let details = seen["details"].as_str().unwrap_or("");
    assert!(details.contains("web@linux/amd64") && details.contains("build"), "{details}");
    assert!(details.contains("web/site/index.html changed"), "the click shows why it builds: {details}");
    assert!(
        details.contains("linux/amd64") && details.contains("sha256:"),
        "platform and last digest: {details}"
    );
    assert!(seen["classes"].as_str().unwrap_or("").contains("build"), "coloured as to build: {seen}");
    let card = seen["card"].as_str().unwrap_or("");
    assert!(
        card.contains("to build")
            && card.contains("last: built")
            && (card.contains(" ms") || card.contains(" s")),
        "the card's last run: {card}"
    );
    assert!(seen["critical"].as_u64().unwrap_or(0) >= 2, "a critical path is drawn: {seen}");
    assert!(seen["criticalHow"].as_str().unwrap_or("").contains("last build durations"), "{seen}");
    let lit = seen["lit"].as_array().cloned().unwrap_or_default();
    for near in ["base@linux/amd64", "web", "web:latest"] {
        assert!(lit.contains(&serde_json::json!(near)), "hover lights `{near}`: {seen}");
    }
    assert!(!lit.contains(&serde_json::json!("docs")), "hover lights nothing unrelated: {seen}");
    assert_eq!(seen["matches"], "4 matches", "search for `docs`: {seen}");
    assert_eq!(seen["dimmed"], expected - 4, "what does not match is dimmed: {seen}");
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 1000), "a screenshot was kept");
}

/// A graph in a folder named `{{DATA}}<!--<script>`, with context files named `<!--<script>` and
/// `</script>`: the report's title and data are text, so the page has its own two scripts and
/// nothing more, and in Chromium it draws every node and shows those names as written.
fn hostile_report() -> (Repo, String, std::path::PathBuf) {
    const DIR: &str = "{{DATA}}<!--<script>";
    let repo = Repo::new()
        .file(
            &format!("{DIR}/hephy.kdl"),
            "image \"web\" {\n    context \"web\"\n    platforms \"linux/amd64\"\n}\n",
        )
        .file(&format!("{DIR}/web/Dockerfile"), "FROM scratch\nCOPY . /\n")
        .file(&format!("{DIR}/web/<!--<script>"), "a\n")
        .file(&format!("{DIR}/web/</script>"), "b\n")
        .file(&format!("{DIR}/web/<img src=x onerror=alert(1)>"), "c\n");
    let graph = format!("{DIR}/hephy.kdl");
    let run = repo.run(&["run", "-f", &graph]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for (file, text) in [("<!--<script>", "changed\n"), ("</script>", "changed\n")] {
        repo.write(&format!("{DIR}/web/{file}"), text);
    }
    let report = repo.path().join("report.html");
    let out = repo.run(&["graph", "-f", &graph, "--format", "html", "-o", "report.html"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    (repo, graph, report)
}

#[test]
fn names_in_the_html_report_are_text_not_markup() {
    let (_repo, _graph, report) = hostile_report();
    let page = std::fs::read_to_string(&report).expect("the report");
    let template = include_str!("../src/graph_view/report.html");
    for markup in ["<script", "</script", "<!--", "<img", "<title>"] {
        assert_eq!(
            page.matches(markup).count(),
            template.matches(markup).count(),
            "`{markup}` only where the template has it:\n{page}"
        );
    }
    assert!(page.contains("<title>hephy — {{DATA}}&lt;!--&lt;script&gt;/hephy.kdl</title>"), "{page}");
}

#[test]
#[ignore = "needs chromium and playwright-core (installed by .ci/run)"]
fn the_html_report_draws_every_node_whatever_the_names_hold() {
    common::require(&["chromium", "node"], "apt-get install chromium nodejs");
    let playwright = std::env::var("PLAYWRIGHT_CORE").unwrap_or_else(|_| {
        format!("{}/target/ci-tools/node_modules/playwright-core", env!("CARGO_MANIFEST_DIR"))
    });
    assert!(Path::new(&playwright).is_dir(), "npm install --prefix target/ci-tools playwright-core@1.64.1");
    let (repo, graph, report) = hostile_report();
    let expected = repo.run(&["graph", "-f", &graph, "--format", "json"]).json()["nodes"]
        .as_array()
        .expect("nodes")
        .len();
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hephy-report-hostile.png");
    let output = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report/browse.cjs"))
        .arg(&playwright)
        .arg(&report)
        .arg("web@linux/amd64")
        .arg(&screenshot)
        .output()
        .expect("run node");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the page's facts as JSON");
    assert_eq!(seen["errors"], serde_json::json!([]), "no script error: {seen:#}");
    assert_eq!(seen["nodes"], expected, "every node of the graph is drawn: {seen:#}");
    assert_eq!(seen["scripts"], 2, "the page's own scripts only: {seen:#}");
    assert_eq!(seen["title"], "hephy — {{DATA}}<!--<script>/hephy.kdl", "{seen:#}");
    let details = seen["details"].as_str().unwrap_or("");
    for name in ["web/<!--<script> changed", "web/</script> changed"] {
        assert!(details.contains(name), "the click shows `{name}` as written: {details}");
    }
}

/// The picture itself, measured in Chromium from the DOM (`tests/report/geometry.cjs`): no edge
/// crosses a card other than its two ends (each path sampled every 3 px against every card's
/// box), every edge ends in an arrowhead, no card is off-screen once the page has fitted itself
/// to 1400×800, no label is cut without a title holding its whole text; as loaded, with every
/// image expanded and with every image collapsed. Screenshots are kept in `target/tmp/`
/// (`hephy-report-NAME-{loaded,expand,collapse}.png`).
fn check_geometry(repo: &Repo, graph: &[&str], name: &str) {
    common::require(&["chromium", "node"], "apt-get install chromium nodejs");
    let playwright = std::env::var("PLAYWRIGHT_CORE").unwrap_or_else(|_| {
        format!("{}/target/ci-tools/node_modules/playwright-core", env!("CARGO_MANIFEST_DIR"))
    });
    assert!(Path::new(&playwright).is_dir(), "npm install --prefix target/ci-tools playwright-core@1.64.1");
    let args = [&["graph", "--format", "html", "-o", "report.html"], graph].concat();
    let out = repo.run(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hephy-report-{name}"));
    let output = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report/geometry.cjs"))
        .arg(&playwright)
        .arg(repo.path().join("report.html"))
        .arg(&prefix)
        .output()
        .expect("run node");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the page's facts as JSON");
    eprintln!("{name}: {seen}\nscreenshots: {}-*.png", prefix.display());
    assert_eq!(seen["errors"], serde_json::json!([]), "no script error");
    assert_eq!(seen["requests"], serde_json::json!([]), "no request leaves the file");
    for state in ["loaded", "expand", "collapse"] {
        let facts = &seen["states"][state];
        assert!(facts.is_object(), "{name}: the page has an `{state}` control: {seen}");
        assert!(
            facts["cards"].as_u64().unwrap_or(0) > 0 && facts["edges"].as_u64().unwrap_or(0) > 0,
            "{facts}"
        );
        for fault in ["crossings", "noArrow", "loose", "offscreen", "cut"] {
            assert_eq!(facts[fault], serde_json::json!([]), "{name}, {state}: {fault}");
        }
        let screenshot = format!("{}-{state}.png", prefix.display());
        assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 1000), "{screenshot} kept");
    }
}

#[test]
#[ignore = "needs chromium and playwright-core (installed by .ci/run)"]
fn the_quickstart_report_routes_edges_around_cards_with_arrowheads_and_fits_the_screen() {
    let repo = Repo::example("quickstart");
    assert_eq!(repo.run(&["run"]).code, 0);
    repo.write("web/site/index.html", "<p>changed</p>\n");
    check_geometry(&repo, &[], "quickstart");
}

#[test]
#[ignore = "needs chromium and playwright-core (installed by .ci/run)"]
fn the_200_image_report_routes_edges_around_cards_with_arrowheads_and_fits_the_screen() {
    let repo = Repo::copy_of("tests/fixtures/lang-200");
    check_geometry(&repo, &["-f", "hephy.kdl"], "lang-200");
}

/// The chain of the issue (`app → integration` drawn straight through `e2e`; `lint →
/// integration` through `unit`): edges that skip layers go around the cards between.
#[test]
#[ignore = "needs chromium and playwright-core (installed by .ci/run)"]
fn edges_that_skip_layers_go_around_the_cards_between() {
    let task = |name: &str, after: &str| format!("task \"{name}\" {{\n    run \"true\"\n{after}}}\n");
    let graph = [
        task("lint", ""),
        task("unit", "    after \"lint\"\n"),
        task("app", "    after \"unit\"\n"),
        task("e2e", "    after \"app\"\n"),
        task("integration", "    after \"app\" \"lint\" \"e2e\"\n"),
    ]
    .concat();
    let repo = Repo::new().file("hephy.kdl", &graph);
    assert_eq!(repo.run(&["run"]).code, 0);
    check_geometry(&repo, &[], "tasks");
}
