//! Command-line parsing (operations.md §1.1–1.3).
//!
//! Accepted spellings, as Boost.Program_options' default Unix style did in 1.3.4:
//!
//! * long options `--name value` and `--name=value`;
//! * unambiguous prefixes of long options (`--daemon`, `--conf=x`); an ambiguous prefix
//!   is an error;
//! * short options `-f value`, `-fvalue`, stuck flags `-sv`;
//! * no positional arguments.
//!
//! CLI-only options: `-f/--config`, `-p/--pid`, `-s/--stderr`, `-v/--version`,
//! `-h/--help`. Every [`OptSpec`] is also a long option.
//!
//! After the command line, the configuration file named by `-f` (if any) is read and
//! merged; a key already given on the command line keeps its command-line value.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, ColorChoice, Command};

use crate::error::ConfigError;
use crate::options::{OptKind, OptSpec, Settings};

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the daemon with these settings.
    Run(Settings),
    /// `-h/--help`: print this text on stdout and exit.
    Help(String),
    /// `-v/--version`: print this line on stdout and exit.
    Version(String),
}

/// The CLI-only options: (long, short, takes a value, help).
const CLI_OPTIONS: [(&str, char, bool, &str); 5] = [
    ("config", 'f', true, "path to the configuration file"),
    ("pid", 'p', true, "path to the pid file"),
    (
        "stderr",
        's',
        false,
        "write log lines to stderr instead of syslog",
    ),
    ("version", 'v', false, "display version and exit"),
    ("help", 'h', false, "display this help and exit"),
];

/// Parses the command line (`args[0]` is the program name, as from
/// [`std::env::args_os`]) and, unless help or version was asked for, the configuration
/// file named by `-f`.
///
/// `program` names the command for clap; `version` is the full line printed for
/// `--version` (e.g. `flare 1.3.4`). If both `--help` and `--version` are given, help
/// wins. Option errors are reported before help/version are considered.
///
/// Required options (`data-dir`) are *not* checked here; use [`Settings::require`].
/// Warnings that cannot be logged yet (a switch disabled with `false` in the file, `-s`
/// combined with `daemonize`) are collected in [`Settings::warnings`].
///
/// Option names of `specs` must not clash with `config`, `pid`, `stderr`, `version` or
/// `help` (clap panics on duplicate ids in debug builds).
pub fn parse(
    program: &'static str,
    version: &str,
    specs: &[OptSpec],
    args: Vec<OsString>,
) -> Result<Invocation, ConfigError> {
    let cmd = build_command(program, specs);
    let matches = cmd
        .try_get_matches_from(args)
        .map_err(|e| map_clap_error(&e, specs))?;

    if matches.get_flag("help") {
        return Ok(Invocation::Help(help_text(specs)));
    }
    if matches.get_flag("version") {
        return Ok(Invocation::Version(version.to_string()));
    }

    let mut settings = Settings::new(specs);
    settings.config_path = match os_value(&matches, "config", "config")? {
        Some(p) if p.is_empty() => {
            return Err(ConfigError::InvalidValue {
                option: "config".to_string(),
                value: p,
            })
        }
        p => p.map(PathBuf::from),
    };
    settings.pid_path = os_value(&matches, "pid", "pid")?.map(PathBuf::from);
    settings.stderr = matches.get_flag("stderr");

    for spec in specs {
        match spec.kind {
            OptKind::Switch => {
                if matches.get_flag(spec.name) {
                    settings.set(spec.name, "")?;
                }
            }
            _ => {
                if let Some(value) = os_value(&matches, spec.name, spec.name)? {
                    settings.set(spec.name, &value)?;
                }
            }
        }
    }

    if let Some(path) = settings.config_path.clone() {
        settings.merge_file(&path)?;
    }
    if settings.stderr && settings.switch("daemonize") {
        settings.warnings.push(
            "-s/--stderr together with daemonize: stderr is /dev/null after the fork, so log lines written after it are lost"
                .to_string(),
        );
    }
    Ok(Invocation::Run(settings))
}

