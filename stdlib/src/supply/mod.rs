//! The supply chain of published images: cosign-compatible keys and signatures ([`keys`],
//! [`sign`]), and attestations (SLSA provenance, SBOMs) stored in the index as BuildKit stores
//! them ([`attest`], [`provenance`]).

pub mod attest;
pub mod keys;
pub(crate) mod provenance;
pub(crate) mod sbom;
pub mod sign;
