//! Running a user's command line through `sh -c` with a deadline; shared by
//! `--exec` and `--validate`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::Signal;

use super::children::{Children, Exit};

/// How much of a failing command's stderr we keep for the log line.
const STDERR_TAIL: usize = 2048;

#[derive(Debug)]
pub struct Outcome {
    pub exit: Exit,
    /// The end of stderr, when it was captured.
    pub stderr_tail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("could not start `sh -c {command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout {
        command: String,
        timeout: Duration,
        stderr_tail: String,
    },
}

/// Runs `sh -c command` with `env` added, in its own process group (so that a
/// timeout kills whatever it started too). With `capture_stderr`, stderr is
/// read (its tail kept) instead of inherited.
pub async fn run(
    children: &Children,
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
    capture_stderr: bool,
) -> Result<Outcome, ShellError> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .process_group(0)
        .envs(env.iter().map(|(k, v)| (*k, v)));
    if capture_stderr {
        cmd.stderr(Stdio::piped());
    }
    let (running, mut child) = children
        .spawn(&mut cmd)
        .map_err(|source| ShellError::Spawn {
            command: command.to_owned(),
            source,
        })?;
    // A plain thread drains the pipe: a blocking read costs nothing while the
    // command runs, and it ends when the last writer closes the pipe.
    let reader = child.stderr.take().map(|mut stderr| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            if tail.len() > STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
            let _ = tx.send(String::from_utf8_lossy(&tail).trim().to_owned());
        });
        rx
    });
    // If this future is dropped (rekindle stopping, a newer change), the command and
    // whatever it started must not outlive it.
    let guard = KillOnDrop(Some(running.clone()));
    let finished = tokio::time::timeout(timeout, running.wait()).await;
    drop(guard.disarm());
    let exit = match finished {
        Ok(exit) => exit,
        Err(_) => {
            // The whole group: whatever the command started in the background goes too.
            let _ = running.signal_group(Signal::KILL);
            running.wait().await;
            let stderr_tail = collect(reader).await;
            return Err(ShellError::Timeout {
                command: command.to_owned(),
                timeout,
                stderr_tail,
            });
        }
    };
    Ok(Outcome {
        exit,
        stderr_tail: collect(reader).await,
    })
}

/// Kills a command's process group when dropped before the command ended.
struct KillOnDrop(Option<super::children::Running>);

impl KillOnDrop {
    fn disarm(mut self) -> Option<super::children::Running> {
        self.0.take()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(running) = self.0.take() {
            let _ = running.signal_group(Signal::KILL);
        }
    }
}

/// The captured stderr tail. A background process started by the command may
/// hold the pipe open after `sh` exits, so we wait only briefly for it.
async fn collect(reader: Option<tokio::sync::oneshot::Receiver<String>>) -> String {
    match reader {
        Some(rx) => tokio::time::timeout(Duration::from_secs(1), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => String::new(),
    }
}
