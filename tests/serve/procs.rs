//! Real processes for the tests: a `redis-server` on a free loopback port with its own
//! folder, and `aicut serve` replicas as child processes. Both are killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port the OS says is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `redis-server` can be run; outside CI a missing one skips the Redis tests.
pub fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-server is not installed (scripts/test.sh installs it)"
        );
        eprintln!("note: redis-server not installed; skipping (apt-get install redis-server)");
    }
    found
}

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    appendonly: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one in `dir` (its data files live there), with or without the AOF.
    pub fn start(dir: &Path, appendonly: bool) -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            dir: dir.to_path_buf(),
            appendonly,
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again, on the same port and folder) and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
            .args(["--appendonly", if self.appendonly { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING").as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it the way an operator would (SIGTERM: the AOF is flushed) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "TERM");
            let _ = child.wait();
        }
    }

    /// One inline command; the first line of the answer.
    pub fn command(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line.trim_end().to_string())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends a signal by name with `kill` (no unsafe code in tests).
pub fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status();
}

/// An `aicut serve` child process.
pub struct Replica {
    pub url: String,
    child: Child,
}

impl Replica {
    /// Starts `aicut serve` on a free port with these extra flags, and waits until it
    /// listens (it prints its URL).
    pub fn start(args: &[&str]) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aicut"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .env_remove("AICUT_REDIS_URL")
            .env_remove("AICUT_SERVE_API_KEYS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("aicut serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stderr);
            let mut line = String::new();
            let mut sent = false;
            while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                if !sent && let Some(i) = line.find("http://") {
                    let url = line[i..].split_whitespace().next().unwrap().to_string();
                    let _ = tx.send(url);
                    sent = true;
                }
                line.clear();
            }
            // Keep draining so the child never blocks on a full pipe.
            let _ = lines.read_to_end(&mut Vec::new());
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("aicut serve printed its URL");
        Replica { url, child }
    }

    /// kill -9: no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as a service manager stops it; returns once it has exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        self.child.wait().unwrap()
    }

    pub fn child(&self) -> &Child {
        &self.child
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
