//! `hephy schema`: the JSON Schema (draft 2020-12) of `hephy.yaml`, for editors.
//!
//! The schema is made by `hephy-dsl` from its table of the language's keys; this module only
//! renders it. `docs/hephy.schema.json` is this command's output, committed (a test keeps the
//! two equal).

/// The JSON Schema of a `hephy.yaml` graph file, as pretty-printed JSON with a final newline.
pub(crate) fn text() -> String {
    let schema = hephy_dsl::json_schema();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
