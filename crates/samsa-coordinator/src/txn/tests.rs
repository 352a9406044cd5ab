//! Tests of the transaction coordinator: one per error path and transition, and a
//! property test over random sequences of requests, time, marker completions and crashes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use samsa_model::{
    LeaderEpoch, PartitionIndex, ProducerEpoch, ProducerId, TimestampMs, TopicPartition,
};

use super::*;
use crate::api::{Record, ReplyToken};
use crate::coordinator::partition_for;
use crate::error::codes;
use crate::CoordinatorStatus;

use txn_codes::*;

const TOKEN: ReplyToken = ReplyToken(1);

fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition {
        topic: topic.into(),
        partition: PartitionIndex(p),
    }
}

fn config() -> TxnConfig {
    TxnConfig {
        transaction_state_partitions: 1,
        transaction_version: 0,
        ..TxnConfig::default()
    }
}

fn init_req(id: &str, timeout_ms: i32) -> InitProducerIdRequest {
    InitProducerIdRequest {
        transactional_id: id.into(),
        transaction_timeout_ms: timeout_ms,
        producer_id: ProducerId(-1),
        producer_epoch: ProducerEpoch(-1),
    }
}

fn tv2_config() -> TxnConfig {
    TxnConfig {
        transaction_version: 2,
        ..config()
    }
}

fn ids_from(next: Arc<AtomicI64>) -> Box<dyn FnMut() -> Option<ProducerId> + Send> {
    Box::new(move || Some(ProducerId(next.fetch_add(1, Ordering::SeqCst))))
}

/// A coordinator, the records it appended (its partition's log) and a clock.
struct Harness {
    c: TxnCoordinator,
    log: Vec<Record>,
    next_pid: Arc<AtomicI64>,
    cfg: TxnConfig,
}

impl Harness {
    fn new(cfg: TxnConfig) -> Harness {
        let next_pid = Arc::new(AtomicI64::new(1000));
        let mut c = TxnCoordinator::new(cfg.clone(), 0, LeaderEpoch(7), ids_from(next_pid.clone()));
        let _ = c.finish_loading(TimestampMs(0));
        Harness {
            c,
            log: Vec::new(),
            next_pid,
            cfg,
        }
    }

    /// Keeps the appended records; returns the outputs.
    fn run(&mut self, out: Vec<TxnOutput>) -> Vec<TxnOutput> {
        for o in &out {
            if let TxnOutput::Append { records, partition } = o {
                assert_eq!(*partition, 0);
                self.log.extend(records.iter().cloned());
            }
        }
        out
    }

    fn init(&mut self, now: i64, id: &str, pid: i64, epoch: i16) -> InitProducerIdResponse {
        let out = self.c.init_producer_id(
            TimestampMs(now),
            &InitProducerIdRequest {
                transactional_id: id.into(),
                transaction_timeout_ms: 60_000,
                producer_id: ProducerId(pid),
                producer_epoch: ProducerEpoch(epoch),
            },
            TOKEN,
        );
        match reply(&self.run(out)) {
            TxnResponse::InitProducerId(r) => r,
            r => panic!("unexpected {r:?}"),
        }
    }

