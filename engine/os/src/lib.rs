//! The small system pieces both `hephy-engine` and `hephy-oci` stand on, and nothing else: no
//! graph, no image, no network, no compression.
//!
//! Owns opening files without following links ([`open`]: input hashing and layers read through
//! it), waiting for a child to exit without busy polling ([`exit`]), the conditions that stop a
//! node's in-process work between chunks ([`stop`]), and sending a signal to one process or to
//! a whole process group ([`signal`]: the one place hephy kills processes).

pub mod exit;
pub mod open;
pub mod signal;
pub mod stop;
