//! The shapes of image keys' values: for each kind of value a key of the image key table
//! (`image_keys!` in `analyze/images.rs`) may hold, how both syntaxes read it and the printer
//! writes it, and the walks expansion makes over it (its strings, their count, the merge of a
//! template under an image, `hephy show`'s lines, `--set`).
//!
//! A row of the table names its [`Shape`]; the draft's field is the shape's [`Shape::Value`],
//! and every walk over the draft calls the row's shape. The shapes here are the generic ones
//! (one text, a list, name/value pairs, an optional list) and those the graph's top level or
//! tasks share (`sign`/`sbom`/`provenance`, `from`/`after`); the shapes of one image key only
//! are beside the table. A shape knows its value, not the image: every key a shape reads or
//! prints is the key its row gives it, or one of the keys its own construct spells.

use std::fmt::Write as _;

use kdl::KdlNode;
use miette::SourceSpan;

use crate::document::{DependencyDraft, SupplyDraft, Text};
use crate::escape::{kdl_string, yaml_scalar};
use crate::kdl::Reader as KdlReader;
use crate::print::{
    kdl_deps, kdl_pairs, kdl_supply, kdl_values, yaml_deps, yaml_flow_pairs, yaml_list, yaml_supply,
};
use crate::source::Spanned;
use crate::yaml::{Reader as YamlReader, Value as YamlValue};

/// `hephy show`'s lines of a draft: each setting as (field, value shown as text, span).
pub(crate) type Shown = Vec<(String, String, SourceSpan)>;

/// How a kind of value is read, printed and walked. `key` is the spelling the row gives in the
/// syntax at hand (a node's or an entry's name when reading; the row's first spelling when
/// printing, showing or setting).
pub(crate) trait Shape {
    /// The draft's field: the value as written, empty when not written.
    type Value: Default;

    /// Whether its value is one text ([`Shape::as_text`] gives it): only such a row may be
    /// lowered `Plain`.
    const ONE_TEXT: bool = false;

