//! Group-level configs (the `GROUP` config resource) end to end on one broker:
//! IncrementalAlterConfigs validates and stores them through the metadata log,
//! DescribeConfigs lists them, the KIP-848 coordinator answers heartbeats with
//! them, and they survive a restart.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
    ListConfigResourcesRequest,
};
use kafka_protocol::protocol::StrBytes;
use samsa_metadata::config::StaticConfig;

use crate::broker::Broker;
use crate::handlers::{
    alter_configs, consumer_group_heartbeat, describe_configs, list_config_resources, Ctx,
};
use crate::settings::BrokerSettings;

const GROUP: i8 = 32;
const INVALID_CONFIG: i16 = 40;

fn open(dir: &std::path::Path) -> Arc<Broker> {
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.display().to_string()).unwrap();
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0").unwrap();
    cfg.set("offsets.topic.num.partitions", "1").unwrap();
    let cfg = Arc::new(cfg);
    Broker::open(BrokerSettings::from_config(&cfg).unwrap(), cfg).unwrap()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// One IncrementalAlterConfigs of group `g` (op 0 SET, 1 DELETE): (code, message).
fn alter(broker: &Broker, g: &str, key: &str, op: i8, value: Option<&str>) -> (i16, String) {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(GROUP)
            .with_resource_name(s(g))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(op)
                .with_value(value.map(s))]),
    ]);
    let r = alter_configs::handle_incremental(broker, request, 1);
    let r = &r.responses[0];
    let message = r.error_message.as_ref().map(|m| m.to_string());
    (r.error_code, message.unwrap_or_default())
}

/// DescribeConfigs of group `g`: (name, value, source) of every entry.
fn describe(broker: &Broker, g: &str) -> Vec<(String, Option<String>, i8)> {
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(GROUP)
            .with_resource_name(s(g))
            .with_configuration_keys(None)]);
    let r = describe_configs::handle(broker, request, 4);
    assert_eq!(r.results[0].error_code, 0, "{:?}", r.results[0]);
    r.results[0]
        .configs
        .iter()
        .map(|c| {
            let v = c.value.as_ref().map(|v| v.to_string());
            (c.name.to_string(), v, c.config_source)
        })
        .collect()
}

fn entry(all: &[(String, Option<String>, i8)], name: &str) -> (Option<String>, i8) {
    let e = all.iter().find(|(n, _, _)| n == name).cloned();
    e.map(|(_, v, src)| (v, src)).unwrap_or((None, -1))
}

async fn heartbeat(broker: &Broker, g: &str, member: &str, epoch: i32) -> (i16, i32, i32) {
    let ctx = Ctx {
        peer: "127.0.0.1:1".parse().unwrap(),
        client_id: "test".into(),
        listener: "PLAINTEXT".into(),
        principal: std::sync::Arc::new(samsa_security::KafkaPrincipal::anonymous()),
    };
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(s(g).into())
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![s("t").into()]))
        .with_topic_partitions(Some(vec![]));
    let r = consumer_group_heartbeat::handle(broker, &ctx, request, 0).await;
    (r.error_code, r.member_epoch, r.heartbeat_interval_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_configs_are_validated_listed_used_by_the_coordinator_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(broker.groups.clone().run_timers(broker.clone(), rx));
    assert!(broker.groups.ensure_offsets_topic(&broker));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !broker.groups.serves("g") {
        assert!(tokio::time::Instant::now() < deadline, "coordinator loads");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Refused: out of the broker's bounds, and an unknown key.
    let (code, msg) = alter(
        &broker,
        "g",
        "consumer.heartbeat.interval.ms",
        0,
        Some("100"),
    );
    assert_eq!(code, INVALID_CONFIG);
    assert_eq!(
        msg,
        "consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms"
    );
    let (code, msg) = alter(&broker, "g", "heartbeat.interval.ms", 0, Some("7000"));
    assert_eq!(
        (code, msg.as_str()),
        (
            INVALID_CONFIG,
            "Unknown group config name: heartbeat.interval.ms"
        )
    );

    // Set before the group exists: listed as GROUP_CONFIG (8), the rest as defaults (5).
    assert_eq!(
        alter(
            &broker,
            "g",
            "consumer.heartbeat.interval.ms",
            0,
            Some("7000")
        )
        .0,
        0
    );
    let all = describe(&broker, "g");
    assert_eq!(
        entry(&all, "consumer.heartbeat.interval.ms"),
        (Some("7000".into()), 8)
    );
    assert_eq!(
        entry(&all, "consumer.session.timeout.ms"),
        (Some("45000".into()), 5)
    );

    // ListConfigResources names the configured group though it has no member yet.
    let listed = list_config_resources::handle(
        &broker,
        ListConfigResourcesRequest::default().with_resource_types(vec![GROUP]),
        1,
    )
    .await;
    assert_eq!(listed.error_code, 0);
    let names: Vec<String> = listed
        .config_resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect();
    assert_eq!(names, vec!["g".to_string()]);

    // The coordinator hands the group's interval to its members.
    let (code, epoch, interval) = heartbeat(&broker, "g", "m1", 0).await;
    assert_eq!((code, interval), (0, 7_000));
    // Another group keeps the broker default.
    let (_, _, other) = heartbeat(&broker, "other", "m1", 0).await;
    assert_eq!(other, 5_000);

    // DELETE reverts to the broker default from the next heartbeat.
    assert_eq!(
        alter(&broker, "g", "consumer.heartbeat.interval.ms", 1, None).0,
        0
    );
    let (_, _, interval) = heartbeat(&broker, "g", "m1", epoch).await;
    assert_eq!(interval, 5_000);
    assert_eq!(
        entry(&describe(&broker, "g"), "consumer.heartbeat.interval.ms").1,
        5
    );
    let _ = stop.send(true);
}

#[test]
fn group_configs_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        assert_eq!(
            alter(
                &broker,
                "g",
                "consumer.session.timeout.ms",
                0,
                Some("50000")
            )
            .0,
            0
        );
        assert_eq!(
            alter(
                &broker,
                "g",
                "consumer.heartbeat.interval.ms",
                0,
                Some("9000")
            )
            .0,
            0
        );
        assert_eq!(
            alter(&broker, "g", "consumer.heartbeat.interval.ms", 1, None).0,
            0
        );
    }
    let broker = open(dir.path());
    let all = describe(&broker, "g");
    assert_eq!(
        entry(&all, "consumer.session.timeout.ms"),
        (Some("50000".into()), 8)
    );
    assert_eq!(
        entry(&all, "consumer.heartbeat.interval.ms"),
        (Some("5000".into()), 5)
    );
}
