//! The supply chain of the images hephy builds: what they contain (SBOMs), how they were
//! built (provenance) and who vouches for them (signatures).

pub(crate) mod sbom;
