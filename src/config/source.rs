//! Where a configuration problem is, and the values read from outside the file.
//!
//! Turns byte spans into `file:line:column`, and expands `${VAR}` from the environment.
//! What counts as a problem is decided by the checks that report one.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong (or doubtful) in the configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, line and column (1-based).
    pub location: Location,
    /// The key, for example `rules[1].to[0]`.
    pub key: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

/// A place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}`: {}", self.location, self.key, self.message)
    }
}

/// A file's text, to locate spans in it.
pub struct Source<'a> {
    /// The file's path as given.
    pub path: &'a Path,
    /// Its text.
    pub text: &'a str,
    /// The byte offset of every line's start. Every inline template is located up front,
    /// so scanning the text from the top each time made loading quadratic in the file's
    /// size (half of the start-up with 1,000 rules).
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Indexes `text`'s lines once.
    pub fn new(path: &'a Path, text: &'a str) -> Source<'a> {
        let breaks = text.match_indices('\n').map(|(at, _)| at + 1);
        Source {
            path,
            text,
            line_starts: std::iter::once(0).chain(breaks).collect(),
        }
    }

    /// The location of a byte offset.
    pub fn locate(&self, offset: usize) -> Location {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        // Lines starting at or before the offset; the first always does.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        Location {
            file: self.path.to_owned(),
            line,
            column: self.text[line_start..offset].chars().count() + 1,
        }
    }

    /// A problem at the start of `span`.
    pub fn problem(&self, span: Range<usize>, key: impl Into<String>, message: String) -> Problem {
        Problem {
            location: self.locate(span.start),
            key: key.into(),
            message,
        }
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Replaces every `${NAME}` with the environment variable's value.
///
/// Fails with the first variable's name when it is unset or not valid UTF-8; the value
/// itself never appears in an error, since it is usually a secret.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        let value = lookup(name).ok_or_else(|| name.to_owned())?;
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns() {
        let source = Source::new(Path::new("relay.toml"), "a = 1\nbé = 2\n");

        assert_eq!(source.locate(0).to_string(), "relay.toml:1:1");
        assert_eq!(source.locate(5).to_string(), "relay.toml:1:6");
        assert_eq!(source.locate(6).to_string(), "relay.toml:2:1");
        assert_eq!(source.locate(10).to_string(), "relay.toml:2:4");
        assert_eq!(source.locate(99).to_string(), "relay.toml:3:1");
    }

    #[test]
    fn expands_variables_and_names_the_missing_one() {
        let lookup = |name: &str| (name == "A").then(|| "x".to_owned());

        assert_eq!(expand_env("1${A}2${A}", lookup).unwrap(), "1x2x");
        assert_eq!(
            expand_env("no vars $A {A}", lookup).unwrap(),
            "no vars $A {A}"
        );
        assert_eq!(expand_env("${B}", lookup).unwrap_err(), "B");
    }
}