/// The option summary printed for `--help` and after every option error: an empty line,
/// a `cli:` group with the five CLI-only options, then a `config:` group with every
/// option of `specs` (defaults shown as `(=value)`, reloadable options marked
/// `(dynamic)`).
pub fn help_text(specs: &[OptSpec]) -> String {
    let cli: Vec<(String, String)> = CLI_OPTIONS
        .iter()
        .map(|(long, short, takes_value, help)| {
            let left = if *takes_value {
                format!("-{short} [ --{long} ] arg")
            } else {
                format!("-{short} [ --{long} ]")
            };
            (left, (*help).to_string())
        })
        .collect();
    let config: Vec<(String, String)> = specs
        .iter()
        .map(|spec| {
            let mut left = format!("--{}", spec.name);
            if spec.kind != OptKind::Switch {
                left.push_str(" arg");
                if let Some(d) = spec.default {
                    left.push_str(&format!(" (={d})"));
                }
            }
            let mut help = spec.help.to_string();
            if spec.dynamic {
                if !help.is_empty() {
                    help.push(' ');
                }
                help.push_str("(dynamic)");
            }
            (left, help)
        })
        .collect();
    let width = cli
        .iter()
        .chain(config.iter())
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(0)
        + 2;

    let mut out = String::from("\n");
    for (title, rows) in [("cli", &cli), ("config", &config)] {
        out.push_str(title);
        out.push_str(":\n");
        for (left, help) in rows {
            let line = format!("  {left:<width$}{help}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn build_command(program: &'static str, specs: &[OptSpec]) -> Command {
    let mut cmd = Command::new(program)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .infer_long_args(true)
        .color(ColorChoice::Never);
    for (long, short, takes_value, _) in CLI_OPTIONS {
        let arg = Arg::new(long).long(long).short(short);
        let arg = if takes_value {
            arg.action(ArgAction::Set)
                .value_name("arg")
                .value_parser(clap::value_parser!(OsString))
        } else {
            arg.action(ArgAction::SetTrue)
        };
        cmd = cmd.arg(arg);
    }
    for spec in specs {
        let arg = Arg::new(spec.name).long(spec.name);
        let arg = match spec.kind {
            OptKind::Switch => arg.action(ArgAction::SetTrue),
            kind => {
                let arg = arg
                    .action(ArgAction::Set)
                    .value_name("arg")
                    .value_parser(clap::value_parser!(OsString));
                if matches!(kind, OptKind::Int | OptKind::UInt) {
                    // `--proxy-prior-netmask -1` must reach validation (and be rejected
                    // there for unsigned options with a message naming the value).
                    arg.allow_negative_numbers(true)
                } else {
                    arg
                }
            }
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

/// The value of a value-taking option as UTF-8 text.
fn os_value(matches: &ArgMatches, id: &str, option: &str) -> Result<Option<String>, ConfigError> {
    match matches.get_one::<OsString>(id) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Some(s) => Ok(Some(s.to_string())),
            None => Err(ConfigError::InvalidValue {
                option: option.to_string(),
                value: v.to_string_lossy().into_owned(),
            }),
        },
    }
}

/// All long option names (CLI-only and table), for ambiguity reports.
fn long_names(specs: &[OptSpec]) -> impl Iterator<Item = &str> {
    CLI_OPTIONS
        .iter()
        .map(|(long, _, _, _)| *long)
        .chain(specs.iter().map(|s| s.name))
}

fn context_str(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    }
}

/// `--server-port <arg>` (clap's rendering of an argument) -> `--server-port`.
fn option_of(rendered: &str) -> String {
    rendered
        .split([' ', '='])
        .next()
        .unwrap_or(rendered)
        .to_string()
}

fn map_clap_error(e: &clap::Error, specs: &[OptSpec]) -> ConfigError {
    let invalid_arg = context_str(e, ContextKind::InvalidArg);
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = invalid_arg.unwrap_or_default();
            if let Some(prefix) = arg.strip_prefix("--") {
                let prefix = prefix.split('=').next().unwrap_or(prefix);
                let candidates: Vec<String> = long_names(specs)
                    .filter(|n| n.starts_with(prefix))
                    .map(|n| format!("--{n}"))
                    .collect();
                if candidates.len() > 1 && !prefix.is_empty() {
                    return ConfigError::Ambiguous {
                        option: format!("--{prefix}"),
                        candidates,
                    };
                }
                if candidates.len() == 1 && arg.contains('=') {
                    // A unique (prefix) match on an option that takes no value.
                    return ConfigError::UnexpectedArgument(candidates[0].clone());
                }
                if prefix.is_empty() {
                    ConfigError::UnknownOption(arg)
                } else {
                    ConfigError::UnknownOption(format!("--{prefix}"))
                }
            } else if arg.starts_with('-') && arg.len() > 1 {
                ConfigError::UnknownOption(arg)
            } else {
                ConfigError::Positional(arg)
            }
        }
        ErrorKind::InvalidValue | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            ConfigError::MissingArgument(option_of(&invalid_arg.unwrap_or_default()))
        }
        ErrorKind::TooManyValues | ErrorKind::NoEquals => {
            ConfigError::UnexpectedArgument(option_of(&invalid_arg.unwrap_or_default()))
        }
        ErrorKind::ArgumentConflict => {
            let opt = option_of(&invalid_arg.unwrap_or_default());
            ConfigError::Duplicate(opt.trim_start_matches('-').to_string())
        }
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            ConfigError::Cli(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SPECS: &[OptSpec] = &[
        OptSpec::new("daemonize", OptKind::Switch, None, false, "run as daemon"),
        OptSpec::new("data-dir", OptKind::Str, None, false, "data directory"),
        OptSpec::new(
            "log-facility",
            OptKind::Str,
            Some(""),
            true,
            "syslog facility",
        ),
        OptSpec::new(
            "max-connection",
            OptKind::Int,
            Some("128"),
            true,
            "max concurrent connections to accept",
        ),
        OptSpec::new("server-name", OptKind::Str, None, false, "my server name"),
        OptSpec::new(
            "server-port",
            OptKind::Int,
            Some("12121"),
            false,
            "my server port",
        ),
        OptSpec::new(
            "server-socket",
            OptKind::Str,
            Some(""),
            false,
            "unix socket",
        ),
        OptSpec::new("stack-size", OptKind::Int, Some("128"), false, "stack"),
        OptSpec::new("storage-large", OptKind::Switch, None, false, "large"),
        OptSpec::new(
            "proxy-prior-netmask",
            OptKind::UInt,
            Some("0"),
            false,
            "netmask",
        ),
        OptSpec::new(
            "time-watcher-enabled",
            OptKind::Bool,
            Some("false"),
            true,
            "watchdog",
        ),
        OptSpec::new(
            "cluster-replication",
            OptKind::Bool,
            Some("false"),
            true,
            "cluster replication",
        ),
        OptSpec::new(
            "cluster-replication-mode",
            OptKind::Str,
            Some("duplicate"),
            true,
            "mode",
        ),
    ];

    fn run(args: &[&str]) -> Result<Invocation, ConfigError> {
        let mut v: Vec<OsString> = vec!["flared".into()];
        v.extend(args.iter().map(OsString::from));
        parse("flared", "flare 1.3.4", SPECS, v)
    }

    fn settings(args: &[&str]) -> Settings {
        match run(args) {
            Ok(Invocation::Run(s)) => s,
            other => panic!("expected Run, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> ConfigError {
        match run(args) {
            Err(e) => e,
            Ok(other) => panic!("expected error, got {other:?}"),
        }
    }

    #[test]
    fn long_options_both_spellings() {
        let s = settings(&["--data-dir", "/x", "--server-port=22120", "--daemonize"]);
        assert_eq!(s.str("data-dir"), Some("/x"));
        assert_eq!(s.int("server-port").expect("int"), Some(22120));
        assert!(s.switch("daemonize"));
        assert!(!s.switch("storage-large"));
        assert!(!s.stderr);
        assert!(s.config_path.is_none());
    }

    #[test]
    fn prefixes() {
        let s = settings(&["--daemon", "--data=/d", "--max-conn", "5"]);
        assert!(s.switch("daemonize"));
        assert_eq!(s.str("data-dir"), Some("/d"));
        assert_eq!(s.int("max-connection").expect("int"), Some(5));
        assert!(matches!(run(&["--vers"]), Ok(Invocation::Version(v)) if v == "flare 1.3.4"));
        assert!(matches!(run(&["--he"]), Ok(Invocation::Help(_))));
    }

    #[test]
    fn exact_name_beats_longer_names() {
        let s = settings(&[
            "--cluster-replication",
            "on",
            "--cluster-replication-mode=forward",
        ]);
        assert_eq!(s.bool("cluster-replication").expect("bool"), Some(true));
        assert_eq!(s.str("cluster-replication-mode"), Some("forward"));
        assert!(matches!(
            error(&["--cluster-rep", "x"]),
            ConfigError::Ambiguous { .. }
        ));
    }

    #[test]
    fn cli_only_names_take_part_in_prefix_matching() {
        // `--stderr` (CLI-only) vs `--stack-size` and `--storage-large` share `--st`.
        let e = error(&["--st"]);
        match e {
            ConfigError::Ambiguous { option, candidates } => {
                assert_eq!(option, "--st");
                assert_eq!(
                    candidates,
                    vec!["--stderr", "--stack-size", "--storage-large"]
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ambiguous_prefix() {
        let e = error(&["--server", "x"]);
        assert_eq!(
            e.to_string(),
            "option '--server' is ambiguous and matches '--server-name', '--server-port', and '--server-socket'"
        );
        let e = error(&["--server=x"]);
        assert!(matches!(e, ConfigError::Ambiguous { .. }), "{e:?}");
    }

    #[test]
    fn stuck_short_flags_and_attached_values() {
        assert!(matches!(run(&["-sv"]), Ok(Invocation::Version(_))));
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("flared.conf");
        std::fs::write(&conf, "data-dir = /from-file\n").expect("write");
        let arg = format!("-f{}", conf.display());
        let s = settings(&[&arg, "-s", "-p", "/run/flared.pid"]);
        assert_eq!(s.config_path.as_deref(), Some(conf.as_path()));
        assert_eq!(
            s.pid_path.as_deref(),
            Some(std::path::Path::new("/run/flared.pid"))
        );
        assert!(s.stderr);
        assert_eq!(s.str("data-dir"), Some("/from-file"));
        let s = settings(&["-s", "-p/run/x.pid"]);
        assert_eq!(
            s.pid_path.as_deref(),
            Some(std::path::Path::new("/run/x.pid"))
        );
        let s = settings(&["--pid=/a", "--conf", conf.to_str().expect("utf8")]);
        assert_eq!(s.pid_path.as_deref(), Some(std::path::Path::new("/a")));
        assert_eq!(s.str("data-dir"), Some("/from-file"));
    }

    #[test]
    fn help_and_version() {
        match run(&["-h"]) {
            Ok(Invocation::Help(text)) => {
                assert!(text.starts_with("\ncli:\n"), "{text}");
                assert!(text.contains("\nconfig:\n"));
                assert!(text.contains("-f [ --config ] arg"));
                assert!(text.contains("-s [ --stderr ]"));
                assert!(text.contains("--max-connection arg (=128)"));
                let line = text
                    .lines()
                    .find(|l| l.contains("--max-connection"))
                    .expect("line");
                assert!(line.ends_with("(dynamic)"), "{line}");
                let line = text
                    .lines()
                    .find(|l| l.contains("--server-port"))
                    .expect("line");
                assert!(!line.ends_with("(dynamic)"), "{line}");
                assert!(text.contains("  --daemonize "));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(run(&["--version"]), Ok(Invocation::Version(_))));
        assert!(matches!(run(&["-v", "-h"]), Ok(Invocation::Help(_))));
        // Help does not read the config file.
        assert!(matches!(
            run(&["-h", "-f", "/nonexistent/x.conf"]),
            Ok(Invocation::Help(_))
        ));
    }

    #[test]
    fn unknown_options_and_positionals() {
        let e = error(&["--nope"]);
        assert_eq!(e.to_string(), "unrecognised option '--nope'");
        let e = error(&["--nope=1"]);
        assert_eq!(e.to_string(), "unrecognised option '--nope'");
        let e = error(&["-f", ""]);
        assert!(matches!(e, ConfigError::InvalidValue { .. }), "{e:?}");
        let e = error(&["-x"]);
        assert_eq!(e.to_string(), "unrecognised option '-x'");
        let e = error(&["stray"]);
        assert!(
            matches!(e, ConfigError::Positional(ref w) if w == "stray"),
            "{e:?}"
        );
    }

    #[test]
    fn missing_and_unexpected_arguments() {
        let e = error(&["--data-dir"]);
        assert_eq!(
            e.to_string(),
            "the required argument for option '--data-dir' is missing"
        );
        let e = error(&["-f"]);
        assert!(
            matches!(e, ConfigError::MissingArgument(ref o) if o == "--config"),
            "{e:?}"
        );
        let e = error(&["--daemonize=yes"]);
        assert_eq!(
            e.to_string(),
            "option '--daemonize' does not take any arguments"
        );
        let e = error(&["--daemon=yes"]);
        assert!(matches!(e, ConfigError::UnexpectedArgument(_)), "{e:?}");
    }

    #[test]
    fn invalid_values() {
        let e = error(&["--server-port", "abc"]);
        assert_eq!(
            e.to_string(),
            "the argument ('abc') for option 'server-port' is invalid"
        );
        let s = settings(&["--max-connection", "-1"]);
        assert_eq!(s.int("max-connection").expect("int"), Some(-1));
        let e = error(&["--proxy-prior-netmask", "-1"]);
        assert_eq!(
            e.to_string(),
            "the argument ('-1') for option 'proxy-prior-netmask' is invalid"
        );
        let e = error(&["--time-watcher-enabled", "maybe"]);
        assert!(matches!(e, ConfigError::InvalidBool { .. }));
        let s = settings(&["--time-watcher-enabled", "on", "--server-socket", ""]);
        assert_eq!(s.bool("time-watcher-enabled").expect("bool"), Some(true));
        assert_eq!(s.str("server-socket"), Some(""));
        assert!(s.is_set("server-socket"));
    }

    #[test]
    fn duplicates_on_cli() {
        let e = error(&["--server-port", "1", "--server-port", "2"]);
        assert_eq!(
            e.to_string(),
            "option 'server-port' cannot be specified more than once"
        );
    }

    #[test]
    fn cli_beats_file() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        writeln!(
            f,
            "server-port = 22121\nmax-connection = 64 # comment\ndata-dir = /var/lib/flared"
        )
        .expect("write");
        let path = f.path().to_str().expect("utf8").to_string();
        let s = settings(&["-f", &path, "--server-port", "22120"]);
        assert_eq!(s.int("server-port").expect("int"), Some(22120));
        assert_eq!(s.int("max-connection").expect("int"), Some(64));
        assert_eq!(s.str("data-dir"), Some("/var/lib/flared"));
        // A reload sees only the file.
        let r = s.reload_file().expect("reload");
        assert_eq!(r.int("server-port").expect("int"), Some(22121));
    }

    #[test]
    fn file_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.conf");
        let p = path.to_str().expect("utf8").to_string();

        let e = error(&["-f", &p]);
        assert_eq!(e.to_string(), format!("{p} not found"));

        std::fs::write(&path, "stderr = 1\n").expect("write");
        assert_eq!(
            error(&["-f", &p]).to_string(),
            "unrecognised option 'stderr'"
        );

        std::fs::write(&path, "server-port = 1\nserver-port = 2\n").expect("write");
        assert_eq!(
            error(&["-f", &p]).to_string(),
            "option 'server-port' cannot be specified more than once"
        );

        std::fs::write(&path, "daemonize\n").expect("write");
        assert_eq!(
            error(&["-f", &p]).to_string(),
            "the options configuration file contains an invalid line 'daemonize'"
        );

        std::fs::write(&path, "server-port = abc\n").expect("write");
        assert_eq!(
            error(&["-f", &p]).to_string(),
            "the argument ('abc') for option 'server-port' is invalid"
        );

        // A file value is validated even when the CLI overrides it.
        assert!(run(&["-f", &p, "--server-port", "1"]).is_err());

        std::fs::write(&path, "serv = 1\n").expect("write");
        assert_eq!(error(&["-f", &p]).to_string(), "unrecognised option 'serv'");
    }

    #[test]
    fn switch_in_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.conf");
        let p = path.to_str().expect("utf8").to_string();
        std::fs::write(&path, "daemonize = false\nstorage-large = whatever\n").expect("write");
        let s = settings(&["-f", &p]);
        assert!(!s.switch("daemonize"));
        assert!(s.switch("storage-large"));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        // CLI presence beats the file's "false".
        let s = settings(&["-f", &p, "--daemonize"]);
        assert!(s.switch("daemonize"));
        assert!(s.warnings.is_empty());
        // -s with daemonize is warned about.
        let s = settings(&["-s", "--daemonize"]);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("/dev/null"));
    }
}
