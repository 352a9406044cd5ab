//! The `__consumer_offsets` records, in Kafka's byte formats (the group coordinator's
//! record schemas), so that the topic's content matches what a Kafka broker writes.
//!
//! # Layout
//!
//! Every record is a key and a value (`None` = tombstone, which deletes what the key
//! names). All integers are big-endian.
//!
//! **Key** = `int16 record_type` followed by the key fields, always in the classic
//! (non-flexible) encoding: `string` = `int16` length + UTF-8.
//!
//! | type | key | fields |
//! |---|---|---|
//! | 0, 1 | OffsetCommitKey | `group string, topic string, partition int32` (samsa writes 1; 0 is the legacy type, read the same) |
//! | 2 | GroupMetadataKey | `group string` |
//! | 3 | ConsumerGroupMetadataKey | `group_id string` |
//! | 4 | ConsumerGroupPartitionMetadataKey | `group_id string` (read and ignored: deprecated by Kafka 4.1, never written) |
//! | 5 | ConsumerGroupMemberMetadataKey | `group_id string, member_id string` |
//! | 6 | ConsumerGroupTargetAssignmentMetadataKey | `group_id string` |
//! | 7 | ConsumerGroupTargetAssignmentMemberKey | `group_id string, member_id string` |
//! | 8 | ConsumerGroupCurrentMemberAssignmentKey | `group_id string, member_id string` |
//! | 16 | ConsumerGroupRegularExpressionKey | `group_id string, regular_expression string` |
//!
//! **Value** = `int16 version` followed by the fields of that version.
//!
//! * OffsetCommitValue (classic encoding). samsa writes version 3
//!   `offset int64, leader_epoch int32, metadata string, commit_timestamp int64`, or
//!   version 1 `offset int64, metadata string, commit_timestamp int64, expire_timestamp
//!   int64` when an OffsetCommit v2–v4 carried a retention time (as Kafka does). Reads
//!   versions 0 (`offset, metadata, commit_timestamp`), 1, 2 (= 0), 3 and the flexible 4
//!   (= 3 with compact strings and a trailing tagged-field section).
//! * GroupMetadataValue (classic encoding). samsa writes version 3:
//!   `protocol_type string, generation int32, protocol nullable string, leader nullable
//!   string, current_state_timestamp int64, members [int32 count] of { member_id string,
//!   group_instance_id nullable string, client_id string, client_host string,
//!   rebalance_timeout int32, session_timeout int32, subscription bytes, assignment bytes }`
//!   (`bytes` = `int32` length + bytes, null string = length -1). Reads versions 0–3
//!   (v0 lacks `rebalance_timeout`, `current_state_timestamp` and `group_instance_id`; v1
//!   adds `rebalance_timeout`; v2 adds `current_state_timestamp`) and the flexible 4.
//! * The KIP-848 values are version 0 in the flexible encoding: `compact string` =
//!   unsigned varint (length + 1) + UTF-8 (0 = null), `compact array` = unsigned varint
//!   (count + 1) + elements, `uuid` = 16 bytes, and every struct ends with a tagged-field
//!   section (unsigned varint count, then per field: varint tag, varint size, bytes):
//!   * ConsumerGroupMetadataValue: `epoch int32`, tagged field 0 = `metadata_hash int64`.
//!     samsa's hash is its own FNV-1a over the subscribed topics' (name, id, partition
//!     count); it is only ever compared with values samsa wrote.
//!   * ConsumerGroupMemberMetadataValue: `instance_id compact nullable string, rack_id
//!     compact nullable string, client_id compact string, client_host compact string,
//!     subscribed_topic_names compact array of compact string, subscribed_topic_regex
//!     compact nullable string, rebalance_timeout_ms int32, server_assignor compact
//!     nullable string` (tag 0, classic member metadata, is skipped on read).
//!   * ConsumerGroupTargetAssignmentMetadataValue: `assignment_epoch int32`.
//!   * ConsumerGroupTargetAssignmentMemberValue: `topic_partitions compact array of {
//!     topic_id uuid, partitions compact array of int32 }`.
//!   * ConsumerGroupCurrentMemberAssignmentValue: `member_epoch int32,
//!     previous_member_epoch int32, state int8 (0 stable, 1 unrevoked partitions,
//!     2 unreleased partitions), assigned_partitions, partitions_pending_revocation` (both
//!     compact arrays of the topic-partitions struct above). samsa adds KIP-1251
//!     assignment epochs as tagged field 0 of each topic struct: a compact array of
//!     int32 aligned with `partitions` (the member epoch at which the member was given
//!     each partition). Readers that do not know the tag skip it; a value without it
//!     reads as every partition assigned at `member_epoch` (the pre-KIP-1251 strict
//!     check).
//!   * ConsumerGroupRegularExpressionValue: `topics compact array of compact string,
//!     version int64, timestamp int64`: what a subscribed regex resolved to (topic
//!     names, sorted), the metadata version it was resolved against (samsa: the
//!     metadata image's count of applied records) and when (ms since the epoch).
//!     A tombstone is written when no member subscribes to the regex any more.
//!
//! # Crash behaviour
//!
//! The records of one coordinator operation form one [`crate::Output::Append`], which the
//! broker writes as one record batch; storage recovery drops a torn or CRC-failing batch,
//! so after a crash `__consumer_offsets` holds a prefix of whole operations and replay
//! never sees half of one. TxnOffsetCommit's records are in a transactional batch (the
//! producer's id and epoch in the batch header); the marker that ends the transaction
//! is a control batch in the same partition. A crash between them leaves the offsets
//! pending after replay, until the transaction coordinator writes the marker again.
//! Replaying that prefix rebuilds the state as of the last
//! durable operation; requests whose records did not survive were never answered.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use samsa_model::TopicId;

