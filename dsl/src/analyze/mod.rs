//! The analyzer: [`Document`] → [`Model`].
//!
//! The only place that gives a graph file its meaning and reports meaning errors: invalid and
//! duplicate names, unknown dependencies, cycles, invalid platforms, platforms a dependency
//! lacks, platforms no executor builds, and paths that are missing or leave the graph's folder.
//! It keeps going after an error so that one run reports every problem.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use miette::SourceSpan;

use crate::diagnostic::{Code, Problem, Sink, did_you_mean};
use crate::document::{DependencyDraft, Document, TaskDraft, Text};
use crate::model::{
    BUILDERS, Builder, Compression, DEFAULT_BUILDER, DefinitionIndex, Dependency, DependencyKind, Engine,
    Executor, FromPlatform, Image, ImageNode, ImageSource, KoSettings, Model, Naming, Schedule, Secret,
    SecretSource, Task,
};
use crate::platform::{Platform, PlatformError};
use crate::source::{SourceFile, Spanned};

mod contexts;
mod dependencies;
mod executors;
mod groups;
mod images;
mod names;
mod naming;
mod paths;
mod schedules;
mod secrets;
mod settings;
mod supply;
mod tasks;
mod values;

pub(crate) use images::IMAGE_KEY_ROWS;
use images::ImageDefaults;
pub use images::ImageDraft;
use naming::COMMON;
use values::{arch_alias, env_name, normalize, valid_context, valid_git_url};
pub(crate) use values::{valid_name, valid_registry};
pub use values::{valid_tag, valid_variable};

/// Analyzes `doc`, read from `source`, whose relative paths resolve against `root`.
pub(crate) fn analyze(doc: Document, source: &SourceFile, root: &Path, sink: &mut Sink) -> Option<Model> {
    let canonical_root = root.canonicalize().ok();
    let mut a = Analyzer { sink, root, canonical_root };
    let registry = doc.registry.clone().map(|r| a.registry(r));
    let platforms = match &doc.platforms {
        Some(list) => a.platforms(list),
        None => vec![Platform::host()],
    };
    let builder = match &doc.builder {
        Some(b) => a.builder(b),
        None => DEFAULT_BUILDER,
    };
    let naming = a.naming(doc.naming.as_ref());
    let executors = a.executors(&doc);
    a.unique_names(&doc);
    let default_timeout = doc.timeout.as_ref().and_then(|t| a.timeout(t));
    let secrets = a.secrets(&doc);
    let labels = a.metadata(&doc.labels, "label");
    let annotations = a.metadata(&doc.annotations, "annotation");
    let defaults = ImageDefaults {
        platforms: &platforms,
        builder,
        timeout: default_timeout,
        secrets: &secrets,
        labels: &labels,
        annotations: &annotations,
    };
    let mut images: Vec<Image> = doc.images.iter().map(|i| a.image(i, &defaults)).collect();
    let mut tasks: Vec<Task> = doc.tasks.iter().map(|t| a.task(t)).collect();
    for (task, draft) in tasks.iter_mut().zip(&doc.tasks) {
        task.timeout = draft.timeout.as_ref().map_or(default_timeout, |t| a.timeout(t));
    }
    for (task, draft) in tasks.iter_mut().zip(&doc.tasks) {
        task.secrets = a.secret_uses(&draft.secrets, &secrets);
    }
    let mirrors: Vec<String> = doc.mirrors.iter().map(|m| a.registry(m.clone())).collect();
    let graph_sign = doc.supply.sign.as_ref().and_then(|s| a.signing(s));
    for (image, draft) in images.iter_mut().zip(&doc.images) {
        let supply = &draft.supply;
        image.publish.sign = match &supply.sign {
            Some(sign) => a.signing(sign),
            None => graph_sign.clone(),
        };
        let on = |own: &Option<Spanned<bool>>, graph: &Option<Spanned<bool>>, default: bool| {
            own.as_ref().or(graph.as_ref()).map_or(default, |b| b.value)
        };
        image.publish.sbom = on(&supply.sbom, &doc.supply.sbom, false);
        image.publish.provenance = on(&supply.provenance, &doc.supply.provenance, registry.is_some());
    }
    let names = Names::new(&doc);
    for (image, draft) in images.iter_mut().zip(&doc.images) {
        image.deps = a.deps(&draft.name, &draft.deps, &names);
        image.build_contexts = a.build_contexts(draft);
    }
    for (task, draft) in tasks.iter_mut().zip(&doc.tasks) {
        task.deps = a.deps(&draft.name, &draft.deps, &names);
    }
    let schedules = doc.schedules.iter().map(|s| a.schedule(s, &names)).collect();
    let groups = a.groups(&doc, &names);
    drop(names);
    let mut model = Model {
        index: foldhash::HashMap::default(),
        source: source.clone(),
        root: root.to_path_buf(),
        registry,
        naming,
        builder,
        platforms,
        executors,
        images,
        tasks,
        schedules,
        groups,
        secrets,
        mirrors,
        overrides: crate::Overrides::default(),
    };
    model.index = model
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| (image.name.value.clone(), DefinitionIndex::Image(i)))
        .chain(
            model
                .tasks
                .iter()
                .enumerate()
                .map(|(i, task)| (task.name.value.clone(), DefinitionIndex::Task(i))),
        )
        .collect();
    a.platform_coverage(&model, &doc);
    a.executor_coverage(&model, &doc);
    if a.sink.is_empty() {
        // Every reference the graph renders, once its names and tags are otherwise sound.
        crate::reference::check(&doc, &model).into_iter().for_each(|p| a.sink.push(p));
    }
    let empty = doc.images.is_empty() && doc.tasks.is_empty();
    // The parse tree is done with: freed before the cycle check, so the two are not both held
    // (and the allocator takes back the tree's many small blocks here, not in whatever next
    // asks it for a large one).
    drop(doc);
    a.cycles(&model);
    if empty && a.sink.is_empty() {
        a.sink.push(
            Problem::new(
                Code::Missing,
                format!("`{}` defines no images and no tasks", source.path().display()),
            )
            .help_for(
                "declare at least one `image \"NAME\" { context \"DIR\" }` or `task \"NAME\" { run \"…\" }`",
                "declare at least one image (`images: { NAME: { context: DIR } }`) or task (`tasks: { NAME: { run: [\"…\"] } }`)",
            ),
        );
    }
    model.images.iter_mut().for_each(|i| i.platforms.sort());
    // With problems too: later stages (the builders' checks) report theirs in the same run.
    Some(model)
}

/// The names of images and tasks, for lookups and suggestions.
struct Names<'d> {
    list: Vec<&'d str>,
    /// Each name's position among all definitions (images, then tasks), as in the model.
    positions: foldhash::HashMap<&'d str, usize>,
    images: foldhash::HashMap<&'d str, &'d ImageDraft>,
}

impl<'d> Names<'d> {
    fn new(doc: &'d Document) -> Names<'d> {
        let list: Vec<&str> = doc
            .images
            .iter()
            .map(|i| i.name.as_str())
            .chain(doc.tasks.iter().map(|t| t.name.as_str()))
            .collect();
        let positions = list.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let images = doc.images.iter().map(|i| (i.name.as_str(), i)).collect();
        Names { list, positions, images }
    }
}

struct Analyzer<'a> {
    sink: &'a mut Sink,
    root: &'a Path,
    canonical_root: Option<std::path::PathBuf>,
}
