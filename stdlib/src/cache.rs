//! The registry as the shared cache: is a node's output already there, for its exact key?
//!
//! Every pushed build and index carries a tag derived from its key (`hephy-<key>`), so a machine
//! with no local state (a fresh CI runner) can find what any other machine built. A build or
//! manifest node is cached when its key tag exists; a tag node when its tag already resolves to
//! its image's index. Lookups read the manifest with `skopeo inspect --raw` (which speaks every
//! registry's auth and TLS) and digest it.

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use hephy_dsl::Model;
use hephy_engine::{Key, Node, NodeKind};
use sha2::{Digest, Sha256};

use crate::reference;

/// Looks nodes up in the graph's registry. The first lookup that cannot reach the registry
/// (as opposed to one that finds nothing) stops all further lookups: planning goes on without
/// the registry, and [`RegistryCache::unreachable`] says why.
#[derive(Debug)]
pub struct RegistryCache<'m> {
    model: &'m Model,
    down: AtomicBool,
    why: Mutex<Option<String>>,
}

/// How long one lookup may take.
const TIMEOUT: &str = "10s";

impl<'m> RegistryCache<'m> {
    /// A cache over `model`'s registry (no registry: nothing is ever found).
    pub fn new(model: &'m Model) -> RegistryCache<'m> {
        RegistryCache { model, down: AtomicBool::new(false), why: Mutex::new(None) }
    }

    /// Why the registry could not be asked, if it could not.
    pub fn unreachable(&self) -> Option<String> {
        self.why.lock().ok().and_then(|w| w.clone())
    }

    /// The output of `node`, built with `key`, if the registry holds it; `deps` are the node's
    /// dependencies with their outputs.
    pub fn lookup(&self, node: &Node, key: &Key, deps: &[(&Node, String)]) -> Option<String> {
        let registry = self.model.registry.as_deref()?;
        let repository = reference::repository(self.model, node);
        match node.kind {
            NodeKind::Image | NodeKind::Manifest => {
                self.digest(&format!("{repository}:{}", reference::key_tag(key)), registry)
            }
            NodeKind::Tag => {
                let index = &deps.first()?.1;
                let tag = reference::Vars::new(self.model, node, None, None).render(&self.model.naming.tag);
                let found = self.digest(&format!("{repository}:{tag}"), registry)?;
                (found == *index).then_some(found)
            }
            NodeKind::Task => None,
        }
    }

    fn digest(&self, reference: &str, registry: &str) -> Option<String> {
        if self.down.load(Ordering::SeqCst) {
            return None;
        }
        let mut command = Command::new("skopeo");
        command.args(["--command-timeout", TIMEOUT, "inspect", "--raw", "--retry-times", "1"]);
        if reference::insecure(Some(registry)) {
            command.arg("--tls-verify=false");
        }
        let output = match command.arg(format!("docker://{reference}")).output() {
            Ok(output) => output,
            Err(e) => {
                self.give_up(format!("cannot run skopeo: {e}"));
                return None;
            }
        };
        if !output.status.success() || output.stdout.is_empty() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !not_found(&stderr) {
                let line = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no answer");
                self.give_up(format!("{registry}: {}", line.trim()));
            }
            return None;
        }
        let digest = Sha256::digest(&output.stdout);
        Some(format!("sha256:{}", hex(&digest)))
    }
}

impl RegistryCache<'_> {
    fn give_up(&self, why: String) {
        if !self.down.swap(true, Ordering::SeqCst)
            && let Ok(mut slot) = self.why.lock()
        {
            *slot = Some(why);
        }
    }
}

/// Whether skopeo said the tag is simply not there (the registry answered).
fn not_found(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("manifest unknown") || s.contains("not found") || s.contains("name unknown")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
