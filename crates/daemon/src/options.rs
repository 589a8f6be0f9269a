//! Option table and parsed settings.
//!
//! Each daemon describes its configuration options with a static table of [`OptSpec`]s.
//! [`crate::cli::parse`] turns the command line plus the optional configuration file into
//! a [`Settings`]: a map from option name to the raw string value, validated for the
//! option's [`OptKind`], plus the CLI-only values (`-f`, `-p`, `-s`).
//!
//! Value syntax (operations.md §2.1):
//!
//! * [`OptKind::Switch`]: presence only. On the CLI `--daemonize` takes no value. In a file
//!   `daemonize = <anything>` enables it, **except** (deliberate deviation from 1.3.4, quirk
//!   Q2) that `false`, `no`, `off` and `0` (any case) disable it; a warning saying that
//!   1.3.4 would have enabled the feature is then added to [`Settings::warnings`].
//! * [`OptKind::Bool`]: `true/false`, `yes/no`, `on/off`, `1/0`, case-insensitive.
//! * [`OptKind::Int`]: a decimal `i64` (leading `+`/`-` allowed).
//! * [`OptKind::UInt`]: a decimal `u64`. **Deviation:** a negative literal is an error;
//!   1.3.4 accepted it and let it wrap around (`--proxy-prior-netmask -1`).
//! * [`OptKind::Str`]: anything, including the empty string.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config_file;
use crate::error::ConfigError;

/// The value type of an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// Presence only (`daemonize`, `storage-large`, `mysql-replication`).
    Switch,
    /// `true/false`, `yes/no`, `on/off`, `1/0`.
    Bool,
    /// Signed decimal integer.
    Int,
    /// Unsigned decimal integer (negative literals rejected).
    UInt,
    /// Free text (rest of the line in a file).
    Str,
}

/// Description of one configuration option (a line of the daemon's option table).
///
/// Every option is accepted both as `--name value` on the command line and as
/// `name = value` in the configuration file. Names must not clash with the CLI-only
/// options `config`, `pid`, `stderr`, `version`, `help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptSpec {
    /// Long option name without dashes, e.g. `server-port`.
    pub name: &'static str,
    /// Value type.
    pub kind: OptKind,
    /// Default value (as text, parsed like a user value) or `None` when the option has no
    /// default.
    pub default: Option<&'static str>,
    /// Re-read on SIGHUP; the help text marks it `(dynamic)`.
    pub dynamic: bool,
    /// One-line description for the help text (without the `(dynamic)` suffix).
    pub help: &'static str,
}

impl OptSpec {
    /// Convenience constructor.
    pub const fn new(
        name: &'static str,
        kind: OptKind,
        default: Option<&'static str>,
        dynamic: bool,
        help: &'static str,
    ) -> Self {
        OptSpec {
            name,
            kind,
            default,
            dynamic,
            help,
        }
    }
}

/// Parsed settings: explicitly given option values plus the CLI-only values.
#[derive(Clone, Debug)]
pub struct Settings {
    specs: Vec<OptSpec>,
    values: BTreeMap<&'static str, String>,
    /// `-f/--config`: the configuration file that was read (and is re-read on SIGHUP).
    pub config_path: Option<PathBuf>,
    /// `-p/--pid`: explicit pid-file path (the daemon's default applies when `None`).
    pub pid_path: Option<PathBuf>,
    /// `-s/--stderr`: log to stderr instead of syslog.
    pub stderr: bool,
    /// Warnings found while parsing (before logging exists). The daemon logs them once
    /// logging is initialised.
    pub warnings: Vec<String>,
}

const FALSE_WORDS: [&str; 4] = ["false", "no", "off", "0"];
const TRUE_WORDS: [&str; 4] = ["true", "yes", "on", "1"];

impl Settings {
    /// Empty settings for an option table: nothing explicitly set, every accessor returns
    /// the table's default.
    pub fn new(specs: &[OptSpec]) -> Settings {
        Settings {
            specs: specs.to_vec(),
            values: BTreeMap::new(),
            config_path: None,
            pid_path: None,
            stderr: false,
            warnings: Vec::new(),
        }
    }

    /// Reads only the configuration file at `path` (no command line), as a reload does.
    ///
    /// The result has `config_path` set to `path`; `pid_path` and `stderr` are unset.
    pub fn load_file(specs: &[OptSpec], path: &Path) -> Result<Settings, ConfigError> {
        let mut settings = Settings::new(specs);
        settings.config_path = Some(path.to_path_buf());
        settings.merge_file(path)?;
        Ok(settings)
    }