    fn add(
        &mut self,
        now: i64,
        id: &str,
        p: &InitProducerIdResponse,
        parts: &[TopicPartition],
        tv: i16,
    ) -> Vec<i16> {
        let out = self.c.add_partitions_to_txn(
            TimestampMs(now),
            &AddPartitionsToTxnRequest {
                transactional_id: id.into(),
                producer_id: p.producer_id,
                producer_epoch: p.producer_epoch,
                partitions: parts.to_vec(),
                client_transaction_version: tv,
            },
            TOKEN,
        );
        match reply(&self.run(out)) {
            TxnResponse::AddPartitionsToTxn(r) => r.results.into_iter().map(|(_, c)| c).collect(),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn end(
        &mut self,
        now: i64,
        id: &str,
        pid: ProducerId,
        epoch: ProducerEpoch,
        commit: bool,
        tv: i16,
    ) -> (EndTxnResponse, Vec<TxnOutput>) {
        let out = self.c.end_txn(
            TimestampMs(now),
            &EndTxnRequest {
                transactional_id: id.into(),
                producer_id: pid,
                producer_epoch: epoch,
                commit,
                client_transaction_version: tv,
            },
            TOKEN,
        );
        let out = self.run(out);
        match reply(&out) {
            TxnResponse::EndTxn(r) => (r, out),
            r => panic!("unexpected {r:?}"),
        }
    }

    fn end_code(
        &mut self,
        now: i64,
        id: &str,
        pid: ProducerId,
        epoch: ProducerEpoch,
        commit: bool,
        tv: i16,
    ) -> i16 {
        self.end(now, id, pid, epoch, commit, tv).0.error_code
    }

    fn complete_markers(&mut self, now: i64) -> Vec<TxnOutput> {
        let mut all = Vec::new();
        for m in self.c.pending_markers() {
            let out = self.c.markers_written(
                TimestampMs(now),
                &m.transactional_id,
                m.producer_id,
                m.producer_epoch,
                &m.partitions,
            );
            all.extend(self.run(out));
        }
        all
    }

    /// A fresh coordinator rebuilt from the log (a failover).
    fn replayed(&self) -> TxnCoordinator {
        let mut c = TxnCoordinator::new(
            self.cfg.clone(),
            0,
            LeaderEpoch(8),
            ids_from(self.next_pid.clone()),
        );
        for r in &self.log {
            c.replay(&r.key, r.value.as_deref()).expect("replay");
        }
        c
    }

    /// Replaying the log rebuilds the live state.
    fn assert_replays(&self) {
        assert_eq!(self.replayed().durable_state(), self.c.durable_state());
    }

    fn state(&self, id: &str) -> TxnState {
        self.c
            .transaction(id)
            .map(|v| v.state)
            .unwrap_or(TxnState::Dead)
    }
}

fn reply(out: &[TxnOutput]) -> TxnResponse {
    let replies: Vec<&TxnResponse> = out
        .iter()
        .filter_map(|o| match o {
            TxnOutput::Reply { response, .. } => Some(response),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1, "exactly one reply in {out:?}");
    replies[0].clone()
}

fn markers(out: &[TxnOutput]) -> Vec<TxnMarkers> {
    out.iter()
        .filter_map(|o| match o {
            TxnOutput::WriteMarkers(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn appends(out: &[TxnOutput]) -> usize {
    out.iter()
        .filter(|o| matches!(o, TxnOutput::Append { .. }))
        .count()
}

#[test]
fn init_creates_an_id_then_bumps_its_epoch_and_fences_the_old_producer() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    assert_eq!(
        (a.error_code, a.producer_id, a.producer_epoch),
        (0, ProducerId(1000), ProducerEpoch(0))
    );
    let b = h.init(1, "t", -1, -1);
    assert_eq!(
        (b.error_code, b.producer_id, b.producer_epoch),
        (0, ProducerId(1000), ProducerEpoch(1))
    );
    assert_eq!(h.add(2, "t", &a, &[tp("x", 0)], 0), vec![PRODUCER_FENCED]);
    assert_eq!(h.add(2, "t", &b, &[tp("x", 0)], 0), vec![codes::NONE]);
    h.assert_replays();
}

#[test]
fn init_refuses_bad_timeouts_and_empty_ids() {
    let mut h = Harness::new(config());
    for timeout in [0, -5, TRANSACTION_MAX_TIMEOUT_MS_DEFAULT + 1] {
        let out =
            h.c.init_producer_id(TimestampMs(0), &init_req("t", timeout), TOKEN);
        assert!(
            matches!(reply(&out), TxnResponse::InitProducerId(r) if r.error_code == INVALID_TRANSACTION_TIMEOUT)
        );
        assert_eq!(appends(&out), 0);
    }
    assert_eq!(h.init(0, "", -1, -1).error_code, codes::INVALID_REQUEST);
    assert_eq!(h.init(0, "t", 5, -1).error_code, codes::INVALID_REQUEST);
}

#[test]
fn loading_unloaded_and_foreign_partitions_are_refused() {
    let pids = Arc::new(AtomicI64::new(1));
    let cfg = TxnConfig::default();
    let mut c = TxnCoordinator::new(cfg.clone(), 0, LeaderEpoch(0), ids_from(pids));
    let own = (0..)
        .map(|i| format!("id{i}"))
        .find(|s| partition_for(s, 50) == 0)
        .unwrap_or_default();
    let other = (0..)
        .map(|i| format!("id{i}"))
        .find(|s| partition_for(s, 50) != 0)
        .unwrap_or_default();
    let req = |id: &str| InitProducerIdRequest {
        transactional_id: id.into(),
        transaction_timeout_ms: 1000,
        producer_id: ProducerId(-1),
        producer_epoch: ProducerEpoch(-1),
    };
    let code = |out: Vec<TxnOutput>| match reply(&out) {
        TxnResponse::InitProducerId(r) => r.error_code,
        r => panic!("{r:?}"),
    };
    assert_eq!(
        code(c.init_producer_id(TimestampMs(0), &req(&own), TOKEN)),
        codes::COORDINATOR_LOAD_IN_PROGRESS
    );
    assert_eq!(
        c.list_transactions(TimestampMs(0), &Default::default())
            .error_code,
        codes::COORDINATOR_LOAD_IN_PROGRESS
    );
    let _ = c.finish_loading(TimestampMs(0));
    assert!(c.owns(&own) && !c.owns(&other));
    assert_eq!(
        code(c.init_producer_id(TimestampMs(0), &req(&other), TOKEN)),
        codes::NOT_COORDINATOR
    );
    assert_eq!(
        code(c.init_producer_id(TimestampMs(0), &req(&own), TOKEN)),
        codes::NONE
    );
    let _ = c.unload();
    assert_eq!(c.status(), CoordinatorStatus::Unloaded);
    assert_eq!(
        code(c.init_producer_id(TimestampMs(0), &req(&own), TOKEN)),
        codes::NOT_COORDINATOR
    );
    assert_eq!(
        c.describe_transactions(&[own])[0].error_code,
        codes::NOT_COORDINATOR
    );
}

#[test]
fn no_producer_id_available_is_load_in_progress() {
    let mut c = TxnCoordinator::new(config(), 0, LeaderEpoch(0), Box::new(|| None));
    let _ = c.finish_loading(TimestampMs(0));
    let out = c.init_producer_id(TimestampMs(0), &init_req("t", 1000), TOKEN);
    assert!(
        matches!(reply(&out), TxnResponse::InitProducerId(r) if r.error_code == codes::COORDINATOR_LOAD_IN_PROGRESS)
    );
    assert!(c.transaction("t").is_none());
}

#[test]
fn add_partitions_checks_the_producer_and_starts_the_transaction() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    let unknown = InitProducerIdResponse {
        error_code: 0,
        producer_id: ProducerId(1000),
        producer_epoch: ProducerEpoch(0),
    };
    assert_eq!(
        h.add(1, "nobody", &unknown, &[tp("x", 0)], 0),
        vec![INVALID_PRODUCER_ID_MAPPING]
    );
    let wrong_pid = InitProducerIdResponse {
        producer_id: ProducerId(5),
        ..a.clone()
    };
    assert_eq!(
        h.add(1, "t", &wrong_pid, &[tp("x", 0)], 0),
        vec![INVALID_PRODUCER_ID_MAPPING]
    );
    assert_eq!(h.add(5, "t", &a, &[tp("x", 0), tp("y", 1)], 0), vec![0, 0]);
    let v =
        h.c.transaction("t")
            .cloned()
            .unwrap_or_else(|| panic!("no txn"));
    assert_eq!(v.state, TxnState::Ongoing);
    assert_eq!(v.start_ms, TimestampMs(5));
    assert_eq!(v.partitions.len(), 2);
    let logged = h.log.len();
    // Partitions already in the transaction: answered without a record.
    assert_eq!(h.add(6, "t", &a, &[tp("x", 0)], 0), vec![0]);
    assert_eq!(h.log.len(), logged);
    assert_eq!(h.add(7, "t", &a, &[tp("z", 0)], 0), vec![0]);
    assert_eq!(
        h.c.transaction("t").map(|v| v.start_ms),
        Some(TimestampMs(5))
    );
    h.assert_replays();
}

#[test]
fn commit_writes_markers_for_every_partition_then_completes() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    h.add(1, "t", &a, &[tp("x", 0), tp("y", 3)], 0);
    let (r, out) = h.end(2, "t", a.producer_id, a.producer_epoch, true, 0);
    // TV1 answers carry no producer id and epoch.
    assert_eq!(
        (r.error_code, r.producer_id, r.producer_epoch),
        (0, ProducerId(-1), ProducerEpoch(-1))
    );
    // The Prepare record is appended before the reply, the markers come after it.
    assert!(matches!(out[0], TxnOutput::Append { .. }));
    assert!(matches!(out[1], TxnOutput::Reply { .. }));
    let m = markers(&out);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].partitions, vec![tp("x", 0), tp("y", 3)]);
    assert!(m[0].commit);
    assert_eq!(m[0].coordinator_epoch, LeaderEpoch(7));
    assert_eq!(h.state("t"), TxnState::PrepareCommit);
    // One partition done: still preparing; a stale report changes nothing.
    let out = h.c.markers_written(
        TimestampMs(3),
        "t",
        a.producer_id,
        ProducerEpoch(9),
        &[tp("x", 0), tp("y", 3)],
    );
    assert!(out.is_empty());
    let out = h.c.markers_written(
        TimestampMs(3),
        "t",
        a.producer_id,
        a.producer_epoch,
        &[tp("x", 0)],
    );
    assert!(out.is_empty());
    assert_eq!(
        h.c.describe_transactions(&["t".into()])[0].topics,
        vec![("y".to_string(), vec![3])]
    );
    let out = h.c.markers_written(
        TimestampMs(4),
        "t",
        a.producer_id,
        a.producer_epoch,
        &[tp("y", 3)],
    );
    assert_eq!(appends(&h.run(out)), 1);
    assert_eq!(h.state("t"), TxnState::CompleteCommit);
    // A retried commit is answered NONE; an abort now is an invalid state.
    assert_eq!(
        h.end_code(5, "t", a.producer_id, a.producer_epoch, true, 0),
        0
    );
    assert_eq!(
        h.end_code(5, "t", a.producer_id, a.producer_epoch, false, 0),
        INVALID_TXN_STATE
    );
    h.assert_replays();
}

#[test]
fn requests_while_markers_are_written_get_concurrent_transactions() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    h.add(1, "t", &a, &[tp("x", 0)], 0);
    h.end(2, "t", a.producer_id, a.producer_epoch, false, 0);
    assert_eq!(
        h.add(3, "t", &a, &[tp("x", 1)], 0),
        vec![CONCURRENT_TRANSACTIONS]
    );
    assert_eq!(h.init(3, "t", -1, -1).error_code, CONCURRENT_TRANSACTIONS);
    assert_eq!(
        h.end_code(3, "t", a.producer_id, a.producer_epoch, false, 0),
        CONCURRENT_TRANSACTIONS
    );
    assert_eq!(
        h.end_code(3, "t", a.producer_id, a.producer_epoch, true, 0),
        INVALID_TXN_STATE
    );
    // End without a transaction.
    h.complete_markers(4);
    let b = h.init(5, "t", -1, -1);
    assert_eq!(
        h.end_code(6, "t", b.producer_id, b.producer_epoch, true, 0),
        INVALID_TXN_STATE
    );
    assert_eq!(
        h.end_code(6, "nobody", b.producer_id, b.producer_epoch, true, 0),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.end_code(6, "t", ProducerId(1), b.producer_epoch, true, 0),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.end_code(6, "t", b.producer_id, a.producer_epoch, true, 0),
        PRODUCER_FENCED
    );
}

#[test]
fn init_during_an_ongoing_transaction_aborts_it_with_a_bumped_epoch() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    h.add(1, "t", &a, &[tp("x", 0)], 0);
    let out =
        h.c.init_producer_id(TimestampMs(2), &init_req("t", 60_000), TOKEN);
    let out = h.run(out);
    assert!(
        matches!(reply(&out), TxnResponse::InitProducerId(r) if r.error_code == CONCURRENT_TRANSACTIONS)
    );
    let m = markers(&out);
    assert_eq!(m.len(), 1);
    assert!(!m[0].commit);
    assert_eq!(m[0].producer_epoch, ProducerEpoch(1));
    assert_eq!(h.state("t"), TxnState::PrepareAbort);
    // The zombie cannot commit.
    assert_eq!(
        h.end_code(3, "t", a.producer_id, a.producer_epoch, true, 0),
        PRODUCER_FENCED
    );
    h.complete_markers(4);
    assert_eq!(h.state("t"), TxnState::CompleteAbort);
    let b = h.init(5, "t", -1, -1);
    assert_eq!((b.error_code, b.producer_epoch), (0, ProducerEpoch(2)));
    h.assert_replays();
}

