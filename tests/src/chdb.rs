//! A modern ClickHouse engine for tests: chdb-core (26.9), run in a Python
//! child process that `deploy/local/up.sh` installs (`.local/chdb`). The local
//! server is ClickHouse 18.16; running the same migrations and dashboard SQL
//! here checks that they also work on the modern servers production runs.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};
use tributary_clickhouse::ClickHouseSettings;
use tributary_clickhouse::migrations::MIGRATIONS;

const SERVER: &str = include_str!("chdb/server.py");

/// The Python interpreter with chdb-core installed:
/// `TRIBUTARY_TEST_CHDB_PYTHON`, else the one `deploy/local/up.sh` installs.
pub fn python() -> PathBuf {
    if let Ok(python) = std::env::var("TRIBUTARY_TEST_CHDB_PYTHON") {
        return python.into();
    }
    let state = std::env::var("TRIBUTARY_LOCAL_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.local")));
    state.join("chdb/bin/python")
}

/// One chdb session on a private folder, removed when dropped.
pub struct Chdb {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Chdb {
    pub fn open() -> Chdb {
        let dir = tempfile::tempdir().expect("temp dir");
        let python = python();
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(SERVER)
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} for chdb: {e} (deploy/local/up.sh installs chdb-core)",
                    python.display()
                )
            });
        let input = child.stdin.take().expect("stdin");
        let output = BufReader::new(child.stdout.take().expect("stdout"));
        Chdb {
            child,
            input,
            output,
            _dir: dir,
        }
    }

    fn request(&mut self, sql: &str, data: Option<&str>) -> Result<String, String> {
        let line = json!({ "sql": sql, "data": data }).to_string();
        writeln!(self.input, "{line}").expect("writing to chdb");
        self.input.flush().expect("writing to chdb");
        let mut answer = String::new();
        self.output
            .read_line(&mut answer)
            .expect("reading from chdb");
        assert!(!answer.is_empty(), "chdb exited (is chdb-core installed?)");
        let answer: Value = serde_json::from_str(&answer).expect("chdb answers JSON");
        match (answer["ok"].as_str(), answer["error"].as_str()) {
            (Some(ok), _) => Ok(ok.to_owned()),
            (_, Some(error)) => Err(error.to_owned()),
            _ => Err(format!("unexpected answer {answer}")),
        }
    }

    /// Runs a statement; panics with the engine's message on failure.
    pub fn execute(&mut self, sql: &str) -> String {
        self.request(sql, None)
            .unwrap_or_else(|e| panic!("chdb refused\n{sql}\n{e}"))
    }

    /// Every migration, as the activator applies them, on databases named as
    /// in the files (`tributary`, `tributary_pii`).
    pub fn apply_migrations(&mut self) {
        self.apply_migrations_through(u32::MAX);
    }

    /// The migrations up to and including `version`.
    pub fn apply_migrations_through(&mut self, version: u32) {
        let settings = ClickHouseSettings::default();
        self.execute(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            settings.database
        ));
        for migration in MIGRATIONS.iter().filter(|m| m.version <= version) {
            for statement in migration.statements(&settings) {
                self.request(&statement, None).unwrap_or_else(|e| {
                    panic!(
                        "migration {} does not run on chdb:\n{statement}\n{e}",
                        migration.name
                    )
                });
            }
        }
    }

    /// Inserts JSONEachRow `rows` into `table`.
    pub fn insert_json_each_row(&mut self, table: &str, rows: &[u8]) {
        if rows.is_empty() {
            return;
        }
        let rows = std::str::from_utf8(rows).expect("JSONEachRow is UTF-8");
        let sql = format!("INSERT INTO {table} FORMAT JSONEachRow");
        self.request(&sql, Some(rows))
            .unwrap_or_else(|e| panic!("chdb refused the insert into {table}: {e}"));
    }

    /// Runs a query and returns its rows as JSON objects (64-bit integers as numbers).
    pub fn query(&mut self, sql: &str) -> Vec<Value> {
        let sql = format!(
            "{} SETTINGS output_format_json_quote_64bit_integers = 0 FORMAT JSONEachRow",
            sql.trim().trim_end_matches(';')
        );
        self.execute(&sql)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// [`Chdb::query`] for each statement, in order.
    pub fn run(&mut self, statements: &[String]) -> Vec<Vec<Value>> {
        statements.iter().map(|s| self.query(s)).collect()
    }
}

impl Drop for Chdb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
