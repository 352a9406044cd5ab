//! What `/metrics` and `/health/ready` report, gathered from the broker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use samsa_client::admin::{Admin, OffsetQuery};
use samsa_coordinator as gc;
use samsa_metrics::{GroupLag, PartitionState, State, GROUP_LAG_SERIES_MAX};

use crate::broker::Broker;

/// `(group type, state) -> count` of the groups this node coordinates.
/// Shards still loading are skipped (they answer LOAD_IN_PROGRESS).
pub(super) async fn group_counts(broker: &Broker) -> Vec<(String, String, u64)> {
    let all = gc::ListGroupsRequest::default();
    let parts = broker
        .groups
        .read_all(broker, |c, _| c.list_groups(&all))
        .await;
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for part in parts.iter().filter(|p| p.error_code == 0) {
        for g in &part.groups {
            *counts
                .entry((g.group_type.clone(), g.group_state.clone()))
                .or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|((kind, state), n)| (kind, state, n))
        .collect()
}

/// The state gauges: partitions hosted here, the cluster's offline
/// partitions, the log directories' free space. Reads every hosted log's
/// segment list, so it runs on a blocking thread.
pub(super) fn snapshot(
    broker: &Broker,
    groups: Vec<(String, String, u64)>,
    lag: Vec<GroupLag>,
) -> State {
    let image = broker.image();
    let me = broker.settings.node_id;
    let mut partitions = Vec::new();
    for part in broker.all_partitions() {
        let Some(p) = image.partition(&part.topic, part.index) else {
            continue;
        };
        let leader = part.is_leader();
        let min_isr = part.settings().min_insync_replicas;
        let log = part.log();
        partitions.push(PartitionState {
            topic: part.topic.clone(),
            partition: part.index.get(),
            leader,
            under_replicated: leader && p.isr.len() < p.replicas.len(),
            under_min_isr: leader && p.isr.len() < min_isr,
            log_size_bytes: log.size_bytes(),
            log_segments: log.segments_info().len() as u64,
        });
    }
    let offline_partitions = image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| !p.has_leader())
        .count() as u64;
    let active_controller = match &broker.cluster {
        Some(c) => c.leader() == u64::try_from(me.get()).ok(),
        None => true,
    };
    let log_dirs = broker
        .log_dirs
        .dirs()
        .iter()
        .filter_map(|d| {
            let (_, free) = crate::disk::filesystem_bytes(&d.path)?;
            Some((
                d.path.display().to_string(),
                u64::try_from(free).unwrap_or(0),
            ))
        })
        .collect();
    State {
        topics: image.topics.keys().cloned().collect(),
        offline_partitions,
        active_controller,
        partitions,
        log_dirs,
        groups,
        lag,
    }
}

/// How long a scrape waits for other brokers' high watermarks.
const REMOTE_END_OFFSETS_WAIT: Duration = Duration::from_secs(2);

/// The lag of every group this node coordinates, per committed partition:
/// the partition's high watermark (read locally when this broker leads it,
/// else asked of its leader with ListOffsets through `admin`) minus the
/// committed offset. Partitions whose end cannot be learnt within
/// [`REMOTE_END_OFFSETS_WAIT`] are left out of this scrape.
pub(super) async fn group_lag(broker: &Broker, admin: Option<&Admin>) -> Vec<GroupLag> {
    let all = gc::ListGroupsRequest::default();
    let shards = broker
        .groups
        .read_all(broker, |c, _| {
            let mut out = Vec::new();
            let listed = c.list_groups(&all);
            if listed.error_code != 0 {
                return out;
            }
            for g in &listed.groups {
                for (tp, offset) in c.committed_offsets(&g.group_id).unwrap_or_default() {
                    if out.len() >= GROUP_LAG_SERIES_MAX {
                        return out;
                    }
                    out.push((
                        g.group_id.clone(),
                        tp.topic,
                        tp.partition.get(),
                        offset.get(),
                    ));
                }
            }
            out
        })
        .await;
    let committed: Vec<(String, String, i32, i64)> = shards
        .into_iter()
        .flatten()
        .take(GROUP_LAG_SERIES_MAX)
        .collect();
    let image = broker.image();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    let mut remote: HashSet<(String, i32)> = HashSet::new();
    for (_, topic, partition, _) in &committed {
        let key = (topic.clone(), *partition);
        if ends.contains_key(&key) || remote.contains(&key) {
            continue;
        }
        let local = image
            .topic(topic)
            .and_then(|t| broker.partition(t.id, *partition))
            .filter(|p| p.is_leader());
        match local {
            Some(p) => {
                ends.insert(key, p.high_watermark().get());
            }
            None if image.topic(topic).is_some() => {
                remote.insert(key);
            }
            None => {}
        }
    }
    if let (false, Some(admin)) = (remote.is_empty(), admin) {
        let remote: Vec<(String, i32)> = remote.into_iter().collect();
        let asked = admin.list_offsets(&remote, OffsetQuery::Latest, 0);
        match tokio::time::timeout(REMOTE_END_OFFSETS_WAIT, asked).await {
            Ok(Ok(listed)) => ends.extend(listed.into_iter().map(|(tp, o)| (tp, o.offset))),
            Ok(Err(e)) => tracing::debug!(error = %e, "lag: high watermarks of other brokers"),
            Err(_) => tracing::debug!("lag: other brokers' high watermarks took too long"),
        }
    }
    committed
        .into_iter()
        .filter_map(|(group, topic, partition, offset)| {
            let end = *ends.get(&(topic.clone(), partition))?;
            Some(GroupLag {
                group,
                topic,
                partition,
                records: (end - offset).max(0),
            })
        })
        .collect()
}

/// Why this broker cannot serve clients yet (empty: ready): it is not
/// registered or is fenced, it knows no metadata quorum leader, a replica
/// the image places here is not open, or a log directory is offline.
pub(super) fn readiness(broker: &Broker) -> Vec<String> {
    let image = broker.image();
    let me = broker.settings.node_id;
    let mut problems = Vec::new();
    match image.brokers.get(&me) {
        None => problems.push(format!("broker {} is not registered", me.get())),
        Some(b) if b.fenced => problems.push(format!("broker {} is fenced", me.get())),
        Some(_) => {}
    }
    if let Some(c) = &broker.cluster {
        if c.leader().is_none() {
            problems.push("no metadata quorum leader is known".to_string());
        }
    }
    let mut closed = 0usize;
    for t in image.topics.values() {
        for p in &t.partitions {
            if !p.replicas.contains(&me) || image.replica_dir_offline(p, me) {
                continue;
            }
            match broker.partition(t.id, p.index.get()) {
                Some(part) if !part.is_offline() => {}
                _ => closed += 1,
            }
        }
    }
    if closed > 0 {
        problems.push(format!(
            "{closed} partition replicas assigned here are not open"
        ));
    }
    for d in broker.log_dirs.dirs().iter().filter(|d| d.is_offline()) {
        problems.push(format!("log directory {} is offline", d.path.display()));
    }
    problems
}
