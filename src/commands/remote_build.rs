//! `hephy remote-build`: what an ssh executor's host runs.

use crate::{Failure, style};

/// `hephy remote-build`: builds the bundle on stdin, prints the pushed digest.
pub(crate) fn command() -> Result<(), Failure> {
    let stdin = std::io::stdin().lock();
    if let Err(message) = hephy_stdlib::serve_remote_build(stdin, std::io::stdout().lock()) {
        eprintln!("hephy remote-build: {}", style::clean(&message.to_string()));
        return Err(Failure::Build);
    }
    Ok(())
}
