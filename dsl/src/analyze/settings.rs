//! Graph-wide settings: the registry, the default builder, platforms and timeouts.

use super::*;

impl Analyzer<'_> {
    pub(super) fn registry(&mut self, registry: Text) -> String {
        if !valid_registry(registry.value.trim_end_matches('/')) {
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("`{}` is not a registry address", registry.value))
                    .label(registry.span, "not `host[:port][/path]`")
                    .help("write the registry host and path prefix without a scheme, e.g. `registry.example.com/platform`"),
            );
        }
        registry.value.trim_end_matches('/').to_owned()
    }

    /// The builder `name` names; an unknown one is reported, and the model carries the default.
    pub(super) fn builder(&mut self, name: &Text) -> Builder {
        let Some(builder) = Builder::from_name(name) else {
            let help = did_you_mean(name, BUILDERS.iter().copied())
                .unwrap_or_else(|| format!("this hephy builds images with {}", BUILDERS.join(", ")));
            self.sink.push(
                Problem::new(Code::InvalidValue, format!("unknown builder `{}`", name.value))
                    .label(name.span, "no such builder")
                    .help(help),
            );
            return DEFAULT_BUILDER;
        };
        builder
    }

    pub(super) fn platforms(&mut self, list: &[Text]) -> Vec<Platform> {
        let mut out: Vec<Platform> = Vec::new();
        for text in list {
            let Some(platform) = self.platform(text) else { continue };
            if out.contains(&platform) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("platform `{platform}` is listed twice"))
                        .label(text.span, "listed again here")
                        .help("list each platform once"),
                );
                continue;
            }
            out.push(platform);
        }
        out.sort();
        out
    }

    pub(super) fn platform(&mut self, text: &Text) -> Option<Platform> {
        match text.parse::<Platform>() {
            Ok(p) => Some(p),
            Err(err) => {
                let help = match &err {
                    PlatformError::Arch(arch) => did_you_mean(arch, Platform::known_arches().iter().copied())
                        .or_else(|| arch_alias(arch).map(|a| format!("OCI calls it `{a}`")))
                        .unwrap_or_else(|| {
                            format!("known architectures: {}", Platform::known_arches().join(", "))
                        }),
                    PlatformError::Os(os) => did_you_mean(os, Platform::known_oses().iter().copied())
                        .unwrap_or_else(|| format!("known systems: {}", Platform::known_oses().join(", "))),
                    _ => "write `os/arch` or `os/arch/variant`, e.g. `linux/amd64` or `linux/arm/v7`"
                        .to_owned(),
                };
                self.sink.push(
                    Problem::new(Code::InvalidPlatform, format!("invalid platform `{}`: {err}", text.value))
                        .label(text.span, "not a platform")
                        .help(help),
                );
                None
            }
        }
    }

    /// A duration such as `90s`, `30m` or `2h`: more than nothing, at most a week.
    pub(super) fn timeout(&mut self, text: &Text) -> Option<std::time::Duration> {
        match humantime::parse_duration(&text.value) {
            Ok(d) if !d.is_zero() && d <= std::time::Duration::from_secs(7 * 24 * 3600) => Some(d),
            Ok(_) => {
                self.sink.push(
                    Problem::new(Code::InvalidValue, format!("timeout `{}` is out of range", text.value))
                        .label(text.span, "more than nothing and at most a week")
                        .help("write it like `30m` or `2h`"),
                );
                None
            }
            Err(e) => {
                self.sink.push(
                    Problem::new(Code::InvalidValue, format!("`{}` is not a duration", text.value))
                        .label(text.span, e.to_string())
                        .help("write it like `90s`, `30m` or `2h`"),
                );
                None
            }
        }
    }
}
