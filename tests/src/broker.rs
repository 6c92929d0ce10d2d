//! Kafka access for tests: the shared local broker, private brokers a test
//! may stop, topic creation and reading back what a service produced.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tributary_config::KafkaSettings;
use tributary_kafka::TopicAdmin;

/// The shared local broker (`deploy/local/up.sh`), or `TRIBUTARY_TEST_KAFKA_BROKERS`.
pub fn shared_brokers() -> String {
    std::env::var("TRIBUTARY_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn settings(brokers: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: brokers.to_owned(),
        ..KafkaSettings::default()
    }
}

/// Creates a topic with a unique name on `brokers`.
pub async fn unique_topic(brokers: &str, prefix: &str, partitions: i32) -> String {
    let topic = crate::unique(prefix);
    let admin = TopicAdmin::new(&settings(brokers)).expect("admin client");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match admin.ensure(&topic, partitions, 1).await {
            Ok(_) => break,
            Err(err) if Instant::now() < deadline => {
                eprintln!("creating {topic}: {err}; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => panic!(
                "creating topic {topic} on {brokers}: {err}\n(is the broker running? deploy/local/up.sh starts it; deploy/local/test.sh runs the tests with it)"
            ),
        }
    }
    // The broker may answer metadata for a new topic a moment later.
    while admin.partitions(&topic).await.is_err() {
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    topic
}

/// Writes `messages` (key, value) to `topic` and waits until all are stored.
pub async fn produce(brokers: &str, topic: &str, messages: &[(String, Vec<u8>)]) {
    let producer: rdkafka::producer::FutureProducer =
        tributary_kafka::producer_config(&settings(brokers))
            .set("compression.type", "none")
            // A fixture write is not the pipeline's path: without idempotence a
            // slow broker's timeout cannot trigger the producer-epoch bump the
            // local broker panics on; one request in flight keeps the order.
            .set("enable.idempotence", "false")
            .set("max.in.flight.requests.per.connection", "1")
            .set("message.timeout.ms", "300000")
            .create()
            .expect("producer");
    // Queue in order and wait for the acknowledgements a window at a time, so a
    // large write never sits in the queue past the delivery timeout.
    const WINDOW: usize = 5_000;
    let mut deliveries = Vec::with_capacity(WINDOW);
    for (key, value) in messages {
        if deliveries.len() == WINDOW {
            await_deliveries(topic, deliveries.drain(..)).await;
        }
        let mut record = rdkafka::producer::FutureRecord::to(topic)
            .key(key)
            .payload(value);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    await_deliveries(topic, deliveries.drain(..)).await;
}

async fn await_deliveries(
    topic: &str,
    deliveries: impl Iterator<Item = rdkafka::producer::DeliveryFuture>,
) {
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((err, _))) => panic!("producing to {topic}: {err}"),
            Err(_) => panic!("producing to {topic}: canceled"),
        }
    }
}

/// The offsets `group` has committed on `topic`, by partition (absent: none).
pub fn committed_offsets(
    brokers: &str,
    group: &str,
    topic: &str,
) -> std::collections::BTreeMap<i32, i64> {
    let consumer: BaseConsumer = tributary_kafka::consumer_config(&settings(brokers), group)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut query = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            query.add_partition(topic, p.id());
        }
    }
    let committed = consumer
        .committed_offsets(query, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect()
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// Reads `topic` from the beginning until `expected` messages arrived or
/// `timeout` passed (then returns what it has, so callers can assert on it).
pub fn read_topic(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    let mut config =
        tributary_kafka::consumer_config(&settings(brokers), &crate::unique("test-reader"));
    config.set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("assign");
        }
    }
    consumer.assign(&assignment).expect("assign partitions");
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while records.len() < expected && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => records.push(Record {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                value: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            }),
            Some(Err(err)) => eprintln!("reading {topic}: {err}"),
            None => {}
        }
    }
    records
}

/// The `tansu` binary of the pinned version (PATH, ~/.cargo/bin or `TRIBUTARY_TANSU`).
pub fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TRIBUTARY_TANSU") {
        return PathBuf::from(path);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let candidate = home.join("bin/tansu");
    if candidate.is_file() {
        candidate
    } else {
        PathBuf::from("tansu")
    }
}

/// A broker of this test's own, on its own port and storage, which the test
/// may stop and start again (the shared one must stay up for other tests).
pub struct PrivateBroker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateBroker {
    pub fn start() -> Self {
        let mut broker = PrivateBroker {
            port: crate::free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        broker.resume();
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker again on the same port and storage.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.path().join("broker.log")).expect("log file");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting tansu (run deploy/local/up.sh once to build it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private broker did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the broker (SIGTERM, then SIGKILL) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::process::terminate(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stop();
    }
}
