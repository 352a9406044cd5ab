//! A deterministic simulation of one partition replicated on three brokers,
//! driving the real [`ReplicaState`] (the code the broker runs) with
//! in-memory segmented logs, a model controller and a network that delays,
//! reorders and drops messages, all chosen by a seeded PRNG.
//!
//! Each seed runs a few hundred steps: idempotent producers (acks=0/1/all,
//! retrying, bumping their epoch on OUT_OF_ORDER_SEQUENCE_NUMBER), follower
//! fetches and KIP-279 truncation, ISR shrink and expansion through fenced
//! AlterPartition, leader elections from the ISR, a live leader fenced by
//! the controller (a zombie until it hears), crashes with and without losing
//! the page cache, restarts, retention. Each log rolls segments (by batch
//! count or bytes, small limits chosen per seed) and snapshots its producer
//! state at each roll; retention deletes whole segments below the high
//! watermark; truncation and a lost page cache cut across segments. Duplicate
//! detection is `samsa_storage`'s own `ProducerStateTable` (the leader checks,
//! every replica records), rebuilt after a restart or a truncation by the
//! storage crate's rule (newest usable snapshot + replay of the batches
//! after it). After every step the invariants are checked:
//!
//! 1. every batch acknowledged with acks=all is on every ISR member (so it
//!    survives any election from the ISR);
//! 2. the logs of ISR members agree below the leader's high watermark;
//! 3. a leader's high watermark never goes backwards within its epoch;
//! 4. no idempotent batch is stored twice in any log (an oracle that only
//!    checks: a retry keeps its batch id);
//! 5. offsets are dense and increasing in every log;
//! 6. every batch a live replica's producer table remembers (above the log
//!    start) is in its log at that offset, from that producer.
//!
//! Two producers are transactional (acks=all batches with attributes bit
//! 4): a model transaction coordinator commits or aborts each transaction
//! once its batches are acknowledged, aborts it when the producer's epoch
//! is bumped (an error, or a transaction timeout) with the new epoch, and
//! retries the marker (a control batch) at the leader it knows until it is
//! acknowledged with acks=all, across leader changes. The leader checks it
//! with `ProducerStateTable::check_marker`; every replica applies stored
//! markers with `complete_txn` (ABORTs into its aborted index, as
//! `PartitionLog` does) and rebuilt tables replay them (`replay_marker`).
//! Each live replica's LSO is min(first unstable offset of its table, high
//! watermark); read_committed reads data batches below it less those the
//! aborted index covers. Further invariants:
//!
//! 7. LSO <= high watermark, and the LSO never passes the first offset of a
//!    transaction open in the log; the table's open transactions are
//!    exactly the log's (a marker a follower did not record, or a rebuild
//!    that skipped one, shows here);
//! 8. no batch of an aborted (or undecided) transaction is read_committed;
//! 9. every batch of a transaction whose COMMIT was acknowledged is
//!    read_committed on every ISR member once below its LSO;
//! 10. a transaction's markers in any log carry the coordinator's decision
//!     (never both COMMIT and ABORT).
//!
//! A failure names its seed; `SIM_SEED=<n> cargo test -p samsa-replica
//! --test simulation` replays exactly that seed (with a step trace), and
//! `SIM_SEEDS=<count>` runs more seeds.

use std::collections::{BTreeMap, BTreeSet};

use samsa_model::batch::BatchHeader;
use samsa_model::control::TxnMarker;
use samsa_model::{
    BrokerId, CoordinatorEpoch, LeaderEpoch, Offset, ProducerEpoch, ProducerId, TimestampMs,
};
use samsa_replica::{
    AppendWait, Assignment, EpochAnswer, IsrProposal, ReplicaLog, ReplicaState, TruncationStep,
};
use samsa_storage::producer_snapshot;
use samsa_storage::producer_state::{CompletedTxn, ProducerStateTable, SeqCheck};

const NODES: i32 = 3;
const PRODUCERS: u64 = 3;
/// Transactional producers, after the idempotent ones.
const TXN_PRODUCERS: u64 = 2;
/// The model transaction coordinator's epoch (one coordinator, never
/// failing over).
const COORDINATOR_EPOCH: i32 = 0;
/// Batch attributes: bit 4 transactional, bit 5 control.
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;
const MIN_INSYNC: usize = 2;
const LAG_MAX_MS: i64 = 400;
const STEPS: usize = 600;
const SEEDS_DEFAULT: u64 = 3000;
const FETCH_BATCHES_MAX: usize = 4;

/// What the runs exercised (per test thread), printed with the result so a
/// change that stops exercising rolls or rebuilds shows.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    rolls: u64,
    /// Truncations and lost page caches that removed whole segments.
    cuts_across_segments: u64,
    /// Producer tables rebuilt from a snapshot (not from the log start).
    rebuilds_from_snapshot: u64,
    rebuilds_from_start: u64,
    /// Retries the producer table answered as duplicates.
    duplicates: u64,
    /// Batches refused for their sequence or epoch.
    sequence_errors: u64,
    segments_deleted: u64,
    /// Marker appends (every attempt a leader accepted).
    markers_written: u64,
    /// Transactions whose COMMIT / ABORT marker was acknowledged.
    commits: u64,
    aborted_txns: u64,
    /// Aborts that followed an epoch bump of the producer.
    fencing_aborts: u64,
}

thread_local! {
    static STATS: std::cell::Cell<Stats> = std::cell::Cell::new(Stats::default());
}

fn tally(f: impl FnOnce(&mut Stats)) {
    STATS.with(|s| {
        let mut v = s.get();
        f(&mut v);
        s.set(v);
    });
}

/// splitmix64: tiny, deterministic, good enough to pick steps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A stored batch as the simulation tracks it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Batch {
    base: i64,
    len: i64,
    epoch: i32,
    /// Unique per produced batch (a retry keeps it).
    id: u64,
    /// (producer id, producer epoch, base sequence)
    producer: (i64, i16, i32),
    /// Its size on disk (for segment rolls).
    bytes: usize,
    timestamp: i64,
    /// The model transaction the batch (or marker) belongs to; an oracle
    /// annotation only: the logs and producer tables never read it.
    txn: Option<usize>,
    /// A control batch: Some(commit).
    marker: Option<bool>,
}

impl Batch {
    fn end(&self) -> i64 {
        self.base + self.len
    }

    /// The header the real producer table reads.
    fn header(&self) -> BatchHeader {
        let (pid, producer_epoch, seq) = self.producer;
        BatchHeader {
            base_offset: Offset(self.base),
            batch_length: self.bytes as i32 - 12,
            partition_leader_epoch: LeaderEpoch(self.epoch),
            magic: 2,
            crc: 0,
            attributes: match (self.marker, self.txn) {
                (Some(_), _) => ATTR_TRANSACTIONAL | ATTR_CONTROL,
                (None, Some(_)) => ATTR_TRANSACTIONAL,
                (None, None) => 0,
            },
            last_offset_delta: (self.len - 1) as i32,
            base_timestamp: TimestampMs(self.timestamp),
            max_timestamp: TimestampMs(self.timestamp),
            producer_id: ProducerId(pid),
            producer_epoch: ProducerEpoch(producer_epoch),
            base_sequence: seq,
            records_count: self.len as i32,
        }
    }

    /// The marker a control batch carries.
    fn txn_marker(&self) -> Option<TxnMarker> {
        self.marker.map(|commit| TxnMarker {
            commit,
            coordinator_epoch: CoordinatorEpoch(COORDINATOR_EPOCH),
        })
    }
}

