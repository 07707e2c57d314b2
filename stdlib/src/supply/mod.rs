//! The supply chain of a pushed image: its attestations (SLSA provenance, SBOMs) stored as
//! BuildKit stores them, and (with the signing modules) its signatures.

pub(crate) mod attest;
pub(crate) mod provenance;
