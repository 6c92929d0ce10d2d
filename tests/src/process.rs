//! The services as real processes: the binaries tests run are built from the
//! current sources before use, so a test never runs a stale binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// `target/<profile>/<name>`, rebuilt from the current sources (once per test process).
pub fn binary(package: &str, name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("executable path");
    // Test executables live in target/<profile>/deps/, binaries in target/<profile>/.
    let mut profile_dir = exe.parent().expect("executable directory").to_path_buf();
    if profile_dir.file_name().is_some_and(|d| d == "deps") {
        profile_dir = profile_dir
            .parent()
            .map(Path::to_path_buf)
            .expect("target/<profile>");
    }
    let path = profile_dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.args(["build", "--quiet", "-p", package, "--bin", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("running cargo build");
        assert!(status.success(), "building {name} failed");
        built.push(name.to_owned());
    }
    path
}

/// Sends SIGTERM and waits up to `grace` for the exit, then SIGKILLs.
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A service process started with a TOML configuration file of the test's own.
pub struct Service {
    pub name: &'static str,
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Service {
    /// Starts `name` from `package` with `config` as its `TRIBUTARY_CONFIG`.
    pub fn start(package: &str, name: &'static str, config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("tributary.toml");
        std::fs::File::create(&config_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("writing config");
        let log = std::fs::File::create(dir.path().join("service.log")).expect("log file");
        let child = Command::new(binary(package, name))
            .env("TRIBUTARY_CONFIG", &config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Service { name, child, dir }
    }

    /// The service's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    /// SIGTERM; the exit status if it exited within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        terminate(&mut self.child, grace)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `url` until it answers 2xx; panics with `context()` after `timeout`.
pub async fn wait_for_http_ok(url: &str, timeout: Duration, context: impl Fn() -> String) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer 2xx within {timeout:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `tributary` operator command, with none of the caller's
/// `TRIBUTARY_*` variables: only what the test sets configures it.
pub fn tributary_command() -> Command {
    let mut command = Command::new(binary("tributary-cli", "tributary"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TRIBUTARY_") {
            command.env_remove(key);
        }
    }
    command
}
