//! Which offsets are safe to commit.
//!
//! Events of different entities finish out of order, so a partition's
//! committed position is the lowest offset still in flight (everything below
//! it has been acknowledged downstream), or one past the highest offset read
//! when nothing is in flight. A restart resumes from there: nothing whose
//! output is not stored is skipped, and at most the in-flight events repeat.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
struct Partition {
    in_flight: BTreeSet<i64>,
    highest_read: Option<i64>,
    committed: Option<i64>,
}

#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<i32, Partition>,
}

impl OffsetTracker {
    /// An event was read and handed on.
    pub fn begin(&mut self, partition: i32, offset: i64) {
        let track = self.partitions.entry(partition).or_default();
        track.in_flight.insert(offset);
        track.highest_read = Some(track.highest_read.map_or(offset, |h| h.max(offset)));
    }

    /// An event's output is stored (or it was dead-lettered and that is stored).
    pub fn complete(&mut self, partition: i32, offset: i64) {
        if let Some(track) = self.partitions.get_mut(&partition) {
            track.in_flight.remove(&offset);
        }
    }

    /// The position to commit for `partition`: the next offset to read after a restart.
    pub fn safe_position(&self, partition: i32) -> Option<i64> {
        let track = self.partitions.get(&partition)?;
        match track.in_flight.first() {
            Some(lowest) => Some(*lowest),
            None => track.highest_read.map(|h| h + 1),
        }
    }

    /// Positions that moved since they were last taken, marking them committed.
    pub fn take_commits(&mut self) -> Vec<(i32, i64)> {
        let mut commits = Vec::new();
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        for partition in partitions {
            if let Some(position) = self.safe_position(partition) {
                let track = self.partitions.get_mut(&partition).expect("listed");
                if track.committed != Some(position) {
                    track.committed = Some(position);
                    commits.push((partition, position));
                }
            }
        }
        commits
    }

    /// Commits that failed: offered again by the next [`take_commits`]
    /// unless a later position replaced them meanwhile.
    ///
    /// [`take_commits`]: OffsetTracker::take_commits
    pub fn commit_failed(&mut self, commits: &[(i32, i64)]) {
        for (partition, position) in commits {
            if let Some(track) = self.partitions.get_mut(partition)
                && track.committed == Some(*position)
            {
                track.committed = None;
            }
        }
    }

    /// Events read and not yet completed, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.in_flight.len()).sum()
    }

    /// Forgets partitions this consumer no longer owns.
    pub fn forget(&mut self, partitions: &[i32]) {
        for partition in partitions {
            self.partitions.remove(partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stop_at_the_lowest_event_still_in_flight() {
        let mut tracker = OffsetTracker::default();
        for offset in 10..15 {
            tracker.begin(0, offset);
        }
        tracker.complete(0, 10);
        tracker.complete(0, 12);
        tracker.complete(0, 13);
        // 11 is still in flight: committing past it could lose it.
        assert_eq!(tracker.safe_position(0), Some(11));
        tracker.complete(0, 11);
        assert_eq!(tracker.safe_position(0), Some(14));
        tracker.complete(0, 14);
        assert_eq!(tracker.safe_position(0), Some(15));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_failed_commit_is_offered_again() {
        let mut tracker = OffsetTracker::default();
        tracker.begin(0, 5);
        tracker.begin(1, 100);
        tracker.complete(0, 5);
        tracker.complete(1, 100);
        let commits = tracker.take_commits();
        assert_eq!(commits, [(0, 6), (1, 101)]);
        tracker.commit_failed(&commits);
        assert_eq!(tracker.take_commits(), commits, "retried as they were");
        // A later position supersedes a failed one.
        let commits = tracker.take_commits();
        assert!(commits.is_empty());
        tracker.begin(0, 6);
        tracker.complete(0, 6);
        let newer = tracker.take_commits();
        assert_eq!(newer, [(0, 7)]);
        tracker.commit_failed(&[(0, 6)]);
        assert!(tracker.take_commits().is_empty(), "7 is taken, 6 is stale");
    }

    #[test]
    fn partitions_are_independent_and_commits_are_taken_once() {
        let mut tracker = OffsetTracker::default();
        tracker.begin(0, 5);
        tracker.begin(1, 100);
        tracker.complete(1, 100);
        assert_eq!(tracker.take_commits(), [(0, 5), (1, 101)]);
        assert!(tracker.take_commits().is_empty(), "nothing moved");
        tracker.complete(0, 5);
        assert_eq!(tracker.take_commits(), [(0, 6)]);
        tracker.forget(&[0]);
        assert_eq!(tracker.safe_position(0), None);
    }

    #[test]
    fn completing_an_unknown_offset_changes_nothing() {
        let mut tracker = OffsetTracker::default();
        tracker.begin(2, 7);
        tracker.complete(2, 8);
        tracker.complete(3, 1);
        assert_eq!(tracker.safe_position(2), Some(7));
    }
}