use crate::api::Record;
use crate::codec::{DecodeError, Reader, Writer};

/// KIP-1251 assignment epochs: the member epoch at which a member was given each
/// partition it holds, by (topic id, partition).
pub type AssignmentEpochs = BTreeMap<(TopicId, i32), i32>;

/// Partitions per topic id, as the KIP-848 records and assignors use them.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// A committed offset (OffsetCommitValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The committed offset.
    pub offset: i64,
    /// The committed leader epoch (-1 if unknown).
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When the commit was accepted.
    pub commit_timestamp: i64,
    /// Explicit expiry (OffsetCommit v2–v4 retention time), else `None`.
    pub expire_timestamp: Option<i64>,
}

/// One classic member in a GroupMetadataValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMemberValue {
    /// The member id.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// The member's rebalance timeout.
    pub rebalance_timeout: i32,
    /// The member's session timeout.
    pub session_timeout: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A classic group (GroupMetadataValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// The protocol type ("" for none).
    pub protocol_type: String,
    /// The generation id.
    pub generation: i32,
    /// The selected protocol.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// When the group entered its state (-1 unknown).
    pub current_state_timestamp: i64,
    /// The members.
    pub members: Vec<GroupMemberValue>,
}

/// A KIP-848 group's epoch (ConsumerGroupMetadataValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMetadataValue {
    /// The group epoch.
    pub epoch: i32,
    /// samsa's hash of the subscribed topics' metadata (tagged field 0).
    pub metadata_hash: i64,
}

/// A KIP-848 member's subscription (ConsumerGroupMemberMetadataValue).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerMemberMetadataValue {
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The client's rack.
    pub rack_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client host.
    pub client_host: String,
    /// Subscribed topic names (sorted).
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regex (RE2 syntax, matched against whole topic names).
    pub subscribed_topic_regex: Option<String>,
    /// The member's rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// The server assignor the member asked for.
    pub server_assignor: Option<String>,
}

/// A KIP-848 member's current assignment (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerCurrentAssignmentValue {
    /// The member epoch.
    pub member_epoch: i32,
    /// The previous member epoch.
    pub previous_member_epoch: i32,
    /// The reconciliation state (Kafka's `MemberState` byte).
    pub state: i8,
    /// Partitions the member owns.
    pub assigned: Assignment,
    /// Partitions the member must revoke.
    pub pending_revocation: Assignment,
    /// KIP-1251: the member epoch at which each partition of `assigned` and
    /// `pending_revocation` was assigned to the member. A partition missing here
    /// (records written without the field) counts as assigned at `member_epoch`.
    pub assignment_epochs: AssignmentEpochs,
}

/// What a group's subscribed regex resolved to (ConsumerGroupRegularExpressionValue).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConsumerRegexValue {
    /// The matching topic names.
    pub topics: BTreeSet<String>,
    /// The metadata version the regex was resolved against.
    pub version: i64,
    /// When it was resolved (ms since the epoch).
    pub timestamp: i64,
}