/// When a segment rolls (randomised per seed, small so rolls are frequent).
#[derive(Clone, Copy, Debug)]
struct RollPolicy {
    batches_max: usize,
    bytes_max: usize,
}

/// An in-memory partition log split into segments, mirroring
/// `samsa_storage::PartitionLog`: segments roll by batch count or bytes and
/// take a producer-state snapshot at each roll (pending until the flusher
/// writes it); the producer table is `samsa_storage`'s own
/// [`ProducerStateTable`] (the leader checks, every replica records), rebuilt
/// on restart and after truncation by the storage crate's rule
/// ([`producer_snapshot::rebuild_start`] + replay). `synced` is what a lost
/// page cache keeps.
#[derive(Clone, Debug)]
struct MemLog {
    start: i64,
    batches: Vec<Batch>,
    /// Base offsets of the segments, oldest first; the last is the active
    /// one. The first may begin below `start` (a log start moved into it).
    segments: Vec<i64>,
    /// (epoch, start offset), increasing in both.
    epochs: Vec<(i32, i64)>,
    /// Everything below is fsynced (the recovery point, or a full flush).
    synced: i64,
    producers: ProducerStateTable,
    /// Snapshot files written (fsynced) by the flusher: offset -> bytes.
    snapshots: BTreeMap<i64, Vec<u8>>,
    /// Snapshots taken at rolls, in memory until the flusher writes them.
    pending: Vec<(i64, Vec<u8>)>,
    snapshot_wanted: bool,
    roll: RollPolicy,
    /// The aborted-transaction index (Kafka's `.txnindex`): what each ABORT
    /// marker closed, as the producer table answered when it was stored.
    /// Entries go with their marker (truncation, lost page cache,
    /// retention).
    aborted: Vec<CompletedTxn>,
    /// Bumped by every change of the batches or the producer table (so
    /// the transaction checks skip a replica nothing changed on).
    version: u64,
}

impl MemLog {
    fn new(roll: RollPolicy) -> MemLog {
        MemLog {
            start: 0,
            batches: Vec::new(),
            segments: vec![0],
            epochs: Vec::new(),
            synced: 0,
            producers: ProducerStateTable::default(),
            snapshots: BTreeMap::new(),
            pending: Vec::new(),
            snapshot_wanted: false,
            roll,
            aborted: Vec::new(),
            version: 0,
        }
    }

    fn end(&self) -> i64 {
        self.batches.last().map_or(self.start, Batch::end)
    }

    fn active_base(&self) -> i64 {
        self.segments.last().copied().unwrap_or(self.start)
    }

    /// What identifies the log's content (the producer table's debug form
    /// iterates a hash map, so it is left out).
    fn fingerprint(&self) -> String {
        let snapshots: Vec<&i64> = self.snapshots.keys().collect();
        format!(
            "{} {:?} {:?} {:?} {} {snapshots:?}",
            self.start, self.batches, self.segments, self.epochs, self.synced
        )
    }

    fn record_epoch(&mut self, epoch: i32, at: i64) {
        match self.epochs.last_mut() {
            Some(last) if last.0 >= epoch => {}
            Some(last) if last.1 == at => *last = (epoch, at),
            _ => self.epochs.push((epoch, at)),
        }
    }

    /// The storage crate's `queue_snapshot`: the table as of `offset`,
    /// encoded now, written by the next flusher pass.
    fn queue_snapshot(&mut self, offset: i64) {
        self.snapshot_wanted = false;
        if self.snapshots.contains_key(&offset) || self.pending.iter().any(|(o, _)| *o == offset) {
            return;
        }
        let bytes = producer_snapshot::encode(Offset(offset), &self.producers);
        if self.pending.len() >= producer_snapshot::SNAPSHOT_FILES_MAX {
            self.pending.remove(0);
        }
        self.pending.push((offset, bytes));
    }

    /// Rolls before `b` if the active segment is full (taking a snapshot at
    /// the new segment's base), then stores it and records its producer.
    fn store(&mut self, b: Batch) {
        self.version += 1;
        let active = self.active_base();
        let (count, bytes) = self
            .batches
            .iter()
            .rev()
            .take_while(|x| x.base >= active)
            .fold((0, 0), |(n, s), x| (n + 1, s + x.bytes));
        if count > 0 && (count >= self.roll.batches_max || bytes + b.bytes > self.roll.bytes_max) {
            let end = self.end();
            self.segments.push(end);
            self.queue_snapshot(end);
            tally(|s| s.rolls += 1);
        }
        self.record_epoch(b.epoch, b.base);
        let header = b.header();
        match b.txn_marker() {
            // As `PartitionLog::record_written`: a marker closes the
            // producer's transaction; an ABORT goes to the index.
            Some(marker) => {
                let done = self.producers.complete_txn(&header, marker);
                if done.aborted {
                    self.aborted.push(done);
                }
            }
            None => self.producers.record(&header),
        }
        self.batches.push(b);
    }

    /// The leader's append (after the producer table's check).
    fn append_as_leader(&mut self, mut b: Batch) -> Batch {
        b.base = self.end();
        self.store(b.clone());
        b
    }

    /// The follower's append: keeps the leader's offsets; batches wholly
    /// below the end are skipped; anything else not continuing the log is
    /// refused. Each stored batch is recorded in the producer table.
    fn append_replicated(&mut self, batches: &[Batch]) -> Result<(), ()> {
        for b in batches {
            if b.end() <= self.end() {
                continue;
            }
            if b.base != self.end() {
                return Err(());
            }
            self.store(b.clone());
        }
        Ok(())
    }

    /// Cuts everything from the batch holding `offset` on (segments above
    /// it go, the one holding it is cut), as `truncate_to` does: snapshots
    /// above the new end are dropped and the producer table reloaded.
    fn truncate(&mut self, offset: i64) {
        self.version += 1;
        if offset >= self.end() {
            return;
        }
        if offset < self.start {
            self.reset_to(offset);
            return;
        }
        self.batches.retain(|b| b.end() <= offset);
        self.cut_segments();
        let end = self.end();
        self.epochs.retain(|(_, s)| *s < end);
        self.aborted.retain(|c| c.last_offset.get() < end);
        self.pending.retain(|(o, _)| *o <= end);
        // Lowered to the active segment's base (the cut itself is synced).
        self.synced = self.synced.min(self.active_base()).max(self.start);
        self.reload_producers();
    }

    /// Segments starting above the end go (one starting at it stays).
    fn cut_segments(&mut self) {
        let end = self.end();
        let before = self.segments.len();
        self.segments.retain(|s| *s <= end);
        if self.segments.len() < before {
            tally(|s| s.cuts_across_segments += 1);
        }
        if self.segments.is_empty() {
            self.segments.push(end);
        }
    }

    /// The storage crate's rebuild: the newest readable snapshot in
    /// [log start, log end] (those above the end are deleted), then the
    /// batch headers after it.
    fn reload_producers(&mut self) {
        self.version += 1;
        let mut written: BTreeSet<Offset> = self.snapshots.keys().map(|o| Offset(*o)).collect();
        let files = &self.snapshots;
        let rebuilt = producer_snapshot::rebuild_start(
            &mut written,
            Offset(self.start),
            Offset(self.end()),
            |o| match files.get(&o.get()) {
                Some(bytes) => producer_snapshot::decode(bytes, o),
                None => Err("missing".into()),
            },
        );
        for (o, _) in &rebuilt.dropped {
            self.snapshots.remove(&o.get());
        }
        if rebuilt.from.get() > self.start {
            tally(|s| s.rebuilds_from_snapshot += 1);
        } else {
            tally(|s| s.rebuilds_from_start += 1);
        }
        let mut table = rebuilt.table;
        for b in &self.batches {
            match b.txn_marker() {
                Some(marker) => {
                    table.replay_marker(rebuilt.from, &b.header(), marker);
                }
                None => table.replay(rebuilt.from, &b.header()),
            }
        }
        self.producers = table;
        // An open that had to replay asks the flusher for a snapshot.
        self.snapshot_wanted = rebuilt.from.get() < self.end();
    }

