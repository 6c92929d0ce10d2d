//! Sources Tributary pulls rather than receives (Salesforce Change Data
//! Capture first): a subscription reads a platform's stream, hands its
//! events to a [`PullSink`] (the collector's producer: it answers once the
//! broker has every one), and only then records how far it got in its
//! [`Checkpoints`]. A restart resumes from the checkpoint: an event after
//! it is read again, never skipped, and its event id (derived from the
//! platform's own) makes the second copy a duplicate the later stages drop.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tributary_envelope::RawEvent;

use crate::BoxFuture;

/// Where a pull source's events go.
pub trait PullSink: Send + Sync {
    /// Stores `events` on the raw topic; `Ok` once the broker has every one.
    fn store(&self, events: Vec<RawEvent>) -> BoxFuture<'_, Result<(), String>>;
}

/// A subscription the collector runs for as long as it runs.
pub trait PullSource: Send + Sync {
    /// Names the subscription in logs, metrics and its checkpoint:
    /// `<platform>/<tenant>/<stream>`.
    fn name(&self) -> &str;

    /// Reads, stores and checkpoints until the task is stopped; failures
    /// are retried inside, with backoff.
    fn run<'a>(&'a self, sink: &'a dyn PullSink, checkpoints: &'a Checkpoints)
    -> BoxFuture<'a, ()>;
}

/// The positions of pull subscriptions, one small file each, replaced
/// atomically and durably.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    pub fn open(dir: &Path) -> std::io::Result<Checkpoints> {
        fs::create_dir_all(dir)?;
        Ok(Checkpoints {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        let file: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.dir.join(format!("{file}.checkpoint"))
    }

    /// The last position saved for `name`.
    pub fn load(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Saves `position` for `name`: a crash leaves the old one or the new one.
    pub fn save(&self, name: &str, position: &[u8]) -> std::io::Result<()> {
        let path = self.path(name);
        let temporary = path.with_extension("checkpoint.tmp");
        let mut file = fs::File::create(&temporary)?;
        file.write_all(position)?;
        file.sync_all()?;
        fs::rename(&temporary, &path)?;
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Forgets `name`'s position (it can no longer be resumed from).
    pub fn clear(&self, name: &str) -> std::io::Result<()> {
        match fs::remove_file(self.path(name)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_kept_per_subscription_and_replaced_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let checkpoints = Checkpoints::open(dir.path()).expect("open");
        let a = "salesforce/acme//data/OpportunityChangeEvent";
        let b = "salesforce/globex//data/OpportunityChangeEvent";
        assert_eq!(checkpoints.load(a).expect("read"), None);
        checkpoints.save(a, &[0, 1, 2]).expect("save");
        checkpoints.save(b, &[9]).expect("save");
        checkpoints.save(a, &[3, 4]).expect("save");
        assert_eq!(checkpoints.load(a).expect("read"), Some(vec![3, 4]));
        assert_eq!(checkpoints.load(b).expect("read"), Some(vec![9]));
        checkpoints.clear(a).expect("clear");
        assert_eq!(checkpoints.load(a).expect("read"), None);
        checkpoints.clear(a).expect("clearing twice is fine");
        let reopened = Checkpoints::open(dir.path()).expect("open");
        assert_eq!(reopened.load(b).expect("read"), Some(vec![9]));
    }
}
