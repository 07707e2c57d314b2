//! Image references as the graph renders them: the naming templates filled in for each image,
//! platform and target, checked against the OCI distribution grammar, so a reference that no
//! registry (nor buildah's storage) would take is an error at `check`, not at push time.

use crate::diagnostic::{Code, Problem};
use crate::document::{Document, Text};
use crate::model::{Image, ImageSource, Model};

/// The placeholders that render nothing on some commits (HEAD untagged, or tagged with no
/// `MAJOR.MINOR.PATCH`): `check` wants each of them followed by a fallback (`{git_tag|short_commit}`).
pub(crate) const MAY_BE_EMPTY: &[&str] = &["git_tag", "version", "major", "minor", "patch"];

/// The `{…}` groups of `template`, each as its `|`-separated alternatives, in order.
pub(crate) fn template_groups(template: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        out.push(rest[open + 1..open + close].split('|').collect());
        rest = &rest[open + close + 1..];
    }
    out
}

/// `template` with every `{word}` that `vars` names replaced by its value; a group of
/// alternatives, `{git_tag|short_commit}`, by the first that is not empty. A group naming a word
/// `vars` lacks is left as written.
pub fn render_template(template: &str, vars: &[(&str, String)]) -> String {
    let value = |word: &str| vars.iter().find(|(w, _)| *w == word).map(|(_, v)| v.as_str());
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else { break };
        let alternatives = rest[open + 1..open + close].split('|');
        match alternatives.map(value).collect::<Option<Vec<&str>>>() {
            Some(values) => out.push_str(values.into_iter().find(|v| !v.is_empty()).unwrap_or("")),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// The first group of `template` whose every alternative renders nothing with `vars`
/// (`{git_tag}` on an untagged commit), as written without its braces; `{-branch}` and `{-ref}`,
/// empty on `main` by design, are never one.
pub fn empty_group(template: &str, vars: &[(&str, String)]) -> Option<String> {
    template_groups(template).into_iter().find_map(|alternatives| {
        let empty = alternatives.iter().all(|word| {
            *word != "-branch"
                && *word != "-ref"
                && vars.iter().find(|(w, _)| w == word).is_some_and(|(_, v)| v.is_empty())
        });
        empty.then(|| alternatives.join("|"))
    })
}

/// The first group of `template` that may render nothing on some commit: every alternative is
/// one of [`MAY_BE_EMPTY`].
fn may_render_empty(template: &str) -> Option<String> {
    template_groups(template)
        .into_iter()
        .find(|alternatives| alternatives.iter().all(|w| MAY_BE_EMPTY.contains(w)))
        .map(|alternatives| alternatives.join("|"))
}

/// The OCI distribution spec's tag grammar (one definition, the analyzer's).
pub(crate) use crate::analyze::valid_tag;

/// One path component of a repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(&bytes[0]) || !alnum(&bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(&bytes[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or a run of `-`, between alphanumerics.
        let start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => i += if bytes.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).is_some_and(alnum) {
            return false;
        }
    }
    true
}

/// Whether the first part of a name is a registry host (`host.tld`, `host:port`, `localhost`).
fn is_domain(part: &str) -> bool {
    part.contains(['.', ':']) || part == "localhost"
}

/// Why `name` is not a repository name (`registry/path/name`), or `None` when it is one.
pub(crate) fn repository_problem(name: &str) -> Option<String> {
    if name.len() > 255 {
        return Some(format!("is {} characters long; at most 255 are allowed", name.len()));
    }
    let mut parts = name.split('/').peekable();
    if parts.peek().is_some_and(|first| is_domain(first)) {
        parts.next();
    }
    let mut any = false;
    for part in parts {
        any = true;
        if !valid_component(part) {
            return Some(format!(
                "has the part `{part}`, which is not lowercase letters and digits joined by `.`, `_`, `__` or `-`"
            ));
        }
    }
    (!any).then(|| "names no repository".to_owned())
}

/// Why `tag` is not a tag, or `None` when it is one.
fn tag_problem(tag: &str) -> Option<String> {
    if valid_tag(tag) {
        None
    } else if tag.len() > 128 {
        Some(format!("is {} characters long; at most 128 are allowed", tag.len()))
    } else {
        Some("is not 1 to 128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`".to_owned())
    }
}

