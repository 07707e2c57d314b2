//! SLSA v1 provenance of one platform image, as an in-toto statement: what was built (the
//! platform manifest), from what (the graph file, the image, the platform, variables and
//! `--set`; the graph repository's commit, base images and graph images by digest, the upstream
//! source by commit, the node's hephy key), by which hephy, in which run and why.
//!
//! Field conventions follow BuildKit's (`solver/llbsolver/provenance`): dependencies as
//! `{uri, digest}` with `pkg:docker/…` and `git+…` URIs. The statement is reproducible: its maps
//! are sorted (serde_json's), and it reads no clock (times only from `HEPHY_DATE` or
//! `SOURCE_DATE_EPOCH`), so the same inputs and run id give the same bytes.

use serde_json::{Map, Value, json};

/// The in-toto statement type.
pub(crate) const STATEMENT: &str = "https://in-toto.io/Statement/v1";
/// SLSA provenance v1's predicate type.
pub(crate) const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";

/// hephy's repository (its `Cargo.toml`'s `repository`): the builder's id.
pub(crate) const BUILDER_ID: &str = env!("CARGO_PKG_REPOSITORY");

/// hephy's build type: the part of SPEC.md that says what the parameters mean.
pub(crate) fn build_type() -> String {
    format!("{BUILDER_ID}/SPEC.md#provenance")
}

/// What one platform build was, for its provenance.
#[derive(Debug, Clone, Default)]
pub(crate) struct Build {
    /// The subject's name: the repository it was pushed to (or its name in the layout).
    pub(crate) name: String,
    /// The platform manifest's digest, `sha256:…`.
    pub(crate) digest: String,
    /// The graph file, relative to the repository (`hephy.kdl`).
    pub(crate) graph_file: String,
    /// The image's name in the graph.
    pub(crate) image: String,
    /// The Dockerfile stage, when the image names one.
    pub(crate) target: Option<String>,
    /// `os/arch[/variant]`.
    pub(crate) platform: String,
    /// `--set` as given, in order.
    pub(crate) sets: Vec<(String, String)>,
    /// `HEPHY_VAR_*` as given (the prefix dropped).
    pub(crate) environment: Vec<(String, String)>,
    /// The builder's name and identity (`oci`, `hephy-oci/2`).
    pub(crate) builder: (String, String),
    /// The Dockerfile, relative to the context.
    pub(crate) dockerfile: String,
    /// Build args, by name.
    pub(crate) args: Vec<(String, String)>,
    /// The build's hephy key.
    pub(crate) key: String,
    /// The graph repository's web address (may be empty) and its commit.
    pub(crate) source: (String, Option<String>),
    /// External base images: the reference as the Dockerfile writes it, and its digest.
    pub(crate) bases: Vec<(String, String)>,
    /// Graph images it was built from: their pushed reference (`registry/base@sha256:…`, or
    /// the layout's name) and their digest.
    pub(crate) images: Vec<(String, String)>,
    /// The upstream git source, and the commit built.
    pub(crate) upstream: Option<(String, String)>,
    /// Why the plan built it (the plan's typed reasons, as stored).
    pub(crate) reasons: Value,
    /// The run's id.
    pub(crate) run_id: i64,
    /// The time of the build, RFC 3339, when `HEPHY_DATE` or `SOURCE_DATE_EPOCH` gives one.
    pub(crate) time: Option<String>,
}

/// The statement's JSON: `_type`, `subject`, `predicateType`, `predicate`.
pub(crate) fn statement(build: &Build) -> Value {
    let pairs = |pairs: &[(String, String)]| -> Value {
        pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>().into()
    };
    let mut external = json!({
        "graph": build.graph_file,
        "image": build.image,
        "platform": build.platform,
    });
    if let Some(target) = &build.target {
        external["target"] = json!(target);
    }
    if !build.sets.is_empty() {
        // In order (a later `--set` wins): a list, not a map.
        external["set"] = build.sets.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect();
    }
    if !build.environment.is_empty() {
        external["variables"] = pairs(&build.environment);
    }
    let mut internal = json!({
        "builder": build.builder.0,
        "builderIdentity": build.builder.1,
        "dockerfile": build.dockerfile,
        "hephyKey": build.key,
    });
    if !build.args.is_empty() {
        internal["args"] = pairs(&build.args);
    }
    let mut deps: Vec<Value> = Vec::new();
    if let Some(commit) = &build.source.1 {
        let uri = if build.source.0.is_empty() {
            "git+file:graph".to_owned()
        } else {
            format!("git+{}@{commit}", build.source.0)
        };
        deps.push(json!({ "uri": uri, "digest": { "gitCommit": commit }, "name": "graph" }));
    }
    for (reference, digest) in build.bases.iter().chain(&build.images) {
        deps.push(json!({
            "uri": docker_purl(reference, digest),
            "digest": digest_map(digest),
            "name": reference,
        }));
    }
    if let Some((url, commit)) = &build.upstream {
        deps.push(json!({ "uri": format!("git+{url}@{commit}"), "digest": { "gitCommit": commit } }));
    }
    deps.push(json!({
        "uri": format!("hephy:key/{}", build.key),
        "digest": { "blake3": build.key },
        "name": "context",
    }));
    let mut metadata = json!({ "invocationId": build.run_id.to_string() });
    if let Some(time) = &build.time {
        metadata["startedOn"] = json!(time);
        metadata["finishedOn"] = json!(time);
    }
    json!({
        "_type": STATEMENT,
        "subject": [{ "name": build.name, "digest": digest_map(&build.digest) }],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": build_type(),
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": { "hephy": env!("CARGO_PKG_VERSION") },
                },
                "metadata": metadata,
                "byproducts": [{ "name": "reasons", "content": reasons_content(&build.reasons) }],
            },
        },
    })
}