    /// Re-reads the configuration file these settings came from, **without** the command
    /// line, for a SIGHUP reload (operations.md §2.5). `config_path`, `pid_path` and
    /// `stderr` are carried over. Without a configuration file the result has nothing set
    /// (the caller then keeps its current values).
    ///
    /// The result is validated as a whole, so the caller can apply it atomically.
    pub fn reload_file(&self) -> Result<Settings, ConfigError> {
        let mut fresh = Settings::new(&self.specs);
        fresh.config_path = self.config_path.clone();
        fresh.pid_path = self.pid_path.clone();
        fresh.stderr = self.stderr;
        if let Some(path) = &self.config_path {
            fresh.merge_file(path)?;
        }
        Ok(fresh)
    }

    /// Reads the configuration file and adds its values, keeping values that are already
    /// set (so the command line beats the file). Values of keys that are already set are
    /// still validated.
    pub(crate) fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let entries = config_file::read_known(path, &|name| self.spec(name).is_some())?;
        for entry in entries {
            let spec = self
                .spec(&entry.name)
                .ok_or_else(|| ConfigError::UnknownOption(entry.name.clone()))?;
            validate(&spec, &entry.value)?;
            if self.values.contains_key(spec.name) {
                continue;
            }
            if spec.kind == OptKind::Switch && is_false_word(&entry.value) {
                self.warnings.push(format!(
                    "option '{} = {}' in {} disables {}; flare 1.3.4 would have enabled it (any value enabled a switch there)",
                    spec.name,
                    entry.value,
                    path.display(),
                    spec.name
                ));
            }
            self.values.insert(spec.name, entry.value);
        }
        Ok(())
    }

    /// Sets an option explicitly (as if given on the command line), validating the value
    /// for the option's kind. For a switch, `""` or any word other than
    /// `false/no/off/0` enables it.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let spec = self
            .spec(name)
            .ok_or_else(|| ConfigError::UnknownOption(name.to_string()))?;
        validate(&spec, value)?;
        self.values.insert(spec.name, value.to_string());
        Ok(())
    }

    /// The option table these settings were built for.
    pub fn specs(&self) -> &[OptSpec] {
        &self.specs
    }

    /// The table entry for `name`, if any.
    pub fn spec(&self, name: &str) -> Option<OptSpec> {
        self.specs.iter().find(|s| s.name == name).copied()
    }

    /// The raw value: explicitly given, else the table default, else `None`.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(v) => Some(v.as_str()),
            None => self.spec(name).and_then(|s| s.default),
        }
    }

    /// Whether the option was given explicitly (on the command line or in the file).
    ///
    /// A switch written as `daemonize = false` in a file counts as given (but
    /// [`Settings::switch`] returns false for it).
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The explicitly given options with their raw values, in name order.
    pub fn explicit(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.values.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The value of a required option, or [`ConfigError::Required`]
    /// (`option [data-dir] is required`).
    pub fn require(&self, name: &str) -> Result<&str, ConfigError> {
        self.str(name)
            .ok_or_else(|| ConfigError::Required(name.to_string()))
    }

    /// The value as a signed integer (`None` if neither given nor defaulted).
    pub fn int(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        self.str(name).map(|v| parse_int(name, v)).transpose()
    }

    /// The value as an unsigned integer (`None` if neither given nor defaulted). Negative
    /// literals are errors.
    pub fn uint(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        self.str(name).map(|v| parse_uint(name, v)).transpose()
    }

    /// The value of a bool option (`None` if neither given nor defaulted).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        self.str(name).map(|v| parse_bool(name, v)).transpose()
    }

    /// Whether a switch is on: given, and not written as `false/no/off/0` in a file.
    /// A default of `Some(..)` in the table is treated the same way.
    pub fn switch(&self, name: &str) -> bool {
        match self.str(name) {
            Some(v) => !is_false_word(v),
            None => false,
        }
    }
}

fn is_false_word(v: &str) -> bool {
    FALSE_WORDS.iter().any(|w| v.eq_ignore_ascii_case(w))
}

/// Checks that `value` is acceptable for `spec.kind`.
pub(crate) fn validate(spec: &OptSpec, value: &str) -> Result<(), ConfigError> {
    match spec.kind {
        OptKind::Switch | OptKind::Str => Ok(()),
        OptKind::Bool => parse_bool(spec.name, value).map(drop),
        OptKind::Int => parse_int(spec.name, value).map(drop),
        OptKind::UInt => parse_uint(spec.name, value).map(drop),
    }
}

fn invalid(name: &str, value: &str) -> ConfigError {
    ConfigError::InvalidValue {
        option: name.to_string(),
        value: value.to_string(),
    }
}

fn parse_int(name: &str, value: &str) -> Result<i64, ConfigError> {
    value.parse::<i64>().map_err(|_| invalid(name, value))
}