    /// A crash: the process's memory (pending snapshots) is gone; with the
    /// page cache lost, the log keeps a prefix that ends somewhere between
    /// what was fsynced and the end (recovery cuts at the first torn batch
    /// and deletes the segments after it), and snapshot files stay as
    /// written. The restart rebuilds the producer table.
    fn crash(&mut self, lose_page_cache: bool, rng: &mut Rng) {
        self.version += 1;
        self.pending.clear();
        self.snapshot_wanted = false;
        self.producers = ProducerStateTable::default();
        if lose_page_cache {
            let kept = self
                .batches
                .iter()
                .take_while(|b| b.end() <= self.synced)
                .count();
            let keep = kept + rng.below(self.batches.len() - kept + 1);
            self.batches.truncate(keep);
            self.cut_segments();
            let end = self.end();
            self.epochs.retain(|(_, s)| *s < end);
            self.aborted.retain(|c| c.last_offset.get() < end);
            self.synced = self.synced.min(end);
        }
    }

    fn restart(&mut self) {
        self.reload_producers();
    }

    /// The broker's log flusher (`sync_rolled`): fsyncs the sealed segments,
    /// takes a snapshot at the end when one is wanted, writes the pending
    /// ones and prunes those no longer needed. `all` is an explicit flush
    /// (`flush.ms`), which also fsyncs the active segment.
    fn flush(&mut self, all: bool) {
        self.synced = self
            .synced
            .max(if all { self.end() } else { self.active_base() });
        if self.snapshot_wanted {
            let end = self.end();
            self.queue_snapshot(end);
        }
        for (o, bytes) in std::mem::take(&mut self.pending) {
            self.snapshots.insert(o, bytes);
        }
        let written: BTreeSet<Offset> = self.snapshots.keys().map(|o| Offset(*o)).collect();
        for o in producer_snapshot::prunable(&written, Offset(self.start)) {
            self.snapshots.remove(&o.get());
        }
    }

    /// Moves the log start to `offset`, dropping whole batches below it and
    /// the segments wholly below it (the leader's retention passes a
    /// segment boundary; a follower follows the leader's log start).
    fn delete_before(&mut self, offset: i64) {
        self.version += 1;
        let offset = offset.min(self.end());
        if offset <= self.start {
            return;
        }
        self.batches.retain(|b| b.end() > offset);
        self.start = self.batches.first().map_or(offset, |b| b.base);
        while self.segments.len() > 1 && self.segments[1] <= self.start {
            self.segments.remove(0);
            tally(|s| s.segments_deleted += 1);
        }
        self.synced = self.synced.max(self.start);
        let start = self.start;
        self.aborted.retain(|c| c.last_offset.get() >= start);
        // Epoch cache: entries below the new start collapse into one at it.
        if let Some(i) = self.epochs.iter().rposition(|(_, s)| *s <= start) {
            self.epochs.drain(..i);
            self.epochs[0].1 = start;
        }
        // `want_snapshot_from`: keep the state of the deleted producers.
        let covered = self.snapshots.range(start..).next().is_some()
            || self.pending.iter().any(|(o, _)| *o >= start);
        if !covered {
            self.snapshot_wanted = true;
        }
    }

    /// Kafka's `truncateFullyAndStartAt`: empty at `offset`, no producer
    /// state, no snapshots.
    fn reset_to(&mut self, offset: i64) {
        *self = MemLog {
            start: offset,
            segments: vec![offset],
            synced: offset,
            version: self.version + 1,
            ..MemLog::new(self.roll)
        };
    }
}

impl ReplicaLog for MemLog {
    type Error = ();
    fn log_start(&self) -> Offset {
        Offset(self.start)
    }
    fn log_end(&self) -> Offset {
        Offset(self.end())
    }
    fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.last().map(|(e, _)| LeaderEpoch(*e))
    }
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, Offset) {
        let e = epoch.get();
        let none = (LeaderEpoch(-1), Offset(-1));
        let Some(&(latest, _)) = self.epochs.last() else {
            return none;
        };
        if e == latest {
            return (LeaderEpoch(latest), Offset(self.end()));
        }
        let Some(higher) = self.epochs.iter().find(|(x, _)| *x > e) else {
            return none;
        };
        match self.epochs.iter().rev().find(|(x, _)| *x <= e) {
            Some(&(floor, _)) => (LeaderEpoch(floor), Offset(higher.1)),
            None => none,
        }
    }
    fn assign_epoch(&mut self, epoch: LeaderEpoch) -> Result<(), ()> {
        let end = self.end();
        self.record_epoch(epoch.get(), end);
        Ok(())
    }
    fn truncate_to(&mut self, offset: Offset) -> Result<(), ()> {
        self.truncate(offset.get());
        Ok(())
    }
}

/// A leader's answer to a fetch built for `(leader, epoch)`.
#[derive(Clone, Debug)]
struct FetchAnswer {
    leader: i32,
    epoch: LeaderEpoch,
    /// Err(Some(log start)) = offset out of range; Err(None) = refused.
    data: Result<Vec<Batch>, Option<i64>>,
    hw: i64,
    log_start: i64,
}

#[derive(Clone, Debug)]
enum Msg {
    FetchReq {
        from: i32,
        /// The sender's broker epoch (incarnation).
        incarnation: i64,
        to: i32,
        epoch: LeaderEpoch,
        offset: i64,
    },
    FetchResp {
        to: i32,
        answer: FetchAnswer,
    },
    EpochReq {
        from: i32,
        to: i32,
        epoch: LeaderEpoch,
        asked: LeaderEpoch,
    },
    EpochResp {
        to: i32,
        leader: i32,
        epoch: LeaderEpoch,
        answer: Option<EpochAnswer>,
    },
    AlterIsr {
        from: i32,
        proposal: IsrProposal,
    },
    AlterIsrDone {
        to: i32,
        proposal: IsrProposal,
    },
}

struct Node {
    id: BrokerId,
    alive: bool,
    log: MemLog,
    state: ReplicaState,
    /// Metadata version this node applied.
    seen: u64,
    hw_checkpoint: i64,
    /// A fetcher request is outstanding.
    awaiting: bool,
    /// (leader epoch, high watermark) while leading, for invariant 3.
    led: Option<(LeaderEpoch, Offset)>,
    /// Its broker epoch: bumped by every restart (a new registration).
    incarnation: i64,
}

struct Controller {
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<BrokerId>,
    fenced: BTreeSet<i32>,
    version: u64,
}

impl Controller {
    fn assignment(&self) -> Assignment {
        Assignment {
            leader: BrokerId(self.leader),
            leader_epoch: LeaderEpoch(self.leader_epoch),
            partition_epoch: self.partition_epoch,
            replicas: (0..NODES).map(BrokerId).collect(),
            isr: self.isr.clone(),
        }
    }

    fn changed(&mut self) {
        self.partition_epoch += 1;
        self.version += 1;
    }

    /// Elects a new leader from the unfenced ISR members (or none).
    fn elect(&mut self, rng: &mut Rng) {
        let candidates: Vec<i32> = self
            .isr
            .iter()
            .map(|b| b.get())
            .filter(|b| !self.fenced.contains(b))
            .collect();
        self.leader = if candidates.is_empty() {
            -1
        } else {
            candidates[rng.below(candidates.len())]
        };
        self.leader_epoch += 1;
        self.changed();
    }

