//! A Kafka-protocol broker in memory — librdkafka's mock cluster — listening on a local port, to
//! measure the tax pipeline (outbox relay → broker → consumer) without the local tansu's limits
//! (BENCHMARKS.md): `cargo run --release -p mock-kafka -- [topic …]` creates the topics (3
//! partitions each; default: the tax topic and its dead-letter topic) and prints the address to give
//! the system as `KAFKA_BROKERS`. It keeps nothing on disk and is no broker to run anything on: a
//! measuring aid.

use rdkafka::mocking::MockCluster;

fn main() -> anyhow::Result<()> {
    let cluster = MockCluster::new(1)?;
    let mut topics: Vec<String> = std::env::args().skip(1).collect();
    if topics.is_empty() {
        topics = vec!["tax.withholding.v1".into(), "tax.withholding.v1.dlq".into()];
    }
    for topic in &topics {
        cluster.create_topic(topic, 3, 1)?;
    }
    println!("{}", cluster.bootstrap_servers());
    // The cluster lives as long as this process (until it is killed).
    loop {
        std::thread::park();
    }
}
