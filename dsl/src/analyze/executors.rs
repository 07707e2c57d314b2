//! Executors: their platforms, capacities and engines (ssh, BuildKit, Kubernetes, CI
//! runners), and that every platform in use has one.

use super::*;

impl Analyzer<'_> {
    pub(super) fn executors(&mut self, doc: &Document) -> Vec<Executor> {
        let mut out: Vec<Executor> = Vec::new();
        for draft in &doc.executors {
            self.name(&draft.name, "executor");
            if let Some(first) = out.iter().find(|e| *e.name == *draft.name) {
                self.duplicate(&draft.name, first.name.span, "executor");
                continue;
            }
            let Some(platform_text) = &draft.platform else {
                self.sink.push(
                    Problem::new(Code::Missing, format!("executor `{}` needs a platform", draft.name.value))
                        .label(draft.name.span, "no platform given")
                        .help_for("add `platform=\"linux/amd64\"`", "add `platform: linux/amd64`"),
                );
                continue;
            };
            let Some(platform) = self.platform(platform_text) else { continue };
            let jobs = match &draft.jobs {
                None => 1,
                Some(n) if (1..=1024).contains(&n.value) => u32::try_from(n.value).unwrap_or(1),
                Some(n) => {
                    self.sink.push(
                        Problem::new(
                            Code::InvalidValue,
                            format!("`jobs` must be between 1 and 1024, not {}", n.value),
                        )
                        .label(n.span, "out of range")
                        .help("`jobs` is how many nodes this executor runs at once"),
                    );
                    1
                }
            };
            let gitlab_tags = self.labels(draft.gitlab_tags.as_ref(), "gitlab-tags");
            let runs_on = self.labels(draft.runs_on.as_ref(), "runs-on");
            let ssh = draft.ssh.as_ref().filter(|s| self.ssh_target(s)).cloned().map(Engine::Ssh);
            let buildkit =
                draft.buildkit.as_ref().filter(|a| self.buildkit_address(a)).cloned().map(Engine::Buildkit);
            let kubernetes =
                draft.kubernetes.as_ref().filter(|n| self.namespace(n)).cloned().map(Engine::Kubernetes);
            let engines: Vec<&Text> =
                [draft.ssh.as_ref(), draft.buildkit.as_ref(), draft.kubernetes.as_ref()]
                    .into_iter()
                    .flatten()
                    .collect();
            if let [first, second, ..] = engines[..] {
                self.sink.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("executor `{}` names more than one place to build", draft.name.value),
                    )
                    .label(first.span, "here")
                    .label(second.span, "and here")
                    .help("an executor builds over `ssh`, on a `buildkit` daemon, or in a `kubernetes` namespace: pick one"),
                );
            }
            out.push(Executor {
                name: draft.name.clone(),
                platform,
                jobs,
                gitlab_tags,
                runs_on,
                engine: ssh.or(buildkit).or(kubernetes),
            });
        }
        out
    }

    /// `tcp://host:port`, `unix:///path`, or another buildctl address scheme.
    pub(super) fn buildkit_address(&mut self, text: &Text) -> bool {
        let valid = text.value.split_once("://").is_some_and(|(scheme, rest)| {
            ["tcp", "unix", "docker-container", "kube-pod", "podman-container", "ssh"].contains(&scheme)
                && !rest.is_empty()
                && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
        });
        if !valid {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("`{}` is not a BuildKit address", text.value))
                    .label(text.span, "expected tcp://host:port or unix:///path")
                    .help_for(
                        "for example `buildkit=\"tcp://buildkitd-arm64:1234\"`",
                        "for example `buildkit: \"tcp://buildkitd-arm64:1234\"`",
                    ),
            );
        }
        valid
    }

    /// A Kubernetes namespace: a DNS label.
    pub(super) fn namespace(&mut self, text: &Text) -> bool {
        let v = &text.value;
        let valid = !v.is_empty()
            && v.len() <= 63
            && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !v.starts_with('-')
            && !v.ends_with('-');
        if !valid {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("`{v}` is not a Kubernetes namespace"))
                    .label(text.span, "expected lower-case letters, digits and `-`")
                    .help_for(
                        "for example `kubernetes=\"image-builds\"`",
                        "for example `kubernetes: image-builds`",
                    ),
            );
        }
        valid
    }

    /// A comma-separated list of CI runner labels.
    pub(super) fn labels(&mut self, text: Option<&Text>, what: &str) -> Vec<String> {
        let Some(text) = text else { return Vec::new() };
        let labels: Vec<String> = text.value.split(',').map(|l| l.trim().to_owned()).collect();
        if labels.iter().any(|l| l.is_empty() || l.chars().any(|c| c.is_control() || c == '"' || c == '\\')) {
            self.sink.push(
                Problem::new(
                    Code::InvalidValue,
                    format!("`{what}` is a comma-separated list of runner labels"),
                )
                .label(text.span, "an empty label, or one with quotes or control characters")
                .help_for(
                    format!("write it like `{what}=\"arm64,large\"`"),
                    format!("write it like `{what}: \"arm64,large\"`"),
                ),
            );
            return Vec::new();
        }
        labels
    }

    /// `user@host` or `user@host:port`, nothing an ssh command line could mistake for an option.
    pub(super) fn ssh_target(&mut self, text: &Text) -> bool {
        let valid = text.value.split_once('@').is_some_and(|(user, rest)| {
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') || host.ends_with(']') => (host, Some(port)),
                _ => (rest, None),
            };
            let word = |w: &str, extra: &str| {
                !w.is_empty()
                    && !w.starts_with('-')
                    && w.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
            };
            word(user, "._-")
                && (word(host, ".-") || (host.starts_with('[') && host.ends_with(']') && host.len() > 2))
                && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
        });
        if !valid {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("`{}` is not an ssh destination", text.value))
                    .label(text.span, "expected user@host or user@host:port")
                    .help_for(
                        "for example `ssh=\"builder@arm64.example.com\"` or `ssh=\"builder@10.0.0.7:2222\"`",
                        "for example `ssh: builder@arm64.example.com` or `ssh: \"builder@10.0.0.7:2222\"`",
                    ),
            );
        }
        valid
    }

    /// When executors are declared, every platform in use needs one.
    pub(super) fn executor_coverage(&mut self, model: &Model, doc: &Document) {
        if model.executors.is_empty() {
            return;
        }
        let mut reported: HashSet<Platform> = HashSet::new();
        let uses = model
            .images
            .iter()
            .zip(&doc.images)
            .map(|(i, d)| (&i.platforms, d.platforms.as_ref(), &i.name))
            .chain(
                model
                    .tasks
                    .iter()
                    .zip(&doc.tasks)
                    .map(|(t, d)| (&t.platforms, d.platforms.as_ref(), &t.name)),
            );
        for (platforms, written, name) in uses {
            for platform in platforms {
                if model.executors.iter().any(|e| e.platform == *platform)
                    || !reported.insert(platform.clone())
                {
                    continue;
                }
                let span = written
                    .and_then(|w| w.iter().find(|t| t.value == platform.to_string()))
                    .or_else(|| {
                        doc.platforms
                            .as_ref()
                            .and_then(|w| w.iter().find(|t| t.value == platform.to_string()))
                    })
                    .map_or(name.span, |t| t.span);
                let names: Vec<String> =
                    model.executors.iter().map(|e| format!("`{}` ({})", e.name.value, e.platform)).collect();
                self.sink.push(
                    Problem::new(Code::NoExecutor, format!("no executor builds {platform}"))
                        .label(span, format!("`{}` needs {platform}", name.value))
                        .help_for(
                            format!(
                                "declare `executor \"NAME\" platform=\"{platform}\"`; the executors are {}",
                                names.join(", ")
                            ),
                            format!(
                                "declare `executors: {{ NAME: {{ platform: {platform} }} }}`; the executors are {}",
                                names.join(", ")
                            ),
                        ),
                );
            }
        }
    }
}
