//! Random sequences of requests from several producers, time, marker completions and
//! coordinator crashes (failover: a fresh coordinator replays the log). After every step:
//! replaying the log rebuilds the live state; and over the whole run: no transaction is
//! both committed and aborted, every partition added gets a marker, epochs of a producer
//! id never go backwards, fenced producers never succeed.

use proptest::prelude::*;

use super::*;

const IDS: [&str; 2] = ["t0", "t1"];
const PARTS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Init {
        client: usize,
        id: usize,
        kip360: bool,
        tv2: bool,
    },
    Add {
        client: usize,
        mask: u8,
    },
    AddOffsets {
        client: usize,
    },
    End {
        client: usize,
        commit: bool,
    },
    Verify {
        client: usize,
        part: usize,
    },
    Markers {
        pick: usize,
        mask: u8,
    },
    Tick {
        advance_ms: i64,
    },
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize, 0..IDS.len(), any::<bool>(), any::<bool>()).prop_map(|(client, id, kip360, tv2)| Op::Init { client, id, kip360, tv2 }),
        4 => (0..3usize, 1..16u8).prop_map(|(client, mask)| Op::Add { client, mask }),
        1 => (0..3usize).prop_map(|client| Op::AddOffsets { client }),
        3 => (0..3usize, any::<bool>()).prop_map(|(client, commit)| Op::End { client, commit }),
        1 => (0..3usize, 0..PARTS).prop_map(|(client, part)| Op::Verify { client, part }),
        4 => (0..4usize, 1..16u8).prop_map(|(pick, mask)| Op::Markers { pick, mask }),
        2 => prop_oneof![0..2_000i64, 0..40_000i64, 100_000..200_000i64].prop_map(|advance_ms| Op::Tick { advance_ms }),
        1 => Just(Op::Crash),
    ]
}

/// A producer: which id it initialized, the producer id and epoch it was given, and
/// whether a later InitProducerId of another producer fenced it.
#[derive(Clone, Debug)]
struct Client {
    id: usize,
    pid: ProducerId,
    epoch: ProducerEpoch,
    fenced: bool,
    /// The transaction version it speaks (TV2 only where the server finalized it).
    tv: i16,
}

/// What the checks remember across the run.
#[derive(Default)]
struct Model {
    /// Partitions acknowledged by AddPartitionsToTxn since the id's last Prepare record.
    added: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// The decision of the id's Prepare record not yet completed.
    deciding: BTreeMap<String, bool>,
    /// Highest epoch seen per producer id.
    epochs: BTreeMap<ProducerId, ProducerEpoch>,
}

impl Model {
    fn check_outputs(&mut self, out: &[TxnOutput]) -> Result<(), TestCaseError> {
        for o in out {
            match o {
                TxnOutput::Append { records, .. } => {
                    for r in records {
                        let id = records::decode_key(&r.key)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let added = self.added.entry(id.clone()).or_default();
                        let Some(bytes) = &r.value else {
                            prop_assert!(added.is_empty(), "{id} expired with partitions added");
                            continue;
                        };
                        let v = TxnLogValue::decode(bytes)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        let last = self.epochs.entry(v.producer_id).or_insert(v.producer_epoch);
                        prop_assert!(
                            v.producer_epoch >= *last,
                            "epoch of {:?} went back: {:?} < {:?}",
                            v.producer_id,
                            v.producer_epoch,
                            last
                        );
                        *last = v.producer_epoch;
                        match v.state {
                            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                                prop_assert!(
                                    added.is_subset(&v.partitions),
                                    "{id}: added {added:?} not all in {:?}",
                                    v.partitions
                                );
                                added.clear();
                                let commit = v.state == TxnState::PrepareCommit;
                                prop_assert!(
                                    self.deciding.insert(id.clone(), commit).is_none(),
                                    "{id} prepared twice"
                                );
                            }
                            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                                let decided = self.deciding.remove(&id);
                                prop_assert_eq!(
                                    decided,
                                    Some(v.state == TxnState::CompleteCommit),
                                    "{} completed against its decision",
                                    id
                                );
                                prop_assert!(added.is_empty());
                            }
                            TxnState::Empty => {
                                prop_assert!(added.is_empty(), "{id} reset with partitions added")
                            }
                            _ => {}
                        }
                    }
                }
                TxnOutput::WriteMarkers(m) => {
                    let decided = self.deciding.get(&m.transactional_id).copied();
                    prop_assert_eq!(
                        decided,
                        Some(m.commit),
                        "markers against the decision of {}",
                        m.transactional_id
                    );
                    prop_assert!(!m.partitions.is_empty());
                }
                TxnOutput::Reply { .. } => {}
            }
        }
        Ok(())
    }
}

fn part(i: usize) -> TopicPartition {
    tp(if i.is_multiple_of(2) { "a" } else { "b" }, i as i32)
}

