//! OCI images with nothing of hephy's graph: the pieces hephy's built-in builder and its
//! publishing are made of, usable (and tested) on their own.
//!
//! Owns hephy's OCI image layout ([`layout`]), OCI documents as `oci-spec` types and the bytes
//! hephy writes for them ([`document`]), reproducible layers ([`layer`]) and their
//! block-parallel compression ([`compress`]), a client of the distribution API ([`registry`])
//! with credentials as users keep them ([`credentials`]). It knows no graph, node or model:
//! `hephy-stdlib` (the built-in node kinds) builds on it. The system pieces it stands on (opening
//! files without following links, waiting for a child, stopping work, signalling a process
//! group) are `hephy-os`'s, shared with the engine, which depends on nothing here.

pub mod compress;
pub mod credentials;
pub mod document;
pub mod layer;
pub mod layout;
pub mod registry;