    /// A KDL node named `key` into `value`.
    fn read_kdl(r: &mut KdlReader<'_>, key: &str, node: &KdlNode, value: &mut Self::Value);

    /// A YAML entry `key: body` into `value`.
    fn read_yaml(r: &mut YamlReader<'_>, key: &Text, body: &YamlValue, value: &mut Self::Value);

    /// Its KDL lines inside a block (four spaces in), as `key`; nothing when not written.
    fn print_kdl(value: &Self::Value, key: &str, out: &mut String);

    /// Its YAML lines at `indent`, as `key`; nothing when not written.
    fn print_yaml(value: &Self::Value, key: &str, indent: &str, out: &mut String);

    /// Each of its strings, to change (expansion interpolates them).
    fn each(value: &mut Self::Value, f: &mut dyn FnMut(&mut Text));

    /// How many strings it holds (expansion's limit on the strings a graph expands to).
    fn count(value: &Self::Value) -> usize;

    /// `own` over `base`, a template's value under an image's.
    fn merge(own: &mut Self::Value, base: Self::Value);

    /// Its lines of `hephy show`, as `key`.
    fn show(value: &Self::Value, key: &str, out: &mut Shown);

    /// `--set image.NAME.KEY=text`, spanned at `at`; only the spellings a row marks `set`
    /// are set (the others never get here).
    fn set(_value: &mut Self::Value, _key: &str, _text: &str, _at: SourceSpan) {}

    /// The field `hephy show` lists the spelling `key` under, of a row whose first spelling is
    /// `first`: the spelling itself, unless the shape shows its spellings as one.
    fn shown_as(key: &'static str, _first: &'static str) -> &'static str {
        key
    }

    /// The value as one text, for a row lowered `Plain` (only [`OneText`] has one).
    fn as_text(_value: &Self::Value) -> Option<&Text> {
        None
    }
}

/// `--set`'s list: comma-separated values, blanks dropped.
pub(crate) fn set_list(text: &str, at: SourceSpan) -> Vec<Text> {
    text.split(',').map(str::trim).filter(|v| !v.is_empty()).map(|v| Spanned::new(v.to_owned(), at)).collect()
}

/// `hephy show`'s line of a list: its values joined, at the first one's span.
pub(crate) fn show_list(key: &str, values: &[Text], out: &mut Shown) {
    if let Some(first) = values.first() {
        let shown = values.iter().map(|t| t.value.as_str()).collect::<Vec<_>>().join(", ");
        out.push((key.to_owned(), shown, first.span));
    }
}

/// `hephy show`'s text of a block's properties: `k=v` of each given, space-separated.
pub(crate) fn shown_properties(props: &[(&str, &Option<Text>)]) -> String {
    props
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", v.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One text: `key "value"` (KDL, given once) / `key: value`.
pub(crate) struct OneText;

impl Shape for OneText {
    type Value = Option<Text>;

    const ONE_TEXT: bool = true;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut Self::Value) {
        if let Some(v) = r.one_string(node) {
            r.set_once(value, v, node);
        }
    }

    fn read_yaml(r: &mut YamlReader<'_>, _: &Text, body: &YamlValue, value: &mut Self::Value) {
        *value = r.string(body);
    }

    fn print_kdl(value: &Self::Value, key: &str, out: &mut String) {
        if let Some(v) = value {
            let _ = writeln!(out, "    {key} {}", kdl_string(v));
        }
    }

    fn print_yaml(value: &Self::Value, key: &str, indent: &str, out: &mut String) {
        if let Some(v) = value {
            let _ = writeln!(out, "{indent}{key}: {}", yaml_scalar(v));
        }
    }

    fn each(value: &mut Self::Value, f: &mut dyn FnMut(&mut Text)) {
        value.iter_mut().for_each(f);
    }

    fn count(value: &Self::Value) -> usize {
        usize::from(value.is_some())
    }

    fn merge(own: &mut Self::Value, base: Self::Value) {
        if own.is_none() {
            *own = base;
        }
    }

    fn show(value: &Self::Value, key: &str, out: &mut Shown) {
        if let Some(t) = value {
            out.push((key.to_owned(), t.value.clone(), t.span));
        }
    }

    fn set(value: &mut Self::Value, _: &str, text: &str, at: SourceSpan) {
        *value = Some(Spanned::new(text.to_owned(), at));
    }

    fn as_text(value: &Self::Value) -> Option<&Text> {
        value.as_ref()
    }
}

/// A list: `key "a" "b"` (KDL, added up when written twice) / `key: [a, b]` (or one value).
pub(crate) struct Texts;

impl Shape for Texts {
    type Value = Vec<Text>;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut Self::Value) {
        value.extend(r.strings(node, 1));
    }

    fn read_yaml(r: &mut YamlReader<'_>, _: &Text, body: &YamlValue, value: &mut Self::Value) {
        *value = r.strings(body);
    }

    fn print_kdl(value: &Self::Value, key: &str, out: &mut String) {
        if !value.is_empty() {
            let _ = writeln!(out, "    {key} {}", kdl_values(value));
        }
    }

    fn print_yaml(value: &Self::Value, key: &str, indent: &str, out: &mut String) {
        if !value.is_empty() {
            let _ = writeln!(out, "{indent}{key}: {}", yaml_list(value));
        }
    }

    fn each(value: &mut Self::Value, f: &mut dyn FnMut(&mut Text)) {
        value.iter_mut().for_each(f);
    }

    fn count(value: &Self::Value) -> usize {
        value.len()
    }

    fn merge(own: &mut Self::Value, base: Self::Value) {
        if own.is_empty() {
            *own = base;
        }
    }

    fn show(value: &Self::Value, key: &str, out: &mut Shown) {
        show_list(key, value, out);
    }

    fn set(value: &mut Self::Value, _: &str, text: &str, at: SourceSpan) {
        *value = set_list(text, at);
    }
}

/// A list that may be absent (`platforms`: absent means the graph's; given once in KDL).
pub(crate) struct OptionalTexts;