#[test]
fn kip360_reinit_bumps_retries_and_fences() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    let b = h.init(1, "t", a.producer_id.0, a.producer_epoch.0);
    assert_eq!(
        (b.error_code, b.producer_id, b.producer_epoch),
        (0, a.producer_id, ProducerEpoch(1))
    );
    // A retry of that call (its answer lost) gets the same epoch.
    let again = h.init(2, "t", a.producer_id.0, a.producer_epoch.0);
    assert_eq!(
        (again.error_code, again.producer_epoch),
        (0, ProducerEpoch(1))
    );
    assert_eq!(h.init(3, "t", 77, 0).error_code, PRODUCER_FENCED);
    let c = h.init(3, "t", -1, -1);
    assert_eq!(c.producer_epoch, ProducerEpoch(2));
    // After another producer took over, the old epoch is fenced.
    assert_eq!(
        h.init(4, "t", b.producer_id.0, b.producer_epoch.0)
            .error_code,
        PRODUCER_FENCED
    );
}

/// A record of `value` for `id`, replayed into a fresh harness.
fn harness_with(cfg: TxnConfig, id: &str, value: TxnLogValue) -> Harness {
    let mut h = Harness::new(cfg.clone());
    h.c = TxnCoordinator::new(cfg, 0, LeaderEpoch(7), ids_from(h.next_pid.clone()));
    let r = Record {
        key: records::encode_key(id),
        value: Some(value.encode(1)),
    };
    h.c.replay(&r.key, r.value.as_deref()).expect("replay");
    h.log.push(r);
    let out = h.c.finish_loading(TimestampMs(0));
    h.run(out);
    h
}

