//! The file read into [`RawConfig`], with every unknown key listed rather than the first.
//!
//! serde stops at the first key it does not know. To list them all, the document is parsed
//! once into a tree that keeps every span; after each unknown key is reported, its entry
//! is taken out of the tree and the structs are read again, so the rest of the file is
//! still checked. Any other refusal (a wrong type, a missing key) ends the reading there.
//! What the values mean is `validate`'s.

use serde::de::IntoDeserializer;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::raw::RawConfig;
use super::source::{Problem, Source};

/// The raw config, if it could be read, and the problems met reading it.
pub(super) fn parse(source: &Source<'_>) -> (Option<RawConfig>, Vec<Problem>) {
    let mut document = match DeTable::parse(source.text) {
        Ok(document) => document,
        Err(err) => return (None, vec![problem(source, None, &err)]),
    };
    let mut problems = Vec::new();
    // Ends: every pass either succeeds, gives up, or removes one entry from the tree.
    let raw = loop {
        match RawConfig::deserialize(document.clone().into_deserializer()) {
            Ok(raw) => break Some(raw),
            Err(err) => {
                problems.push(problem(source, Some(document.get_ref()), &err));
                let removed = err
                    .span()
                    .is_some_and(|span| remove_key(document.get_mut(), &span));
                if !removed {
                    break None;
                }
            }
        }
    };
    problems.sort_by_key(|p| (p.location.line, p.location.column));
    (raw, problems)
}

/// A refusal at its place, named by the dotted key it is at when the tree is known.
fn problem(source: &Source<'_>, document: Option<&DeTable<'_>>, err: &toml::de::Error) -> Problem {
    let span = err.span().unwrap_or(0..0);
    let key = document
        .and_then(|table| key_at(table, &span, ""))
        .unwrap_or_else(|| "(file)".to_owned());
    source.problem(span, key, err.message().trim().to_owned())
}

/// The dotted key, such as `rules[1].stop`, whose key or value is at `span`.
fn key_at(table: &DeTable<'_>, span: &std::ops::Range<usize>, prefix: &str) -> Option<String> {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if key.span() == *span || value.span() == *span {
            return Some(path);
        }
        let found = match value.get_ref() {
            DeValue::Table(inner) => key_at(inner, span, &path),
            DeValue::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
                let path = format!("{path}[{index}]");
                match item.get_ref() {
                    _ if item.span() == *span => Some(path),
                    DeValue::Table(inner) => key_at(inner, span, &path),
                    _ => None,
                }
            }),
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Removes the entry whose key is at `span`, anywhere in the tree; whether there was one.
fn remove_key(table: &mut DeTable<'_>, span: &std::ops::Range<usize>) -> bool {
    let found = table.keys().find(|key| key.span() == *span);
    if let Some(name) = found.map(|key| key.get_ref().to_string()) {
        table.remove(name.as_str());
        return true;
    }
    for (_, value) in table.iter_mut() {
        let found = match value.get_mut() {
            DeValue::Table(inner) => remove_key(inner, span),
            DeValue::Array(items) => items.iter_mut().any(|item| match item.get_mut() {
                DeValue::Table(inner) => remove_key(inner, span),
                _ => false,
            }),
            _ => false,
        };
        if found {
            return true;
        }
    }
    false
}
