//! `flare-admin`: the operator's tool for a flare cluster, with the
//! sub-commands, options and word order of flare-tools 0.7's `flare-admin`
//! (and `flare-stats`, `flare-ping`, `flare-part` when called by those
//! names). See USAGE.md §15.

mod change;
mod cli;
mod client;
mod data;
mod dumpfile;
mod error;
mod inspect;
mod spec;
mod ui;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::AdminError;
use crate::ui::Ctx;

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::argv());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flare-admin: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(async {
        let ctx = match Ctx::new(&cli.global) {
            Ok(c) => c,
            Err(e) => return report(e),
        };
        match run(&ctx, cli.command).await {
            Ok(code) => code,
            Err(e) => {
                ctx.log(&format!("error: {e}"));
                report(e)
            }
        }
    });
    ExitCode::from(code)
}

fn report(e: AdminError) -> u8 {
    eprintln!("flare-admin: {e}");
    e.exit_code() as u8
}

async fn run(ctx: &Ctx, command: Command) -> Result<u8, AdminError> {
    match command {
        Command::List(a) => inspect::list(ctx, a).await,
        Command::Stats(a) => inspect::stats(ctx, a).await,
        Command::Ping(a) => inspect::ping(ctx, a).await,
        Command::Threads(a) => inspect::threads(ctx, a).await,
        Command::Index(a) => inspect::index(ctx, a).await,
        Command::Summary(a) => inspect::summary(ctx, a).await,
        Command::Part(a) => inspect::part(ctx, a).await,
        Command::Master(a) => change::master(ctx, a).await,
        Command::Slave(a) => change::slave(ctx, a).await,
        Command::Balance(a) => change::balance(ctx, a).await,
        Command::Down(a) => change::down(ctx, a).await,
        Command::Activate(a) => change::activate(ctx, a).await,
        Command::Remove(a) => change::remove(ctx, a).await,
        Command::Reconstruct(a) => change::reconstruct(ctx, a).await,
        Command::Dump(a) => data::dump(ctx, a).await,
        Command::Dumpkey(a) => data::dumpkey(ctx, a).await,
        Command::Restore(a) => data::restore(ctx, a).await,
        Command::Verify(a) => data::verify(ctx, a).await,
    }
}