impl Shape for OptionalTexts {
    type Value = Option<Vec<Text>>;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut Self::Value) {
        let list = r.strings(node, 1);
        r.set_once(value, list, node);
    }

    fn read_yaml(r: &mut YamlReader<'_>, _: &Text, body: &YamlValue, value: &mut Self::Value) {
        *value = Some(r.strings(body));
    }

    fn print_kdl(value: &Self::Value, key: &str, out: &mut String) {
        if let Some(list) = value.as_ref().filter(|l| !l.is_empty()) {
            let _ = writeln!(out, "    {key} {}", kdl_values(list));
        }
    }

    fn print_yaml(value: &Self::Value, key: &str, indent: &str, out: &mut String) {
        if let Some(list) = value {
            let _ = writeln!(out, "{indent}{key}: {}", yaml_list(list));
        }
    }

    fn each(value: &mut Self::Value, f: &mut dyn FnMut(&mut Text)) {
        value.iter_mut().flatten().for_each(f);
    }

    fn count(value: &Self::Value) -> usize {
        value.as_ref().map_or(0, Vec::len)
    }

    fn merge(own: &mut Self::Value, base: Self::Value) {
        if own.is_none() {
            *own = base;
        }
    }

    fn show(value: &Self::Value, key: &str, out: &mut Shown) {
        show_list(key, value.as_deref().unwrap_or(&[]), out);
    }

    fn set(value: &mut Self::Value, _: &str, text: &str, at: SourceSpan) {
        *value = Some(set_list(text, at));
    }
}

/// Name/value pairs: `key NAME="value"…` (KDL, added up) / `key: {NAME: value}`; a template's
/// and an image's merge by name, the image's over the template's.
pub(crate) struct Pairs;

impl Shape for Pairs {
    type Value = Vec<(Text, Text)>;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut Self::Value) {
        value.extend(r.pairs(node));
    }

    fn read_yaml(r: &mut YamlReader<'_>, _: &Text, body: &YamlValue, value: &mut Self::Value) {
        *value = r.pairs(body);
    }

    fn print_kdl(value: &Self::Value, key: &str, out: &mut String) {
        if !value.is_empty() {
            let _ = writeln!(out, "    {key} {}", kdl_pairs(value));
        }
    }

    fn print_yaml(value: &Self::Value, key: &str, indent: &str, out: &mut String) {
        if !value.is_empty() {
            let _ = writeln!(out, "{indent}{key}: {}", yaml_flow_pairs(value));
        }
    }

    fn each(value: &mut Self::Value, f: &mut dyn FnMut(&mut Text)) {
        for (k, v) in value {
            f(k);
            f(v);
        }
    }

    fn count(value: &Self::Value) -> usize {
        2 * value.len()
    }

    fn merge(own: &mut Self::Value, base: Self::Value) {
        let mut merged: Vec<(Text, Text)> =
            base.into_iter().filter(|(k, _)| !own.iter().any(|(o, _)| o.value == k.value)).collect();
        merged.append(own);
        *own = merged;
    }

    fn show(value: &Self::Value, key: &str, out: &mut Shown) {
        for (k, v) in value {
            out.push((format!("{key}.{}", k.value), v.value.clone(), k.span));
        }
    }
}

/// The supply-chain settings: `sign key="…"`, `sbom`, `provenance` (KDL) / `sign: {key: …}`,
/// `sbom: true`, `provenance: false`, each its own key; the graph's top level takes the same.
pub(crate) struct Supply;

impl Shape for Supply {
    type Value = SupplyDraft;

    fn read_kdl(r: &mut KdlReader<'_>, _: &str, node: &KdlNode, value: &mut Self::Value) {
        r.supply(value, node);
    }

    fn read_yaml(r: &mut YamlReader<'_>, key: &Text, body: &YamlValue, value: &mut Self::Value) {
        r.supply(value, key, body);
    }

    fn print_kdl(value: &Self::Value, _: &str, out: &mut String) {
        kdl_supply(out, "    ", value);
    }

