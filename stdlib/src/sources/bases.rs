//! Base images from outside the graph (`FROM docker.io/library/alpine:3.20`): their digests are
//! inputs of the images built on them, so a moved tag rebuilds what is built on it.
//!
//! A tag is resolved (a HEAD of its manifest through hephy's registry client, credentials
//! included) the first time it is seen, and again only on a refresh (`--refresh`, or a schedule that says `refresh`); between
//! refreshes the digest is read from the state (its `base_images` table), so a plan never waits on
//! a registry for a base it knows. What cannot be resolved is `unresolved` (and resolving it
//! later is a move). A `.hephy/bases.json` an older hephy left is taken into the state once.

use hephy_dockerfile::Command;
use std::collections::BTreeMap;
use std::path::Path;

use hephy_dsl::Model;

use crate::registry::{Client, Reference};

/// Per image name, its external bases: reference → digest (or `unresolved`): the engine's
/// [`BaseImages`], which keys hold.
use hephy_engine::BaseImages;

const UNRESOLVED: &str = "unresolved";

/// Reads every local Dockerfile's external `FROM` references and resolves them.
pub fn resolve_bases(model: &Model, state_dir: &Path, refresh: bool, offline: bool) -> BaseImages {
    let mut state = hephy_engine::State::open(state_dir).ok();
    let mut cache = known_bases(state.as_mut(), state_dir);
    let mut resolved: Vec<(String, String)> = Vec::new();
    let mut out = BaseImages::new();
    let client = Client::once_only();
    for image in &model.images {
        let mut refs = BTreeMap::new();
        for reference in references(model, image) {
            let known = cache.get(&reference).filter(|d| d.as_str() != UNRESOLVED).cloned();
            let digest = match (known, refresh || offline) {
                (Some(digest), false) => digest,
                (known, _) if offline => known.unwrap_or_else(|| UNRESOLVED.to_owned()),
                (known, _) => match digest_of(&client, &reference) {
                    Some(digest) => {
                        if cache.get(&reference) != Some(&digest) {
                            cache.insert(reference.clone(), digest.clone());
                            resolved.push((reference.clone(), digest.clone()));
                        }
                        digest
                    }
                    None => known.unwrap_or_else(|| UNRESOLVED.to_owned()),
                },
            };
            refs.insert(reference, digest);
        }
        if !refs.is_empty() {
            out.insert(image.name.value.clone(), refs);
        }
    }
    if let Some(state) = &mut state
        && !resolved.is_empty()
    {
        let pairs: Vec<(&str, &str)> = resolved.iter().map(|(r, d)| (r.as_str(), d.as_str())).collect();
        // Best effort, as the file was: a digest not kept is resolved again next time.
        let _ = state.save_base_images(&pairs);
    }
    out
}

/// What base references resolved to before: the state's, after taking in (once) the
/// `bases.json` an older hephy kept beside it.
fn known_bases(state: Option<&mut hephy_engine::State>, state_dir: &Path) -> BTreeMap<String, String> {
    let Some(state) = state else { return BTreeMap::new() };
    let legacy = state_dir.join("bases.json");
    if let Some(old) = std::fs::read_to_string(&legacy)
        .ok()
        .and_then(|t| serde_json::from_str::<BTreeMap<String, String>>(&t).ok())
    {
        let pairs: Vec<(&str, &str)> = old.iter().map(|(r, d)| (r.as_str(), d.as_str())).collect();
        if state.save_base_images(&pairs).is_ok() {
            let _ = std::fs::remove_file(&legacy);
        }
    }
    state.base_images().unwrap_or_default()
}

/// The digest the last plan resolved the external base `reference` to, if it resolved.
/// A folder without a state (a remote build's scratch) has none, and gets none created.
pub(crate) fn planned(state_dir: &Path, reference: &str) -> Option<String> {
    if !state_dir.join("state.db").is_file() {
        return None;
    }
    let known = hephy_engine::State::open(state_dir).ok()?.base_images().ok()?;
    known.get(reference).filter(|d| d.as_str() != UNRESOLVED).cloned()
}

