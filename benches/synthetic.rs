//! Synthetic graph repositories for benchmarks and scale tests: `n` images, each with its own
//! context folder (a Dockerfile and one source file), two platforms, and up to two random
//! dependencies on earlier images (so the graph is a DAG), written in KDL and in YAML.
//! Deterministic for a given seed (xorshift; no `rand` dependency).

#![allow(dead_code, unreachable_pub)]

use std::fmt::Write as _;
use std::path::Path;

/// The two texts of one synthetic graph.
pub struct Synthetic {
    pub kdl: String,
    pub yaml: String,
    /// Per image, the indices of the images it depends on.
    pub deps: Vec<Vec<usize>>,
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n as u64)).unwrap_or(0)
    }
}

/// Generates the graph text for `n` images.
pub fn generate(n: usize, seed: u64) -> Synthetic {
    let mut rng = XorShift(seed.max(1));
    let mut kdl = String::from(
        "registry \"registry.example.com/synthetic\"\nplatforms \"linux/amd64\" \"linux/arm64\"\n\n",
    );
    let mut yaml = String::from(
        "registry: registry.example.com/synthetic\nplatforms: [linux/amd64, linux/arm64]\nimages:\n",
    );
    let mut deps = Vec::with_capacity(n);
    for i in 0..n {
        let mut mine: Vec<usize> = Vec::new();
        if i > 0 {
            for _ in 0..rng.below(3) {
                let j = rng.below(i);
                if !mine.contains(&j) {
                    mine.push(j);
                }
            }
        }
        let _ = writeln!(kdl, "image \"img{i}\" {{\n    context \"img{i}\"\n    tags \"latest\"");
        let _ = writeln!(yaml, "  img{i}:\n    context: img{i}\n    tags: [latest]");
        if let Some((first, rest)) = mine.split_first() {
            let _ = writeln!(kdl, "    from \"img{first}\" arg=\"BASE\"");
            let _ = writeln!(yaml, "    from: {{ img{first}: {{ arg: BASE }} }}");
            if !rest.is_empty() {
                let names: Vec<String> = rest.iter().map(|j| format!("\"img{j}\"")).collect();
                let _ = writeln!(kdl, "    after {}", names.join(" "));
                let names: Vec<String> = rest.iter().map(|j| format!("img{j}")).collect();
                let _ = writeln!(yaml, "    after: [{}]", names.join(", "));
            }
        }
        kdl.push_str("}\n");
        deps.push(mine);
    }
    Synthetic { kdl, yaml, deps }
}

/// Writes the contexts of `n` images (a Dockerfile and one file each) under `root`.
pub fn write_contexts(root: &Path, n: usize) {
    for i in 0..n {
        let dir = root.join(format!("img{i}"));
        std::fs::create_dir_all(&dir).expect("create context");
        std::fs::write(
            dir.join("Dockerfile"),
            format!("ARG BASE=scratch\nFROM ${{BASE}}\nCOPY app.txt /img{i}.txt\n"),
        )
        .expect("write Dockerfile");
        std::fs::write(dir.join("app.txt"), format!("image {i}\n")).expect("write file");
    }
}

/// The KDL of a graph of `deps.len()` images built locally (no registry, no tags) by the
/// built-in `oci` builder, two platforms each, with the dependencies `deps` (as [`generate`]
/// makes them): the contexts of [`write_contexts`] are `FROM scratch` (or the dependency) + `COPY`.
pub fn local_images(deps: &[Vec<usize>]) -> String {
    let mut kdl = String::from("builder \"oci\"\nplatforms \"linux/amd64\" \"linux/arm64\"\n\n");
    for (i, mine) in deps.iter().enumerate() {
        let _ = writeln!(kdl, "image \"img{i}\" {{\n    context \"img{i}\"");
        if let Some((first, rest)) = mine.split_first() {
            let _ = writeln!(kdl, "    from \"img{first}\" arg=\"BASE\"");
            if !rest.is_empty() {
                let names: Vec<String> = rest.iter().map(|j| format!("\"img{j}\"")).collect();
                let _ = writeln!(kdl, "    after {}", names.join(" "));
            }
        }
        kdl.push_str("}\n");
    }
    kdl
}
