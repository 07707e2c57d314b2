//! OCI images with nothing of hephy's graph: the pieces hephy's built-in builder and its
//! publishing are made of, usable (and tested) on their own.
//!
//! Owns hephy's OCI image layout ([`layout`]), OCI documents as `oci-spec` types and the bytes
//! hephy writes for them ([`document`]), reproducible layers ([`layer`]) and their
//! block-parallel compression ([`compress`]), a client of the distribution API ([`registry`])
//! with credentials as users keep them ([`credentials`]), and the small system pieces they
//! stand on: opening files without following links ([`open`]), waiting for a child to exit
//! ([`exit`]) and stopping in-process work between chunks ([`stop`]). It knows no graph, node or
//! model: `hephy-stdlib` (the built-in node kinds) and `hephy-engine` (input hashing uses
//! [`open`]) build on it.

pub mod compress;
pub mod credentials;
pub mod document;
pub mod exit;
pub mod layer;
pub mod layout;
pub mod open;
pub mod registry;
pub mod stop;