fn value(pid: i64, epoch: i16, state: TxnState, parts: &[TopicPartition], tv: i16) -> TxnLogValue {
    TxnLogValue {
        producer_id: ProducerId(pid),
        previous_producer_id: ProducerId(-1),
        next_producer_id: ProducerId(-1),
        producer_epoch: ProducerEpoch(epoch),
        timeout_ms: 60_000,
        state,
        partitions: parts.iter().cloned().collect(),
        last_update_ms: TimestampMs(0),
        start_ms: TimestampMs(if parts.is_empty() { -1 } else { 0 }),
        client_transaction_version: tv,
    }
}

#[test]
fn an_exhausted_epoch_gets_a_new_producer_id() {
    let mut h = harness_with(
        config(),
        "t",
        value(5, i16::MAX - 1, TxnState::CompleteCommit, &[], 0),
    );
    let r = h.init(1, "t", -1, -1);
    assert_eq!(
        (r.error_code, r.producer_id, r.producer_epoch),
        (0, ProducerId(1000), ProducerEpoch(0))
    );
    assert_eq!(
        h.c.transaction("t").map(|v| v.previous_producer_id),
        Some(ProducerId(-1)),
        "v0 records drop it"
    );
}

#[test]
fn tv2_end_bumps_the_epoch_and_answers_retries() {
    let cfg = tv2_config();
    let mut h = Harness::new(cfg);
    let a = h.init(0, "t", -1, -1);
    h.add(1, "t", &a, &[tp("x", 0)], 2);
    let (r, out) = h.end(2, "t", a.producer_id, a.producer_epoch, true, 2);
    assert_eq!((r.error_code, r.producer_epoch), (0, ProducerEpoch(1)));
    assert_eq!(
        markers(&out)[0].producer_epoch,
        ProducerEpoch(1),
        "markers carry the bumped epoch"
    );
    // A retry while preparing, then once complete.
    assert_eq!(
        h.end_code(3, "t", a.producer_id, a.producer_epoch, true, 2),
        CONCURRENT_TRANSACTIONS
    );
    h.complete_markers(4);
    let (r, _) = h.end(5, "t", a.producer_id, a.producer_epoch, true, 2);
    assert_eq!((r.error_code, r.producer_epoch), (0, ProducerEpoch(1)));
    assert_eq!(
        h.end_code(5, "t", a.producer_id, a.producer_epoch, false, 2),
        INVALID_TXN_STATE
    );
    // An epoch two behind is fenced.
    h.add(
        6,
        "t",
        &InitProducerIdResponse {
            producer_epoch: ProducerEpoch(1),
            ..a.clone()
        },
        &[tp("x", 0)],
        2,
    );
    h.end(7, "t", a.producer_id, ProducerEpoch(1), false, 2);
    h.complete_markers(8);
    assert_eq!(
        h.end_code(9, "t", a.producer_id, ProducerEpoch(0), false, 2),
        PRODUCER_FENCED
    );
    // TV2 allows an abort with nothing added: it completes at once, with a bump.
    let (r, out) = h.end(10, "t", a.producer_id, ProducerEpoch(2), false, 2);
    assert_eq!((r.error_code, r.producer_epoch), (0, ProducerEpoch(3)));
    assert!(markers(&out).is_empty());
    assert_eq!(appends(&out), 2);
    assert_eq!(h.state("t"), TxnState::CompleteAbort);
    // TV1 takes an abort at the same epoch for a retry, and refuses a commit.
    let (r, out) = h.end(11, "t", a.producer_id, ProducerEpoch(3), false, 0);
    assert_eq!(
        (r.error_code, r.producer_epoch, appends(&out)),
        (0, ProducerEpoch(-1), 0)
    );
    assert_eq!(
        h.end_code(11, "t", a.producer_id, ProducerEpoch(3), true, 0),
        INVALID_TXN_STATE
    );
    h.assert_replays();
}

