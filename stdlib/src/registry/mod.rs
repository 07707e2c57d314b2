//! Images in registries, as the graph names them: where each node's image lives and how
//! dependents name it ([`mod@reference`]), and the registry as the shared cache of built nodes
//! ([`cache`]), through one hephy-owned repository of records per registry ([`records`]). The client of the registry protocol itself is `hephy-oci`'s, used through here.

pub(crate) mod cache;
pub(crate) mod records;
pub(crate) mod reference;

pub(crate) use hephy_oci::registry::{Client, Reference, RegistryError};