    /// The controller fences `b` (crash or lost session): out of the ISR
    /// unless it is the last member, and a new leader if it led.
    fn fence(&mut self, b: i32, rng: &mut Rng) {
        self.fenced.insert(b);
        if self.isr.len() > 1 {
            self.isr.retain(|x| x.get() != b);
            self.changed();
        }
        if self.leader == b {
            self.elect(rng);
        }
    }
}

#[derive(Clone, Debug)]
struct Outstanding {
    id: u64,
    /// Its first sequence; a retry keeps it (and its length and size).
    seq: i32,
    len: i64,
    bytes: usize,
    acks: i16,
}

/// An idempotent producer: one batch in flight, retried until answered.
/// A transactional one sends acks=all batches inside a transaction, asks
/// the model coordinator to end it once every batch is acknowledged, and
/// begins the next only when its marker is acknowledged (Kafka's
/// CONCURRENT_TRANSACTIONS until then).
#[derive(Clone, Debug)]
struct Producer {
    id: i64,
    epoch: i16,
    next_seq: i32,
    out: Option<Outstanding>,
    transactional: bool,
    /// Its open transaction (model id).
    txn: Option<usize>,
    /// Its transaction's marker is not acknowledged yet.
    ending: bool,
}

impl Producer {
    /// The batch in flight was answered: continue after it.
    fn done(&mut self) {
        if let Some(o) = self.out.take() {
            self.next_seq = o.seq + o.len as i32;
        }
    }

    /// OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH: the client
    /// bumps its epoch (KIP-360) and starts again at sequence 0; the batch
    /// in flight is failed.
    fn bump_epoch(&mut self) {
        self.epoch += 1;
        self.next_seq = 0;
        self.out = None;
    }
}

struct Waiter {
    node: usize,
    /// The leader epoch the batch was appended (or found as a duplicate) in.
    epoch: LeaderEpoch,
    last_offset: i64,
    id: u64,
    producer: usize,
    /// A marker of this transaction (the coordinator waits, not the
    /// producer).
    marker: Option<usize>,
}

/// A transaction as the model coordinator knows it.
#[derive(Clone, Debug, Default)]
struct Txn {
    /// Its decision, once taken: Some(commit).
    commit: Option<bool>,
    /// (last offset, batch id) of its batches acknowledged with acks=all.
    acked: Vec<(i64, u64)>,
    /// Its marker was acknowledged with acks=all.
    marker_acked: bool,
}

/// A marker the coordinator must write (retried until acknowledged).
#[derive(Clone, Debug)]
struct PendingMarker {
    txn: usize,
    producer: usize,
    pid: i64,
    producer_epoch: i16,
    commit: bool,
}

