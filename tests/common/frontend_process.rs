//! The real `ants-relay` binary as one frontend of a cluster: started over a data directory
//! holding the shared relay key, its address read from its "relay listening" log line,
//! SIGKILLed and started again over the same directory.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::cluster::{share_key, CLUSTER_WAIT};

/// One `ants-relay --store nats://…` process (killed on drop).
pub struct FrontendProcess {
    binary: PathBuf,
    store: String,
    data: PathBuf,
    child: Option<Child>,
    addr: Option<SocketAddr>,
}

impl FrontendProcess {
    /// Starts `binary` on the cluster `store` over `data` (the shared key written there) and
    /// waits until it listens.
    pub async fn start(binary: PathBuf, store: String, data: PathBuf) -> FrontendProcess {
        share_key(&data);
        let mut frontend = FrontendProcess {
            binary,
            store,
            data,
            child: None,
            addr: None,
        };
        frontend.restart().await;
        frontend
    }

    /// The WebSocket URL, while the process runs.
    pub fn url(&self) -> Option<String> {
        self.addr.map(|addr| format!("ws://{addr}/ws"))
    }

    /// The HTTP address, while the process runs.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Its data directory (key, read mirror, `relay.log`).
    pub fn data(&self) -> &std::path::Path {
        &self.data
    }

    /// SIGKILLs the process and reaps it: no drain, no clean shutdown.
    pub async fn kill(&mut self) {
        self.addr = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the process (again) over its data directory on a fresh port and waits for its
    /// "relay listening" line; a start refused while the cluster settles (the process exits
    /// `UNAVAILABLE`) is tried again, within [`CLUSTER_WAIT`].
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the frontend still runs");
        let started = Instant::now();
        loop {
            let mut child = Command::new(&self.binary)
                .arg("--store")
                .arg(&self.store)
                .args(["--listen", "127.0.0.1:0", "--data"])
                .arg(&self.data)
                .env("ANTS_RELAY_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("start ants-relay");
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let listening = tokio::time::timeout(CLUSTER_WAIT, async {
                let mut log = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(at) = line
                        .find("addr=")
                        .filter(|_| line.contains("relay listening"))
                    {
                        let rest = &line[at + 5..];
                        let end = rest.find(' ').unwrap_or(rest.len());
                        return Ok(rest[..end].parse::<SocketAddr>().unwrap());
                    }
                    log.push(line);
                }
                Err(log)
            })
            .await
            .expect("ants-relay neither listened nor exited");
            match listening {
                Ok(addr) => {
                    // Keep draining the log so the process never blocks on a full pipe, into
                    // `relay.log` in its data directory (kept when a test fails).
                    let path = self.data.join("relay.log");
                    tokio::spawn(async move {
                        let mut file = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                            .ok();
                        while let Ok(Some(line)) = lines.next_line().await {
                            if let Some(file) = file.as_mut() {
                                let _ = writeln!(file, "{line}");
                            }
                        }
                    });
                    self.child = Some(child);
                    self.addr = Some(addr);
                    return;
                }
                Err(log) => {
                    let status = child.wait().await.unwrap();
                    let text = log.join("\n");
                    assert!(
                        text.contains("UNAVAILABLE") && started.elapsed() < CLUSTER_WAIT,
                        "ants-relay exited ({status}) without listening:\n{text}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