/// What a template may say about one image build, with the values that only a run knows
/// (the date, the key, the commit) written as long as they will be.
fn vars(
    model: &Model,
    image: &Image,
    name: &str,
    platform: Option<&crate::Platform>,
    target: &str,
) -> Vec<(&'static str, String)> {
    let (arch, platform) = platform.map_or((String::new(), String::new()), |p| {
        let arch = match p.variant() {
            Some(v) => format!("{}{v}", p.arch()),
            None => p.arch().to_owned(),
        };
        (arch, p.to_string().replace('/', "-"))
    });
    let (reference, upstream) = match &image.source {
        ImageSource::Git { reference, .. } => (reference.clone(), Some(reference.as_str())),
        ImageSource::Context { .. } => (String::new(), None),
    };
    vec![
        ("registry", model.registry.clone().unwrap_or_default()),
        ("name", name.to_owned()),
        ("date", "20260101".to_owned()),
        ("arch", arch),
        ("platform", platform),
        ("target", target.to_owned()),
        ("ref", reference),
        ("commit", "0".repeat(40)),
        ("short_commit", "0".repeat(12)),
        // HEAD's tag at its longest usual shape (empty renders are `check`ed on their own).
        ("git_tag", "v100.100.100-rc.100".to_owned()),
        ("version", "100.100.100-rc.100".to_owned()),
        ("major", "100".to_owned()),
        ("minor", "100".to_owned()),
        ("patch", "100".to_owned()),
        ("key", "0".repeat(12)),
        // A branch off `main` (on `main`, `{-branch}` renders nothing).
        ("branch", "feature-x".to_owned()),
        ("-branch", "-feature-x".to_owned()),
        ("-ref", dash_ref(upstream, "-feature-x")),
    ]
}

/// A name (a branch, an upstream ref) as a part of a tag: lower-case ASCII letters and digits,
/// every other character `-`, no `-` at either end, at most 63 characters (`feature/Add_X` →
/// `feature-add-x`).
pub fn tag_part(name: &str) -> String {
    let mapped: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let trimmed: String = mapped.trim_matches('-').chars().take(63).collect();
    trimmed.trim_end_matches('-').to_owned()
}

/// `{-ref}`: for an image from an upstream source, `-` and its ref as a tag part (`main` →
/// `-main`, `v1.25.3` → `-v1-25-3`), always; for a local context, `dash_branch` (what
/// `{-branch}` renders).
pub fn dash_ref(upstream_ref: Option<&str>, dash_branch: &str) -> String {
    match upstream_ref.map(tag_part) {
        Some(r) if !r.is_empty() => format!("-{r}"),
        _ => dash_branch.to_owned(),
    }
}

