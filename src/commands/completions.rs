//! `hephy completions SHELL`: the script that asks hephy for completions as the shell types.

use hephy_dsl::{Code, Problem, Problems};

use crate::{Failure, print};

/// `hephy completions SHELL`: the shell's completion script.
pub(crate) fn command(shell: clap_complete::Shell) -> Result<(), Failure> {
    use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Zsh => &Zsh,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::PowerShell => &Powershell,
        other => {
            return Err(Failure::Input(Problems::single(
                "hephy",
                Problem::new(Code::InvalidValue, format!("no completion for the shell `{other}`"))
                    .help("the shells are bash, zsh, fish, elvish and powershell"),
            )));
        }
    };
    // The script asks `hephy` itself (found on PATH) for each completion, so it knows the
    // graph's names and never goes stale.
    let mut out = Vec::new();
    completer
        .write_registration("COMPLETE", "hephy", "hephy", "hephy", &mut out)
        .map_err(|e| Failure::Input(Problems::single("hephy", Problem::new(Code::Io, e.to_string()))))?;
    print(&String::from_utf8_lossy(&out));
    Ok(())
}
