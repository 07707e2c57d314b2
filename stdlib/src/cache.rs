//! The registry as the shared cache: is a node's output already there, for its exact key?
//!
//! Every pushed build and index carries a tag derived from its key (`hephy-<key>`), so a machine
//! with no local state (a fresh CI runner) can find what any other machine built. A build or
//! manifest node is cached when its key tag exists; a tag node when its tag already resolves to
//! its image's index. Lookups read the manifest with `skopeo inspect --raw` (which speaks every
//! registry's auth and TLS) and digest it.

use std::process::Command;

use hephy_dsl::Model;
use hephy_engine::{Key, Node, NodeKind};
use sha2::{Digest, Sha256};

use crate::reference;

/// Looks nodes up in the graph's registry.
#[derive(Debug)]
pub struct RegistryCache<'m> {
    model: &'m Model,
}

impl<'m> RegistryCache<'m> {
    /// A cache over `model`'s registry (no registry: nothing is ever found).
    pub fn new(model: &'m Model) -> RegistryCache<'m> {
        RegistryCache { model }
    }

    /// The output of `node`, built with `key`, if the registry holds it; `deps` are the node's
    /// dependencies with their outputs.
    pub fn lookup(&self, node: &Node, key: &Key, deps: &[(&Node, String)]) -> Option<String> {
        let registry = self.model.registry.as_deref()?;
        let repository = reference::repository(registry, node);
        match node.kind {
            NodeKind::Image | NodeKind::Manifest => {
                self.digest(&format!("{repository}:{}", reference::key_tag(key)), registry)
            }
            NodeKind::Tag => {
                let index = &deps.first()?.1;
                let found = self.digest(&format!("{repository}:{}", node.tag.as_deref()?), registry)?;
                (found == *index).then_some(found)
            }
            NodeKind::Task => None,
        }
    }

    fn digest(&self, reference: &str, registry: &str) -> Option<String> {
        let mut command = Command::new("skopeo");
        command.args(["inspect", "--raw", "--retry-times", "1"]);
        if reference::insecure(Some(registry)) {
            command.arg("--tls-verify=false");
        }
        let output = command.arg(format!("docker://{reference}")).output().ok()?;
        if !output.status.success() || output.stdout.is_empty() {
            return None;
        }
        let digest = Sha256::digest(&output.stdout);
        Some(format!("sha256:{}", hex(&digest)))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