#[test]
fn tv2_epoch_exhaustion_moves_to_a_new_producer_id() {
    let cfg = tv2_config();
    let mut h = harness_with(
        cfg,
        "t",
        value(5, i16::MAX - 1, TxnState::Ongoing, &[tp("x", 0)], 2),
    );
    let (r, out) = h.end(1, "t", ProducerId(5), ProducerEpoch(i16::MAX - 1), true, 2);
    assert_eq!(
        (r.error_code, r.producer_id, r.producer_epoch),
        (0, ProducerId(1000), ProducerEpoch(0))
    );
    assert_eq!(markers(&out)[0].producer_id, ProducerId(5));
    assert_eq!(markers(&out)[0].producer_epoch, ProducerEpoch(i16::MAX));
    h.complete_markers(2);
    let v =
        h.c.transaction("t")
            .cloned()
            .unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        (v.producer_id, v.producer_epoch, v.previous_producer_id),
        (ProducerId(1000), ProducerEpoch(0), ProducerId(5))
    );
    // The retry of the end with the old id and epoch succeeds.
    let (r, _) = h.end(3, "t", ProducerId(5), ProducerEpoch(i16::MAX - 1), true, 2);
    assert_eq!(
        (r.error_code, r.producer_id, r.producer_epoch),
        (0, ProducerId(1000), ProducerEpoch(0))
    );
    h.assert_replays();
}

