//! Value grammars: names, tags, variables, registries, git URLs, paths.

/// Whether `text` is a registry address by the OCI reference grammar: `host[:port]` (domain
/// components, or `[IPv6]`), then lower-case path components.
pub(crate) fn valid_registry(text: &str) -> bool {
    let mut parts = text.split('/');
    let host = parts.next().unwrap_or("");
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') => (name, Some(port)),
        _ => (host, None),
    };
    let domain_ok = if name.starts_with('[') {
        name.len() > 2
            && name.ends_with(']')
            && name[1..name.len() - 1].chars().all(|c| c.is_ascii_hexdigit() || c == ':')
    } else {
        !name.is_empty()
            && name.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            })
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let path_ok = parts.all(|c| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    });
    domain_ok && port_ok && path_ok
}

/// Whether `name` can be an environment variable's name.
pub(super) fn env_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `url` is a repository URL git can be given safely: a known scheme, or scp-like
/// `user@host:path`; never something git could read as an option.
pub(super) fn valid_git_url(url: &str) -> bool {
    if url.starts_with('-') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            ["https", "http", "ssh", "git", "file", "git+ssh", "ssh+git"].contains(&scheme)
                && !rest.is_empty()
        }
        None => url.split_once(':').is_some_and(|(left, path)| {
            left.split_once('@').is_some_and(|(user, host)| !user.is_empty() && !host.is_empty())
                && !path.is_empty()
        }),
    }
}

pub(super) fn arch_alias(arch: &str) -> Option<&'static str> {
    match arch {
        "x86_64" | "x86-64" | "x64" => Some("amd64"),
        "aarch64" => Some("arm64"),
        "armhf" | "armv7" | "armv7l" => Some("arm"),
        "i386" | "i686" => Some("386"),
        _ => None,
    }
}

/// `[A-Za-z0-9][A-Za-z0-9_-]*`, at most 128 bytes: safe in node ids, file names and image names.
pub(crate) fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a build arg or environment variable.
/// A named build context: what a Dockerfile writes after `FROM` or `COPY --from=`, a tag
/// included (`FROM buildpack-deps:bookworm-curl`: BuildKit and buildah look contexts up by the
/// reference as written).
pub(super) fn valid_context(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

pub fn valid_variable(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// The OCI distribution spec's tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Normalizes a relative, `/`-separated path; `.` for the folder itself.
pub(super) fn normalize(path: &str) -> Result<String, &'static str> {
    if path.starts_with('/') || path.starts_with('\\') || path.get(1..2) == Some(":") {
        return Err("is absolute");
    }
    if path.contains('\0') {
        return Err("holds a NUL byte");
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("leaves the graph's folder");
                }
            }
            other => parts.push(other),
        }
    }
    Ok(if parts.is_empty() { ".".to_owned() } else { parts.join("/") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("curl"), Ok("curl".into()));
        assert_eq!(normalize("./a/../b/"), Ok("b".into()));
        assert_eq!(normalize("."), Ok(".".into()));
        assert_eq!(normalize("../x"), Err("leaves the graph's folder"));
        assert_eq!(normalize("a/../../x"), Err("leaves the graph's folder"));
        assert_eq!(normalize("/etc"), Err("is absolute"));
    }

    #[test]
    fn validates_names_and_tags() {
        assert!(valid_name("manifest-tool"));
        assert!(!valid_name("a.b") && !valid_name("-a") && !valid_name(""));
        assert!(valid_tag("v1.25.3") && valid_tag("latest"));
        assert!(!valid_tag(".x") && !valid_tag("a:b"));
    }
}