fn parse_uint(name: &str, value: &str) -> Result<u64, ConfigError> {
    value.parse::<u64>().map_err(|_| invalid(name, value))
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    if TRUE_WORDS.iter().any(|w| value.eq_ignore_ascii_case(w)) {
        Ok(true)
    } else if is_false_word(value) {
        Ok(false)
    } else {
        Err(ConfigError::InvalidBool {
            option: name.to_string(),
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptSpec] = &[
        OptSpec::new("daemonize", OptKind::Switch, None, false, "run as daemon"),
        OptSpec::new("data-dir", OptKind::Str, None, false, "data directory"),
        OptSpec::new("server-port", OptKind::Int, Some("12121"), false, "port"),
        OptSpec::new("storage-ap", OptKind::UInt, Some("4"), false, "ap"),
        OptSpec::new(
            "time-watcher-enabled",
            OptKind::Bool,
            Some("false"),
            true,
            "tw",
        ),
    ];

    #[test]
    fn defaults_and_explicit() {
        let mut s = Settings::new(SPECS);
        assert_eq!(s.str("server-port"), Some("12121"));
        assert_eq!(s.int("server-port").expect("int"), Some(12121));
        assert!(!s.is_set("server-port"));
        assert_eq!(s.str("data-dir"), None);
        assert_eq!(s.int("data-dir").expect("none"), None);
        s.set("server-port", "-5").expect("set");
        assert!(s.is_set("server-port"));
        assert_eq!(s.int("server-port").expect("int"), Some(-5));
        assert_eq!(s.uint("storage-ap").expect("uint"), Some(4));
        assert_eq!(s.bool("time-watcher-enabled").expect("bool"), Some(false));
        assert_eq!(s.str("no-such-option"), None);
        let explicit: Vec<_> = s.explicit().collect();
        assert_eq!(explicit, vec![("server-port", "-5")]);
    }

    #[test]
    fn validation_errors_name_option_and_value() {
        let mut s = Settings::new(SPECS);
        let e = s.set("server-port", "abc").expect_err("int");
        assert_eq!(
            e.to_string(),
            "the argument ('abc') for option 'server-port' is invalid"
        );
        let e = s.set("storage-ap", "-1").expect_err("negative uint");
        assert_eq!(
            e.to_string(),
            "the argument ('-1') for option 'storage-ap' is invalid"
        );
        assert!(s.set("server-port", "").is_err());
        assert!(s.set("server-port", "99999999999999999999").is_err());
        let e = s.set("time-watcher-enabled", "maybe").expect_err("bool");
        assert!(e.to_string().starts_with(
            "the argument ('maybe') for option 'time-watcher-enabled' is invalid. Valid choices"
        ));
        assert!(matches!(
            s.set("nope", "1"),
            Err(ConfigError::UnknownOption(n)) if n == "nope"
        ));
    }

    #[test]
    fn bool_words() {
        let mut s = Settings::new(SPECS);
        for (w, b) in [
            ("true", true),
            ("YES", true),
            ("on", true),
            ("1", true),
            ("False", false),
            ("no", false),
            ("OFF", false),
            ("0", false),
        ] {
            s.set("time-watcher-enabled", w).expect("valid bool");
            assert_eq!(
                s.bool("time-watcher-enabled").expect("bool"),
                Some(b),
                "{w}"
            );
        }
    }

    #[test]
    fn switch_values() {
        let mut s = Settings::new(SPECS);
        assert!(!s.switch("daemonize"));
        s.set("daemonize", "").expect("set");
        assert!(s.switch("daemonize"));
        s.set("daemonize", "anything").expect("set");
        assert!(s.switch("daemonize"));
        s.set("daemonize", "No").expect("set");
        assert!(!s.switch("daemonize"));
        assert!(s.is_set("daemonize"));
    }

    #[test]
    fn require_helper() {
        let mut s = Settings::new(SPECS);
        let e = s.require("data-dir").expect_err("missing");
        assert_eq!(e.to_string(), "option [data-dir] is required");
        s.set("data-dir", "/x").expect("set");
        assert_eq!(s.require("data-dir").expect("present"), "/x");
    }

    #[test]
    fn load_file_and_switch_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.conf");
        std::fs::write(
            &path,
            "daemonize = false\ndata-dir = /var/lib/x\nserver-port = 1\n",
        )
        .expect("write");
        let s = Settings::load_file(SPECS, &path).expect("load");
        assert!(!s.switch("daemonize"));
        assert_eq!(s.warnings.len(), 1);
        assert!(
            s.warnings[0].contains("would have enabled"),
            "{:?}",
            s.warnings
        );
        assert_eq!(s.int("server-port").expect("int"), Some(1));
        assert_eq!(s.config_path.as_deref(), Some(path.as_path()));

        std::fs::write(&path, "server-port = 2\n").expect("rewrite");
        let r = s.reload_file().expect("reload");
        assert_eq!(r.int("server-port").expect("int"), Some(2));
        assert!(!r.is_set("data-dir"));

        std::fs::write(&path, "server-port = x\n").expect("rewrite");
        assert!(s.reload_file().is_err());
    }

    #[test]
    fn reload_without_file_sets_nothing() {
        let mut s = Settings::new(SPECS);
        s.set("server-port", "7").expect("set");
        let r = s.reload_file().expect("reload");
        assert!(!r.is_set("server-port"));
    }
}