/// One `__consumer_offsets` record, decoded. `None` values are tombstones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoordinatorRecord {
    /// Types 0/1.
    OffsetCommit {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The commit or a tombstone.
        value: Option<OffsetCommitValue>,
    },
    /// Type 2.
    GroupMetadata {
        /// Group id.
        group: String,
        /// The group or a tombstone.
        value: Option<GroupMetadataValue>,
    },
    /// Type 3.
    ConsumerGroupMetadata {
        /// Group id.
        group: String,
        /// The epoch or a tombstone (deletes the group).
        value: Option<ConsumerGroupMetadataValue>,
    },
    /// Type 4 (read only; the value is ignored).
    ConsumerGroupPartitionMetadata {
        /// Group id.
        group: String,
    },
    /// Type 5.
    ConsumerMemberMetadata {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The subscription or a tombstone (deletes the member).
        value: Option<ConsumerMemberMetadataValue>,
    },
    /// Type 6.
    ConsumerTargetAssignmentMetadata {
        /// Group id.
        group: String,
        /// The assignment epoch or a tombstone.
        value: Option<i32>,
    },
    /// Type 7.
    ConsumerTargetAssignmentMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The member's target or a tombstone.
        value: Option<Assignment>,
    },
    /// Type 8.
    ConsumerCurrentAssignment {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
        /// The member's assignment state or a tombstone.
        value: Option<ConsumerCurrentAssignmentValue>,
    },
    /// Type 16.
    ConsumerRegex {
        /// Group id.
        group: String,
        /// The regular expression, as the members sent it.
        regex: String,
        /// Its resolution or a tombstone.
        value: Option<ConsumerRegexValue>,
    },
}

/// Writes the topic-partitions array; with `epochs`, each topic struct carries tagged
/// field 0 = its partitions' assignment epochs (compact array of int32, aligned with
/// `partitions`).
fn write_assignment(w: &mut Writer, a: &Assignment, epochs: Option<&AssignmentEpochs>) {
    w.compact_array_len(a.len());
    for (topic, parts) in a {
        w.uuid(*topic);
        w.compact_array_len(parts.len());
        for p in parts {
            w.i32(*p);
        }
        match epochs {
            Some(epochs) => {
                let mut f = Writer::new();
                f.compact_array_len(parts.len());
                for p in parts {
                    f.i32(epochs.get(&(*topic, *p)).copied().unwrap_or(-1));
                }
                let bytes = f.finish();
                w.tagged_fields(&[(0, &bytes[..])]);
            }
            None => w.tagged_fields(&[]),
        }
    }
}

/// Reads a topic-partitions array, collecting tagged assignment epochs (field 0 of
/// each topic struct, when present and as long as its partitions) into `epochs`.
fn read_assignment(
    r: &mut Reader<'_>,
    epochs: &mut AssignmentEpochs,
) -> Result<Assignment, DecodeError> {
    let n = r.compact_array_len(18)?;
    let mut a = Assignment::new();
    for _ in 0..n {
        let topic = r.uuid()?;
        let m = r.compact_array_len(4)?;
        let mut listed = Vec::with_capacity(m);
        for _ in 0..m {
            listed.push(r.i32()?);
        }
        r.tagged_fields(|tag, data| {
            if tag == 0 {
                let mut f = Reader::new(data);
                let k = f.compact_array_len(4)?;
                if k == listed.len() {
                    for p in &listed {
                        let e = f.i32()?;
                        if e >= 0 {
                            epochs.insert((topic, *p), e);
                        }
                    }
                }
            }
            Ok(())
        })?;
        a.entry(topic).or_default().extend(listed);
    }
    a.retain(|_, p| !p.is_empty());
    Ok(a)
}

fn key(record_type: i16, fields: &[&str], partition: Option<i32>) -> Bytes {
    let mut w = Writer::new();
    w.i16(record_type);
    for f in fields {
        w.string(f);
    }
    if let Some(p) = partition {
        w.i32(p);
    }
    w.finish()
}

