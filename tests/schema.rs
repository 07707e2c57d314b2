//! `hephy schema`: the JSON Schema of `hephy.yaml` it prints is the one committed in
//! `docs/hephy.schema.json` (regenerate with `hephy schema > docs/hephy.schema.json`).

use std::process::Command;

#[test]
fn the_committed_schema_is_the_commands_output() {
    let output = Command::new(env!("CARGO_BIN_EXE_hephy")).arg("schema").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/hephy.schema.json")).unwrap();
    assert!(
        printed == committed,
        "docs/hephy.schema.json is out of date: run `hephy schema > docs/hephy.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(schema["properties"]["images"].is_object(), "{schema:#}");
}
