//! Throwaway PostgreSQL and Redis servers that a fault test may stop and start: each on a free
//! loopback port, with its data in a temporary directory, stopped by its PID (never the shared
//! services of `services.rs`).
//!
//! PostgreSQL comes from `/usr/lib/postgresql/*/bin` (`initdb`, `pg_ctl`); as root, it runs as
//! the `postgres` user (initdb refuses root). Redis is `redis-server` from `PATH`. Without the
//! binaries the tests skip, or fail under `TESSERA_REQUIRE_SERVICES=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::services;

/// A free loopback port (bound and released: another process could take it in between, which
/// the start would then report).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Whether process `pid` still exists.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
}

/// Sends `signal` (e.g. `INT`) to `pid` and waits until it is gone (at most `give_up`).
fn signal_and_wait(pid: u32, signal: &str, give_up: Duration) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    let started = Instant::now();
    while alive(pid) && started.elapsed() < give_up {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server of its own.
pub struct ThrowawayPostgres {
    dir: TempDir,
    bin: PathBuf,
    as_postgres: bool,
    port: u16,
    pid: Option<u32>,
}

impl ThrowawayPostgres {
    /// Creates a cluster and starts it, or `None` (after a note) when PostgreSQL's server
    /// binaries are not installed.
    pub fn start() -> Option<ThrowawayPostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|versions| {
            versions
                .filter_map(Result::ok)
                .map(|version| version.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
                .max()
        });
        let Some(bin) = bin else {
            services::unavailable("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin");
            return None;
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the throwaway cluster's directory");
        }
        let mut postgres = ThrowawayPostgres {
            dir,
            bin,
            as_postgres,
            port: free_port(),
            pid: None,
        };
        let data = postgres.data();
        let output = postgres
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        postgres.start_again();
        Some(postgres)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command running `tool` from the PostgreSQL binaries, as `postgres` when we are root.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.stdin(Stdio::null());
        command
    }

    /// `postgres://` URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again, after [`ThrowawayPostgres::stop`]), on the same port and data;
    /// returns once it accepts connections.
    pub fn start_again(&mut self) {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            data.display()
        );
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("server.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("pg_ctl runs");
        let log = std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
        assert!(
            output.status.success(),
            "pg_ctl start: {}\n{log}",
            String::from_utf8_lossy(&output.stderr)
        );
        let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid");
        let pid = pid_file
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("a PID in postmaster.pid");
        self.pid = Some(pid);
    }

    /// Stops the server (fast shutdown: clients are disconnected) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            signal_and_wait(pid, "INT", Duration::from_secs(20));
        }
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            // Immediate shutdown: the data is thrown away anyway.
            signal_and_wait(pid, "QUIT", Duration::from_secs(10));
            if alive(pid) {
                signal_and_wait(pid, "KILL", Duration::from_secs(5));
            }
        }
    }
}

/// A Redis server of its own (no persistence).
pub struct ThrowawayRedis {
    dir: TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl ThrowawayRedis {
    /// Starts `redis-server` on a free port, or `None` (after a note) when it is not installed.
    pub fn start() -> Option<ThrowawayRedis> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            services::unavailable("redis-server is not installed");
            return None;
        }
        let mut redis = ThrowawayRedis {
            dir: tempfile::tempdir().expect("temporary directory"),
            port: free_port(),
            child: None,
        };
        redis.start_again();
        Some(redis)
    }

    /// `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), on the same port; returns once it answers.
    pub fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGKILL: an abrupt loss) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
