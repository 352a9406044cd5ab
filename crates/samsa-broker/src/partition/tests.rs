//! The partition's lock discipline and replication rules against a real
//! log: each test is one finding of issue 13.

use std::collections::BTreeMap;
use std::time::Duration;

use samsa_metadata::config::StaticConfig;
use samsa_metadata::PartitionImage;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::{BrokerId, LeaderEpoch, Offset, PartitionIndex, TimestampMs, TopicId};
use samsa_storage::PartitionLog;

use super::*;

const ME: BrokerId = BrokerId(1);
const OTHER: BrokerId = BrokerId(2);

fn partition(dir: &std::path::Path, overrides: &[(&str, &str)]) -> Partition {
    let overrides: BTreeMap<String, String> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = TopicSettings::resolve(&StaticConfig::default(), &overrides);
    let log = PartitionLog::open(dir, settings.log).unwrap();
    Partition::new(
        "t".into(),
        TopicId(uuid::Uuid::nil()),
        PartitionIndex(0),
        log,
        settings,
        ME,
        LeaderEpoch(0),
    )
}

fn image(leader: BrokerId, epoch: i32, partition_epoch: i32, isr: &[BrokerId]) -> PartitionImage {
    PartitionImage {
        index: PartitionIndex(0),
        replicas: vec![ME, OTHER],
        isr: isr.to_vec(),
        leader,
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        directories: Vec::new(),
    }
}

fn batch(records: usize, timestamp: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.push(NewRecord::new(
            TimestampMs(timestamp),
            None,
            Some(format!("value-{i:0>200}").as_bytes()),
        ));
    }
    b.build().unwrap()
}

/// A leader append as the produce path does it.
fn produce(p: &Partition, records: usize, timestamp: i64) -> Offset {
    let guard = p.lock_for_append(1, 1).unwrap();
    let info = p
        .log()
        .append_unmodified(
            &batch(records, timestamp),
            guard.epoch(),
            TimestampMs(timestamp),
        )
        .unwrap();
    drop(guard);
    p.after_leader_append();
    info.last_offset
}

/// Finding: produce checked leadership, released the role, and read the
/// epoch later; a become-follower in between let the former leader append a
/// batch stamped with the new leader's epoch. Now the role change waits for
/// the append that holds the lock, and the batch carries the epoch this
/// broker led with.
#[test]
fn a_role_change_waits_for_an_append_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &[]);
    p.apply_image(&image(ME, 5, 1, &[ME]), 0);
    let guard = p.lock_for_append(1, 1).unwrap();
    std::thread::scope(|s| {
        let demote = s.spawn(|| p.apply_image(&image(OTHER, 6, 2, &[OTHER]), 0));
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !demote.is_finished(),
            "the role changed while an append held the partition lock"
        );
        p.log()
            .append_unmodified(&batch(1, 1_000), guard.epoch(), TimestampMs(1_000))
            .unwrap();
        drop(guard);
        assert_eq!(demote.join().unwrap(), RoleChange::BecameFollower(OTHER));
    });
    // The batch is stamped with epoch 5, so truncation against the new
    // leader (epoch 6) sees it as divergent.
    assert_eq!(
        p.log().epoch_entries(),
        vec![(LeaderEpoch(5), Offset(0))],
        "the former leader's batch must carry its own epoch, not the new one"
    );
    assert!(p.lock_for_append(1, 1).is_err());
}

