//! The supply-chain commands: `hephy key generate` (a cosign key pair) and `hephy verify`
//! (an image's cosign signatures, each platform manifest of an index too), and how their
//! results reach the user. The formats are `hephy_stdlib::supply`'s.

use std::path::Path;

use hephy_dsl::{Code, Problem, Problems};
use hephy_oci::registry::{Client, Reference};
use hephy_stdlib::supply::attest;
use hephy_stdlib::supply::keys::{self, KeyError, PublicKey};
use hephy_stdlib::supply::sign::{self, Finding};

use crate::style::{self, Style};
use crate::{Failure, print};

/// A key problem as a diagnostic naming its file (exit 2).
fn key_problem(file: &Path, error: &KeyError) -> Failure {
    let problem = Problem::new(Code::Io, error.to_string()).maybe_help(error.help());
    Failure::Input(Problems::single(&file.display().to_string(), problem))
}

/// `hephy key generate [DIR]`: `DIR/cosign.key` (encrypted with `COSIGN_PASSWORD`) and
/// `DIR/cosign.pub`, as `cosign generate-key-pair` writes them; never over an existing file.
pub(crate) fn generate(dir: &Path) -> Result<(), Failure> {
    let private = dir.join("cosign.key");
    let password = keys::password_from_env().map_err(|e| key_problem(&private, &e))?;
    let pair = keys::generate_pair(dir, &password).map_err(|e| key_problem(&private, &e))?;
    print(&format!(
        "wrote {} (encrypted with `{}`) and {}\nfingerprint {}\n`cosign verify --key {} --insecure-ignore-tlog IMAGE` checks what it signs\n",
        style::clean(&pair.private.display().to_string()),
        keys::PASSWORD_VARIABLE,
        style::clean(&pair.public.display().to_string()),
        pair.fingerprint,
        style::clean(&pair.public.display().to_string()),
    ));
    Ok(())
}

/// `hephy verify IMAGE --key cosign.pub`: exit 0 when every manifest (the one named, and each
/// platform manifest of an index) has a signature by the key; 1 otherwise (unsigned, a
/// signature that does not verify, a registry that cannot be read); 2 for bad input.
pub(crate) fn verify(image: &str, key: &Path, style: Style) -> Result<(), Failure> {
    let public = PublicKey::load(key).map_err(|e| key_problem(key, &e))?;
    let reference = Reference::parse(image).map_err(|e| {
        Failure::Input(Problems::single(
            "hephy verify",
            Problem::new(Code::InvalidValue, e.to_string())
                .help("name the image as `HOST/REPOSITORY:TAG` or `HOST/REPOSITORY@sha256:DIGEST`"),
        ))
    })?;
    let client = Client::new();
    let verification = match sign::verify(&client, &reference, &public) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "error: cannot verify `{}`: {}\n  help: check that the image exists and the registry can be read (`docker login` for a private one)",
                style::clean(image),
                style::clean(&e.to_string())
            );
            return Err(Failure::Build);
        }
    };
    let mut out = String::new();
    let shown_key = style::clean(&key.display().to_string()).into_owned();
    for checked in &verification.checked {
        let named = if verification.index { "index" } else { "image" };
        let what = checked.platform.as_deref().unwrap_or(named);
        let (mark, detail) = match &checked.finding {
            Finding::Verified(1) => (style.green("verified"), "1 signature".to_owned()),
            Finding::Verified(n) => (style.green("verified"), format!("{n} signatures")),
            Finding::Unsigned => (style.red("unsigned"), "no signature".to_owned()),
            Finding::Invalid(problems) => (style.red("invalid "), problems.join("; ")),
        };
        out.push_str(&format!(
            "{mark} {} {:<14} {}\n",
            style::clean(&checked.digest),
            style::clean(what),
            style::clean(&detail)
        ));
    }
    // The attestations of an index: each platform's attestation manifest and its statements'
    // subjects (an index with none at all was published with `provenance #false`).
    let attested = match attest::check(&client, &reference) {
        Ok(attested) => attested,
        Err(e) => {
            print(&out);
            eprintln!(
                "error: cannot read the attestations of `{}`: {}\n  help: check that the registry can be read",
                style::clean(image),
                style::clean(&e.to_string())
            );
            return Err(Failure::Build);
        }
    };
    let any = attested.iter().any(|a| a.found.is_ok());
    let mut attestations_ok = true;
    for a in attested.iter().filter(|_| any) {
        let (mark, detail) = match &a.found {
            Ok(types) => (style.green("attested"), types.join(", ")),
            Err(problem) => {
                attestations_ok = false;
                (style.red("unattested"), problem.to_string())
            }
        };
        out.push_str(&format!(
            "{mark} {} {:<14} {}\n",
            style::clean(&a.digest),
            style::clean(&a.platform),
            style::clean(&detail)
        ));
    }
    if !attestations_ok {
        print(&out);
        eprintln!(
            "error: `{}` has platforms without valid attestations\n  help: publish it again with `hephy run` (attestations are written with the index)",
            style::clean(&verification.image)
        );
        return Err(Failure::Build);
    }
    if verification.ok() {
        out.push_str(&format!(
            "{} is signed by {shown_key} ({})\n",
            style::clean(&verification.image),
            public.fingerprint()
        ));
        print(&out);
        Ok(())
    } else {
        print(&out);
        eprintln!(
            "error: `{}` is not signed by `{shown_key}` throughout\n  help: sign it with this key (`sign key=\"cosign.key\"` in the graph, then `hephy run`), or give the key it was signed with",
            style::clean(&verification.image)
        );
        Err(Failure::Build)
    }
}