    fn print_yaml(value: &Self::Value, _: &str, indent: &str, out: &mut String) {
        yaml_supply(out, indent, value);
    }

    fn each(value: &mut Self::Value, f: &mut dyn FnMut(&mut Text)) {
        if let Some(key) = value.sign.as_mut().and_then(|s| s.key.as_mut()) {
            f(key);
        }
    }

    fn count(value: &Self::Value) -> usize {
        usize::from(value.sign.is_some())
    }

    fn merge(own: &mut Self::Value, base: Self::Value) {
        if own.sign.is_none() {
            own.sign = base.sign;
        }
        if own.sbom.is_none() {
            own.sbom = base.sbom;
        }
        if own.provenance.is_none() {
            own.provenance = base.provenance;
        }
    }

    fn show(value: &Self::Value, _: &str, out: &mut Shown) {
        if let Some(sign) = &value.sign {
            let key = sign.key.as_ref().map(|k| format!("key={}", k.value)).unwrap_or_default();
            out.push(("sign".to_owned(), key, sign.span));
        }
        for (field, on) in [("sbom", &value.sbom), ("provenance", &value.provenance)] {
            if let Some(on) = on {
                out.push((field.to_owned(), on.value.to_string(), on.span));
            }
        }
    }
}

/// Dependencies, in the order written: `from "NAME" arg=…` and `after "a" "b"` (KDL) /
/// `from: {NAME: {arg: …}}` and `after: [a, b]`; a template's and an image's merge by name,
/// the image's over the template's (tasks take `after` alike).
pub(crate) struct Dependencies;

impl Shape for Dependencies {
    type Value = Vec<DependencyDraft>;

    fn read_kdl(r: &mut KdlReader<'_>, key: &str, node: &KdlNode, value: &mut Self::Value) {
        if key == "after" {
            value.extend(r.after(node));
        } else {
            value.extend(r.from(node));
        }
    }

    fn read_yaml(r: &mut YamlReader<'_>, key: &Text, body: &YamlValue, value: &mut Self::Value) {
        if key.value == "after" {
            value.extend(r.after(body));
        } else {
            value.extend(r.from(body));
        }
    }

    fn print_kdl(value: &Self::Value, _: &str, out: &mut String) {
        kdl_deps(out, value);
    }

    fn print_yaml(value: &Self::Value, _: &str, indent: &str, out: &mut String) {
        yaml_deps(out, indent, value);
    }

    fn each(value: &mut Self::Value, f: &mut dyn FnMut(&mut Text)) {
        for dep in value {
            f(&mut dep.name);
            if let Some(from) = &mut dep.from {
                [
                    &mut from.arg,
                    &mut from.target,
                    &mut from.registry_arg,
                    &mut from.context,
                    &mut from.platform,
                ]
                .into_iter()
                .flatten()
                .for_each(&mut *f);
            }
        }
    }

    fn count(value: &Self::Value) -> usize {
        value
            .iter()
            .map(|d| {
                1 + d.from.as_ref().map_or(0, |f| {
                    [&f.arg, &f.target, &f.registry_arg, &f.context, &f.platform]
                        .into_iter()
                        .flatten()
                        .count()
                })
            })
            .sum()
    }

    fn merge(own: &mut Self::Value, base: Self::Value) {
        let mut merged: Vec<DependencyDraft> =
            base.into_iter().filter(|d| !own.iter().any(|o| o.name.value == d.name.value)).collect();
        merged.append(own);
        *own = merged;
    }

    fn show(value: &Self::Value, _: &str, out: &mut Shown) {
        for dep in value {
            let (field, shown) = match &dep.from {
                Some(from) => (
                    format!("from {}", dep.name.value),
                    shown_properties(&[
                        ("arg", &from.arg),
                        ("target", &from.target),
                        ("registry-arg", &from.registry_arg),
                        ("context", &from.context),
                        ("platform", &from.platform),
                    ]),
                ),
                None => (format!("after {}", dep.name.value), String::new()),
            };
            out.push((field, shown, dep.name.span));
        }
    }
}