/// The reasons as a byproduct's `content` (base64 of their JSON, as SLSA's `ResourceDescriptor`
/// carries inline content).
fn reasons_content(reasons: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(reasons).unwrap_or_default())
}

/// `sha256:abc…` → `{"sha256": "abc…"}`.
fn digest_map(digest: &str) -> Value {
    match digest.split_once(':') {
        Some((algorithm, hex)) => json!({ algorithm: hex }),
        None => json!({ "sha256": digest }),
    }
}

/// A package URL for an image (`pkg:docker/library/alpine@sha256:…?platform=…` as BuildKit
/// writes them, here without the platform): the reference's repository without its tag.
fn docker_purl(reference: &str, digest: &str) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    // A tag follows the last `:` after the last `/` (a port comes before it).
    let name = match without_digest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => without_digest,
    };
    let encoded = digest.replace(':', "%3A");
    format!("pkg:docker/{name}@{encoded}")
}

/// The statement's bytes: compact JSON, sorted keys.
pub(crate) fn bytes(build: &Build) -> Vec<u8> {
    serde_json::to_vec(&statement(build)).unwrap_or_default()
}

/// The build time the environment fixes, as the SBOM's: `HEPHY_DATE` (`YYYYMMDD`, midnight
/// UTC), else `SOURCE_DATE_EPOCH` (seconds); `None` when neither is set (no clock is read).
pub(crate) fn fixed_time() -> Option<String> {
    if std::env::var("HEPHY_DATE").is_ok_and(|d| !d.is_empty()) {
        return crate::release::plan_date().ok().map(|d| crate::release::midnight(&d));
    }
    let seconds = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<i64>().ok())?;
    Some(rfc3339(seconds))
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC); empty for seconds out of range.
fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map(|t| t.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Build {
        Build {
            name: "127.0.0.1:5000/app".to_owned(),
            digest: format!("sha256:{}", "a".repeat(64)),
            graph_file: "hephy.kdl".to_owned(),
            image: "app".to_owned(),
            platform: "linux/amd64".to_owned(),
            sets: vec![("VERSION".to_owned(), "2".to_owned())],
            builder: ("oci".to_owned(), "hephy-oci/2".to_owned()),
            dockerfile: "Dockerfile".to_owned(),
            key: "k".repeat(64),
            source: ("https://example.com/org/repo".to_owned(), Some("c".repeat(40))),
            bases: vec![("docker.io/library/alpine:3.20".to_owned(), format!("sha256:{}", "b".repeat(64)))],
            reasons: json!([{ "code": "never_built" }]),
            run_id: 7,
            ..Build::default()
        }
    }

    #[test]
    fn the_statement_is_slsa_v1_about_the_platform_manifest() {
        let s = statement(&sample());
        assert_eq!(s["_type"], STATEMENT);
        assert_eq!(s["predicateType"], SLSA_PROVENANCE);
        assert_eq!(s["subject"][0]["digest"]["sha256"], "a".repeat(64));
        let deps = s["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
        assert!(
            deps.iter().any(|d| d["uri"]
                == format!("pkg:docker/docker.io/library/alpine@sha256%3A{}", "b".repeat(64))
                && d["digest"]["sha256"] == "b".repeat(64))
        );
        assert!(deps.iter().any(|d| d["digest"]["gitCommit"] == "c".repeat(40)));
        assert_eq!(s["predicate"]["runDetails"]["metadata"]["invocationId"], "7");
        assert_eq!(s["predicate"]["buildDefinition"]["externalParameters"]["set"][0]["name"], "VERSION");
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_and_another_run_other_bytes() {
        assert_eq!(bytes(&sample()), bytes(&sample()));
        let other = Build { run_id: 8, ..sample() };
        assert_ne!(bytes(&sample()), bytes(&other));
    }

    #[test]
    fn epoch_seconds_are_utc_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn purls_drop_the_tag_and_keep_a_port() {
        assert_eq!(
            docker_purl("localhost:5000/base:1", "sha256:x"),
            "pkg:docker/localhost:5000/base@sha256%3Ax"
        );
        assert_eq!(docker_purl("r/base@sha256:y", "sha256:y"), "pkg:docker/r/base@sha256%3Ay");
    }
}
