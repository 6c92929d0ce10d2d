//! ClickHouse access for tests: a private database per test on the local
//! server (`deploy/local/up.sh`, or `TRIBUTARY_TEST_CLICKHOUSE_URL`), with
//! every migration applied, and queries whose rows come back as JSON.

use serde_json::Value;
use tributary_clickhouse::ClickHouseSettings;

/// The local ClickHouse's HTTP interface.
pub fn shared_url() -> String {
    std::env::var("TRIBUTARY_TEST_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A uniquely named database (and its `_pii` twin) with every migration
/// applied; dropped when the value is dropped.
pub struct TestDatabase {
    pub settings: ClickHouseSettings,
    http: reqwest::Client,
    /// Leave the database in place when dropped (to look at it afterwards).
    pub keep: bool,
}

impl TestDatabase {
    pub async fn create(prefix: &str) -> TestDatabase {
        TestDatabase::create_at(&shared_url(), prefix).await
    }

    /// Like [`TestDatabase::create`], on the server at `url`.
    pub async fn create_at(url: &str, prefix: &str) -> TestDatabase {
        let settings = ClickHouseSettings {
            url: url.to_owned(),
            database: crate::unique(prefix).replace('-', "_"),
            // The local server is 18.16: see `[clickhouse] validation`.
            validation: false,
            ..ClickHouseSettings::default()
        };
        let client = tributary_clickhouse::client(&settings);
        tributary_clickhouse::apply_migrations(&client, &settings)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "applying migrations at {}: {err}\n(is ClickHouse running? deploy/local/up.sh starts it)",
                    settings.url
                )
            });
        TestDatabase {
            settings,
            http: reqwest::Client::new(),
            keep: false,
        }
    }

    /// An existing database on the local server, kept when dropped.
    pub fn existing(name: &str) -> TestDatabase {
        TestDatabase {
            settings: ClickHouseSettings {
                url: shared_url(),
                database: name.to_owned(),
                validation: false,
                ..ClickHouseSettings::default()
            },
            http: reqwest::Client::new(),
            keep: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.database
    }

    /// `sql` with `tributary` / `tributary_pii` renamed to this database.
    pub fn rename(&self, sql: &str) -> String {
        tributary_clickhouse::rename_databases(sql, self.name(), &self.settings.pii_database())
    }

    /// Runs `sql` (after renaming) and returns its rows as JSON objects.
    /// 64-bit integers come back as numbers.
    pub async fn query(&self, sql: &str) -> Vec<Value> {
        let sql = format!(
            "{} FORMAT JSONEachRow",
            self.rename(sql).trim().trim_end_matches(';')
        );
        let body = self.execute(&sql).await;
        body.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Runs a statement (after renaming) and returns the raw answer; panics
    /// with ClickHouse's message on failure.
    pub async fn execute(&self, sql: &str) -> String {
        let sql = self.rename(sql);
        let response = self
            .http
            .post(&self.settings.url)
            .query(&[("output_format_json_quote_64bit_integers", "0")])
            .body(sql.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ClickHouse at {}: {e}", self.settings.url));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "ClickHouse refused\n{sql}\n{status}: {text}"
        );
        text
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let url = self.settings.url.clone();
        let statements = [
            format!("DROP DATABASE IF EXISTS {}", self.settings.pii_database()),
            format!("DROP DATABASE IF EXISTS {}", self.name()),
        ];
        // Drop may run inside or outside a runtime: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let http = reqwest::Client::new();
                for statement in statements {
                    let _ = http.post(&url).body(statement).send().await;
                }
            });
        })
        .join();
    }
}

/// A ClickHouse server of the test's own (same binary and configuration as
/// the local one, on free ports), which the test may stop and restart
/// without disturbing other tests.
pub struct PrivateClickHouse {
    dir: tempfile::TempDir,
    pub http_port: u16,
    child: Option<std::process::Child>,
}

impl PrivateClickHouse {
    pub async fn start() -> PrivateClickHouse {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path();
        for sub in [
            "logs",
            "clickhouse/etc",
            "clickhouse/data",
            "clickhouse/tmp",
            "clickhouse/user_files",
            "clickhouse/format_schemas",
        ] {
            std::fs::create_dir_all(state.join(sub)).expect("state folders");
        }
        let (http_port, tcp_port) = (crate::free_port(), crate::free_port());
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let template =
            std::fs::read_to_string(format!("{repo}/deploy/local/clickhouse/config.xml.in"))
                .expect("config template");
        let config = template
            .replace("@STATE@", &state.to_string_lossy())
            .replace("@HTTP_PORT@", &http_port.to_string())
            .replace("@TCP_PORT@", &tcp_port.to_string());
        std::fs::write(state.join("clickhouse/etc/config.xml"), config).expect("config");
        std::fs::copy(
            format!("{repo}/deploy/local/clickhouse/users.xml"),
            state.join("clickhouse/etc/users.xml"),
        )
        .expect("users");
        let mut server = PrivateClickHouse {
            dir,
            http_port,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts the server (again) on the same ports and data; waits for `/ping`.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let config = self.dir.path().join("clickhouse/etc/config.xml");
        let child = std::process::Command::new("/usr/sbin/clickhouse-server")
            .arg(format!("--config-file={}", config.display()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting clickhouse-server (deploy/local/up.sh installs it)");
        self.child = Some(child);
        let ping = format!("{}/ping", self.url());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while reqwest::get(&ping)
            .await
            .map(|r| r.status().is_success())
            .ok()
            != Some(true)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "private ClickHouse on port {} did not answer; log:\n{}",
                self.http_port,
                std::fs::read_to_string(self.dir.path().join("logs/clickhouse-server.err.log"))
                    .unwrap_or_default()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Kills the server (no clean shutdown) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}