impl CoordinatorRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            CoordinatorRecord::OffsetCommit { group, .. }
            | CoordinatorRecord::GroupMetadata { group, .. }
            | CoordinatorRecord::ConsumerGroupMetadata { group, .. }
            | CoordinatorRecord::ConsumerGroupPartitionMetadata { group }
            | CoordinatorRecord::ConsumerMemberMetadata { group, .. }
            | CoordinatorRecord::ConsumerTargetAssignmentMetadata { group, .. }
            | CoordinatorRecord::ConsumerTargetAssignmentMember { group, .. }
            | CoordinatorRecord::ConsumerCurrentAssignment { group, .. }
            | CoordinatorRecord::ConsumerRegex { group, .. } => group,
        }
    }

    /// Encodes the record in Kafka's layout (see the module docs).
    pub fn encode(&self) -> Record {
        match self {
            CoordinatorRecord::OffsetCommit {
                group,
                topic,
                partition,
                value,
            } => Record {
                key: key(1, &[group, topic], Some(*partition)),
                value: value.as_ref().map(|v| {
                    let mut w = Writer::new();
                    match v.expire_timestamp {
                        Some(expire) => {
                            w.i16(1);
                            w.i64(v.offset);
                            w.string(&v.metadata);
                            w.i64(v.commit_timestamp);
                            w.i64(expire);
                        }
                        None => {
                            w.i16(3);
                            w.i64(v.offset);
                            w.i32(v.leader_epoch);
                            w.string(&v.metadata);
                            w.i64(v.commit_timestamp);
                        }
                    }
                    w.finish()
                }),
            },
            CoordinatorRecord::GroupMetadata { group, value } => Record {
                key: key(2, &[group], None),
                value: value.as_ref().map(|v| {
                    let mut w = Writer::new();
                    w.i16(3);
                    w.string(&v.protocol_type);
                    w.i32(v.generation);
                    w.nullable_string(v.protocol.as_deref());
                    w.nullable_string(v.leader.as_deref());
                    w.i64(v.current_state_timestamp);
                    w.array_len(v.members.len());
                    for m in &v.members {
                        w.string(&m.member_id);
                        w.nullable_string(m.group_instance_id.as_deref());
                        w.string(&m.client_id);
                        w.string(&m.client_host);
                        w.i32(m.rebalance_timeout);
                        w.i32(m.session_timeout);
                        w.bytes(&m.subscription);
                        w.bytes(&m.assignment);
                    }
                    w.finish()
                }),
            },
            CoordinatorRecord::ConsumerGroupMetadata { group, value } => Record {
                key: key(3, &[group], None),
                value: value.as_ref().map(|v| {
                    let mut w = Writer::new();
                    w.i16(0);
                    w.i32(v.epoch);
                    let hash = v.metadata_hash.to_be_bytes();
                    w.tagged_fields(&[(0, &hash)]);
                    w.finish()
                }),
            },
            CoordinatorRecord::ConsumerGroupPartitionMetadata { group } => Record {
                key: key(4, &[group], None),
                value: None,
            },
            CoordinatorRecord::ConsumerMemberMetadata {
                group,
                member,
                value,
            } => Record {
                key: key(5, &[group, member], None),
                value: value.as_ref().map(|v| {
                    let mut w = Writer::new();
                    w.i16(0);
                    w.compact_nullable_string(v.instance_id.as_deref());
                    w.compact_nullable_string(v.rack_id.as_deref());
                    w.compact_string(&v.client_id);
                    w.compact_string(&v.client_host);
                    w.compact_array_len(v.subscribed_topic_names.len());
                    for t in &v.subscribed_topic_names {
                        w.compact_string(t);
                    }
                    w.compact_nullable_string(v.subscribed_topic_regex.as_deref());
                    w.i32(v.rebalance_timeout_ms);
                    w.compact_nullable_string(v.server_assignor.as_deref());
                    w.tagged_fields(&[]);
                    w.finish()
                }),
            },
            CoordinatorRecord::ConsumerTargetAssignmentMetadata { group, value } => Record {
                key: key(6, &[group], None),
                value: value.map(|epoch| {
                    let mut w = Writer::new();
                    w.i16(0);
                    w.i32(epoch);
                    w.tagged_fields(&[]);
                    w.finish()
                }),
            },
            CoordinatorRecord::ConsumerTargetAssignmentMember {
                group,
                member,
                value,
            } => Record {
                key: key(7, &[group, member], None),
                value: value.as_ref().map(|a| {
                    let mut w = Writer::new();
                    w.i16(0);
                    write_assignment(&mut w, a, None);
                    w.tagged_fields(&[]);
                    w.finish()
                }),
            },
            CoordinatorRecord::ConsumerCurrentAssignment {
                group,
                member,
                value,
            } => Record {
                key: key(8, &[group, member], None),
                value: value.as_ref().map(|v| {
                    let mut w = Writer::new();
                    w.i16(0);
                    w.i32(v.member_epoch);
                    w.i32(v.previous_member_epoch);
                    w.i8(v.state);
                    write_assignment(&mut w, &v.assigned, Some(&v.assignment_epochs));
                    write_assignment(&mut w, &v.pending_revocation, Some(&v.assignment_epochs));
                    w.tagged_fields(&[]);
                    w.finish()
                }),
            },
            CoordinatorRecord::ConsumerRegex {
                group,
                regex,
                value,
            } => Record {
                key: key(16, &[group, regex], None),
                value: value.as_ref().map(|v| {
                    let mut w = Writer::new();
                    w.i16(0);
                    w.compact_array_len(v.topics.len());
                    for t in &v.topics {
                        w.compact_string(t);
                    }
                    w.i64(v.version);
                    w.i64(v.timestamp);
                    w.tagged_fields(&[]);
                    w.finish()
                }),
            },
        }
    }

    /// Decodes a key and value written by samsa or Kafka (see the module docs for the
    /// versions understood).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<CoordinatorRecord, DecodeError> {
        let mut k = Reader::new(key);
        let record_type = k.i16()?;
        let record = match record_type {
            0 | 1 => {
                let group = k.string()?;
                let topic = k.string()?;
                let partition = k.i32()?;
                CoordinatorRecord::OffsetCommit {
                    group,
                    topic,
                    partition,
                    value: value.map(decode_offset_commit).transpose()?,
                }
            }
            2 => CoordinatorRecord::GroupMetadata {
                group: k.string()?,
                value: value.map(decode_group_metadata).transpose()?,
            },
            3 => CoordinatorRecord::ConsumerGroupMetadata {
                group: k.string()?,
                value: value
                    .map(|v| {
                        let mut r = Reader::new(v);
                        check_version(&mut r, "ConsumerGroupMetadataValue")?;
                        let epoch = r.i32()?;
                        let mut metadata_hash = 0;
                        r.tagged_fields(|tag, data| {
                            if tag == 0 {
                                metadata_hash = Reader::new(data).i64()?;
                            }
                            Ok(())
                        })?;
                        Ok(ConsumerGroupMetadataValue {
                            epoch,
                            metadata_hash,
                        })
                    })
                    .transpose()?,
            },
            4 => CoordinatorRecord::ConsumerGroupPartitionMetadata { group: k.string()? },
            5 => {
                let group = k.string()?;
                let member = k.string()?;
                let value = value
                    .map(|v| {
                        let mut r = Reader::new(v);
                        check_version(&mut r, "ConsumerGroupMemberMetadataValue")?;
                        let instance_id = r.compact_nullable_string()?;
                        let rack_id = r.compact_nullable_string()?;
                        let client_id = r.compact_string()?;
                        let client_host = r.compact_string()?;
                        let n = r.compact_array_len(1)?;
                        let mut names = Vec::with_capacity(n);
                        for _ in 0..n {
                            names.push(r.compact_string()?);
                        }
                        names.sort();
                        names.dedup();
                        let subscribed_topic_regex = r.compact_nullable_string()?;
                        let rebalance_timeout_ms = r.i32()?;
                        let server_assignor = r.compact_nullable_string()?;
                        r.skip_tagged_fields()?;
                        Ok(ConsumerMemberMetadataValue {
                            instance_id,
                            rack_id,
                            client_id,
                            client_host,
                            subscribed_topic_names: names,
                            subscribed_topic_regex,
                            rebalance_timeout_ms,
                            server_assignor,
                        })
                    })
                    .transpose()?;
                CoordinatorRecord::ConsumerMemberMetadata {
                    group,
                    member,
                    value,
                }
            }
            6 => CoordinatorRecord::ConsumerTargetAssignmentMetadata {
                group: k.string()?,
                value: value
                    .map(|v| {
                        let mut r = Reader::new(v);
                        check_version(&mut r, "ConsumerGroupTargetAssignmentMetadataValue")?;
                        let epoch = r.i32()?;
                        r.skip_tagged_fields()?;
                        Ok(epoch)
                    })
                    .transpose()?,
            },
            7 => {
                let group = k.string()?;
                let member = k.string()?;
                let value = value
                    .map(|v| {
                        let mut r = Reader::new(v);
                        check_version(&mut r, "ConsumerGroupTargetAssignmentMemberValue")?;
                        let a = read_assignment(&mut r, &mut AssignmentEpochs::new())?;
                        r.skip_tagged_fields()?;
                        Ok(a)
                    })
                    .transpose()?;
                CoordinatorRecord::ConsumerTargetAssignmentMember {
                    group,
                    member,
                    value,
                }
            }
            8 => {
                let group = k.string()?;
                let member = k.string()?;
                let value = value
                    .map(|v| {
                        let mut r = Reader::new(v);
                        check_version(&mut r, "ConsumerGroupCurrentMemberAssignmentValue")?;
                        let member_epoch = r.i32()?;
                        let previous_member_epoch = r.i32()?;
                        let state = r.i8()?;
                        let mut assignment_epochs = AssignmentEpochs::new();
                        let assigned = read_assignment(&mut r, &mut assignment_epochs)?;
                        let pending_revocation = read_assignment(&mut r, &mut assignment_epochs)?;
                        r.skip_tagged_fields()?;
                        Ok(ConsumerCurrentAssignmentValue {
                            member_epoch,
                            previous_member_epoch,
                            state,
                            assigned,
                            pending_revocation,
                            assignment_epochs,
                        })
                    })
                    .transpose()?;
                CoordinatorRecord::ConsumerCurrentAssignment {
                    group,
                    member,
                    value,
                }
            }
            16 => {
                let group = k.string()?;
                let regex = k.string()?;
                let value = value
                    .map(|v| {
                        let mut r = Reader::new(v);
                        check_version(&mut r, "ConsumerGroupRegularExpressionValue")?;
                        let n = r.compact_array_len(1)?;
                        let mut topics = BTreeSet::new();
                        for _ in 0..n {
                            topics.insert(r.compact_string()?);
                        }
                        let version = r.i64()?;
                        let timestamp = r.i64()?;
                        r.skip_tagged_fields()?;
                        Ok(ConsumerRegexValue {
                            topics,
                            version,
                            timestamp,
                        })
                    })
                    .transpose()?;
                CoordinatorRecord::ConsumerRegex {
                    group,
                    regex,
                    value,
                }
            }
            other => return Err(DecodeError::UnknownRecordType(other)),
        };
        Ok(record)
    }
}

