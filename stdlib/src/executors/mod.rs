//! Where a node's work runs: a process on this machine ([`process`]: argv, its own process group,
//! its log), a host over SSH running hephy's `oci` builder ([`ssh`]), or a build engine elsewhere
//! (a BuildKit daemon, a Kubernetes cluster: [`engines`]).

pub(crate) mod engines;
pub(crate) mod process;
pub(crate) mod ssh;