/// The external bases of `image`: its image contexts' references, and the `FROM` references of
/// its local Dockerfile that name neither a stage nor a named context (a `FROM NAME` that names a
/// build context is that context, not the registry image `NAME`: BuildKit's order).
fn references(model: &Model, image: &hephy_dsl::Image) -> Vec<String> {
    let mut references: Vec<String> = context_images(image);
    if let Some(Ok(local)) = crate::builders::dockerfile::local(&model.root, image) {
        references
            .extend(external_froms(&local.text).into_iter().filter(|r| image.build_context(r).is_none()));
    }
    references
}

/// The references of the image's `build-context "NAME" image="REF"` contexts: external bases too.
fn context_images(image: &hephy_dsl::Image) -> Vec<String> {
    image
        .build_contexts
        .iter()
        .filter_map(|c| match &c.source {
            hephy_dsl::ContextSource::Image { reference } => Some(reference.clone()),
            _ => None,
        })
        .collect()
}

/// `FROM` (and `COPY --from`) references that name an image outside the graph: not `scratch`,
/// not a build arg (`${BASE}`: a dependency), not an earlier stage.
pub(crate) fn external_froms(text: &str) -> Vec<String> {
    let Ok(dockerfile) = hephy_dockerfile::parse(text) else { return Vec::new() };
    let mut stages: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for instruction in &dockerfile.instructions {
        let (reference, alias) = match &instruction.command {
            Command::From { image, alias, .. } => {
                (Some(image.text.clone()), alias.as_ref().map(|a| a.text.clone()))
            }
            Command::Copy(copy) => {
                (copy.from.as_ref().map(|f| f.text.clone()).filter(|f| f.parse::<usize>().is_err()), None)
            }
            _ => (None, None),
        };
        if let Some(reference) = reference {
            let lower = reference.to_ascii_lowercase();
            if lower != "scratch"
                && !reference.contains('$')
                && !stages.iter().any(|s| s.eq_ignore_ascii_case(&reference))
                && !out.contains(&reference)
            {
                out.push(reference);
            }
        }
        if let Some(alias) = alias {
            stages.push(alias);
        }
    }
    out
}

fn digest_of(client: &Client, reference: &str) -> Option<String> {
    if let Some((_, digest)) = reference.split_once('@') {
        return Some(digest.to_owned());
    }
    client.resolve(&Reference::parse(reference).ok()?).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::{external_froms, known_bases};

    #[test]
    fn an_old_bases_file_is_taken_into_the_state_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("bases.json"), r#"{"alpine:3.20": "sha256:aa"}"#).expect("writes");
        let mut state = hephy_engine::State::open(dir.path()).expect("opens");
        let known = known_bases(Some(&mut state), dir.path());
        assert_eq!(known.get("alpine:3.20").map(String::as_str), Some("sha256:aa"));
        assert!(!dir.path().join("bases.json").exists(), "the file is gone once in the state");
        assert_eq!(state.base_images().expect("reads"), known);
    }

    #[test]
    fn a_from_that_names_a_build_context_is_no_registry_image() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("app")).expect("folder");
        std::fs::create_dir_all(dir.path().join("src")).expect("folder");
        std::fs::write(
            dir.path().join("app/Dockerfile"),
            "FROM ubuntu\nCOPY --from=src a /\nFROM alpine:3.20\n",
        )
        .expect("writes");
        std::fs::write(
            dir.path().join("hephy.kdl"),
            "image \"app\" {\n    context \"app\"\n    build-context \"ubuntu\" image=\"ubuntu:noble\"\n    build-context \"src\" path=\"src\"\n}\n",
        )
        .expect("writes");
        let model = hephy_dsl::load(&dir.path().join("hephy.kdl")).expect("a graph");
        assert_eq!(super::references(&model, &model.images[0]), ["ubuntu:noble", "alpine:3.20"]);
    }

    #[test]
    fn only_references_outside_the_graph() {
        let text = "ARG BASE\nFROM ${BASE} AS deps\nFROM docker.io/library/alpine:3.20 AS build\nFROM build AS final\nFROM scratch\nFROM golang:1.23\nCOPY --from=build /a /b\nCOPY --from=0 /a /b\nCOPY --from=busybox:1.36 /bin/busybox /\n";
        assert_eq!(external_froms(text), ["docker.io/library/alpine:3.20", "golang:1.23", "busybox:1.36"]);
    }
}
