//! The three services as processes: started from their binaries with the
//! shared configuration, logging to a file, killed and started again.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Options;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Collector,
    Enricher,
    Activator,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Collector, Stage::Enricher, Stage::Activator];

    /// The binary's name, which is also the stage's.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Collector => "collector",
            Stage::Enricher => "enricher",
            Stage::Activator => "activator",
        }
    }
}

pub struct ServiceProcess {
    pub stage: Stage,
    pub port: u16,
    binary: PathBuf,
    config: PathBuf,
    pub log: PathBuf,
    clickhouse_password: Option<String>,
    child: Mutex<Option<Child>>,
}

impl ServiceProcess {
    pub fn start(
        stage: Stage,
        options: &Options,
        config: &Path,
        port: u16,
    ) -> anyhow::Result<Self> {
        let service = ServiceProcess {
            stage,
            port,
            binary: options.bin_dir.join(stage.name()),
            config: config.to_owned(),
            log: options.work_dir.join(format!("{}.log", stage.name())),
            clickhouse_password: options
                .clickhouse
                .password
                .as_ref()
                .map(|p| p.expose().to_owned()),
            child: Mutex::new(None),
        };
        service.restart()?;
        Ok(service)
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the process (again); its output is appended to the log.
    pub fn restart(&self) -> anyhow::Result<()> {
        let mut slot = self.child();
        anyhow::ensure!(slot.is_none(), "the {} is running", self.stage.name());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut command = Command::new(&self.binary);
        command
            .env("TRIBUTARY_CONFIG", &self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Secrets travel in the environment, not in the configuration file.
        if let Some(password) = &self.clickhouse_password {
            command.env("TRIBUTARY_CLICKHOUSE__PASSWORD", password);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        *slot = Some(child);
        Ok(())
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// An error (with the end of the log) if the process has exited.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            anyhow::bail!("the {} is not running", self.stage.name());
        };
        // `kill -0` tells whether it is still there without reaping it.
        if kill(Pid::from_raw(pid as i32), None).is_err()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"))
        {
            anyhow::bail!(
                "the {} exited; the end of its log ({}):\n{}",
                self.stage.name(),
                self.log.display(),
                self.log_tail(30)
            );
        }
        Ok(())
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGKILL: no shutdown, as in a crash.
    pub fn kill(&self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after `grace`. Whether it exited by itself.
    pub fn terminate(&self, grace: Duration) -> bool {
        let Some(mut child) = self.child().take() else {
            return true;
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Leaves the process running when this value is dropped (`--keep`).
    pub fn detach(&self) {
        self.child().take();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
