//! The labels and annotations a graph gives an image built by the built-in builder: labels
//! into its config (`config.Labels`, over the Dockerfile's `LABEL`s), annotations onto its
//! manifest. The index's annotations are written where the index is (`Oci::index`).

use serde_json::{Map, Value};

use super::OciError;
use super::build::{CONFIG, MANIFEST};
use hephy_oci::document::{self, spec};
use hephy_oci::layout::{Descriptor, Layout};

/// The manifest `manifest` with `labels` in its config and `annotations` on it, stored in
/// `layout`; `manifest` itself when both are empty.
pub(crate) fn apply(
    layout: &Layout,
    manifest: &Descriptor,
    labels: &[(String, String)],
    annotations: &[(String, String)],
) -> Result<Descriptor, super::OciError> {
    if labels.is_empty() && annotations.is_empty() {
        return Ok(manifest.clone());
    }
    let read = |digest: &str| -> Result<Vec<u8>, OciError> {
        layout.read(digest).ok_or_else(|| OciError::NotInLayout { digest: digest.to_owned() })
    };
    let not_json = |digest: &str| {
        let digest = digest.to_owned();
        move |source| OciError::NotJson { digest, source }
    };
    let mut document: spec::ImageManifest =
        serde_json::from_slice(&read(&manifest.digest)?).map_err(not_json(&manifest.digest))?;
    if !labels.is_empty() {
        // The config stays JSON: whatever it holds is kept (`oci-spec`'s config type has no
        // `Healthcheck`, `Shell` or `OnBuild`).
        let config_digest = document.config().digest().to_string();
        let mut config: Value =
            serde_json::from_slice(&read(&config_digest)?).map_err(not_json(&config_digest))?;
        let existing = config
            .as_object_mut()
            .and_then(|c| object(c, "config"))
            .and_then(|settings| object(settings, "Labels"))
            .ok_or(OciError::NotObject { what: "config" })?;
        for (k, v) in labels {
            existing.insert(k.clone(), Value::String(v.clone()));
        }
        let bytes = serde_json::to_vec(&config)?;
        document.set_config(layout.put(CONFIG, &bytes)?.oci()?);
    }
    if !annotations.is_empty() {
        let mut existing = document.annotations().clone().unwrap_or_default();
        existing.extend(annotations.iter().cloned());
        document.set_annotations(Some(existing));
    }
    Ok(layout.put(MANIFEST, &document::to_bytes(&document)?)?)
}

/// The object `map[key]`, made one if it is absent or not an object.
pub(crate) fn object<'m>(map: &'m mut Map<String, Value>, key: &str) -> Option<&'m mut Map<String, Value>> {
    let slot = map.entry(key).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}