#[test]
fn timed_out_transactions_are_aborted_and_their_producer_fenced() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    h.add(1_000, "t", &a, &[tp("x", 0)], 0);
    assert_eq!(
        h.c.next_deadline(),
        Some(TimestampMs(ABORT_TIMED_OUT_INTERVAL_MS_DEFAULT))
    );
    let out = h.c.tick(TimestampMs(50_000));
    assert!(out.is_empty(), "not yet timed out: {out:?}");
    let out = h.c.tick(TimestampMs(61_001));
    let out = h.run(out);
    let m = markers(&out);
    assert_eq!(m.len(), 1);
    assert!(!m[0].commit);
    assert_eq!(m[0].producer_epoch, ProducerEpoch(1));
    assert_eq!(
        h.add(61_002, "t", &a, &[tp("x", 1)], 0),
        vec![PRODUCER_FENCED]
    );
    assert_eq!(
        h.end_code(61_002, "t", a.producer_id, a.producer_epoch, true, 0),
        PRODUCER_FENCED
    );
    h.assert_replays();
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let cfg = TxnConfig {
        transactional_id_expiration_ms: 100_000,
        ..config()
    };
    let mut h = Harness::new(cfg);
    let a = h.init(0, "idle", -1, -1);
    let b = h.init(0, "busy", -1, -1);
    h.add(0, "busy", &b, &[tp("x", 0)], 0);
    let out = h.c.tick(TimestampMs(REMOVE_EXPIRED_INTERVAL_MS_DEFAULT));
    let out = h.run(out);
    let tombstones: Vec<&Record> = out
        .iter()
        .filter_map(|o| match o {
            TxnOutput::Append { records, .. } => Some(records),
            _ => None,
        })
        .flatten()
        .filter(|r| r.value.is_none())
        .collect();
    assert_eq!(tombstones.len(), 1);
    assert_eq!(
        records::decode_key(&tombstones[0].key).as_deref(),
        Ok("idle")
    );
    assert_eq!(
        h.c.describe_transactions(&["idle".into()])[0].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
    assert_eq!(
        h.add(1, "idle", &a, &[tp("x", 0)], 0),
        vec![INVALID_PRODUCER_ID_MAPPING]
    );
    assert!(
        h.c.transaction("busy").is_some(),
        "an ongoing transaction is not expired"
    );
    h.assert_replays();
}

