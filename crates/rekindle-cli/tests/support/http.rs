//! A loopback HTTP server with a scripted answer per request, recording what it
//! received. Bounded: it serves at most `max` connections, each with a read
//! timeout, and stops when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What to do with the n-th request (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Read the request, then hold the connection without answering until the
    /// client closes it.
    Hang,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    open: AtomicUsize,
    max_open: AtomicUsize,
    stop: AtomicBool,
}

#[derive(Debug)]
pub struct Server {
    pub port: u16,
    state: Arc<State>,
}

impl Server {
    pub fn start(max: usize, answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        let shared = state.clone();
        let answer = Arc::new(answer);
        thread::spawn(move || {
            for (n, stream) in listener.incoming().take(max).enumerate() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (state, answer) = (shared.clone(), answer.clone());
                thread::spawn(move || serve(stream, n, &state, &*answer));
            }
        });
        Server { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().expect("lock").len()
    }

    /// The most connections ever open at once.
    pub fn max_open(&self) -> usize {
        self.state.max_open.load(Ordering::SeqCst)
    }

    pub fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    stream: TcpStream,
    n: usize,
    state: &State,
    answer: &(dyn Fn(usize) -> Answer + Send + Sync),
) {
    // A client that closed its previous connection right before opening this one
    // is not piling up, but the thread serving that one may not have seen the
    // close yet: wait for it (bounded) before counting this connection as a second.
    let start = std::time::Instant::now();
    while state.open.load(Ordering::SeqCst) > 0 && start.elapsed() < Duration::from_secs(3) {
        thread::sleep(Duration::from_millis(5));
    }
    let now = state.open.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_open.fetch_max(now, Ordering::SeqCst);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => {
            state.open.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    });
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) > 0 {
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        state.requests.lock().expect("lock").push(Request {
            method,
            path,
            headers,
        });
        let mut stream = stream;
        match answer(n) {
            Answer::Status(code) => {
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
            Answer::Hang => {
                // Until the client gives up and closes (read returns 0) or errors.
                let mut rest = String::new();
                while reader.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {
                    rest.clear();
                }
            }
        }
    }
    state.open.fetch_sub(1, Ordering::SeqCst);
}
