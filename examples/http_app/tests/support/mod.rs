//! Starting the example app as a real process and talking HTTP to it.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PATIENCE: Duration = Duration::from_secs(10);

/// The app, killed when dropped. Everything it writes (stdout and stderr) is kept.
pub struct App {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies each line of `stream` into `log`, so the app never blocks on a full pipe.
fn keep_lines(stream: impl Read + Send + 'static, log: &Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    let log = log.clone();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            log.lock().unwrap().push(line);
        }
    })
}

impl App {
    pub fn start(config: &Path) -> App {
        let mut child = Command::new(env!("CARGO_BIN_EXE_http_app"))
            .env("CONFIG_PATH", config)
            .env("PORT", "0")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            keep_lines(child.stdout.take().unwrap(), &log),
            keep_lines(child.stderr.take().unwrap(), &log),
        ];
        let mut app = App {
            child,
            port: 0,
            log,
            readers,
        };
        app.port = app.wait_for_log("listening", |lines| {
            lines.iter().find_map(|line| {
                let rest = line.split("port=").nth(1)?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
        });
        app
    }

    /// Waits until `check` finds what it looks for in the lines logged so far.
    pub fn wait_for_log<R>(
        &mut self,
        what: &str,
        mut check: impl FnMut(&[String]) -> Option<R>,
    ) -> R {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(found) = check(&self.log.lock().unwrap()) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the app exited ({status}) before {what}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Stops the app and returns everything it logged, to its last line.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.log_text()
    }

    /// `GET path`: the status line and the body.
    pub fn get_text(&self, path: &str) -> (String, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), body.to_owned())
    }

    /// `GET path`, which must answer 200 with JSON.
    pub fn get(&self, path: &str) -> Value {
        let (head, body) = self.get_text(path);
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body:?}"))
    }

    pub fn wait_for_config(&self, what: &str, mut ok: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let config = self.get("/config");
            if ok(&config) {
                return config;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last {config}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}
