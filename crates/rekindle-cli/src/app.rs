//! Choosing the mode, setting up logging and the runtime.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command, LogArgs};
use crate::compat::{self, ConfigmapReloadArgs, Invocation};
use crate::plan::WatchPlan;
use crate::{logging, supervisor, watch};

/// What the command line asks for, decided before any runtime or logging exists.
pub(crate) enum Job {
    Watch(WatchPlan),
    Run(crate::cli::RunArgs),
    #[cfg(feature = "kube")]
    Sync(crate::cli::SyncArgs),
    #[cfg(feature = "kube")]
    Status(crate::status::StatusArgs),
    /// Synchronous and quick: runs without a runtime or logging set-up.
    Doctor(crate::doctor::DoctorArgs),
}

/// Runs the command line of this process.
pub fn run() -> anyhow::Result<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (job, log) = match parse(&args, |k| std::env::var(k).ok()) {
        Ok(parsed) => parsed,
        // Usage errors exit with code 2; --help and --version with 0.
        Err(error) => error.exit(),
    };
    let job = match job {
        Job::Doctor(args) => return Ok(crate::doctor::run(args)),
        job => job,
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
            Job::Doctor(_) => unreachable!("doctor runs before the runtime starts"),
        }
    })
}

/// Decides the job from the arguments (without the program name) and the
/// environment `env`, in any of the three command-line dialects. It reads no
/// files and starts nothing, so it can be fed arbitrary input; only clap reads
/// the process environment, for the `REKINDLE_LOG_*` defaults of the log flags.
pub(crate) fn parse(
    args: &[OsString],
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Job, LogArgs), clap::Error> {
    Ok(match compat::detect(args, &env) {
        Invocation::Native(args) => {
            let cli = try_parse::<Cli>(args)?;
            let job = match cli.command {
                Command::Watch(w) => Job::Watch(WatchPlan::from_args(w)),
                Command::Run(r) => Job::Run(r),
                #[cfg(feature = "kube")]
                Command::Sync(s) => Job::Sync(s),
                Command::Doctor(d) => Job::Doctor(d),
                #[cfg(feature = "kube")]
                Command::Status(s) => Job::Status(s),
            };
            (job, cli.log)
        }
        Invocation::ConfigmapReload(args) => {
            let cmr = try_parse::<ConfigmapReloadArgs>(compat::go_style_to_clap(&args))?;
            let log = cmr.log.clone();
            (Job::Watch(cmr.into_plan()), log)
        }
        Invocation::ConfigReloaderSidecar => {
            let (plan, log) = compat::sidecar_plan(&env).map_err(|e| {
                Cli::command().error(clap::error::ErrorKind::MissingRequiredArgument, e)
            })?;
            (Job::Watch(plan), log)
        }
    })
}

/// Parses with clap, as the program `rekindle`.
fn try_parse<P: Parser>(args: Vec<OsString>) -> Result<P, clap::Error> {
    let argv = std::iter::once(OsString::from("rekindle")).chain(args);
    let matches = P::command().try_get_matches_from(argv)?;
    P::from_arg_matches(&matches)
}
