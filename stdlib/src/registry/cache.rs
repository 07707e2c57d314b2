//! The registry as the shared cache: is a node's output already there, for its exact key?
//!
//! Every pushed build and index has a record of its key in the registry's cache repository
//! ([`super::records`]), so a machine with no local state (a fresh CI runner) can find what any
//! other machine built. A build or manifest node is cached when its record exists and names a
//! digest its repository holds; a tag node when its tag already resolves to its image's index. Lookups are HEAD requests through hephy's registry client (the
//! registry's token auth and the user's credentials included), made concurrently by the caller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hephy_dsl::Model;
use hephy_engine::{Key, Node, NodeKind};

use crate::registry::{Client, Reference};
use crate::registry::{records, reference};
use crate::release::Release;

/// Looks nodes up in the graph's registry. The first lookup that cannot reach the registry
/// (as opposed to one that finds nothing) stops all further lookups: planning goes on without
/// the registry, and [`RegistryCache::unreachable`] says why.
#[derive(Debug)]
pub struct RegistryCache<'m> {
    model: &'m Model,
    release: Arc<Release>,
    client: Client,
    down: AtomicBool,
    why: Mutex<Option<String>>,
}

impl<'m> RegistryCache<'m> {
    /// A cache over `model`'s registry (no registry: nothing is ever found); tags render with
    /// `release`.
    pub fn new(model: &'m Model, release: Arc<Release>) -> RegistryCache<'m> {
        RegistryCache {
            model,
            release,
            client: Client::once_only(),
            down: AtomicBool::new(false),
            why: Mutex::new(None),
        }
    }

    /// Why the registry could not be asked, if it could not.
    pub fn unreachable(&self) -> Option<String> {
        self.why.lock().ok().and_then(|w| w.clone())
    }

    /// The output of `node`, built with `key`, if the registry holds it; `deps` are the node's
    /// dependencies with their outputs.
    pub fn lookup(&self, node: &Node, key: &Key, deps: &[(&Node, String)]) -> Option<String> {
        let registry = self.model.registry.as_deref()?;
        // Cached only when every registry it is pushed to (mirrors too) holds the same output.
        let mut found: Option<String> = None;
        for repository in reference::repositories(self.model, &self.release, node) {
            let here = match node.kind {
                NodeKind::Image | NodeKind::Manifest => self.record(registry, key, &repository)?,
                NodeKind::Tag => {
                    let index = &deps.first()?.1;
                    // A tag that cannot be rendered here (an upstream `{commit}`) is not looked up.
                    let tag = reference::Vars::new(self.model, &self.release, node, None, None)
                        .render_tag(&self.model.naming.tag)
                        .ok()?;
                    let here = self.digest(&format!("{repository}:{tag}"), registry)?;
                    if here != *index {
                        return None;
                    }
                    here
                }
                NodeKind::Task => return None,
            };
            if found.as_ref().is_some_and(|f| *f != here) {
                return None;
            }
            found = Some(here);
        }
        found
    }

    fn record(&self, registry: &str, key: &Key, repository: &str) -> Option<String> {
        if self.down.load(Ordering::SeqCst) {
            return None;
        }
        match records::lookup(&self.client, registry, key, repository) {
            Ok(found) => found,
            Err(e) => {
                self.give_up(format!("{registry}: {e}"));
                None
            }
        }
    }

    fn digest(&self, text: &str, registry: &str) -> Option<String> {
        if self.down.load(Ordering::SeqCst) {
            return None;
        }
        let reference = match Reference::parse(text) {
            Ok(reference) => reference,
            Err(e) => {
                self.give_up(e.to_string());
                return None;
            }
        };
        match self.client.resolve(&reference) {
            Ok(found) => found,
            Err(e) => {
                self.give_up(format!("{registry}: {e}"));
                None
            }
        }
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