/// Every reference the graph will push or store, checked; a problem points at the template
/// that renders it (or the image's name, or its tag).
pub(crate) fn check(doc: &Document, model: &Model) -> Vec<Problem> {
    let mut problems = Vec::new();
    let naming = doc.naming.as_ref();
    let template_span = |t: Option<&Option<Text>>| t.and_then(|t| t.as_ref()).map(|t| t.span);
    let preset = naming.and_then(|n| n.preset.as_ref()).map(|p| p.span);
    for (template, draft) in [
        (model.naming.platform.as_ref(), naming.and_then(|n| n.platform.as_ref())),
        (model.naming.manifest.as_ref(), naming.and_then(|n| n.manifest.as_ref())),
        (Some(&model.naming.tag), naming.and_then(|n| n.tag.as_ref())),
    ] {
        if let (Some(template), Some(draft)) = (template, draft)
            && let Some(group) = may_render_empty(template)
        {
            problems.push(empty_problem(&group, draft.span, "this template"));
        }
    }
    for (image, draft) in model.images.iter().zip(&doc.images) {
        let name_span = draft.name.span;
        let targets: Vec<Option<&String>> =
            if image.targets.is_empty() { vec![None] } else { image.targets.iter().map(Some).collect() };
        for target in targets {
            let base = match target {
                Some(t) => format!("{}-{t}", image.name.value),
                None => image.name.value.clone(),
            };
            // hephy's own storage names every image `localhost/hephy/<name>`.
            let local = format!("localhost/hephy/{}", base.to_ascii_lowercase());
            if let Some(why) = repository_problem(&local) {
                problems.push(
                    Problem::new(Code::InvalidName, format!("the image name `{base}` cannot name an image: `{local}` {why}"))
                        .label(name_span, "not usable in an image reference")
                        .help("end an image name (and a target) with a letter or digit, and join words with a single `-` or `_`"),
                );
                continue;
            }
            for platform in &image.platforms {
                let vars = vars(model, image, &base, Some(platform), target.map_or("", String::as_str));
                if model.registry.is_some() {
                    let own = image.publish.repository.as_ref();
                    let repository = render_template(own.unwrap_or(&model.naming.repository), &vars);
                    if let Some(why) = repository_problem(&repository) {
                        let span = draft
                            .repository
                            .as_ref()
                            .map(|r| r.span)
                            .or_else(|| template_span(naming.map(|n| &n.repository)))
                            .unwrap_or(name_span);
                        problems.push(
                            Problem::new(Code::InvalidValue, format!("the repository `{repository}` of `{base}` {why}"))
                                .label(span, "renders this repository")
                                .help("a repository is lowercase letters and digits joined by `.`, `_`, `__` or `-`, in `/`-separated parts"),
                        );
                        break;
                    }
                }
                if let Some(template) = &model.naming.platform {
                    let tag = render_template(template, &vars);
                    if let Some(why) = tag_problem(&tag) {
                        let span = template_span(naming.map(|n| &n.platform)).or(preset).unwrap_or(name_span);
                        problems.push(
                            Problem::new(Code::InvalidValue, format!("the tag `{tag}` of `{base}` for {platform} {why}"))
                                .label(span, "renders this tag")
                                .help(if tag.len() > 128 {
                                    "shorten the template (or the name): a tag is at most 128 characters"
                                } else {
                                    "use `{arch}` or `{platform}` (which is `linux-amd64`, say) joined by `-`, `_` or `.`"
                                }),
                        );
                        break;
                    }
                }
            }
            let vars = vars(model, image, &base, None, target.map_or("", String::as_str));
            if let Some(template) = &model.naming.manifest
                && model.registry.is_some()
            {
                let tag = render_template(template, &vars);
                if let Some(why) = tag_problem(&tag) {
                    let span = template_span(naming.map(|n| &n.manifest)).or(preset).unwrap_or(name_span);
                    problems.push(
                        Problem::new(Code::InvalidValue, format!("the tag `{tag}` of `{base}` {why}"))
                            .label(span, "renders this tag")
                            .help("a tag is 1 to 128 of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"),
                    );
                }
            }
            for (tag, tag_draft) in image.tags.iter().zip(&draft.tags) {
                if let Some(group) = may_render_empty(tag) {
                    problems.push(empty_problem(&group, tag_draft.span, "this tag"));
                    continue;
                }
                let mut vars = vars.clone();
                vars.push(("tag", render_template(tag, &vars)));
                let rendered = render_template(&model.naming.tag, &vars);
                if let Some(why) = tag_problem(&rendered) {
                    let mut problem =
                        Problem::new(Code::InvalidValue, format!("the tag `{rendered}` of `{base}` {why}"))
                            .label(tag_draft.span, "renders this tag");
                    if let Some(span) = template_span(naming.map(|n| &n.tag)).or(preset) {
                        problem = problem.label(span, "through this template");
                    }
                    problems.push(problem.help("shorten the tag or the template, to at most 128 characters"));
                }
            }
        }
    }
    problems
}

/// `{git_tag}` (or a semver part) with no fallback: it renders nothing on an untagged commit.
fn empty_problem(group: &str, span: miette::SourceSpan, what: &str) -> Problem {
    Problem::new(Code::InvalidValue, format!("`{{{group}}}` renders nothing when HEAD has no (semver) tag"))
        .label(span, format!("{what} would be empty or cut short on an untagged commit"))
        .help(format!(
            "give it a fallback that always renders, e.g. `{{{group}|short_commit}}` (the first alternative that is not empty is used)"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_follow_the_distribution_grammar() {
        assert_eq!(repository_problem("registry.example.com/platform/curl"), None);
        assert_eq!(repository_problem("127.0.0.1:5000/qs/web-app"), None);
        assert_eq!(repository_problem("localhost/hephy/a__b.c--d"), None);
        assert!(repository_problem("localhost/hephy/web-").is_some());
        assert!(repository_problem("registry.example.com/Web").is_some());
        assert!(repository_problem("registry.example.com//x").is_some());
        assert!(repository_problem("registry.example.com/a___b").is_some());
        assert!(repository_problem(&format!("r.io/{}", "a".repeat(260))).is_some());
        assert_eq!(tag_problem("linux-amd64"), None);
        assert!(tag_problem("linux-amd64/amd64").is_some());
        assert!(tag_problem(&"a".repeat(129)).is_some());
    }

    #[test]
    fn alternatives_render_the_first_that_is_not_empty() {
        let vars = [("git_tag", String::new()), ("short_commit", "abc".to_owned()), ("tag", "x".to_owned())];
        assert_eq!(render_template("{git_tag|short_commit}", &vars), "abc");
        assert_eq!(render_template("{tag}-{git_tag}", &vars), "x-");
        assert_eq!(render_template("{nope}-{tag}", &vars), "{nope}-x");
        assert_eq!(empty_group("{tag}-{git_tag}", &vars).as_deref(), Some("git_tag"));
        assert_eq!(empty_group("{git_tag|short_commit}", &vars), None);
        assert_eq!(may_render_empty("{major}.{minor}").as_deref(), Some("major"));
        assert_eq!(may_render_empty("{major|short_commit}"), None);
    }
}
