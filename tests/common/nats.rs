//! A 3-node NATS JetStream cluster on loopback, for tests: three `nats-server` processes on
//! free ports, one config file each, readiness polled on each server's `/healthz` (never a
//! fixed sleep), SIGKILL and restart of single servers, and everything stopped and removed on
//! drop (also when a test panics).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a cluster may take to become healthy before a test fails (a hang guard, not a
/// performance assertion: the loops poll and return as soon as the condition holds).
pub const CLUSTER_PATIENCE: Duration = Duration::from_secs(90);

/// The `nats-server` binary: `$NATS_SERVER`, or `nats-server` on `PATH` (Debian installs it in
/// `/usr/sbin`, which is searched too).
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .expect("nats-server not found: run scripts/setup.sh (apt-get install nats-server)")
}

struct Node {
    name: String,
    client_port: u16,
    config: PathBuf,
    monitor_port: u16,
    child: Option<Child>,
}

/// Three `nats-server`s forming one JetStream cluster on 127.0.0.1.
pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
    /// Each server runs under a shell that stops it when this process ends (see
    /// [`shared_store_url`]); `kill` then stops the shell only.
    tied: bool,
}

/// A store URL on a cluster shared by every test of this test binary (started on first use),
/// in a namespace of its own for the data directory `data`: a relay restarted over the same
/// directory finds its log again, and relays over other directories do not see it. The
/// servers stop when the test process exits, however it exits.
///
/// For `ANTS_TEST_STORE=nats`, which runs the relay suites on the JetStream store
/// (`tests/common/relay.rs`).
pub fn shared_store_url(data: &Path) -> String {
    use std::hash::{Hash, Hasher};
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let url = URL.get_or_init(|| {
        // Started on a thread of its own: the caller may be inside a runtime.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let cluster = runtime.block_on(NatsCluster::start_tied("shared"));
            let url = cluster.url();
            // Never dropped: its servers end with the process.
            std::mem::forget(cluster);
            url
        })
        .join()
        .expect("start the shared nats cluster")
    });
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    format!("{url}?namespace=t{:016x}", hasher.finish())
}

