//! The supply chain of published images: cosign-compatible keys and signatures ([`keys`],
//! [`sign`]).

pub mod keys;
pub mod sign;
