//! Choosing the mode, setting up logging and the runtime.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::compat::{self, ConfigmapReloadArgs, Invocation};
use crate::plan::WatchPlan;
use crate::{logging, supervisor, watch};

enum Job {
    Watch(WatchPlan),
    Run(crate::cli::RunArgs),
    #[cfg(feature = "kube")]
    Sync(crate::cli::SyncArgs),
    #[cfg(feature = "kube")]
    Status(crate::status::StatusArgs),
}

pub fn run() -> anyhow::Result<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (job, log) = match compat::detect(&args, |k| std::env::var(k).ok()) {
        Invocation::Native(args) => {
            let cli = parse_or_exit::<Cli>(args);
            let job = match cli.command {
                Command::Watch(w) => Job::Watch(WatchPlan::from_args(w)),
                Command::Run(r) => Job::Run(r),
                #[cfg(feature = "kube")]
                Command::Sync(s) => Job::Sync(s),
                // Synchronous and quick: no runtime, no logging set-up.
                Command::Doctor(d) => return Ok(crate::doctor::run(d)),
                #[cfg(feature = "kube")]
                Command::Status(s) => Job::Status(s),
            };
            (job, cli.log)
        }
        Invocation::ConfigmapReload(args) => {
            let cmr = parse_or_exit::<ConfigmapReloadArgs>(compat::go_style_to_clap(&args));
            let log = cmr.log.clone();
            (Job::Watch(cmr.into_plan()), log)
        }
        Invocation::ConfigReloaderSidecar => {
            let (plan, log) = match compat::sidecar_plan(|k| std::env::var(k).ok()) {
                Ok(found) => found,
                Err(e) => Cli::command()
                    .error(clap::error::ErrorKind::MissingRequiredArgument, e)
                    .exit(),
            };
            (Job::Watch(plan), log)
        }
    };
    logging::init(&log);
    tracing::debug!(?log, "starting");
    // One thread is all a sidecar needs; it also keeps memory small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        match job {
            Job::Watch(plan) => watch::run(plan).await,
            Job::Run(args) => supervisor::run(args).await,
            #[cfg(feature = "kube")]
            Job::Sync(args) => crate::sync::run(args).await,
            #[cfg(feature = "kube")]
            Job::Status(args) => crate::status::run(args).await,
        }
    })
}

/// Parses with clap; bad flags print a usage error and exit with code 2.
fn parse_or_exit<P: Parser>(args: Vec<OsString>) -> P {
    let argv = std::iter::once(OsString::from("rekindle")).chain(args);
    let matches = P::command().get_matches_from(argv);
    P::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