fn check_version(r: &mut Reader<'_>, what: &'static str) -> Result<(), DecodeError> {
    match r.i16()? {
        0 => Ok(()),
        version => Err(DecodeError::UnsupportedVersion { what, version }),
    }
}

fn decode_offset_commit(v: &[u8]) -> Result<OffsetCommitValue, DecodeError> {
    let mut r = Reader::new(v);
    let version = r.i16()?;
    let mut out = OffsetCommitValue {
        offset: 0,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 0,
        expire_timestamp: None,
    };
    match version {
        0 | 2 => {
            out.offset = r.i64()?;
            out.metadata = r.string()?;
            out.commit_timestamp = r.i64()?;
        }
        1 => {
            out.offset = r.i64()?;
            out.metadata = r.string()?;
            out.commit_timestamp = r.i64()?;
            out.expire_timestamp = Some(r.i64()?).filter(|t| *t >= 0);
        }
        3 => {
            out.offset = r.i64()?;
            out.leader_epoch = r.i32()?;
            out.metadata = r.string()?;
            out.commit_timestamp = r.i64()?;
        }
        4 => {
            out.offset = r.i64()?;
            out.leader_epoch = r.i32()?;
            out.metadata = r.compact_string()?;
            out.commit_timestamp = r.i64()?;
            r.skip_tagged_fields()?;
        }
        version => {
            return Err(DecodeError::UnsupportedVersion {
                what: "OffsetCommitValue",
                version,
            })
        }
    }
    Ok(out)
}