fn run_ops(ops: Vec<Op>, tv: i16) -> Result<(), TestCaseError> {
    let cfg = TxnConfig {
        transaction_version: tv,
        transactional_id_expiration_ms: 120_000,
        abort_timed_out_interval_ms: 1_000,
        remove_expired_interval_ms: 5_000,
        ..config()
    };
    let mut h = Harness::new(cfg.clone());
    let mut model = Model::default();
    let mut clients: Vec<Option<Client>> = vec![None, None, None];
    let mut now = 0i64;
    let mut leader_epoch = 7;
    for op in ops {
        now += 1;
        let before: Vec<Option<TxnState>> = IDS
            .iter()
            .map(|id| h.c.transaction(id).map(|v| v.state))
            .collect();
        let out = match &op {
            Op::Init {
                client,
                id,
                kip360,
                tv2,
            } => {
                let (pid, epoch) = match (&clients[*client], kip360) {
                    (Some(c), true) if c.id == *id => (c.pid, c.epoch),
                    _ => (ProducerId(-1), ProducerEpoch(-1)),
                };
                let out = h.c.init_producer_id(
                    TimestampMs(now),
                    &InitProducerIdRequest {
                        transactional_id: IDS[*id].into(),
                        transaction_timeout_ms: 20_000,
                        producer_id: pid,
                        producer_epoch: epoch,
                    },
                    TOKEN,
                );
                if let TxnResponse::InitProducerId(r) = reply(&out) {
                    if r.error_code == 0 {
                        for (i, c) in clients.iter_mut().enumerate() {
                            if let Some(c) = c.as_mut().filter(|c| c.id == *id && i != *client) {
                                c.fenced = true;
                            }
                        }
                        clients[*client] = Some(Client {
                            id: *id,
                            pid: r.producer_id,
                            epoch: r.producer_epoch,
                            fenced: false,
                            tv: if *tv2 { tv } else { 0 },
                        });
                    }
                }
                out
            }
            Op::Add { client, mask } => {
                let Some(c) = clients[*client].clone() else {
                    continue;
                };
                let parts: Vec<TopicPartition> = (0..PARTS)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(part)
                    .collect();
                let out = h.c.add_partitions_to_txn(
                    TimestampMs(now),
                    &AddPartitionsToTxnRequest {
                        transactional_id: IDS[c.id].into(),
                        producer_id: c.pid,
                        producer_epoch: c.epoch,
                        partitions: parts.clone(),
                        client_transaction_version: c.tv,
                    },
                    TOKEN,
                );
                if let TxnResponse::AddPartitionsToTxn(r) = reply(&out) {
                    let ok = r.results.iter().all(|(_, code)| *code == 0);
                    prop_assert!(!(ok && c.fenced), "fenced producer added partitions");
                    if ok {
                        model
                            .added
                            .entry(IDS[c.id].into())
                            .or_default()
                            .extend(parts);
                    }
                }
                out
            }
            Op::AddOffsets { client } => {
                let Some(c) = clients[*client].clone() else {
                    continue;
                };
                let out = h.c.add_offsets_to_txn(
                    TimestampMs(now),
                    &AddOffsetsToTxnRequest {
                        transactional_id: IDS[c.id].into(),
                        producer_id: c.pid,
                        producer_epoch: c.epoch,
                        group_id: "g".into(),
                        client_transaction_version: c.tv,
                    },
                    TOKEN,
                );
                if let TxnResponse::AddOffsetsToTxn(r) = reply(&out) {
                    prop_assert!(
                        !(r.error_code == 0 && c.fenced),
                        "fenced producer added offsets"
                    );
                    if r.error_code == 0 {
                        let p = tp(
                            "__consumer_offsets",
                            partition_for("g", cfg.offsets_partitions) as i32,
                        );
                        model.added.entry(IDS[c.id].into()).or_default().insert(p);
                    }
                }
                out
            }
            Op::End { client, commit } => {
                let Some(c) = clients[*client].clone() else {
                    continue;
                };
                let out = h.c.end_txn(
                    TimestampMs(now),
                    &EndTxnRequest {
                        transactional_id: IDS[c.id].into(),
                        producer_id: c.pid,
                        producer_epoch: c.epoch,
                        commit: *commit,
                        client_transaction_version: c.tv,
                    },
                    TOKEN,
                );
                if let TxnResponse::EndTxn(r) = reply(&out) {
                    prop_assert!(
                        !(r.error_code == 0 && c.fenced),
                        "fenced producer ended a transaction"
                    );
                    if r.error_code == 0 && c.tv >= 2 {
                        prop_assert!(
                            (r.producer_id, r.producer_epoch) > (c.pid, c.epoch)
                                || r.producer_id != c.pid,
                            "TV2 end did not move the epoch on"
                        );
                        clients[*client] = Some(Client {
                            pid: r.producer_id,
                            epoch: r.producer_epoch,
                            ..c
                        });
                    }
                }
                out
            }
            Op::Verify { client, part: p } => {
                let Some(c) = clients[*client].clone() else {
                    continue;
                };
                let r = h.c.verify_partitions_in_txn(&AddPartitionsToTxnRequest {
                    transactional_id: IDS[c.id].into(),
                    producer_id: c.pid,
                    producer_epoch: c.epoch,
                    partitions: vec![part(*p)],
                    client_transaction_version: c.tv,
                });
                prop_assert!(
                    !(r.results[0].1 == 0 && c.fenced),
                    "fenced producer verified"
                );
                if r.results[0].1 == 0 {
                    let added = model
                        .added
                        .get(IDS[c.id])
                        .is_some_and(|a| a.contains(&part(*p)));
                    prop_assert!(added, "verified a partition never added");
                }
                continue;
            }
            Op::Markers { pick, mask } => {
                let pending = h.c.pending_markers();
                if pending.is_empty() {
                    continue;
                }
                let m = &pending[pick % pending.len()];
                let done: Vec<TopicPartition> = m
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << (i % 4)) != 0)
                    .map(|(_, tp)| tp.clone())
                    .collect();
                h.c.markers_written(
                    TimestampMs(now),
                    &m.transactional_id,
                    m.producer_id,
                    m.producer_epoch,
                    &done,
                )
            }
            Op::Tick { advance_ms } => {
                now += advance_ms;
                let out = h.c.tick(TimestampMs(now));
                // No transaction outlives its timeout by more than the scan interval (plus
                // the 1 ms every other step adds).
                for id in IDS {
                    if let Some(v) = h.c.transaction(id).filter(|v| v.state == TxnState::Ongoing) {
                        let limit = v.start_ms.0
                            + i64::from(v.timeout_ms)
                            + cfg.abort_timed_out_interval_ms
                            + 60;
                        prop_assert!(now <= limit, "{id} still ongoing at {now}: {v:?}");
                    }
                }
                out
            }
            Op::Crash => {
                leader_epoch += 1;
                let mut c = TxnCoordinator::new(
                    cfg.clone(),
                    0,
                    LeaderEpoch(leader_epoch),
                    ids_from(h.next_pid.clone()),
                );
                for r in &h.log {
                    c.replay(&r.key, r.value.as_deref())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                h.c = c;
                h.c.finish_loading(TimestampMs(now))
            }
        };
        let out = h.run(out);
        model.check_outputs(&out)?;
        // An Ongoing transaction aborted by the coordinator (fencing by InitProducerId,
        // timeout) fences its producers, whatever the epochs say.
        for (i, id) in IDS.iter().enumerate() {
            let after = h.c.transaction(id).map(|v| v.state);
            let fenced_here = match &op {
                Op::Init { id: j, .. } => *j == i,
                Op::Tick { .. } => true,
                _ => false,
            };
            if fenced_here
                && before[i] == Some(TxnState::Ongoing)
                && after != Some(TxnState::Ongoing)
            {
                for c in clients.iter_mut().flatten().filter(|c| c.id == i) {
                    c.fenced = true;
                }
            }
        }
        // Whoever holds an epoch the id has moved past is fenced (another producer's
        // InitProducerId, a fencing abort, a timeout abort).
        for c in clients.iter_mut().flatten() {
            if let Some(v) = h.c.transaction(IDS[c.id]) {
                let moved_on = if v.producer_id == c.pid {
                    v.producer_epoch > c.epoch
                } else {
                    v.next_producer_id != c.pid
                };
                c.fenced |= moved_on;
            }
        }
        let mut replayed = h.replayed();
        prop_assert_eq!(
            replayed.durable_state(),
            h.c.durable_state(),
            "after {:?}",
            op
        );
        // The replayed coordinator asks for the markers the live one still waits for.
        let reissued: BTreeSet<(String, bool)> =
            markers(&replayed.finish_loading(TimestampMs(now)))
                .into_iter()
                .map(|m| (m.transactional_id, m.commit))
                .collect();
        let waiting: BTreeSet<(String, bool)> =
            h.c.pending_markers()
                .into_iter()
                .map(|m| (m.transactional_id, m.commit))
                .collect();
        prop_assert!(
            waiting.is_subset(&reissued),
            "{waiting:?} not reissued: {reissued:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_runs_keep_the_invariants_tv0(ops in proptest::collection::vec(op(), 1..60)) {
        run_ops(ops, 0)?;
    }

    #[test]
    fn random_runs_keep_the_invariants_tv2(ops in proptest::collection::vec(op(), 1..60)) {
        run_ops(ops, 2)?;
    }
}