#[test]
fn a_failover_reissues_the_markers_of_prepared_transactions() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    h.add(1, "t", &a, &[tp("x", 0), tp("x", 1)], 0);
    h.end(2, "t", a.producer_id, a.producer_epoch, true, 0);
    let mut c = h.replayed();
    let out = c.finish_loading(TimestampMs(10));
    let m = markers(&out);
    assert_eq!(m.len(), 1);
    assert!(m[0].commit);
    assert_eq!(m[0].partitions, vec![tp("x", 0), tp("x", 1)]);
    assert_eq!(
        m[0].coordinator_epoch,
        LeaderEpoch(8),
        "the new leader epoch"
    );
    let out = c.markers_written(
        TimestampMs(11),
        "t",
        a.producer_id,
        a.producer_epoch,
        &m[0].partitions,
    );
    assert_eq!(appends(&out), 1);
    assert_eq!(
        c.transaction("t").map(|v| v.state),
        Some(TxnState::CompleteCommit)
    );
}

#[test]
fn verify_only_answers_whether_partitions_are_in_the_transaction() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    let req = |epoch: ProducerEpoch, pid: ProducerId| AddPartitionsToTxnRequest {
        transactional_id: "t".into(),
        producer_id: pid,
        producer_epoch: epoch,
        partitions: vec![tp("x", 0), tp("y", 0)],
        client_transaction_version: 0,
    };
    let codes_of =
        |r: AddPartitionsToTxnResponse| r.results.into_iter().map(|(_, c)| c).collect::<Vec<_>>();
    assert_eq!(
        codes_of(h.c.verify_partitions_in_txn(&req(a.producer_epoch, a.producer_id))),
        vec![TRANSACTION_ABORTABLE; 2]
    );
    h.add(1, "t", &a, &[tp("x", 0)], 0);
    let logged = h.log.len();
    assert_eq!(
        codes_of(h.c.verify_partitions_in_txn(&req(a.producer_epoch, a.producer_id))),
        vec![0, TRANSACTION_ABORTABLE]
    );
    assert_eq!(h.log.len(), logged, "verification writes nothing");
    assert_eq!(
        codes_of(h.c.verify_partitions_in_txn(&req(ProducerEpoch(3), a.producer_id))),
        vec![PRODUCER_FENCED; 2]
    );
    assert_eq!(
        codes_of(h.c.verify_partitions_in_txn(&req(a.producer_epoch, ProducerId(3)))),
        vec![INVALID_PRODUCER_ID_MAPPING; 2]
    );
    h.end(2, "t", a.producer_id, a.producer_epoch, true, 0);
    assert_eq!(
        codes_of(h.c.verify_partitions_in_txn(&req(a.producer_epoch, a.producer_id))),
        vec![CONCURRENT_TRANSACTIONS; 2]
    );
}

#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    let mut h = Harness::new(config());
    let a = h.init(0, "t", -1, -1);
    let out = h.c.add_offsets_to_txn(
        TimestampMs(1),
        &AddOffsetsToTxnRequest {
            transactional_id: "t".into(),
            producer_id: a.producer_id,
            producer_epoch: a.producer_epoch,
            group_id: "g".into(),
            client_transaction_version: 0,
        },
        TOKEN,
    );
    assert_eq!(
        reply(&h.run(out)),
        TxnResponse::AddOffsetsToTxn(AddOffsetsToTxnResponse { error_code: 0 })
    );
    let want = tp("__consumer_offsets", partition_for("g", 50) as i32);
    assert_eq!(
        h.c.transaction("t").map(|v| v.partitions.contains(&want)),
        Some(true)
    );
    let (_, out) = h.end(2, "t", a.producer_id, a.producer_epoch, true, 0);
    assert_eq!(markers(&out)[0].partitions, vec![want]);
}

