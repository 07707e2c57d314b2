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
                        .help("add `members \"image\"…` (KDL) or `NAME: [image, …]` (YAML)"),
                );
            }
            for member in &g.members {
                if names.positions.contains_key(member.as_str()) || seen.contains_key(member.as_str()) {
                    continue;
                }
                let candidates = names.list.iter().copied().chain(seen.keys().copied());
                self.sink.push(
                    Problem::new(
                        Code::UnknownDependency,
                        format!("group `{}` names unknown `{}`", g.name.value, member.value),
                    )
                    .label(member.span, "no image, task or group has this name")
                    .maybe_help(did_you_mean(member, candidates)),
                );
            }
        }
        self.group_cycles(doc, &seen, names);
        doc.groups
            .iter()
            .map(|g| crate::model::Group { name: g.name.clone(), members: g.members.clone() })
            .collect()
    }

    /// Reports each group that contains itself, through its members, once.
    pub(super) fn group_cycles(
        &mut self,
        doc: &Document,
        groups: &HashMap<&str, SourceSpan>,
        names: &Names<'_>,
    ) {
        let members = |name: &str| {
            doc.groups.iter().find(|g| g.name.as_str() == name).map(|g| g.members.as_slice()).unwrap_or(&[])
        };
        let mut reported: HashSet<&str> = HashSet::new();
        for g in &doc.groups {
            if reported.contains(g.name.as_str()) {
                continue;
            }
            // Depth-first from `g`, looking for a path back to it: (group, member that leads on).
            let mut path: Vec<(&str, usize)> = vec![(g.name.as_str(), 0)];
            let mut visited: HashSet<&str> = HashSet::new();
            while let Some((group, next)) = path.last_mut() {
                let list = members(group);
                let Some(member) = list.get(*next) else {
                    path.pop();
                    continue;
                };
                *next += 1;
                let member = member.as_str();
                if names.positions.contains_key(member) {
                    // An image or task (a clash with a group's name is reported already).
                    continue;
                }
                if member == g.name.as_str() {
                    let mut shown: Vec<&str> = path.iter().map(|(n, _)| *n).collect();
                    shown.push(member);
                    let last = &members(path[path.len() - 1].0)[path[path.len() - 1].1 - 1];
                    reported.extend(path.iter().map(|(n, _)| *n));
                    self.sink.push(
                        Problem::new(Code::Cycle, format!("group cycle: {}", shown.join(" → ")))
                            .label(last.span, "names a group that contains this one")
                            .label(g.name.span, "group defined here")
                            .help("a group cannot contain itself: remove one of these members"),
                    );
                    break;
                }
                if groups.contains_key(member) && visited.insert(member) {
                    path.push((member, 0));
                }
            }
        }
    }
}
