//! `hephy show IMAGE`: an image's settings after variables, templates, matrices and `--set`,
//! each with its value and where it came from (the image, a template, `--set`; the file and
//! line; the variables it used). The resolving is `hephy_dsl::resolve`; this module renders it.

use std::path::Path;

use hephy_dsl::{Code, Origin, Overrides, Problem, Problems, ResolvedImage, VariableSource};

use crate::Failure;
use crate::style::{self, Style};

/// Prints the resolved image `name` of the graph file at `path`, as text or JSON.
pub(crate) fn show(
    path: &Path,
    overrides: &Overrides,
    name: &str,
    json: bool,
    style: Style,
) -> Result<String, Failure> {
    let images = hephy_dsl::resolve(path, overrides).map_err(Failure::Input)?;
    let Some(image) = images.iter().find(|i| i.name == name) else {
        let help = did_you_mean(name, &images).unwrap_or_else(|| {
            "name an image of the graph by its expanded name (`hephy plan` lists them)".to_owned()
        });
        return Err(Failure::Input(Problems::single(
            &path.display().to_string(),
            Problem::new(Code::UnknownDependency, format!("there is no image `{name}`")).help(help),
        )));
    };
    if json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(image).unwrap_or_default()));
    }
    Ok(text(image, &style::clean_line(&path.display().to_string()), style))
}

fn did_you_mean(name: &str, images: &[ResolvedImage]) -> Option<String> {
    images
        .iter()
        .map(|i| (strsim::damerau_levenshtein(name, &i.name), &i.name))
        .filter(|(d, n)| *d <= (name.len().max(n.len()) / 3).max(1))
        .min()
        .map(|(_, n)| format!("did you mean `{n}`?"))
}

fn text(image: &ResolvedImage, file: &str, style: Style) -> String {
    let mut out = format!(
        "{}  {}\n",
        style.bold(&style::clean_line(&image.name)),
        style.dim(&format!("{file}:{}", image.line))
    );
    if !image.templates.is_empty() {
        out.push_str(&format!("  templates  {}\n", image.templates.join(" → ")));
    }
    if !image.matrix.is_empty() {
        let values: Vec<String> =
            image.matrix.iter().map(|(k, v)| format!("{k}={}", style::clean_line(v))).collect();
        out.push_str(&format!("  matrix     {}\n", values.join(" ")));
    }
    let field_width = image.settings.iter().map(|s| s.field.len()).max().unwrap_or(0);
    let value_width = image.settings.iter().map(|s| s.value.chars().count()).max().unwrap_or(0).min(60);
    for setting in &image.settings {
        let origin = match &setting.origin {
            Origin::Image => "image".to_owned(),
            Origin::Template(name) => format!("template {name}"),
            Origin::Set => "--set".to_owned(),
        };
        let place = setting.line.map_or_else(|| "command line".to_owned(), |l| format!("{file}:{l}"));
        out.push_str(&format!(
            "  {:field_width$}  {:value_width$}  {}\n",
            style::clean_line(&setting.field),
            style::clean_line(&setting.value),
            style.dim(&format!("{origin}, {place}"))
        ));
        if !setting.variables.is_empty() {
            let used: Vec<String> = setting
                .variables
                .iter()
                .map(|v| {
                    let from = match v.source {
                        VariableSource::Default => "default".to_owned(),
                        VariableSource::Environment => format!("{}{}", hephy_dsl::ENV_PREFIX, v.name),
                        VariableSource::Set => "--set".to_owned(),
                        VariableSource::Matrix => "matrix".to_owned(),
                    };
                    format!("{}={} ({from})", v.name, style::clean_line(&v.value))
                })
                .collect();
            out.push_str(&format!(
                "  {:field_width$}  {}\n",
                "",
                style.dim(&format!("↳ {} with {}", style::clean_line(&setting.written), used.join(", ")))
            ));
        }
    }
    out
}
