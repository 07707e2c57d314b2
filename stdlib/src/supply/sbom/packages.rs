//! The package databases of an image's operating system, read as their package managers write
//! them: dpkg's `status` (and distroless's `status.d/`, one file per package), apk's
//! `installed`, and `os-release`, which names the distribution in each package URL. Each reader
//! takes what it can and leaves out what is not a whole record (a stanza without a name or a
//! version, a dpkg package only configured, not installed).

use std::collections::BTreeMap;

/// The package manager that recorded a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Manager {
    Deb,
    Apk,
    Rpm,
}

impl Manager {
    /// The package URL's type.
    pub(crate) fn purl_type(self) -> &'static str {
        match self {
            Manager::Deb => "deb",
            Manager::Apk => "apk",
            Manager::Rpm => "rpm",
        }
    }
}

/// An installed package, as its database records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) arch: Option<String>,
    /// The source package, when it differs from the name (with its version, when that differs).
    pub(crate) source: Option<String>,
    pub(crate) source_version: Option<String>,
    /// The license, as the database states it (not necessarily an SPDX expression).
    pub(crate) license: Option<String>,
    /// Who supplies it: a maintainer's `Name <email>` or a vendor.
    pub(crate) supplier: Option<String>,
    /// An RPM epoch.
    pub(crate) epoch: Option<String>,
}

/// What `os-release` says of the distribution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OsRelease {
    pub(crate) id: Option<String>,
    pub(crate) version_id: Option<String>,
    pub(crate) pretty_name: Option<String>,
}

/// Reads `os-release` (shell-style `KEY=value` lines, values quoted or not).
pub(crate) fn os_release(text: &str) -> OsRelease {
    let mut release = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else { continue };
        let value = unquote(value.trim());
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "ID" => release.id = Some(value.to_ascii_lowercase()),
            "VERSION_ID" => release.version_id = Some(value),
            "PRETTY_NAME" => release.pretty_name = Some(value),
            _ => {}
        }
    }
    release
}

fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' && quote == '"' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            return out;
        }
    }
    value.to_owned()
}

/// Splits a Debian control file into stanzas of fields (a continuation line, starting with a
/// space or tab, belongs to the field before it).
fn stanzas(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut all = Vec::new();
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                all.push(std::mem::take(&mut fields));
            }
            last = None;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(value) = last.as_ref().and_then(|key| fields.get_mut(key)) {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            fields.insert(key.trim().to_owned(), value.trim().to_owned());
            last = Some(key.trim().to_owned());
        }
    }
    if !fields.is_empty() {
        all.push(fields);
    }
    all
}

/// The installed packages of a dpkg `status` file (or one of `status.d/`'s files, which have
/// no `Status` field: what is there is installed).
pub(crate) fn dpkg(text: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    for fields in stanzas(text) {
        let field = |key: &str| fields.get(key).filter(|v| !v.is_empty()).cloned();
        if let Some(status) = fields.get("Status")
            && status.split_whitespace().nth(2) != Some("installed")
        {
            continue;
        }
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else { continue };
        // `Source: glibc (2.36-9)`: the source package and, when it differs, its version.
        let (source, source_version) = match field("Source") {
            Some(source) => match source.split_once('(') {
                Some((name, version)) => {
                    (Some(name.trim().to_owned()), Some(version.trim_end_matches(')').trim().to_owned()))
                }
                None => (Some(source), None),
            },
            None => (None, None),
        };
        packages.push(Package {
            name,
            version,
            arch: field("Architecture"),
            source,
            source_version,
            license: None,
            supplier: field("Maintainer"),
            epoch: None,
        });
    }
    packages
}

/// The installed packages of apk's `installed` database (one letter, a colon, a value per line;
/// a blank line between packages).
pub(crate) fn apk(text: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    let mut fields: BTreeMap<char, String> = BTreeMap::new();
    let mut finish = |fields: &mut BTreeMap<char, String>| {
        let taken = std::mem::take(fields);
        let field = |key: char| taken.get(&key).filter(|v| !v.is_empty()).cloned();
        let (Some(name), Some(version)) = (field('P'), field('V')) else { return };
        packages.push(Package {
            name,
            version,
            arch: field('A'),
            source: field('o'),
            source_version: None,
            license: field('L'),
            supplier: field('m'),
            epoch: None,
        });
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            finish(&mut fields);
            continue;
        }
        let mut chars = line.chars();
        if let (Some(key), Some(':')) = (chars.next(), chars.next()) {
            // Only the first of a key counts: later `F:`/`R:` lines name files, not the package.
            fields.entry(key).or_insert_with(|| chars.as_str().trim().to_owned());
        }
    }
    finish(&mut fields);
    packages
}

