//! Names: valid and unique across images, tasks and groups, and `NAME=VALUE` pairs.

use super::*;

impl Analyzer<'_> {
    /// Names of images and tasks are one namespace; schedules have their own.
    pub(super) fn unique_names(&mut self, doc: &Document) {
        let mut seen: foldhash::HashMap<&str, (SourceSpan, &str)> = foldhash::HashMap::default();
        let defs =
            doc.images.iter().map(|i| (&i.name, "image")).chain(doc.tasks.iter().map(|t| (&t.name, "task")));
        for (name, kind) in defs {
            self.name(name, kind);
            if let Some((first, first_kind)) = seen.get(name.as_str()) {
                let kinds =
                    if *first_kind == kind { kind.to_owned() } else { format!("{first_kind} and {kind}") };
                self.duplicate(name, *first, &kinds);
            } else {
                seen.insert(name.as_str(), (name.span, kind));
            }
        }
        let mut schedules: HashMap<&str, SourceSpan> = HashMap::new();
        for s in &doc.schedules {
            self.name(&s.name, "schedule");
            if let Some(first) = schedules.get(s.name.as_str()) {
                self.duplicate(&s.name, *first, "schedule");
            } else {
                schedules.insert(s.name.as_str(), s.name.span);
            }
        }
    }

    pub(super) fn duplicate(&mut self, name: &Text, first: SourceSpan, kinds: &str) {
        self.sink.push(
            Problem::new(Code::DuplicateName, format!("the name `{}` is defined twice", name.value))
                .label(name.span, "defined again here")
                .label(first, "first defined here")
                .help(format!("{kinds} names must be unique: rename one of them")),
        );
    }

    pub(super) fn name(&mut self, name: &Text, kind: &str) {
        if !valid_name(name) {
            self.sink.push(
                Problem::new(Code::InvalidName, format!("`{}` is not a valid {kind} name", name.value))
                    .label(name.span, "invalid name")
                    .help("a name starts with a letter or digit and holds only letters, digits, `-` and `_` (at most 128)"),
            );
        }
    }

    pub(super) fn pairs(&mut self, pairs: &[(Text, Text)], what: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut spans: HashMap<&str, SourceSpan> = HashMap::new();
        for (key, value) in pairs {
            if !valid_variable(key) {
                self.sink.push(
                    Problem::new(Code::InvalidName, format!("`{}` is not a valid {what} name", key.value))
                        .label(key.span, "invalid name")
                        .help("names start with a letter or `_` and hold letters, digits and `_`"),
                );
            }
            if let Some(first) = spans.get(key.as_str()) {
                self.sink.push(
                    Problem::new(Code::Conflict, format!("{what} `{}` is given twice", key.value))
                        .label(key.span, "given again here")
                        .label(*first, "first given here")
                        .help("keep one of them"),
                );
                continue;
            }
            spans.insert(key.as_str(), key.span);
            out.insert(key.value.clone(), value.value.clone());
        }
        out
    }
}
