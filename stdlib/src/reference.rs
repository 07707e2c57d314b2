//! Image references: where each node's image lives, and how dependents name it.

use hephy_dsl::Model;
use hephy_engine::{Key, Node};

/// `registry/name` (or `registry/name-target` for one target of several).
pub(crate) fn repository(registry: &str, node: &Node) -> String {
    match &node.target {
        Some(target) => format!("{registry}/{}-{target}", node.name),
        None => format!("{registry}/{}", node.name),
    }
}

/// The tag every pushed build and index carries, derived from its key (the registry is the
/// shared cache: a node built anywhere is found by its key).
pub(crate) fn key_tag(key: &Key) -> String {
    format!("hephy-{}", &key.as_str()[..32.min(key.as_str().len())])
}

/// The name of a build in hephy's local storage.
pub(crate) fn local(node: &Node, key: &Key) -> String {
    let name = match &node.target {
        Some(target) => format!("{}-{target}", node.name),
        None => node.name.clone(),
    };
    format!("localhost/hephy/{}:{}", name.to_ascii_lowercase(), key_tag(key))
}

/// How a dependent names a built dependency: by digest (`registry/curl@sha256:…`), or by image
/// id in local storage when there is no registry.
pub(crate) fn pinned(model: &Model, dep: &Node, output: &str) -> String {
    match &model.registry {
        Some(registry) => format!("{}@{output}", repository(registry, dep)),
        None => output.trim_start_matches("sha256:").to_owned(),
    }
}

/// The build args that carry dependencies' references into `node`'s build: `ARG=registry/dep@sha256:…`,
/// or, with `registry-arg=R`, `R=registry/dep@sha256` and `ARG=<hex>` (rejoined by
/// `FROM ${R}:${ARG}`).
pub(crate) fn injected(model: &Model, node: &Node, deps: &[(&Node, String)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (arg, dep_id) in &node.inject {
        let Some((dep, output)) = deps.iter().find(|(d, _)| d.id == *dep_id) else { continue };
        let reference = pinned(model, dep, output);
        match (node.inject_registry.get(arg), reference.rsplit_once(':')) {
            (Some(registry_arg), Some((left, right))) => {
                out.push((registry_arg.clone(), left.to_owned()));
                out.push((arg.clone(), right.to_owned()));
            }
            _ => out.push((arg.clone(), reference)),
        }
    }
    out
}

/// Whether the registry is spoken to over plain HTTP: a loopback address.
pub(crate) fn insecure(registry: Option<&str>) -> bool {
    registry.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_plain_http() {
        assert!(insecure(Some("127.0.0.1:5000/team")));
        assert!(insecure(Some("localhost:5000")));
        assert!(!insecure(Some("registry.example.com/platform")));
        assert!(!insecure(None));
    }
}