/// Percent-encodes `text` for a package URL (everything but `A-Za-z0-9.-_~`).
pub(crate) fn pct(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Package {
    /// Its package URL: `pkg:deb/debian/NAME@VERSION?arch=…&distro=debian-12`, the namespace
    /// and the distro from `os-release` (the manager's usual distribution without one).
    pub(crate) fn purl(&self, manager: Manager, os: &OsRelease) -> String {
        let namespace = os.id.clone().unwrap_or_else(|| {
            match manager {
                Manager::Deb => "debian",
                Manager::Apk => "alpine",
                Manager::Rpm => "redhat",
            }
            .to_owned()
        });
        let version = match manager {
            // dpkg's versions carry their epoch (`1:2.3-4`); RPM's go in a qualifier.
            Manager::Rpm | Manager::Deb | Manager::Apk => self.version.clone(),
        };
        let mut qualifiers: BTreeMap<&str, String> = BTreeMap::new();
        if let Some(arch) = &self.arch {
            qualifiers.insert("arch", arch.clone());
        }
        if let Some(id) = &os.id {
            let distro = match &os.version_id {
                Some(version) => format!("{id}-{version}"),
                None => id.clone(),
            };
            qualifiers.insert("distro", distro);
        }
        if let Some(epoch) = &self.epoch {
            qualifiers.insert("epoch", epoch.clone());
        }
        if let Some(source) = self.source.as_ref().filter(|s| **s != self.name) {
            let upstream = match (manager, &self.source_version) {
                (Manager::Deb, Some(version)) => format!("{source}@{version}"),
                _ => source.clone(),
            };
            qualifiers.insert("upstream", upstream);
        }
        let mut purl =
            format!("pkg:{}/{}/{}@{}", manager.purl_type(), pct(&namespace), pct(&self.name), pct(&version));
        for (i, (key, value)) in qualifiers.iter().enumerate() {
            purl.push(if i == 0 { '?' } else { '&' });
            purl.push_str(key);
            purl.push('=');
            purl.push_str(&pct(value));
        }
        purl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An excerpt of a Debian 12 system's /var/lib/dpkg/status, as dpkg writes it, with a
    // package removed but for its configuration (`deinstall ok config-files`): not installed.
    const DPKG_STATUS: &str = include_str!("fixtures/dpkg-status");
    // An excerpt of Alpine 3.19's /lib/apk/db/installed.
    const APK_INSTALLED: &str = include_str!("fixtures/apk-installed");
    // Debian 12's /usr/lib/os-release.
    const OS_RELEASE: &str = include_str!("fixtures/os-release");

    #[test]
    fn dpkg_status_lists_installed_packages_with_their_sources() {
        let packages = dpkg(DPKG_STATUS);
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["base-files", "bash", "bsdutils", "libc6", "tzdata"], "not `iputils-ping`");
        let libc = &packages[3];
        assert_eq!(libc.version, "2.36-9+deb12u14");
        assert_eq!(libc.arch.as_deref(), Some("amd64"));
        assert_eq!(libc.source.as_deref(), Some("glibc"));
        assert_eq!(libc.source_version, None);
        assert_eq!(libc.supplier.as_deref(), Some("GNU Libc Maintainers <debian-glibc@lists.debian.org>"));
        let bsdutils = &packages[2];
        assert_eq!(bsdutils.version, "1:2.38.1-5+deb12u3", "the epoch is kept");
        assert_eq!(bsdutils.source.as_deref(), Some("util-linux"));
        assert_eq!(bsdutils.source_version.as_deref(), Some("2.38.1-5+deb12u3"));
        assert_eq!(packages[4].arch.as_deref(), Some("all"));
        let os = os_release(OS_RELEASE);
        assert_eq!(
            libc.purl(Manager::Deb, &os),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12&upstream=glibc"
        );
        assert_eq!(
            bsdutils.purl(Manager::Deb, &os),
            "pkg:deb/debian/bsdutils@1%3A2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12&upstream=util-linux%402.38.1-5%2Bdeb12u3"
        );
        assert_eq!(
            packages[0].purl(Manager::Deb, &os),
            "pkg:deb/debian/base-files@12.4%2Bdeb12u11?arch=amd64&distro=debian-12"
        );
    }

    #[test]
    fn a_distroless_status_d_file_has_no_status_field() {
        let text = "Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n\
                    Maintainer: Santiago Vila <sanvila@debian.org>\nDescription: Debian base system miscellaneous files\n \
                    This package contains the basic filesystem hierarchy of a Debian system.\n";
        let packages = dpkg(text);
        assert_eq!(packages.len(), 1);
        assert_eq!(packages[0].version, "12.4+deb12u5");
    }

    #[test]
    fn apk_installed_lists_packages_with_licenses_and_origins() {
        let packages = apk(APK_INSTALLED);
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["musl", "busybox", "libcrypto3"]);
        let busybox = &packages[1];
        assert_eq!(busybox.version, "1.36.1-r15");
        assert_eq!(busybox.license.as_deref(), Some("GPL-2.0-only"));
        assert_eq!(busybox.arch.as_deref(), Some("x86_64"));
        assert_eq!(busybox.supplier.as_deref(), Some("Sören Tempel <soeren+alpine@soeren-tempel.net>"));
        let crypto = &packages[2];
        assert_eq!(crypto.source.as_deref(), Some("openssl"));
        assert_eq!(crypto.license.as_deref(), Some("Apache-2.0"));
        let os = os_release("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n");
        assert_eq!(
            crypto.purl(Manager::Apk, &os),
            "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1&upstream=openssl"
        );
    }

    #[test]
    fn os_release_reads_quoted_values() {
        let os = os_release(OS_RELEASE);
        assert_eq!(os.id.as_deref(), Some("debian"));
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.pretty_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(os_release("ID='ubuntu'\nVERSION_ID=\"22.04\"\n").version_id.as_deref(), Some("22.04"));
    }

    #[test]
    fn a_stanza_without_a_name_or_version_is_left_out() {
        assert!(dpkg("Package: half\n\nVersion: 1\n").is_empty());
        assert!(apk("P:half\n\nV:1\n").is_empty());
    }
}