fn decode_group_metadata(v: &[u8]) -> Result<GroupMetadataValue, DecodeError> {
    let mut r = Reader::new(v);
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        return Err(DecodeError::UnsupportedVersion {
            what: "GroupMetadataValue",
            version,
        });
    }
    let flexible = version >= 4;
    let string = |r: &mut Reader<'_>| {
        if flexible {
            r.compact_string()
        } else {
            r.string()
        }
    };
    let nullable = |r: &mut Reader<'_>| {
        if flexible {
            r.compact_nullable_string()
        } else {
            r.nullable_string()
        }
    };
    let bytes = |r: &mut Reader<'_>| -> Result<Bytes, DecodeError> {
        if flexible {
            r.compact_bytes()
        } else {
            r.bytes()
        }
    };
    let protocol_type = string(&mut r)?;
    let generation = r.i32()?;
    let protocol = nullable(&mut r)?;
    let leader = nullable(&mut r)?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let n = if flexible {
        r.compact_array_len(8)?
    } else {
        r.array_len(8)?
    };
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let member_id = string(&mut r)?;
        let group_instance_id = if version >= 3 {
            nullable(&mut r)?
        } else {
            None
        };
        let client_id = string(&mut r)?;
        let client_host = string(&mut r)?;
        let rebalance_timeout = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout = r.i32()?;
        let rebalance_timeout = if rebalance_timeout == -1 {
            session_timeout
        } else {
            rebalance_timeout
        };
        let subscription = bytes(&mut r)?;
        let assignment = bytes(&mut r)?;
        if flexible {
            r.skip_tagged_fields()?;
        }
        members.push(GroupMemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
        });
    }
    if flexible {
        r.skip_tagged_fields()?;
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: CoordinatorRecord) {
        let enc = r.encode();
        let dec = CoordinatorRecord::decode(&enc.key, enc.value.as_deref());
        assert_eq!(dec, Ok(r));
    }

    fn tid(n: u8) -> TopicId {
        TopicId(uuid::Uuid::from_bytes([n; 16]))
    }

    #[test]
    fn offset_commit_key_layout_matches_kafka() {
        let r = CoordinatorRecord::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
            value: Some(OffsetCommitValue {
                offset: 42,
                leader_epoch: 3,
                metadata: "m".into(),
                commit_timestamp: 1000,
                expire_timestamp: None,
            }),
        };
        let enc = r.encode();
        assert_eq!(&enc.key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        let v = enc.value.clone().unwrap_or_default();
        assert_eq!(&v[..2], &[0, 3]);
        assert_eq!(v.len(), 2 + 8 + 4 + 2 + 1 + 8);
        round_trip(r);
    }

    #[test]
    fn all_record_types_round_trip() {
        round_trip(CoordinatorRecord::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetCommitValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 5,
                expire_timestamp: Some(99),
            }),
        });
        round_trip(CoordinatorRecord::GroupMetadata {
            group: "g".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: 3,
                protocol: Some("range".into()),
                leader: Some("a".into()),
                current_state_timestamp: 17,
                members: vec![GroupMemberValue {
                    member_id: "a".into(),
                    group_instance_id: Some("i".into()),
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout: 10,
                    session_timeout: 20,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        });
        round_trip(CoordinatorRecord::GroupMetadata {
            group: "g".into(),
            value: None,
        });
        round_trip(CoordinatorRecord::ConsumerGroupMetadata {
            group: "g".into(),
            value: Some(ConsumerGroupMetadataValue {
                epoch: 4,
                metadata_hash: -5,
            }),
        });
        round_trip(CoordinatorRecord::ConsumerMemberMetadata {
            group: "g".into(),
            member: "m".into(),
            value: Some(ConsumerMemberMetadataValue {
                instance_id: None,
                rack_id: Some("r".into()),
                client_id: "c".into(),
                client_host: "h".into(),
                subscribed_topic_names: vec!["a".into(), "b".into()],
                subscribed_topic_regex: None,
                rebalance_timeout_ms: 300,
                server_assignor: Some("uniform".into()),
            }),
        });
        round_trip(CoordinatorRecord::ConsumerTargetAssignmentMetadata {
            group: "g".into(),
            value: Some(9),
        });
        let mut a = Assignment::new();
        a.insert(tid(1), [0, 2].into_iter().collect());
        a.insert(tid(2), [1].into_iter().collect());
        round_trip(CoordinatorRecord::ConsumerTargetAssignmentMember {
            group: "g".into(),
            member: "m".into(),
            value: Some(a.clone()),
        });
        round_trip(CoordinatorRecord::ConsumerCurrentAssignment {
            group: "g".into(),
            member: "m".into(),
            value: Some(ConsumerCurrentAssignmentValue {
                member_epoch: 3,
                previous_member_epoch: 2,
                state: 1,
                assigned: a.clone(),
                pending_revocation: Assignment::new(),
                assignment_epochs: AssignmentEpochs::new(),
            }),
        });
        // KIP-1251 assignment epochs ride in a tagged field of each topic struct.
        round_trip(CoordinatorRecord::ConsumerCurrentAssignment {
            group: "g".into(),
            member: "m".into(),
            value: Some(ConsumerCurrentAssignmentValue {
                member_epoch: 3,
                previous_member_epoch: 2,
                state: 1,
                assigned: [(tid(1), [0, 2].into_iter().collect())]
                    .into_iter()
                    .collect(),
                pending_revocation: [(tid(2), [1].into_iter().collect())].into_iter().collect(),
                assignment_epochs: [((tid(1), 0), 1), ((tid(1), 2), 3), ((tid(2), 1), 2)]
                    .into_iter()
                    .collect(),
            }),
        });
        round_trip(CoordinatorRecord::ConsumerCurrentAssignment {
            group: "g".into(),
            member: "m".into(),
            value: None,
        });
        round_trip(CoordinatorRecord::ConsumerRegex {
            group: "g".into(),
            regex: "^orders-.*".into(),
            value: Some(ConsumerRegexValue {
                topics: ["orders-1".to_owned(), "orders-2".to_owned()]
                    .into_iter()
                    .collect(),
                version: 17,
                timestamp: 1_000,
            }),
        });
        round_trip(CoordinatorRecord::ConsumerRegex {
            group: "g".into(),
            regex: "^orders-.*".into(),
            value: None,
        });
    }

    #[test]
    fn regex_record_layout_matches_kafka() {
        // Key: type 16, group, regex (classic strings). Value: version 0, compact
        // array of compact strings, int64 version, int64 timestamp, no tagged fields.
        let enc = CoordinatorRecord::ConsumerRegex {
            group: "g".into(),
            regex: "a.*".into(),
            value: Some(ConsumerRegexValue {
                topics: ["ab".to_owned()].into_iter().collect(),
                version: 5,
                timestamp: 6,
            }),
        }
        .encode();
        assert_eq!(&enc.key[..], &[0, 16, 0, 1, b'g', 0, 3, b'a', b'.', b'*']);
        let v = enc.value.unwrap_or_default();
        let mut want = vec![0, 0, 2, 3, b'a', b'b'];
        want.extend_from_slice(&5i64.to_be_bytes());
        want.extend_from_slice(&6i64.to_be_bytes());
        want.push(0);
        assert_eq!(&v[..], &want[..]);
    }

    #[test]
    fn kafka_legacy_versions_decode() {
        // OffsetCommitValue v0 and GroupMetadataValue v0, hand-built.
        let mut w = Writer::new();
        w.i16(0);
        w.i64(10);
        w.string("md");
        w.i64(77);
        let v = w.finish();
        let key = CoordinatorRecord::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            value: None,
        }
        .encode()
        .key;
        let dec = CoordinatorRecord::decode(&key, Some(&v));
        assert!(matches!(
            dec,
            Ok(CoordinatorRecord::OffsetCommit {
                value: Some(OffsetCommitValue {
                    offset: 10,
                    commit_timestamp: 77,
                    ..
                }),
                ..
            })
        ));

        let mut w = Writer::new();
        w.i16(0);
        w.string("consumer");
        w.i32(2);
        w.nullable_string(Some("range"));
        w.nullable_string(Some("a"));
        w.array_len(1);
        w.string("a");
        w.string("c");
        w.string("h");
        w.i32(30_000);
        w.bytes(b"s");
        w.bytes(b"x");
        let v = w.finish();
        let dec = decode_group_metadata(&v);
        assert!(
            matches!(&dec, Ok(g) if g.members.len() == 1 && g.members[0].rebalance_timeout == 30_000)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(CoordinatorRecord::decode(&[0, 9], None).is_err());
        assert!(CoordinatorRecord::decode(&[0, 2, 0x7f, 0xff], None).is_err());
        assert!(CoordinatorRecord::decode(&[0, 2, 0, 1, b'g'], Some(&[0, 3, 0xff])).is_err());
    }
}
