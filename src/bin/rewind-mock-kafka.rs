//! Test support, not part of rewind: starts librdkafka's in-process mock cluster (it speaks the Kafka
//! protocol on real localhost ports), prints its bootstrap servers on one line, and stays up until it is
//! killed or its stdin closes. It is a binary (not a test helper) because the integration tests and
//! benches/kafka.sh run the real `rewind` binary and `kcat` as separate processes against one broker.
//!
//! Usage: rewind-mock-kafka [--brokers N] [TOPIC:PARTITIONS ...]

use std::io::{Read, Write};

use rdkafka::mocking::MockCluster;

fn main() {
    let mut brokers = 1;
    let mut topics = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--brokers" {
            brokers = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
        } else if let Some((t, p)) = a.split_once(':') {
            topics.push((t.to_string(), p.parse::<i32>().unwrap_or(1)));
        } else {
            topics.push((a, 1));
        }
    }
    let cluster = MockCluster::new(brokers).expect("starting the mock cluster");
    for (t, p) in &topics {
        cluster
            .create_topic(t, *p, 1)
            .unwrap_or_else(|e| panic!("creating topic {t}: {e}"));
    }
    println!("{}", cluster.bootstrap_servers());
    std::io::stdout().flush().ok();
    // Until stdin closes (the parent died or closed it) or a signal kills us.
    let mut buf = [0u8; 64];
    while let Ok(n) = std::io::stdin().read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    drop(cluster);
}
