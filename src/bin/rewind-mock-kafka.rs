//! Test support, not part of rewind: starts librdkafka's in-process mock cluster (it speaks the Kafka
//! protocol on real localhost ports), prints its bootstrap servers on one line, and stays up until it is
//! killed or its stdin closes. It is a binary (not a test helper) because the integration tests and
//! benches/kafka.sh run the real `rewind` binary and `kcat` as separate processes against one broker.
//!
//! Usage: rewind-mock-kafka [--brokers N] [--rebalance-delay-ms MS] [--no-transactions] [TOPIC:PARTITIONS ...]
//! (then "down" / "up" lines on stdin take the brokers away and back; each is echoed when done)
//!
//! `--rebalance-delay-ms` is the broker's group.initial.rebalance.delay.ms: how long a new consumer group
//! waits for more members before its first assignment. Kafka's default is 3000 (and so is the mock's);
//! Kafka's own shipped server.properties sets 0 for development.

use std::io::{BufRead, Write};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

fn main() {
    let mut brokers = 1;
    let mut delay_ms: Option<i32> = None;
    let mut no_txn = false;
    let mut topics = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--brokers" {
            brokers = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
        } else if a == "--no-transactions" {
            no_txn = true;
        } else if a == "--rebalance-delay-ms" {
            delay_ms = args.next().and_then(|n| n.parse().ok());
        } else if let Some((t, p)) = a.split_once(':') {
            topics.push((t.to_string(), p.parse::<i32>().unwrap_or(1)));
        } else {
            topics.push((a, 1));
        }
    }
    // A client created with test.mock.num.brokers owns a mock cluster (reachable for raw settings).
    let owner: BaseProducer = ClientConfig::new()
        .set("test.mock.num.brokers", brokers.to_string())
        .create()
        .expect("starting the mock cluster");
    let cluster = owner
        .client()
        .mock_cluster()
        .expect("the client has a mock cluster");
    if let Some(ms) = delay_ms {
        // SAFETY: the handle is alive (owned above) and was created with a mock cluster.
        unsafe {
            let mc = rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(mc, ms);
        }
    }
    if no_txn {
        // Brokers older than Kafka 0.11: no producer ids, so neither transactions nor idempotence.
        cluster
            .apiversion(rdkafka::types::RDKafkaApiKey::InitProducerId, None, None)
            .expect("disabling InitProducerId");
    }
    for (t, p) in &topics {
        cluster
            .create_topic(t, *p, 1)
            .unwrap_or_else(|e| panic!("creating topic {t}: {e}"));
    }
    println!("{}", cluster.bootstrap_servers());
    std::io::stdout().flush().ok();
    // Until stdin closes (the parent died or closed it) or a signal kills us. Lines on stdin steer the
    // cluster: "down" disconnects every broker and refuses new connections, "up" lets them back (the
    // topics keep their messages).
    let mut line = String::new();
    let stdin = std::io::stdin();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        for id in 1..=brokers {
            let r = match line.trim() {
                "down" => cluster.broker_down(id),
                "up" => cluster.broker_up(id),
                _ => Ok(()),
            };
            if let Err(e) = r {
                eprintln!("rewind-mock-kafka: {} broker {id}: {e}", line.trim());
            }
        }
        // The parent may have stopped reading stdout after the first line: ignore a closed pipe.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{}", line.trim()).and_then(|_| out.flush());
    }
    drop(cluster);
    drop(owner);
}
