//! Groups: named sets of definitions, without cycles.

use super::*;

impl Analyzer<'_> {
    /// Groups: unique names that clash with no image or task, members that resolve to an
    /// image, a task or another group, and no group that contains itself.
    pub(super) fn groups(&mut self, doc: &Document, names: &Names<'_>) -> Vec<crate::model::Group> {
        let mut seen: HashMap<&str, SourceSpan> = HashMap::new();
        for g in &doc.groups {
            self.name(&g.name, "group");
            if let Some(first) = seen.get(g.name.as_str()) {
                self.duplicate(&g.name, *first, "group");
                continue;
            }
            seen.insert(g.name.as_str(), g.name.span);
            if let Some(&position) = names.positions.get(g.name.as_str()) {
                let (span, kind) = match position.checked_sub(doc.images.len()) {
                    None => (doc.images[position].name.span, "image"),
                    Some(t) => (doc.tasks[t].name.span, "task"),
                };
                self.duplicate(&g.name, span, &format!("{kind} and group"));
            }
        }
        for g in &doc.groups {
            if g.members.is_empty() {
                self.sink.push(
                    Problem::new(Code::Missing, format!("group `{}` names nothing", g.name.value))
                        .label(g.name.span, "no `members` given")
                        .help_for("add `members \"image\"…`", "list its members: `NAME: [image, …]`"),
                );
            }
            for member in &g.members {
                if names.positions.contains_key(member.as_str()) || seen.contains_key(member.as_str()) {
                    continue;
                }
                let candidates = names.list.iter().copied().chain(seen.keys().copied());
                let help = self.sink.suggest(member, candidates);
                self.sink.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!("group `{}` names unknown `{}`", g.name.value, member.value),
                    )
                    .label(member.span, "no image, task or group has this name")
                    .maybe_help(help),
                );
            }
        }
        self.group_cycles(doc, names);
        doc.groups
            .iter()
            .map(|g| crate::model::Group { name: g.name.clone(), members: g.members.clone() })
            .collect()
    }

    /// Reports each group that contains itself, through its members, once: one depth-first
    /// walk over all groups, on a stack of its own, each group and member looked at once.
    pub(super) fn group_cycles(&mut self, doc: &Document, names: &Names<'_>) {
        // The first group of each name (a second one is reported already).
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, g) in doc.groups.iter().enumerate() {
            index.entry(g.name.as_str()).or_insert(i);
        }
        // Where each group is on the walk's path, if it is; whether it was walked already.
        let mut on_path: Vec<Option<usize>> = vec![None; doc.groups.len()];
        let mut walked = vec![false; doc.groups.len()];
        for start in 0..doc.groups.len() {
            if walked[start] || index.get(doc.groups[start].name.as_str()) != Some(&start) {
                continue;
            }
            // (group, the index of the member to look at next)
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            walked[start] = true;
            on_path[start] = Some(0);
            while let Some(&mut (g, ref mut next)) = path.last_mut() {
                let Some(member) = doc.groups[g].members.get(*next) else {
                    on_path[g] = None;
                    path.pop();
                    continue;
                };
                *next += 1;
                if names.positions.contains_key(member.as_str()) {
                    // An image or task (a clash with a group's name is reported already).
                    continue;
                }
                let Some(&m) = index.get(member.as_str()) else { continue };
                if let Some(from) = on_path[m] {
                    let mut shown: Vec<&str> =
                        path[from..].iter().map(|(n, _)| doc.groups[*n].name.as_str()).collect();
                    shown.push(member);
                    self.sink.push(
                        Problem::new(Code::Cycle, format!("group cycle: {}", shown.join(" → ")))
                            .label(member.span, "names a group that contains this one")
                            .label(doc.groups[m].name.span, "group defined here")
                            .help("a group cannot contain itself: remove one of these members"),
                    );
                } else if !walked[m] {
                    walked[m] = true;
                    on_path[m] = Some(path.len());
                    path.push((m, 0));
                }
            }
        }
    }
}
