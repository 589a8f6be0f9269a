//! flarei: the flare-rs index server.
//!
//! Placeholder until the index server lands: it answers `--help` and
//! `--version`, and refuses to run with a clear message.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!("flare {}", flare_proto::PACKAGE_VERSION);
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("flarei: the flare-rs index server (not implemented in this build yet)");
        return ExitCode::SUCCESS;
    }
    eprintln!("flarei: the index server is not implemented in this build yet; run flared standalone (see README.md)");
    ExitCode::from(255)
}
