//! Reader for Flare's configuration files (Boost.Program_options "config file" syntax).
//!
//! Syntax (operations.md §2.1):
//!
//! * one `name = value` per line; whitespace (space, tab, CR, LF) around the name and
//!   around the value is trimmed, inner spaces of the value are kept; no quoting, no
//!   escaping;
//! * `#` starts a comment **anywhere** on the line (so a value cannot contain `#`);
//! * blank lines (after comment removal) are ignored;
//! * a `[section]` line makes the following keys `section.name` (Flare defines no
//!   sections, so such keys end up "unrecognised" when checked against the option table);
//! * any other line without `=` is an error (`invalid line`);
//! * the same key twice is an error.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use crate::error::ConfigError;

/// One `name = value` assignment from a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Key, trimmed, with any `[section]` prefix (`section.name`).
    pub name: String,
    /// Value, trimmed; may be empty and may contain inner spaces.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// Characters Boost trims around names and values.
const WS: &[char] = &[' ', '\t', '\r', '\n'];

/// Parses configuration-file text, accepting every key.
///
/// Checks the syntax and duplicate keys; unknown keys are left to the caller (see
/// [`parse_known`]). Entries are returned in file order.
pub fn parse(text: &str) -> Result<Vec<Entry>, ConfigError> {
    parse_known(text, &|_| true)
}

/// Parses configuration-file text; a key for which `known` returns false is an
/// `unrecognised option` error.
///
/// Errors are reported as Boost does: syntax errors and unknown keys in line order, then
/// duplicate keys.
pub fn parse_known(text: &str, known: &dyn Fn(&str) -> bool) -> Result<Vec<Entry>, ConfigError> {
    let mut entries = Vec::new();
    let mut prefix = String::new();
    for (idx, raw) in text.split('\n').enumerate() {
        let line = idx + 1;
        let without_comment = match raw.find('#') {
            Some(pos) => &raw[..pos],
            None => raw,
        };
        let s = without_comment.trim_matches(WS);
        if s.is_empty() {
            continue;
        }
        if s.len() >= 2 && s.starts_with('[') && s.ends_with(']') {
            prefix = s[1..s.len() - 1].to_string();
            if !prefix.ends_with('.') {
                prefix.push('.');
            }
            continue;
        }
        let Some(eq) = s.find('=') else {
            return Err(ConfigError::InvalidLine {
                text: s.to_string(),
                line,
            });
        };
        let name = format!("{prefix}{}", s[..eq].trim_matches(WS));
        let value = s[eq + 1..].trim_matches(WS).to_string();
        if !known(&name) {
            return Err(ConfigError::UnknownOption(name));
        }
        entries.push(Entry { name, value, line });
    }
    let mut seen = HashSet::new();
    for e in &entries {
        if !seen.insert(e.name.as_str()) {
            return Err(ConfigError::Duplicate(e.name.clone()));
        }
    }
    Ok(entries)
}

/// Reads and parses a configuration file, accepting every key (see [`parse`]).
///
/// A missing file is [`ConfigError::ConfigNotFound`] (`<path> not found`); any other read
/// failure (permissions, not UTF-8) is [`ConfigError::ConfigRead`].
pub fn read(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    parse(&read_text(path)?)
}

/// Reads and parses a configuration file, checking keys with `known` (see
/// [`parse_known`]).
pub fn read_known(path: &Path, known: &dyn Fn(&str) -> bool) -> Result<Vec<Entry>, ConfigError> {
    parse_known(&read_text(path)?, known)
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            ConfigError::ConfigNotFound(path.to_path_buf())
        } else {
            ConfigError::ConfigRead {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .expect("parse")
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect()
    }

    fn p(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn basic_assignments_and_trimming() {
        let text =
            "data-dir = /var/lib/flared\n  server-port=12121  \n\tlog-facility\t=\tlocal1\t\r\n";
        assert_eq!(
            pairs(text),
            vec![
                p("data-dir", "/var/lib/flared"),
                p("server-port", "12121"),
                p("log-facility", "local1"),
            ]
        );
    }

    #[test]
    fn line_numbers() {
        let e = parse("\n# c\na = 1\n\nb=2").expect("parse");
        assert_eq!(e[0].line, 3);
        assert_eq!(e[1].line, 5);
    }

    #[test]
    fn comments_anywhere() {
        let text = "# full line\nserver-name = host # trailing comment\nx = a#b\n   # indented\n";
        assert_eq!(pairs(text), vec![p("server-name", "host"), p("x", "a")]);
    }

    #[test]
    fn comment_before_equals_makes_invalid_line() {
        let err = parse("name # = value").expect_err("must fail");
        assert!(matches!(err, ConfigError::InvalidLine { ref text, line: 1 } if text == "name"));
        assert_eq!(
            err.to_string(),
            "the options configuration file contains an invalid line 'name'"
        );
    }

    #[test]
    fn inner_spaces_kept_and_empty_value_allowed() {
        assert_eq!(
            pairs("index-servers = a:1 ,  b:2\nserver-socket =\nk=v=w"),
            vec![
                p("index-servers", "a:1 ,  b:2"),
                p("server-socket", ""),
                p("k", "v=w"),
            ]
        );
    }

    #[test]
    fn sections_prefix_keys() {
        assert_eq!(
            pairs("a = 1\n[sec]\nb = 2\n[other.]\nc = 3"),
            vec![p("a", "1"), p("sec.b", "2"), p("other.c", "3")]
        );
        let err = parse_known("[sec]\ndata-dir = /x", &|n| n == "data-dir").expect_err("unknown");
        assert_eq!(err.to_string(), "unrecognised option 'sec.data-dir'");
    }

    #[test]
    fn line_without_equals_is_error() {
        let err = parse("a = 1\n  daemonize  \n").expect_err("must fail");
        match err {
            ConfigError::InvalidLine { text, line } => {
                assert_eq!(text, "daemonize");
                assert_eq!(line, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn duplicates_are_errors() {
        let err = parse("a = 1\nb = 2\na = 3").expect_err("dup");
        assert_eq!(
            err.to_string(),
            "option 'a' cannot be specified more than once"
        );
        // Syntax errors later in the file win over duplicates (Boost order).
        let err = parse("a = 1\na = 2\nbroken").expect_err("syntax");
        assert!(matches!(err, ConfigError::InvalidLine { .. }));
    }

    #[test]
    fn unknown_keys() {
        let known = |n: &str| n == "data-dir";
        let err = parse_known("data-dir = /x\nstderr = 1", &known).expect_err("unknown");
        assert_eq!(err.to_string(), "unrecognised option 'stderr'");
        let err = parse_known(" = x", &known).expect_err("empty name");
        assert_eq!(err.to_string(), "unrecognised option ''");
    }

    #[test]
    fn empty_and_comment_only_files() {
        assert!(parse("").expect("empty").is_empty());
        assert!(parse("\n\n# only\n   \n").expect("comments").is_empty());
    }

    #[test]
    fn read_missing_and_present() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.conf");
        let err = read(&missing).expect_err("missing");
        assert_eq!(err.to_string(), format!("{} not found", missing.display()));

        let path = dir.path().join("f.conf");
        std::fs::write(&path, "server-port = 1\n").expect("write");
        assert_eq!(read(&path).expect("read")[0].value, "1");
    }
}
