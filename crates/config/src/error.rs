//! Errors of loading a configuration, and the helper that places them in the file.
//!
//! Every error names the file; errors about one key also name the key as a path
//! (`camera[0].zone[1].polygon`, indices from 0 in the order the sections appear) and, where the
//! key is in the file, the line it is on, so that a technician at the roadside can go straight
//! to it.

use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Errors while loading a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {path}: {source}; check the path given with --config")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a value has the wrong type, or a key is unknown.
    #[error("config file {path}{}: {message}", place(*line, *column))]
    Parse {
        path: PathBuf,
        /// Line of the offending text, from 1.
        line: Option<usize>,
        /// Column of the offending text, in characters from 1.
        column: Option<usize>,
        message: String,
    },
    /// A value is out of its bounds, or does not agree with another part of the file.
    #[error("config file {path}{}: key `{key}`: {message}", place(*line, None))]
    Invalid {
        path: PathBuf,
        /// The key as a path, e.g. `rule[2].zone`.
        key: String,
        /// Line of the key in the file, from 1; absent when the key is not in the file
        /// (a default, or a required section that is missing).
        line: Option<usize>,
        message: String,
    },
}

impl ConfigError {
    /// The line of the file the error points at, from 1, when known.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Parse { line, .. } | ConfigError::Invalid { line, .. } => *line,
        }
    }
}

fn place(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l}, column {c}"),
        (Some(l), None) => format!(", line {l}"),
        _ => String::new(),
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// Turns a TOML or serde error into a [`ConfigError::Parse`] with line, column and a fix.
pub(crate) fn parse_error(e: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let (message, at) = describe_toml_error(e, text);
    ConfigError::Parse {
        path: path.to_path_buf(),
        line: at.map(|(l, _)| l),
        column: at.map(|(_, c)| c),
        message,
    }
}

/// The message of a TOML error with a hint how to fix it, and where it is as (line, column).
pub(crate) fn describe_toml_error(
    e: &toml::de::Error,
    text: &str,
) -> (String, Option<(usize, usize)>) {
    let msg = e.message().trim_end().to_string();
    let hint = if msg.contains("unknown field") {
        "; remove the key or fix its spelling (see config/example.toml for every key)"
    } else if msg.contains("unknown variant") {
        "; use one of the values listed (see config/example.toml)"
    } else if msg.contains("invalid type") {
        "; give the value the type shown in config/example.toml"
    } else if msg.contains("missing field") {
        "; add the key (see config/example.toml)"
    } else {
        ""
    };
    let at = e.span().map(|span| line_column(text, span.start));
    (format!("{msg}{hint}"), at)
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, PartialEq, Eq)]
enum Step<'k> {
    Key(&'k str),
    Index(usize),
}

/// Splits `camera[0].zone[1].polygon` into its steps.
fn steps(key: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Step::Key(name));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Step::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// Validation context: the file being checked and its spanned document, to build errors that
/// name the file, the key, its line and the fix.
pub(crate) struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    doc: Option<Spanned<DeTable<'a>>>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
        let doc = DeTable::parse(text).ok();
        Self { path, text, doc }
    }

    /// The span of the deepest part of `key` present in the file, and whether all of it is.
    fn find(&self, key: &str) -> (Option<std::ops::Range<usize>>, bool) {
        let Some(doc) = &self.doc else {
            return (None, false);
        };
        let mut span = None;
        let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
        let mut value: Option<&DeValue<'_>> = None;
        for step in steps(key) {
            let next = match (step, table, value) {
                (Step::Key(k), Some(t), _) => t.get(k),
                (Step::Key(k), None, Some(v)) => v.get(k),
                (Step::Index(i), None, Some(v)) => v.get(i),
                _ => None,
            };
            let Some(next) = next else {
                return (span, false);
            };
            span = Some(next.span());
            table = None;
            value = Some(next.get_ref());
        }
        (span, true)
    }

    /// Whether `key` is written in the file (as opposed to taking its default).
    pub(crate) fn given(&self, key: &str) -> bool {
        self.find(key).1
    }

    /// The line of `key` in the file (or of its nearest enclosing section), from 1.
    pub(crate) fn line_of(&self, key: &str) -> Option<usize> {
        self.find(key)
            .0
            .map(|span| line_column(self.text, span.start).0)
    }

    /// An error about `key`, placed at its line.
    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            line: self.line_of(key),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_split_into_keys_and_indices() {
        assert_eq!(
            steps("camera[0].zone[12].polygon"),
            [
                Step::Key("camera"),
                Step::Index(0),
                Step::Key("zone"),
                Step::Index(12),
                Step::Key("polygon")
            ]
        );
        assert_eq!(
            steps("a.b[1][2]"),
            [
                Step::Key("a"),
                Step::Key("b"),
                Step::Index(1),
                Step::Index(2)
            ]
        );
    }

    #[test]
    fn line_and_column_count_from_one_in_characters() {
        let text = "a = 1\nb = \"ÄÖ\" x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        let x = text.find('x').unwrap();
        assert_eq!(line_column(text, x), (2, 10));
    }

    #[test]
    fn keys_are_placed_on_their_line_or_that_of_their_section() {
        let text = "[device]\nname = 1\n\n[[camera]]\nid = \"a\"\n\n[[camera]]\nid = \"b\"\nzone = [{ name = \"z\" }]\n";
        let c = Checker::new(Path::new("x.toml"), text);
        assert_eq!(c.line_of("device.name"), Some(2));
        assert_eq!(c.line_of("camera[1].id"), Some(8));
        assert_eq!(c.line_of("camera[1].zone[0].name"), Some(9));
        assert!(c.given("camera[1].id"));
        assert!(!c.given("camera[1].uri"));
        assert!(c.line_of("camera[1].uri").is_some());
        assert_eq!(c.line_of("nothing"), None);
    }
}
