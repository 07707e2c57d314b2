//! A stage's merged file system as a layer changes it, entry by entry, the way an unpacker
//! applies the layer: a hardlink names a file already there when it is read (in OCI layers, an
//! entry of the same layer, or of the ones below), so it is resolved then, not against the
//! merged view afterwards; a path replaced or whited out later leaves its other names holding
//! the bytes it had. It owns the hardlink invariant of a [`Tree`]: every `Content::Hardlink`
//! names an entry that is not itself a hardlink, so no chain or loop can form.

use std::collections::{HashMap, HashSet};

use hephy_oci::layer::{Content, Entry, Tree};

/// Why a hardlink cannot be put where a layer or an archive puts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkProblem {
    /// It names itself.
    Itself,
    /// It names nothing there (yet).
    Missing,
    /// It names a folder.
    Folder,
}

/// `fs` being changed by one layer.
pub(crate) struct Merge<'a> {
    fs: &'a mut Tree,
    /// Each file's other names (hardlinks to it); some may be stale, checked when used.
    links: HashMap<String, Vec<String>>,
    /// The paths this layer put (an opaque whiteout hides only what was below).
    added: HashSet<String>,
}

impl<'a> Merge<'a> {
    /// Starts changing `fs`.
    pub(crate) fn new(fs: &'a mut Tree) -> Merge<'a> {
        let mut links: HashMap<String, Vec<String>> = HashMap::new();
        for (path, entry) in fs.iter() {
            if let Content::Hardlink(holder) = &entry.content {
                links.entry(holder.clone()).or_default().push(path.clone());
            }
        }
        Merge { fs, links, added: HashSet::new() }
    }

    /// The entry at `path`, if there is one.
    pub(crate) fn get(&self, path: &str) -> Option<&Entry> {
        self.fs.get(path)
    }

    /// Puts `entry` at `path`: a folder over a folder keeps what is below it; anything else
    /// replaces what was there (a folder with all below it). A hardlink is resolved now, to the
    /// file that holds the bytes.
    pub(crate) fn put(&mut self, path: &str, entry: Entry) -> Result<(), LinkProblem> {
        if let Content::Hardlink(target) = &entry.content
            && target == path
        {
            return Err(LinkProblem::Itself);
        }
        let is_dir = entry.content == Content::Dir;
        match self.fs.get(path) {
            Some(old) if old.content == Content::Dir && is_dir => {}
            Some(_) => {
                self.remove_below(path);
                self.detach(path);
                self.fs.remove(path);
            }
            None => {}
        }
        let entry = match entry.content {
            Content::Hardlink(target) => {
                let holder = match self.fs.get(&target).map(|e| &e.content) {
                    None => return Err(LinkProblem::Missing),
                    Some(Content::Dir) => return Err(LinkProblem::Folder),
                    Some(Content::Hardlink(holder)) => holder.clone(),
                    Some(_) => target,
                };
                self.links.entry(holder.clone()).or_default().push(path.to_owned());
                Entry { content: Content::Hardlink(holder), ..entry }
            }
            _ => entry,
        };
        self.fs.insert(path.to_owned(), entry);
        self.added.insert(path.to_owned());
        Ok(())
    }

    /// Removes `path` and everything below it (a whiteout, or a device taking its place).
    pub(crate) fn remove(&mut self, path: &str) {
        self.remove_below(path);
        if self.fs.contains_key(path) {
            self.detach(path);
            self.fs.remove(path);
        }
    }

    /// Removes what lies below `dir` from the layers before this one (an opaque whiteout); the
    /// root when `dir` is empty.
    pub(crate) fn opaque(&mut self, dir: &str) {
        let below: Vec<String> = self.below(dir).into_iter().filter(|p| !self.added.contains(p)).collect();
        for path in below {
            self.detach(&path);
            self.fs.remove(&path);
        }
    }

    fn remove_below(&mut self, path: &str) {
        for below in self.below(path) {
            self.detach(&below);
            self.fs.remove(&below);
        }
    }

    /// The paths below `dir` (every path when `dir` is empty).
    fn below(&self, dir: &str) -> Vec<String> {
        if dir.is_empty() {
            return self.fs.keys().cloned().collect();
        }
        let prefix = format!("{dir}/");
        self.fs
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Before `path` goes: its other names keep its bytes, the first of them holding them.
    fn detach(&mut self, path: &str) {
        let Some(members) = self.links.remove(path) else { return };
        let mut members: Vec<String> = members
            .into_iter()
            .filter(|m| {
                m != path
                    && self.fs.get(m).is_some_and(|e| matches!(&e.content, Content::Hardlink(h) if h == path))
            })
            .collect();
        members.sort();
        members.dedup();
        let Some((first, rest)) = members.split_first() else { return };
        let Some(original) = self.fs.get(path).cloned() else { return };
        self.fs.insert(first.clone(), original);
        for member in rest {
            if let Some(entry) = self.fs.get_mut(member) {
                entry.content = Content::Hardlink(first.clone());
            }
        }
        if !rest.is_empty() {
            self.links.insert(first.clone(), rest.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> Entry {
        Entry { content: Content::File(name.into()), mode: 0o755, uid: 0, gid: 0 }
    }

    fn link(target: &str) -> Entry {
        Entry { content: Content::Hardlink(target.to_owned()), mode: 0o755, uid: 0, gid: 0 }
    }

    #[test]
    fn a_replaced_file_leaves_its_other_names_the_old_bytes() {
        let mut fs = Tree::new();
        let mut layer = Merge::new(&mut fs);
        layer.put("bin/python3.11", file("old")).unwrap();
        layer.put("bin/python3", link("bin/python3.11")).unwrap();
        layer.put("bin/py", link("bin/python3")).unwrap();
        let mut upgrade = Merge::new(&mut fs);
        upgrade.put("bin/python3.11", file("new")).unwrap();
        assert_eq!(fs["bin/python3.11"].content, Content::File("new".into()));
        assert_eq!(fs["bin/py"].content, Content::File("old".into()), "the first name holds the bytes");
        assert_eq!(fs["bin/python3"].content, Content::Hardlink("bin/py".to_owned()));
    }

    #[test]
    fn a_whiteout_leaves_the_other_names() {
        let mut fs = Tree::new();
        let mut layer = Merge::new(&mut fs);
        layer.put("a/f", file("bytes")).unwrap();
        layer.put("b", link("a/f")).unwrap();
        Merge::new(&mut fs).remove("a");
        assert_eq!(fs.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(fs["b"].content, Content::File("bytes".into()));
    }

    #[test]
    fn links_to_nothing_themselves_or_folders_are_refused() {
        let mut fs = Tree::new();
        let mut layer = Merge::new(&mut fs);
        assert_eq!(layer.put("h1", link("h2")), Err(LinkProblem::Missing));
        assert_eq!(layer.put("h1", link("h1")), Err(LinkProblem::Itself));
        layer.put("d", Entry { content: Content::Dir, mode: 0o755, uid: 0, gid: 0 }).unwrap();
        assert_eq!(layer.put("h", link("d")), Err(LinkProblem::Folder));
        // A loop through a replaced name: h2 takes h1's bytes, then h1 links to h2.
        layer.put("h1", file("x")).unwrap();
        layer.put("h2", link("h1")).unwrap();
        layer.put("h1", link("h2")).unwrap();
        assert_eq!(fs["h2"].content, Content::File("x".into()));
        assert_eq!(fs["h1"].content, Content::Hardlink("h2".to_owned()));
    }

    #[test]
    fn an_opaque_folder_keeps_what_its_own_layer_put() {
        let mut fs = Tree::new();
        Merge::new(&mut fs).put("d/old", file("o")).unwrap();
        let mut layer = Merge::new(&mut fs);
        layer.put("d/new", file("n")).unwrap();
        layer.opaque("d");
        assert_eq!(fs.keys().collect::<Vec<_>>(), ["d/new"]);
    }
}