struct Sim {
    rng: Rng,
    now: i64,
    nodes: Vec<Node>,
    ctl: Controller,
    net: Vec<Msg>,
    producers: Vec<Producer>,
    waiters: Vec<Waiter>,
    next_id: u64,
    /// (offset, batch id) of every acks=all acknowledgement.
    acked: Vec<(i64, u64)>,
    txns: Vec<Txn>,
    /// (txn, last offset, batch id) of the batches of every transaction
    /// whose COMMIT marker was acknowledged with acks=all.
    committed: Vec<(usize, i64, u64)>,
    markers: Vec<PendingMarker>,
    /// A broken rule seen during a step (reported by `check`).
    violation: Option<String>,
    /// Per node: what its last transaction check saw (log version, high
    /// watermark, committed batches, ISR member); the same again passes
    /// again, so it is skipped (the checks dominate the runtime).
    txn_checked: Vec<Option<(u64, i64, usize, bool)>>,
    trace: bool,
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Sim {
        let mut rng = Rng(seed);
        let roll = RollPolicy {
            batches_max: 2 + rng.below(8),
            bytes_max: 150 + rng.below(600),
        };
        let nodes = (0..NODES)
            .map(|i| Node {
                id: BrokerId(i),
                alive: true,
                log: MemLog::new(roll),
                state: ReplicaState::new(BrokerId(i), LeaderEpoch(0), Offset(0)),
                seen: 0,
                hw_checkpoint: 0,
                awaiting: false,
                led: None,
                incarnation: 0,
            })
            .collect();
        let leader = rng.below(NODES as usize) as i32;
        Sim {
            rng,
            now: 1_000,
            nodes,
            ctl: Controller {
                leader,
                leader_epoch: 1,
                partition_epoch: 1,
                isr: (0..NODES).map(BrokerId).collect(),
                fenced: BTreeSet::new(),
                version: 1,
            },
            net: Vec::new(),
            producers: (0..PRODUCERS + TXN_PRODUCERS)
                .map(|p| Producer {
                    id: p as i64 + 1,
                    epoch: 0,
                    next_seq: 0,
                    out: None,
                    transactional: p >= PRODUCERS,
                    txn: None,
                    ending: false,
                })
                .collect(),
            waiters: Vec::new(),
            next_id: 1,
            acked: Vec::new(),
            txns: Vec::new(),
            committed: Vec::new(),
            markers: Vec::new(),
            violation: None,
            txn_checked: vec![None; NODES as usize],
            trace,
        }
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("t={} {}", self.now, what());
        }
    }

    fn step(&mut self) {
        self.now += self.rng.below(40) as i64;
        match self.rng.below(1060) {
            0..=219 => self.deliver(),
            220..=259 => self.drop_message(),
            260..=479 => self.fetcher_tick(),
            480..=679 => self.produce(),
            680..=759 => self.propagate_metadata(),
            760..=799 => self.shrink_check(),
            800..=869 => self.complete_waiters(),
            870..=899 => self.flush(),
            900..=907 => self.crash(),
            908..=929 => self.restart(),
            930..=934 => self.fence_live_leader(),
            935..=954 => self.unfence(),
            955..=969 => self.retention(),
            970..=984 => self.checkpoint_hw(),
            985..=999 => self.timeout_fetch(),
            1000..=1029 => self.end_txn(),
            _ => self.write_marker(),
        }
    }

    fn send(&mut self, m: Msg) {
        self.net.push(m);
    }

    fn drop_message(&mut self) {
        if self.net.is_empty() {
            return;
        }
        let i = self.rng.below(self.net.len());
        // AlterPartition answers always come back (the broker's task ends).
        if matches!(self.net[i], Msg::AlterIsr { .. } | Msg::AlterIsrDone { .. }) {
            return;
        }
        let m = self.net.remove(i);
        self.log(|| format!("drop {m:?}"));
    }

    fn timeout_fetch(&mut self) {
        let n = self.rng.below(NODES as usize);
        self.nodes[n].awaiting = false;
    }

    fn deliver(&mut self) {
        if self.net.is_empty() {
            return;
        }
        // Reorder: any message in flight may arrive next.
        let i = self.rng.below(self.net.len());
        let m = self.net.remove(i);
        self.log(|| format!("deliver {m:?}"));
        match m {
            Msg::FetchReq {
                from,
                incarnation,
                to,
                epoch,
                offset,
            } => self.leader_fetch(from, incarnation, to, epoch, offset),
            Msg::FetchResp { to, answer } => self.follower_fetched(to, answer),
            Msg::EpochReq {
                from,
                to,
                epoch,
                asked,
            } => {
                let node = &self.nodes[to as usize];
                let answer =
                    (node.alive && node.state.is_leader() && node.state.leader_epoch() == epoch)
                        .then(|| {
                            let (leader_epoch, end_offset) = node.log.end_offset_for_epoch(asked);
                            EpochAnswer {
                                leader_epoch,
                                end_offset,
                            }
                        });
                if node.alive {
                    self.send(Msg::EpochResp {
                        to: from,
                        leader: to,
                        epoch,
                        answer,
                    });
                }
            }
            Msg::EpochResp {
                to,
                leader,
                epoch,
                answer,
            } => {
                let node = &mut self.nodes[to as usize];
                if !node.alive {
                    return;
                }
                node.awaiting = false;
                let Some(answer) = answer else { return };
                let step = node
                    .state
                    .apply_epoch_answer(BrokerId(leader), epoch, answer, &mut node.log)
                    .unwrap_or(TruncationStep::Stale);
                if let TruncationStep::Ask(asked) = step {
                    node.awaiting = true;
                    self.send(Msg::EpochReq {
                        from: to,
                        to: leader,
                        epoch,
                        asked,
                    });
                }
            }
            Msg::AlterIsr { from, proposal } => {
                let c = &mut self.ctl;
                let nodes = &self.nodes;
                // Fenced on leader and partition epochs; an added member
                // must be unfenced and (KIP-903) fetched in its current
                // registration.
                let ok = c.leader == from
                    && c.leader_epoch == proposal.leader_epoch.get()
                    && c.partition_epoch == proposal.partition_epoch
                    && proposal
                        .isr
                        .iter()
                        .zip(&proposal.broker_epochs)
                        .all(|(b, e)| {
                            c.isr.contains(b)
                                || (!c.fenced.contains(&b.get())
                                    && *e == nodes[b.get() as usize].incarnation)
                        });
                if ok {
                    c.isr = proposal.isr.clone();
                    c.changed();
                    // The broker reconciles before the change stops being in
                    // flight.
                    self.apply_metadata(from as usize);
                }
                self.send(Msg::AlterIsrDone { to: from, proposal });
            }
            Msg::AlterIsrDone { to, proposal } => {
                let node = &mut self.nodes[to as usize];
                if node.alive {
                    node.state.isr_change_done(&proposal);
                    node.state.advance_hw(node.log.log_end());
                }
            }
        }
    }

    fn leader_fetch(
        &mut self,
        from: i32,
        incarnation: i64,
        to: i32,
        epoch: LeaderEpoch,
        offset: i64,
    ) {
        let now = self.now;
        let node = &mut self.nodes[to as usize];
        if !node.alive {
            return;
        }
        let current = node.state.is_leader() && node.state.leader_epoch() == epoch;
        let data = if !current {
            Err(None)
        } else if offset > node.log.end() || offset < node.log.start {
            Err(Some(node.log.start))
        } else {
            let end = node.log.log_end();
            let Ok(f) =
                node.state
                    .follower_fetched(BrokerId(from), incarnation, Offset(offset), end, now)
            else {
                return;
            };
            if let Some(isr) = f.expand {
                if let Some(proposal) = node.state.propose_isr(isr) {
                    self.net.push(Msg::AlterIsr { from: to, proposal });
                }
            }
            let node = &self.nodes[to as usize];
            Ok(node
                .log
                .batches
                .iter()
                .filter(|b| b.end() > offset)
                .take(FETCH_BATCHES_MAX)
                .cloned()
                .collect())
        };
        let node = &self.nodes[to as usize];
        let m = Msg::FetchResp {
            to: from,
            answer: FetchAnswer {
                leader: to,
                epoch,
                data,
                hw: node.state.high_watermark().get().min(node.log.end()),
                log_start: node.log.start,
            },
        };
        self.send(m);
    }

    /// The follower's side of a fetch response: exactly the broker's
    /// `handle_fetched` rules, on the same state machine.
    fn follower_fetched(&mut self, to: i32, answer: FetchAnswer) {
        let FetchAnswer {
            leader,
            epoch,
            data,
            hw,
            log_start,
        } = answer;
        let node = &mut self.nodes[to as usize];
        if !node.alive {
            return;
        }
        node.awaiting = false;
        let leader = BrokerId(leader);
        if !node.state.is_current_fetch(leader, epoch) {
            return;
        }
        match data {
            Ok(batches) => {
                if node.log.append_replicated(&batches).is_err() {
                    node.state.fetch_diverged(leader, epoch);
                    return;
                }
                if log_start > node.log.start {
                    node.log.delete_before(log_start);
                }
                let end = node.log.log_end();
                node.state
                    .follower_learned_hw(leader, epoch, Offset(hw), end);
            }
            Err(Some(leader_start)) if leader_start > node.log.end() => {
                node.log.reset_to(leader_start);
            }
            Err(Some(_)) => node.state.fetch_diverged(leader, epoch),
            Err(None) => {}
        }
    }

    fn fetcher_tick(&mut self) {
        let n = self.rng.below(NODES as usize);
        let node = &mut self.nodes[n];
        if !node.alive || node.awaiting {
            return;
        }
        let Some((leader, epoch, truncated)) = node.state.follower_of() else {
            return;
        };
        if !truncated {
            match node.state.start_truncation(leader, epoch, &node.log) {
                TruncationStep::Ask(asked) => {
                    node.awaiting = true;
                    self.send(Msg::EpochReq {
                        from: n as i32,
                        to: leader.get(),
                        epoch,
                        asked,
                    });
                }
                TruncationStep::Done { .. } | TruncationStep::Stale => {}
            }
            return;
        }
        node.awaiting = true;
        let offset = node.log.end();
        let incarnation = node.incarnation;
        self.send(Msg::FetchReq {
            from: n as i32,
            incarnation,
            to: leader.get(),
            epoch,
            offset,
        });
    }

    fn produce(&mut self) {
        let p = self.rng.below(self.producers.len());
        if self.waiters.iter().any(|w| w.producer == p) || self.producers[p].ending {
            return;
        }
        if let Some(t) = self.producers[p].txn {
            // Mostly end a transaction after its first acknowledged batch.
            if self.producers[p].out.is_none() && self.rng.chance(60) {
                let commit = self.rng.chance(70);
                self.decide(p, t, commit);
                return;
            }
        }
        let out = match self.producers[p].out.clone() {
            Some(o) => o,
            None => {
                let mut acks = [0, 1, -1, -1][self.rng.below(4)];
                if self.producers[p].transactional {
                    // Transactional producers use acks=all; the first
                    // batch begins a transaction.
                    acks = -1;
                    if self.producers[p].txn.is_none() {
                        self.producers[p].txn = Some(self.txns.len());
                        self.txns.push(Txn::default());
                    }
                }
                let len = 1 + self.rng.below(3) as i64;
                let o = Outstanding {
                    id: self.next_id,
                    seq: self.producers[p].next_seq,
                    len,
                    bytes: 61 + len as usize * (10 + self.rng.below(60)),
                    acks,
                };
                self.next_id += 1;
                self.producers[p].out = Some(o.clone());
                o
            }
        };
        let producer = &self.producers[p];
        let (pid, producer_epoch, txn) = (producer.id, producer.epoch, producer.txn);
        // The producer's metadata may be stale: mostly the leader, sometimes
        // any broker.
        let n = if self.ctl.leader >= 0 && self.rng.chance(80) {
            self.ctl.leader as usize
        } else {
            self.rng.below(NODES as usize)
        };
        let now = self.now;
        let node = &mut self.nodes[n];
        if !node.alive {
            return;
        }
        let Ok(epoch) = node.state.check_append(out.acks, MIN_INSYNC) else {
            if out.acks == 0 {
                // acks=0 never learns; the batch is simply gone.
                self.producers[p].done();
            }
            return;
        };
        let batch = Batch {
            base: node.log.end(),
            len: out.len,
            epoch: epoch.get(),
            id: out.id,
            producer: (pid, producer_epoch, out.seq),
            bytes: out.bytes,
            timestamp: now,
            txn,
            marker: None,
        };
        // Idempotence by the storage crate's producer table, as the
        // broker's append does: a retry already stored is answered with its
        // original offsets, a gap or an old epoch is refused.
        let last = match node.log.producers.check(&batch.header()) {
            Ok(SeqCheck::Duplicate { last, .. }) => {
                tally(|s| s.duplicates += 1);
                last.get()
            }
            Ok(SeqCheck::Append) => node.log.append_as_leader(batch).end() - 1,
            Err(e) => {
                tally(|s| s.sequence_errors += 1);
                self.log(|| format!("produce p{pid} seq {} on {n}: {e}", out.seq));
                if out.acks != 0 {
                    self.producers[p].bump_epoch();
                    self.fence_abort(p);
                } else {
                    self.producers[p].done();
                }
                return;
            }
        };
        let end = node.log.log_end();
        node.state.advance_hw(end);
        self.log(|| {
            format!(
                "produce p{pid} e{producer_epoch} seq {} acks {} on {n} -> last {last}",
                out.seq, out.acks
            )
        });
        if out.acks == -1 {
            self.waiters.push(Waiter {
                node: n,
                epoch,
                last_offset: last,
                id: out.id,
                producer: p,
                marker: None,
            });
        } else {
            self.producers[p].done();
        }
    }

    /// acks=all replies: exactly the broker's `wait_replicated` rule.
    fn complete_waiters(&mut self) {
        let mut i = 0;
        while i < self.waiters.len() {
            let w = &self.waiters[i];
            let node = &self.nodes[w.node];
            let outcome = if !node.alive {
                Some(false)
            } else {
                match node
                    .state
                    .append_wait(w.epoch, w.last_offset, MIN_INSYNC, node.log.log_end())
                {
                    AppendWait::Replicated => Some(true),
                    AppendWait::NotEnoughReplicas | AppendWait::NotLeader => Some(false),
                    // The request times out now and then.
                    AppendWait::Pending => self.rng.chance(3).then_some(false),
                }
            };
            match outcome {
                None => i += 1,
                Some(ok) => {
                    let w = self.waiters.remove(i);
                    if ok {
                        self.acked.push((w.last_offset, w.id));
                        self.log(|| format!("acked id {} at {}", w.id, w.last_offset));
                        if let Some(t) = w.marker {
                            self.marker_acked(t);
                        } else {
                            let producer = &mut self.producers[w.producer];
                            producer.done();
                            if let Some(t) = producer.txn {
                                self.txns[t].acked.push((w.last_offset, w.id));
                            }
                        }
                    }
                }
            }
        }
    }

    fn apply_metadata(&mut self, n: usize) {
        let a = self.ctl.assignment();
        let version = self.ctl.version;
        let now = self.now;
        let node = &mut self.nodes[n];
        if !node.alive || node.seen == version {
            return;
        }
        node.seen = version;
        let change = node.state.apply_assignment(&a, &mut node.log, now);
        self.log(|| format!("node {n} applies {a:?}: {change:?}"));
    }

    fn propagate_metadata(&mut self) {
        let n = self.rng.below(NODES as usize);
        self.apply_metadata(n);
    }

    fn shrink_check(&mut self) {
        let n = self.rng.below(NODES as usize);
        let now = self.now;
        let node = &mut self.nodes[n];
        if !node.alive {
            return;
        }
        if let Some(isr) = node.state.lagging_isr(node.log.log_end(), now, LAG_MAX_MS) {
            if let Some(proposal) = node.state.propose_isr(isr) {
                self.send(Msg::AlterIsr {
                    from: n as i32,
                    proposal,
                });
            }
        }
    }

    fn flush(&mut self) {
        let n = self.rng.below(NODES as usize);
        let all = self.rng.chance(30);
        let node = &mut self.nodes[n];
        if node.alive {
            node.log.flush(all);
        }
    }

    fn checkpoint_hw(&mut self) {
        let n = self.rng.below(NODES as usize);
        let node = &mut self.nodes[n];
        node.hw_checkpoint = node.state.high_watermark().get().min(node.log.end());
    }

    fn crash(&mut self) {
        let n = self.rng.below(NODES as usize);
        if !self.nodes[n].alive {
            return;
        }
        // Losing the page cache is survivable only for a node that is not
        // the last ISR member (as in Kafka).
        let sole = self.ctl.isr.len() == 1 && self.ctl.isr[0].get() == n as i32;
        let lose = !sole && self.rng.chance(50);
        self.log(|| format!("crash {n} (lose unflushed: {lose})"));
        self.ctl.fence(n as i32, &mut self.rng);
        let node = &mut self.nodes[n];
        node.alive = false;
        node.log.crash(lose, &mut self.rng);
        self.net.retain(|m| match m {
            Msg::AlterIsrDone { to, .. } => *to != n as i32,
            _ => true,
        });
    }

    fn restart(&mut self) {
        let n = self.rng.below(NODES as usize);
        let node = &mut self.nodes[n];
        if node.alive {
            return;
        }
        let hw = node.hw_checkpoint.min(node.log.end()).max(node.log.start);
        node.alive = true;
        node.seen = 0;
        node.awaiting = false;
        node.led = None;
        node.incarnation += 1;
        node.state = ReplicaState::new(node.id, LeaderEpoch(0), Offset(hw));
        node.log.restart();
        self.log(|| format!("restart {n}"));
    }

    fn unfence(&mut self) {
        let n = self.rng.below(NODES as usize) as i32;
        if !self.nodes[n as usize].alive || !self.ctl.fenced.remove(&n) {
            return;
        }
        if self.ctl.leader < 0 && self.ctl.isr.iter().any(|b| b.get() == n) {
            self.ctl.elect(&mut self.rng);
        }
        self.ctl.version += 1;
    }

    /// The controller loses the leader's session while it keeps running: it
    /// acts as leader until it hears the new metadata.
    fn fence_live_leader(&mut self) {
        let l = self.ctl.leader;
        if l >= 0 && self.ctl.isr.len() > 1 {
            self.log(|| format!("fence live leader {l}"));
            self.ctl.fence(l, &mut self.rng);
        }
    }

    fn retention(&mut self) {
        let n = self.rng.below(NODES as usize);
        let node = &mut self.nodes[n];
        if !node.alive {
            return;
        }
        // Whole segments, oldest first, never the active one, and only
        // those wholly below the state's bound (the high watermark).
        let bound = node.state.deletable_below().get().min(node.log.end());
        let upto = node
            .log
            .segments
            .iter()
            .skip(1)
            .take(1 + self.rng.below(3))
            .take_while(|next| **next <= bound)
            .last()
            .copied();
        if let Some(upto) = upto {
            node.log.delete_before(upto);
        }
    }

    /// The coordinator ends a transactional producer's transaction once
    /// every batch of it is acknowledged: COMMIT mostly, ABORT sometimes.
    /// One stuck with a batch unanswered is aborted now and then (the
    /// transaction timeout): the producer's epoch is bumped, its batch in
    /// flight failed.
    fn end_txn(&mut self) {
        let p = PRODUCERS as usize + self.rng.below(TXN_PRODUCERS as usize);
        let producer = &self.producers[p];
        let Some(t) = producer.txn else { return };
        if producer.out.is_some() || self.waiters.iter().any(|w| w.producer == p) {
            if self.rng.chance(3) {
                self.log(|| format!("txn {t} of p{p} times out"));
                self.waiters.retain(|w| w.producer != p);
                self.producers[p].bump_epoch();
                self.fence_abort(p);
            }
            return;
        }
        let commit = self.rng.chance(70);
        self.decide(p, t, commit);
    }

    /// The producer's epoch was bumped (KIP-360, or a zombie fenced by a
    /// new InitProducerId): the coordinator aborts its open transaction
    /// with the new epoch first.
    fn fence_abort(&mut self, p: usize) {
        if let Some(t) = self.producers[p].txn {
            tally(|s| s.fencing_aborts += 1);
            self.decide(p, t, false);
        }
    }

    fn decide(&mut self, p: usize, t: usize, commit: bool) {
        self.txns[t].commit = Some(commit);
        let producer = &mut self.producers[p];
        producer.txn = None;
        producer.ending = true;
        self.markers.push(PendingMarker {
            txn: t,
            producer: p,
            pid: producer.id,
            producer_epoch: producer.epoch,
            commit,
        });
        self.log(|| format!("txn {t} of p{p}: commit {commit}"));
    }

    /// Kafka's marker channel: the coordinator sends a pending marker to
    /// the partition leader it knows (mostly the current one), which
    /// checks it against its producer table and appends it in its epoch;
    /// retried until acknowledged with acks=all.
    fn write_marker(&mut self) {
        if self.markers.is_empty() {
            return;
        }
        let m = self.markers[self.rng.below(self.markers.len())].clone();
        if self.waiters.iter().any(|w| w.producer == m.producer) {
            return;
        }
        let n = if self.ctl.leader >= 0 && self.rng.chance(80) {
            self.ctl.leader as usize
        } else {
            self.rng.below(NODES as usize)
        };
        let now = self.now;
        let id = self.next_id;
        let node = &mut self.nodes[n];
        if !node.alive {
            return;
        }
        let Ok(epoch) = node.state.check_append(-1, MIN_INSYNC) else {
            return;
        };
        if let Err(e) = node.log.producers.check_marker(
            ProducerId(m.pid),
            ProducerEpoch(m.producer_epoch),
            CoordinatorEpoch(COORDINATOR_EPOCH),
        ) {
            self.violation = Some(format!("node {n} refused the marker {m:?}: {e}"));
            return;
        }
        self.next_id += 1;
        let marker = Batch {
            base: node.log.end(),
            len: 1,
            epoch: epoch.get(),
            id,
            producer: (m.pid, m.producer_epoch, -1),
            bytes: 78,
            timestamp: now,
            txn: Some(m.txn),
            marker: Some(m.commit),
        };
        let last = node.log.append_as_leader(marker).base;
        let end = node.log.log_end();
        node.state.advance_hw(end);
        tally(|s| s.markers_written += 1);
        self.log(|| format!("marker {m:?} on {n} at {last}"));
        self.waiters.push(Waiter {
            node: n,
            epoch,
            last_offset: last,
            id,
            producer: m.producer,
            marker: Some(m.txn),
        });
    }

    fn marker_acked(&mut self, t: usize) {
        let txn = &mut self.txns[t];
        txn.marker_acked = true;
        if txn.commit == Some(true) {
            tally(|s| s.commits += 1);
            let batches = txn.acked.iter().map(|&(offset, id)| (t, offset, id));
            self.committed.extend(batches);
        } else {
            tally(|s| s.aborted_txns += 1);
        }
        if let Some(i) = self.markers.iter().position(|m| m.txn == t) {
            let m = self.markers.remove(i);
            self.producers[m.producer].ending = false;
        }
    }

    /// The transaction invariants (7-10 in the module docs), on every live
    /// replica.
    fn check_txns(&mut self) -> Result<(), String> {
        for n in 0..self.nodes.len() {
            let node = &self.nodes[n];
            let seen = (
                node.log.version,
                node.state.high_watermark().get(),
                self.committed.len(),
                self.ctl.isr.contains(&node.id),
            );
            if !node.alive || self.txn_checked[n] == Some(seen) {
                continue;
            }
            self.check_node_txns(node, seen.3)?;
            self.txn_checked[n] = Some(seen);
        }
        Ok(())
    }

    fn check_node_txns(&self, node: &Node, in_isr: bool) -> Result<(), String> {
        let log = &node.log;
        let id = node.id.get();
        let hw = node.state.high_watermark().get().min(log.end());
        let lso = last_stable_offset(node);
        // 7. LSO <= HW.
        if lso > hw {
            return Err(format!(
                "node {id}: LSO {lso} above the high watermark {hw}"
            ));
        }
        // One pass over the log: the open transactions (producer id,
        // first offset), read from the log alone, and
        // 10. a transaction's markers all carry the coordinator's
        // decision (so it is never both committed and aborted);
        // 8. no aborted (or undecided) transaction's batch is read.
        let mut open: Vec<(i64, i64)> = Vec::new();
        for b in &log.batches {
            let Some(t) = b.txn else { continue };
            let pid = b.producer.0;
            let decided = self.txns[t].commit;
            if let Some(commit) = b.marker {
                if decided != Some(commit) {
                    return Err(format!(
                            "node {id}: txn {t}'s marker at {} says commit={commit}, the coordinator decided {decided:?}",
                            b.base
                        ));
                }
                open.retain(|(p, _)| *p != pid);
                continue;
            }
            if !open.iter().any(|(p, _)| *p == pid) {
                open.push((pid, b.base));
            }
            if decided != Some(true) && read_committed(log, lso, b) {
                return Err(format!(
                        "node {id}: read_committed (LSO {lso}) reads batch {} at {} of txn {t}, decided {decided:?}",
                        b.id, b.base
                    ));
            }
        }
        // 7. the LSO never passes an open transaction's first offset.
        if let Some((pid, first)) = open.iter().min_by_key(|(_, f)| *f) {
            if lso > *first {
                return Err(format!(
                    "node {id}: LSO {lso} passes producer {pid}'s open transaction at {first}"
                ));
            }
        }
        // The producer table knows exactly those (a transaction whose
        // first batches retention deleted starts below the log start).
        let table = log.producers.ongoing_txns();
        for (pid, first) in &open {
            match table.iter().find(|(p, _)| p.get() == *pid) {
                    Some((_, f)) if f.get() == *first || f.get() < log.start => {}
                    other => {
                        return Err(format!(
                            "node {id}: producer {pid}'s transaction is open from {first} in the log, its producer table says {other:?}"
                        ))
                    }
                }
        }
        for (pid, first) in &table {
            let in_log = open.iter().find(|(p, _)| *p == pid.get());
            if first.get() >= log.start && in_log.map(|(_, f)| *f) != Some(first.get()) {
                return Err(format!(
                        "node {id}: the producer table has {pid:?}'s transaction open from {first:?}, the log {in_log:?}"
                    ));
            }
        }
        // 9. a committed transaction's batches are read on every ISR
        // member once below its LSO.
        if !in_isr {
            return Ok(());
        }
        for &(t, offset, batch) in &self.committed {
            if offset < log.start || offset >= lso {
                continue;
            }
            {
                let read = log
                    .batches
                    .binary_search_by(|b| {
                        if b.end() <= offset {
                            std::cmp::Ordering::Less
                        } else if b.base > offset {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Equal
                        }
                    })
                    .is_ok_and(|i| {
                        let b = &log.batches[i];
                        b.id == batch && read_committed(log, lso, b)
                    });
                if !read {
                    return Err(format!(
                            "ISR member {id}: committed txn {t}'s batch {batch} at {offset} is not read below LSO {lso}"
                        ));
                }
            }
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), String> {
        if let Some(v) = self.violation.take() {
            return Err(v);
        }
        for node in &self.nodes {
            let mut at = node.log.start;
            let mut seen = BTreeSet::new();
            for b in &node.log.batches {
                // 5. dense and increasing.
                if b.base != at || b.len < 1 {
                    return Err(format!(
                        "node {}: batch at {} expected {at}",
                        node.id, b.base
                    ));
                }
                at = b.end();
                // 4. no idempotent batch twice (the oracle only checks;
                // the storage crate's producer table decides).
                if !seen.insert(b.id) {
                    return Err(format!(
                        "node {}: batch {} {:?} stored twice",
                        node.id, b.id, b.producer
                    ));
                }
            }
            // 6. the producer table describes only batches the log holds.
            if node.alive {
                check_producer_table(node)?;
            }
        }
        // 1. acks=all batches on every ISR member.
        let isr: Vec<usize> = self.ctl.isr.iter().map(|b| b.get() as usize).collect();
        for &(offset, id) in &self.acked {
            for &m in &isr {
                let log = &self.nodes[m].log;
                if offset < log.start {
                    continue;
                }
                match log
                    .batches
                    .iter()
                    .find(|b| b.base <= offset && offset < b.end())
                {
                    Some(b) if b.id == id => {}
                    other => {
                        return Err(format!(
                            "acks=all batch {id} at {offset} missing on ISR member {m}: {other:?}"
                        ))
                    }
                }
            }
        }
        // 2. ISR members agree below the leader's high watermark.
        if self.ctl.leader >= 0 {
            let l = &self.nodes[self.ctl.leader as usize];
            if l.alive
                && l.state.is_leader()
                && l.state.leader_epoch().get() == self.ctl.leader_epoch
            {
                let hw = l.state.high_watermark().get().min(l.log.end());
                let by_base: BTreeMap<i64, u64> =
                    l.log.batches.iter().map(|b| (b.base, b.id)).collect();
                for &m in &isr {
                    for b in &self.nodes[m].log.batches {
                        if b.end() > hw {
                            break;
                        }
                        if b.base < l.log.start {
                            continue;
                        }
                        if by_base.get(&b.base) != Some(&b.id) {
                            return Err(format!(
                                "ISR member {m} diverges from leader {} below hw {hw} at {}",
                                self.ctl.leader, b.base
                            ));
                        }
                    }
                }
            }
        }
        // 3. a leader's high watermark never goes backwards in its epoch.
        for node in &mut self.nodes {
            if !node.alive || !node.state.is_leader() {
                node.led = None;
                continue;
            }
            let now = (node.state.leader_epoch(), node.state.high_watermark());
            if let Some((epoch, hw)) = node.led {
                if epoch == now.0 && now.1 < hw {
                    return Err(format!(
                        "leader {} hw went back from {hw} to {} in epoch {epoch}",
                        node.id, now.1
                    ));
                }
            }
            node.led = Some(now);
        }
        self.check_txns()
    }
}