/// Finding: the fetcher applied fetch data, the leader's high watermark and
/// OffsetForLeaderEpoch answers without checking that the partition still
/// follows that leader in that epoch. A late truncation answer must never
/// cut records acknowledged by the new leader.
#[test]
fn late_fetcher_responses_are_dropped_after_an_epoch_change() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &[]);
    // Leader in epoch 3 with 5 records, all committed.
    p.apply_image(&image(ME, 3, 1, &[ME]), 0);
    produce(&p, 5, 1_000);
    assert_eq!(p.high_watermark(), Offset(5));
    // Becomes follower of OTHER in epoch 4; the fetcher asks where epoch 3
    // ends (request built for (OTHER, 4)).
    p.apply_image(&image(OTHER, 4, 2, &[ME, OTHER]), 0);
    assert_eq!(
        p.start_truncation(OTHER, LeaderEpoch(4)),
        TruncationStep::Ask(LeaderEpoch(3))
    );
    // Before the answer comes back, this broker leads again (epoch 5) and
    // acknowledges more records.
    p.apply_image(&image(ME, 5, 3, &[ME]), 0);
    produce(&p, 3, 1_000);
    assert_eq!(p.high_watermark(), Offset(8));
    // The late answer (OTHER's epoch 3 ended at 0) must not cut anything.
    let step = p
        .apply_epoch_answer(
            OTHER,
            LeaderEpoch(4),
            EpochAnswer {
                leader_epoch: LeaderEpoch(3),
                end_offset: Offset(0),
            },
        )
        .unwrap();
    assert_eq!(step, TruncationStep::Stale);
    assert_eq!(
        p.log().log_end_offset(),
        Offset(8),
        "acknowledged records were cut"
    );
    // A late fetch response (data, high watermark) is dropped as well.
    assert!(p
        .follower_apply(OTHER, LeaderEpoch(4), |st, _| st.high_watermark())
        .is_none());
    assert_eq!(p.high_watermark(), Offset(8));
}

/// Finding: the leader computed the high watermark over the committed ISR
/// only; a follower whose addition was proposed but not yet applied was
/// ignored, so once the addition committed, the new member could be elected
/// without records already acknowledged. KIP-497: the maximal ISR counts a
/// pending addition at once.
#[test]
fn the_high_watermark_waits_for_a_proposed_isr_member() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &[]);
    p.apply_image(&image(ME, 1, 1, &[ME]), 0);
    produce(&p, 10, 1_000);
    assert_eq!(p.high_watermark(), Offset(10));
    // OTHER caught up: the leader proposes ISR {ME, OTHER}.
    let fetched = p
        .follower_fetched(OTHER, -1, Some(LeaderEpoch(1)), 10, 0)
        .unwrap();
    let isr = fetched.expand.expect("expansion wanted");
    let proposal = p.propose_isr(isr).expect("proposal sent");
    // While the change is in flight, acks=all records arrive.
    produce(&p, 10, 1_000);
    assert_eq!(
        p.high_watermark(),
        Offset(10),
        "records above the proposed member's log end were committed"
    );
    // The controller applies the change; OTHER fetches the rest.
    p.apply_image(&image(ME, 1, 2, &[ME, OTHER]), 0);
    p.isr_change_done(&proposal);
    p.follower_fetched(OTHER, -1, Some(LeaderEpoch(1)), 20, 0)
        .unwrap();
    assert_eq!(p.high_watermark(), Offset(20));
}

/// A pending removal counts only once committed: the high watermark still
/// waits for the member being removed.
#[test]
fn a_proposed_shrink_does_not_move_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &[]);
    p.apply_image(&image(ME, 1, 1, &[ME, OTHER]), 0);
    p.follower_fetched(OTHER, -1, None, 0, 0).unwrap();
    produce(&p, 4, 1_000);
    assert_eq!(p.high_watermark(), Offset(0));
    let shrink = p.lagging_isr(100_000, 30_000).expect("OTHER lags");
    assert_eq!(shrink, vec![ME]);
    let proposal = p.propose_isr(shrink).unwrap();
    p.after_leader_append();
    assert_eq!(p.high_watermark(), Offset(0));
    p.apply_image(&image(ME, 1, 2, &[ME]), 0);
    p.isr_change_done(&proposal);
    assert_eq!(p.high_watermark(), Offset(4));
}