/// `count` ports that were free a moment ago (all bound at once, so they are distinct).
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Whether the server's monitoring endpoint answers `/healthz` with 200 (JetStream is up, the
/// meta group has a leader and this server's streams are current).
fn healthy(monitor_port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", monitor_port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}

impl NatsCluster {
    /// Writes the three configs under a fresh temp dir, starts the servers and waits until
    /// every one is healthy. Ports are picked free, but another process may take one before a
    /// server binds it (other tests start clusters at the same time): a server that exits
    /// while starting makes the whole cluster start again on new ports, up to 5 times.
    pub async fn start(name: &str) -> NatsCluster {
        Self::start_with(name, false).await
    }

    /// Like [`NatsCluster::start`], with servers that stop when this process ends.
    async fn start_tied(name: &str) -> NatsCluster {
        Self::start_with(name, true).await
    }

    async fn start_with(name: &str, tied: bool) -> NatsCluster {
        for attempt in 1..=5 {
            match NatsCluster::try_start(name, attempt, tied).await {
                Ok(cluster) => return cluster,
                Err(exited) if attempt < 5 => {
                    eprintln!("nats cluster {name}: {exited} exited while starting (a port taken?); again on new ports");
                }
                Err(exited) => {
                    panic!("nats cluster {name}: {exited} exited while starting, 5 times")
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    async fn try_start(name: &str, attempt: u32, tied: bool) -> Result<NatsCluster, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "ants-nats-{name}-{}-{nanos}-{attempt}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ports = free_ports(9);
        let (clients, rest) = ports.split_at(3);
        let (routes, monitors) = rest.split_at(3);
        let mut nodes = Vec::new();
        for i in 0..3 {
            let name = format!("n{}", i + 1);
            let config = dir.join(format!("{name}.conf"));
            write_config(
                &config,
                &dir,
                &name,
                clients[i],
                monitors[i],
                routes[i],
                routes,
            );
            nodes.push(Node {
                name,
                client_port: clients[i],
                config,
                monitor_port: monitors[i],
                child: None,
            });
        }
        let mut cluster = NatsCluster { dir, nodes, tied };
        for i in 0..3 {
            cluster.spawn(i);
        }
        for i in 0..3 {
            if !cluster.wait_started(i).await {
                // Dropping the cluster stops the other servers and removes the directory.
                return Err(cluster.nodes[i].name.clone());
            }
        }
        Ok(cluster)
    }

    /// Like [`NatsCluster::wait_healthy`], but `false` as soon as the server has exited.
    async fn wait_started(&mut self, i: usize) -> bool {
        let started = Instant::now();
        while !healthy(self.nodes[i].monitor_port) {
            let exited = self.nodes[i]
                .child
                .as_mut()
                .map_or(true, |child| !matches!(child.try_wait(), Ok(None)));
            if exited {
                return false;
            }
            assert!(
                started.elapsed() < CLUSTER_PATIENCE,
                "{} not healthy after {:?}; log: {}",
                self.nodes[i].name,
                CLUSTER_PATIENCE,
                self.dir
                    .join(format!("{}.log", self.nodes[i].name))
                    .display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// All three client addresses, the way the relay's `--store` takes them.
    pub fn url(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.client_port))
            .collect();
        format!("nats://{}", addrs.join(","))
    }

    /// Server `i`'s `server_name` (`n1`, `n2`, `n3`).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the server named `name`.
    pub fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no server {name}"))
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "{} already running", node.name);
        let child = if self.tied {
            // The shell ends with the server; its background reader kills the server when
            // this process's end of the stdin pipe closes (at exit, even by a signal), and
            // removes the cluster's directory.
            Command::new("sh")
                .arg("-c")
                // (A background job's stdin is /dev/null: the pipe is read through fd 3.)
                .arg(concat!(
                    r#"exec 3<&0; "$0" -c "$1" & pid=$!; "#,
                    r#"(read _ <&3; kill -9 $pid; rm -rf "$2") & wait $pid"#
                ))
                .arg(nats_server_binary())
                .arg(&node.config)
                .arg(&self.dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nats-server")
        } else {
            Command::new(nats_server_binary())
                .arg("-c")
                .arg(&node.config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nats-server")
        };
        node.child = Some(child);
    }

    /// Polls server `i`'s `/healthz` until it answers 200.
    pub async fn wait_healthy(&self, i: usize) {
        let node = &self.nodes[i];
        let started = Instant::now();
        while !healthy(node.monitor_port) {
            assert!(
                started.elapsed() < CLUSTER_PATIENCE,
                "{} not healthy after {:?}; log: {}",
                node.name,
                CLUSTER_PATIENCE,
                self.dir.join(format!("{}.log", node.name)).display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs server `i` and reaps it (no clean shutdown: what a machine loss looks like).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again over its old store directory (does not wait).
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }
}

fn write_config(
    path: &Path,
    dir: &Path,
    name: &str,
    client_port: u16,
    monitor_port: u16,
    route_port: u16,
    all_routes: &[u16],
) {
    let routes: Vec<String> = all_routes
        .iter()
        .filter(|&&p| p != route_port)
        .map(|p| format!("nats-route://127.0.0.1:{p}"))
        .collect();
    let text = format!(
        "server_name: {name}\n\
         listen: 127.0.0.1:{client_port}\n\
         http: 127.0.0.1:{monitor_port}\n\
         log_file: \"{log}\"\n\
         jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n  max_file_store: 2GB\n}}\n\
         cluster {{\n  name: ants-test\n  listen: 127.0.0.1:{route_port}\n  routes: [{routes}]\n}}\n",
        log = dir.join(format!("{name}.log")).display(),
        store = dir.join(name).display(),
        routes = routes.join(", "),
    );
    std::fs::write(path, text).unwrap();
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