/// A replica's last stable offset, from its producer table: min(first
/// unstable offset, high watermark).
fn last_stable_offset(node: &Node) -> i64 {
    let hw = node.state.high_watermark().get().min(node.log.end());
    node.log
        .producers
        .first_unstable_offset()
        .map_or(hw, |f| f.get().min(hw))
}

/// Whether a read_committed consumer reads batch `b` of `log`: a data
/// batch below the LSO that the aborted index does not cover (it covers a
/// producer's transactional batches from an aborted transaction's first
/// offset to its marker).
fn read_committed(log: &MemLog, lso: i64, b: &Batch) -> bool {
    let h = b.header();
    let aborted = || {
        log.aborted.iter().any(|c| {
            c.producer_id == h.producer_id
                && c.first_offset <= h.base_offset
                && h.base_offset <= c.last_offset
        })
    };
    b.end() <= lso && !h.is_control() && !(h.is_transactional() && aborted())
}

/// Every batch a live node's producer table remembers at or above its log
/// start is in its log, at that offset, from that producer: a duplicate is
/// answered with offsets that hold it.
fn check_producer_table(node: &Node) -> Result<(), String> {
    let log = &node.log;
    for (pid, entry) in log.producers.entries_by_recency() {
        for meta in &entry.batches {
            let base = meta.base_offset.get();
            if base < log.start {
                continue;
            }
            let stored = log
                .batches
                .binary_search_by_key(&base, |b| b.base)
                .ok()
                .map(|i| &log.batches[i]);
            let expected = (pid.get(), entry.epoch.get(), meta.first_seq);
            if stored.map(|b| b.producer) != Some(expected) {
                return Err(format!(
                    "node {}: producer table has {expected:?} at {base}, the log {stored:?}",
                    node.id
                ));
            }
        }
    }
    Ok(())
}

