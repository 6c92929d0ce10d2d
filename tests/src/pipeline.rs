//! Options for running the whole pipeline (`tributary_demo::Pipeline`) on a
//! test's own topics, groups and database, with the binaries of this build.

use std::path::Path;

use tributary_config::TopicSettings;
use tributary_demo::Options;

use crate::clickhouse::TestDatabase;
use crate::enricher::Topics;
use crate::{broker, process};

pub fn options(topics: &Topics, db: &TestDatabase, work_dir: &Path) -> Options {
    // Built from the current sources; the three live side by side.
    let collector = process::binary("tributary-collector", "collector");
    process::binary("tributary-enricher", "enricher");
    process::binary("tributary-activator", "activator");
    let mut options = Options::new(
        collector.parent().expect("target dir").to_path_buf(),
        work_dir.to_path_buf(),
        db.settings.clone(),
    );
    options.brokers = broker::shared_brokers();
    options.topics = TopicSettings {
        raw: topics.raw.clone(),
        enriched: topics.enriched.clone(),
        dead_letter: topics.dead_letter.clone(),
        retry: topics.retry.clone(),
    };
    options.templates_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/templates").into();
    options.group_prefix = crate::unique("pipeline");
    options
}
