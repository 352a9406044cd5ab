use super::*;

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

fn value(text: &str, prefix: &str) -> Option<f64> {
    line(text, prefix)?.rsplit(' ').next()?.parse().ok()
}

fn state_with(topics: &[&str]) -> State {
    State {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..State::default()
    }
}

#[test]
fn requests_and_topic_bytes_are_counted_with_kafka_meaning() {
    let m = Metrics::new();
    m.request("Produce", Duration::from_millis(3));
    m.request("Produce", Duration::from_millis(5));
    let orders = m.topic_counters("orders");
    orders.appended(100, 2);
    m.topic_counters("orders").appended(50, 1);
    orders.sent(150);
    let text = m.encode(&state_with(&["orders"]));
    assert_eq!(
        value(&text, "samsa_requests_total{api=\"Produce\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "samsa_request_duration_seconds_count{api=\"Produce\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "samsa_topic_in_bytes_total{topic=\"orders\"}"),
        Some(150.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "samsa_topic_records_in_total{topic=\"orders\"}"),
        Some(3.0)
    );
    assert_eq!(
        value(&text, "samsa_topic_out_bytes_total{topic=\"orders\"}"),
        Some(150.0)
    );
}

#[test]
fn a_deleted_topic_loses_its_series_and_the_topic_label_set_is_bounded() {
    let m = Metrics::new();
    m.topic_counters("gone").appended(10, 1);
    let text = m.encode(&state_with(&[]));
    assert!(!text.contains("topic=\"gone\""), "{text}");

    let names: Vec<String> = (0..TOPIC_LABELS_MAX + 5).map(|i| format!("t{i}")).collect();
    for n in &names {
        m.topic_counters(n).appended(1, 1);
    }
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let text = m.encode(&state_with(&all));
    let labelled = text
        .lines()
        .filter(|l| l.starts_with("samsa_topic_in_bytes_total{"))
        .count();
    assert_eq!(labelled, TOPIC_LABELS_MAX + 1, "the cap plus _other");
    assert_eq!(
        value(&text, "samsa_topic_in_bytes_total{topic=\"_other\"}"),
        Some(5.0)
    );
}

#[test]
fn state_gauges_follow_the_snapshot() {
    let m = Metrics::new();
    let p = |partition, leader, under| PartitionState {
        topic: "t".into(),
        partition,
        leader,
        under_replicated: under,
        under_min_isr: false,
        log_size_bytes: 1000 + partition as u64,
        log_segments: 2,
    };
    let mut s = state_with(&["t"]);
    s.partitions = vec![p(0, true, true), p(1, false, false), p(2, true, false)];
    s.log_dirs = vec![("/data".into(), 12345)];
    s.groups = vec![("classic".into(), "Stable".into(), 2)];
    s.lag = vec![GroupLag {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
        records: 42,
    }];
    let text = m.encode(&s);
    assert_eq!(value(&text, "samsa_partitions "), Some(3.0), "{text}");
    assert_eq!(value(&text, "samsa_leader_partitions "), Some(2.0));
    assert_eq!(
        value(&text, "samsa_under_replicated_partitions "),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "samsa_log_size_bytes{topic=\"t\",partition=\"2\"}"),
        Some(1002.0)
    );
    assert_eq!(
        value(&text, "samsa_log_dir_free_bytes{dir=\"/data\"}"),
        Some(12345.0)
    );
    assert_eq!(
        value(&text, "samsa_groups{type=\"classic\",state=\"Stable\"}"),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            "samsa_group_lag_records{group=\"g\",topic=\"t\",partition=\"0\"}"
        ),
        Some(42.0)
    );
    // A partition that moved away is no longer reported.
    s.partitions.truncate(1);
    let text = m.encode(&s);
    assert!(line(&text, "samsa_log_size_bytes{topic=\"t\",partition=\"2\"}").is_none());
}

#[test]
fn process_metrics_are_read_from_proc() {
    let m = Metrics::new();
    let text = m.encode(&State::default());
    assert!(
        value(&text, "samsa_process_resident_memory_bytes ").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(value(&text, "samsa_process_open_fds ").unwrap_or(0.0) >= 3.0);
}

#[test]
fn connections_count_while_open() {
    let m = Metrics::new();
    let a = m.connection("PLAINTEXT");
    let b = m.connection("PLAINTEXT");
    drop(a);
    let text = m.encode(&State::default());
    assert_eq!(
        value(&text, "samsa_connections{listener=\"PLAINTEXT\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "samsa_connections_created_total{listener=\"PLAINTEXT\"}"
        ),
        Some(2.0)
    );
    drop(b);
    let text = m.encode(&State::default());
    assert_eq!(
        value(&text, "samsa_connections{listener=\"PLAINTEXT\"}"),
        Some(0.0)
    );
}
