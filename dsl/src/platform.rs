//! Target platforms: `os/arch[/variant]`, as OCI image indexes name them.

use std::fmt;
use std::str::FromStr;

/// A target platform such as `linux/amd64` or `linux/arm/v7`.
/// Serialized as its text (`linux/arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    os: String,
    arch: String,
    variant: Option<String>,
}

impl Platform {
    /// The operating system, e.g. `linux`.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The architecture, e.g. `arm64`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The variant, e.g. `v7`.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// The platform of the machine hephy runs on, in OCI terms.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: std::env::consts::OS.to_owned(), arch: arch.to_owned(), variant: None }
    }
}

/// Why a string is not a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Not two or three `/`-separated parts.
    #[error("a platform is `os/arch` or `os/arch/variant`")]
    Shape,
    /// A part with characters outside `[a-z0-9_]`.
    #[error("`{0}` may only hold lowercase letters, digits and `_`")]
    Part(String),
    /// An operating system hephy does not know.
    #[error("unknown operating system `{0}`")]
    Os(String),
    /// An architecture hephy does not know.
    #[error("unknown architecture `{0}`")]
    Arch(String),
}

/// Operating systems and architectures of the OCI image spec (GOOS/GOARCH values).
const OSES: &[&str] =
    &["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "wasip1", "js"];
const ARCHES: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x", "riscv64", "mips64le", "mips64", "mipsle",
    "mips", "loong64", "wasm",
];

impl Platform {
    /// Known OS names, for suggestions.
    pub fn known_oses() -> &'static [&'static str] {
        OSES
    }

    /// Known architecture names, for suggestions.
    pub fn known_arches() -> &'static [&'static str] {
        ARCHES
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(PlatformError::Shape);
        }
        for part in &parts {
            let ok = !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(PlatformError::Part((*part).to_owned()));
            }
        }
        if !OSES.contains(&parts[0]) {
            return Err(PlatformError::Os(parts[0].to_owned()));
        }
        if !ARCHES.contains(&parts[1]) {
            return Err(PlatformError::Arch(parts[1].to_owned()));
        }
        Ok(Platform {
            os: parts[0].to_owned(),
            arch: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["linux/amd64", "linux/arm64", "linux/arm/v7", "windows/amd64"] {
            assert_eq!(s.parse::<Platform>().map(|p| p.to_string()).as_deref(), Ok(s));
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!("linux".parse::<Platform>(), Err(PlatformError::Shape));
        assert_eq!("linux/amd64/v1/x".parse::<Platform>(), Err(PlatformError::Shape));
        assert_eq!("Linux/amd64".parse::<Platform>(), Err(PlatformError::Part("Linux".into())));
        assert_eq!("linux/x86_64".parse::<Platform>(), Err(PlatformError::Arch("x86_64".into())));
        assert_eq!("linx/amd64".parse::<Platform>(), Err(PlatformError::Os("linx".into())));
        assert_eq!("linux//".parse::<Platform>(), Err(PlatformError::Part(String::new())));
    }
}