fn run(seed: u64, trace: bool) -> Result<usize, String> {
    simulate(seed, trace).map(|sim| sim.acked.len())
}

fn simulate(seed: u64, trace: bool) -> Result<Sim, String> {
    let mut sim = Sim::new(seed, trace);
    for n in 0..NODES as usize {
        sim.apply_metadata(n);
    }
    for step in 0..STEPS {
        sim.step();
        sim.check()
            .map_err(|e| format!("seed {seed} step {step}: {e}"))?;
    }
    Ok(sim)
}

/// Same seed, same run: the logs, acknowledgements and controller state
/// of two runs are identical.
#[test]
fn a_seed_replays_exactly() {
    let fingerprint = |seed| {
        let sim = simulate(seed, false).unwrap();
        let logs: Vec<_> = sim.nodes.iter().map(|n| n.log.fingerprint()).collect();
        (logs, sim.acked, sim.ctl.leader_epoch, sim.ctl.isr, sim.now)
    };
    for seed in [1, 17, 4242] {
        assert_eq!(fingerprint(seed), fingerprint(seed), "seed {seed}");
    }
}

#[test]
fn replicated_log_invariants_hold_for_every_seed() {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        if let Err(e) = run(seed, true) {
            panic!("{e}");
        }
        return;
    }
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS_DEFAULT);
    let mut acked = 0;
    for seed in 0..seeds {
        match run(seed, false) {
            Ok(n) => acked += n,
            Err(e) => panic!(
                "{e}\nreproduce: SIM_SEED={seed} cargo test -p samsa-replica --test simulation"
            ),
        }
    }
    let stats = STATS.with(|s| s.get());
    eprintln!(
        "{seeds} seeds x {STEPS} steps: {acked} acks=all acknowledgements checked; {stats:?}"
    );
    // The runs must exercise acks=all, not just survive.
    assert!(
        acked > seeds as usize,
        "only {acked} acks=all acknowledgements in {seeds} seeds"
    );
    // ... and roll, cut across segments, rebuild from snapshots, dedupe,
    // write markers; commit and abort transactions (rarer: a transaction
    // needs two acks=all rounds, its batches and then its marker).
    for (what, n, per_seeds) in [
        ("rolls", stats.rolls, 10),
        ("cuts across segments", stats.cuts_across_segments, 10),
        ("rebuilds from a snapshot", stats.rebuilds_from_snapshot, 10),
        ("duplicates", stats.duplicates, 10),
        ("segments deleted", stats.segments_deleted, 10),
        ("markers written", stats.markers_written, 10),
        ("commits", stats.commits, 30),
        ("aborted transactions", stats.aborted_txns, 30),
        ("fencing aborts", stats.fencing_aborts, 30),
    ] {
        assert!(
            n > seeds / per_seeds,
            "only {n} {what} in {seeds} seeds: {stats:?}"
        );
    }
}
