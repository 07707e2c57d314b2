//! Where the images are, for people: the closing list of a run (and the one a stamp stores
//! for a run that builds nothing), from each manifest's typed location.

use hephy_dsl::Model;
use hephy_engine::{NodeStatus, State};
use hephy_stdlib::ImageLocation;

use crate::session::Session;

/// Where the images are, as a run that finds everything fresh prints it.
pub(crate) fn all_fresh(session: &Session) -> String {
    let results = session
        .plan
        .steps
        .iter()
        .map(|s| (session.graph.node(s.node).id.to_string(), NodeStatus::Fresh))
        .collect();
    text(&session.model, &session.release, &session.graph, &session.state, &session.state_dir, &results)
}

/// Where the images of a finished run are: one line per image (and target) the run built or
/// found fresh, with its extra tags.
pub(crate) fn text(
    model: &Model,
    release: &hephy_stdlib::Release,
    graph: &hephy_engine::Graph,
    state: &State,
    state_dir: &std::path::Path,
    results: &std::collections::BTreeMap<String, NodeStatus>,
) -> String {
    let Ok(snapshot) = state.snapshot() else { return String::new() };
    let shown_dir = std::env::current_dir()
        .ok()
        .and_then(|cwd| state_dir.strip_prefix(&cwd).ok().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| state_dir.to_path_buf());
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for &index in graph.order() {
        let node = graph.node(index);
        let ran = results.get(node.id.as_str()).is_some_and(|r| r.has_output());
        if node.kind != hephy_engine::NodeKind::Manifest || !ran {
            continue;
        }
        let Some(record) = snapshot.records.get(node.id.as_str()) else { continue };
        let location = ImageLocation::of(model, release, node, &record.output, &shown_dir);
        if let ImageLocation::Local { .. } = location {
            // In a builder's own storage: nowhere to pull it from.
            continue;
        }
        // The tags as pushed: rendered from git and the plan (`{commit}`), not as written.
        let tags: Vec<String> = graph
            .dependents(index)
            .iter()
            .copied()
            .filter(|&i| graph.node(i).kind == hephy_engine::NodeKind::Tag)
            .map(|i| hephy_stdlib::pushed_tag(model, release, graph.node(i), state_dir))
            .collect();
        let in_registry = matches!(location, ImageLocation::Registry { .. });
        let mut detail = match (in_registry, tags.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("tags: {}", tags.join(", ")),
            (false, true) => record.output.clone(),
            (false, false) => format!("{}  tags: {}", record.output, tags.join(", ")),
        };
        if !in_registry {
            // The layout's name for the index names several images; a tool that unpacks one
            // (`umoci unpack`) needs a platform's own name.
            let platforms: Vec<String> = graph
                .deps(index)
                .iter()
                .map(|&d| graph.node(d))
                .filter(|d| d.kind == hephy_engine::NodeKind::Image)
                .filter_map(|d| match ImageLocation::of(model, release, d, "", &shown_dir) {
                    ImageLocation::Layout { name, .. } => Some(name),
                    ImageLocation::Local { .. } | ImageLocation::Registry { .. } => None,
                })
                .collect();
            if !platforms.is_empty() {
                detail.push_str(&format!("  platforms: {}", platforms.join(", ")));
            }
        }
        rows.push((node.id.to_string(), location.to_string(), detail));
    }
    if rows.is_empty() {
        return String::new();
    }
    let id_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let location_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = String::from("images:\n");
    for (id, location, detail) in rows {
        out.push_str(format!("  {id:id_width$}  {location:location_width$}  {detail}").trim_end());
        out.push('\n');
    }
    out
}
