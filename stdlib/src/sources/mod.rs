//! Where builds come from beyond the graph's folder, resolved when planning: upstream git
//! repositories at a ref ([`git`]) and base images from registries ([`bases`]).

pub(crate) mod bases;
pub(crate) mod git;