#[test]
fn describe_and_list_with_filters() {
    let mut h = Harness::new(config());
    let a = h.init(0, "a", -1, -1);
    let b = h.init(0, "b", -1, -1);
    h.add(1_000, "a", &a, &[tp("x", 0), tp("x", 2), tp("y", 1)], 0);
    let d =
        &h.c.describe_transactions(&["a".into(), "zz".into(), "".into()]);
    assert_eq!(d[0].state, "Ongoing");
    assert_eq!(d[0].start_time_ms, TimestampMs(1_000));
    assert_eq!(
        d[0].topics,
        vec![("x".into(), vec![0, 2]), ("y".into(), vec![1])]
    );
    assert_eq!(d[1].error_code, TRANSACTIONAL_ID_NOT_FOUND);
    assert_eq!(d[2].error_code, codes::INVALID_REQUEST);
    let list = |states: &[&str], pids: &[ProducerId], dur: i64| {
        h.c.list_transactions(
            TimestampMs(5_000),
            &ListTransactionsRequest {
                state_filters: states.iter().map(|s| s.to_string()).collect(),
                producer_id_filters: pids.to_vec(),
                duration_filter_ms: dur,
            },
        )
    };
    let ids = |r: ListTransactionsResponse| {
        r.transactions
            .into_iter()
            .map(|t| t.transactional_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(list(&[], &[], -1)), vec!["a", "b"]);
    assert_eq!(ids(list(&["Ongoing"], &[], -1)), vec!["a"]);
    assert_eq!(ids(list(&[], &[b.producer_id], -1)), vec!["b"]);
    assert_eq!(ids(list(&["Ongoing"], &[], 4_000)), Vec::<String>::new());
    assert_eq!(ids(list(&["Ongoing"], &[], 3_999)), vec!["a"]);
    let r = list(&["Bogus", "Empty"], &[], -1);
    assert_eq!(r.unknown_state_filters, vec!["Bogus"]);
    assert_eq!(ids(r), vec!["b"]);
}

#[test]
fn v0_records_are_written_below_transaction_version_2() {
    let mut h = Harness::new(config());
    h.init(0, "t", -1, -1);
    assert_eq!(h.log[0].value.as_deref().map(|v| v[1]), Some(0));
    let mut h = Harness::new(tv2_config());
    h.init(0, "t", -1, -1);
    assert_eq!(h.log[0].value.as_deref().map(|v| v[1]), Some(1));
}

#[test]
fn old_request_versions_get_invalid_producer_epoch_for_fencing() {
    let cases = [
        (22, 3, PRODUCER_FENCED, INVALID_PRODUCER_EPOCH),
        (22, 4, PRODUCER_FENCED, PRODUCER_FENCED),
        (26, 1, PRODUCER_FENCED, INVALID_PRODUCER_EPOCH),
        (26, 2, PRODUCER_FENCED, PRODUCER_FENCED),
        (24, 0, CONCURRENT_TRANSACTIONS, CONCURRENT_TRANSACTIONS),
    ];
    for (api, version, code, want) in cases {
        assert_eq!(
            txn_codes::for_version(api, version, code),
            want,
            "api {api} v{version}"
        );
    }
}

#[test]
fn a_fenced_tv2_producer_is_not_taken_for_a_retry_of_a_tv1_commit() {
    let mut h = Harness::new(tv2_config());
    let zombie = h.init(0, "t", -1, -1);
    let b = h.init(1, "t", -1, -1);
    h.add(2, "t", &b, &[tp("x", 0)], 0);
    h.end(3, "t", b.producer_id, b.producer_epoch, true, 0);
    h.complete_markers(4);
    // The zombie's epoch is one behind, as a TV2 retry's would be; but no TV2 end bumped.
    assert_eq!(
        h.end_code(5, "t", zombie.producer_id, zombie.producer_epoch, true, 2),
        PRODUCER_FENCED
    );
}

mod prop;