/// Finding: retention deleted segments by their timestamps without regard to
/// the high watermark, so a producer with old CreateTime timestamps could
/// have an acknowledged (acks=1), not yet replicated batch deleted. Nothing
/// at or above the high watermark is deleted.
#[test]
fn retention_never_deletes_at_or_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(
        dir.path(),
        &[("segment.bytes", "4096"), ("retention.ms", "60000")],
    );
    p.apply_image(&image(ME, 1, 1, &[ME, OTHER]), 0);
    // OTHER fetched up to offset 20; then records from a producer whose
    // clock is a day behind, across several segments.
    for _ in 0..2 {
        produce(&p, 10, 1_000);
    }
    p.follower_fetched(OTHER, -1, None, 20, 0).unwrap();
    assert_eq!(p.high_watermark(), Offset(20));
    for _ in 0..10 {
        produce(&p, 10, 1_000);
    }
    assert!(p.log().segments_info().len() > 3);
    let now = TimestampMs(86_400_000);
    crate::retention::enforce(&p, now).unwrap();
    assert!(
        p.log().log_start_offset() <= Offset(20),
        "retention deleted records above the high watermark (log start {})",
        p.log().log_start_offset()
    );
    // Once replicated, they expire as usual.
    p.follower_fetched(OTHER, -1, None, 120, 0).unwrap();
    crate::retention::enforce(&p, now).unwrap();
    assert_eq!(p.log().log_start_offset(), Offset(120));
}

/// KIP-903: the ISR addition names the broker epoch the follower fetched
/// with, so the controller can refuse a fetch sent before the follower
/// restarted (and possibly lost its log) from bringing it into the ISR.
#[test]
fn an_isr_addition_names_the_followers_broker_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &[]);
    p.apply_image(&image(ME, 1, 1, &[ME]), 0);
    produce(&p, 3, 1_000);
    let fetched = p
        .follower_fetched(OTHER, 7, Some(LeaderEpoch(1)), 3, 0)
        .unwrap();
    let proposal = p.propose_isr(fetched.expand.unwrap()).unwrap();
    assert_eq!(proposal.isr, vec![ME, OTHER]);
    assert_eq!(proposal.broker_epochs, vec![-1, 7]);
}

/// Finding (the simulation's reviewer, issue 13): an acks=all wait only
/// compared the high watermark with the append's last offset. A leader that
/// lost the partition and led it again in a later epoch could then
/// acknowledge a batch that a truncation in between may have replaced. The
/// wait now ends with NOT_LEADER_OR_FOLLOWER once the epoch of the append is
/// gone, even when the high watermark passed the offset; an append of the
/// new epoch is acknowledged as usual.
#[test]
fn an_acks_all_wait_ends_when_the_epoch_of_its_append_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let p = partition(dir.path(), &[]);
    p.apply_image(&image(ME, 1, 1, &[ME, OTHER]), 0);
    p.follower_fetched(OTHER, -1, Some(LeaderEpoch(1)), 0, 0)
        .unwrap();
    let last = produce(&p, 5, 1_000).get();
    assert_eq!(p.append_wait(LeaderEpoch(1), last, 1), AppendWait::Pending);
    // Leadership moves away and comes back with OTHER out of the ISR: the
    // high watermark passes the old append's offsets in epoch 3.
    p.apply_image(&image(OTHER, 2, 2, &[ME, OTHER]), 0);
    assert_eq!(
        p.append_wait(LeaderEpoch(1), last, 1),
        AppendWait::NotLeader
    );
    p.apply_image(&image(ME, 3, 3, &[ME]), 0);
    p.after_leader_append();
    assert!(p.high_watermark().get() > last);
    assert_eq!(
        p.append_wait(LeaderEpoch(1), last, 1),
        AppendWait::NotLeader,
        "an append of epoch 1 acknowledged by the leader of epoch 3"
    );
    let again = produce(&p, 1, 1_000).get();
    assert_eq!(
        p.append_wait(LeaderEpoch(3), again, 1),
        AppendWait::Replicated
    );
    assert_eq!(
        p.append_wait(LeaderEpoch(3), again, 2),
        AppendWait::NotEnoughReplicas
    );
}
