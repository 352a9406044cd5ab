//! The APIs and versions samsa implements, advertised by ApiVersions.
//!
//! Clients use the highest version both sides list, so a version appears here only
//! once its handler implements every field of it.

use kafka_protocol::messages::ApiKey;

/// One supported API with its inclusive version range.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SupportedApi {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> SupportedApi {
    SupportedApi { key, min, max }
}

/// Every API samsa answers. The minimums follow Kafka 4.0's baseline (KIP-896).
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 13),
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 10),
    api(ApiKey::Metadata, 0, 13),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeCluster, 0, 2),
    // Kafka 4.0 removed v0 (KIP-896).
    api(ApiKey::DescribeLogDirs, 1, 4),
    // Kafka 4.0 removed v0 (KIP-896).
    api(ApiKey::AlterReplicaLogDirs, 1, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 9),
    api(ApiKey::OffsetFetch, 1, 9),
    // KIP-98; v3 adds the group's generation, member and instance ids (KIP-447).
    api(ApiKey::TxnOffsetCommit, 0, 5),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    // Kafka 4.0 removed OffsetForLeaderEpoch v0-1 (KIP-896); kafka-protocol 0.18 cannot
    // decode them either.
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    // KIP-966, with cursor pagination.
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    // KIP-1142; v0 is KIP-714's ListClientMetricsResources.
    api(ApiKey::ListConfigResources, 0, 1),
    // KIP-595; v2 adds the voters' listeners (KIP-853).
    api(ApiKey::DescribeQuorum, 0, 2),
    // KIP-584; v1 adds upgrade_type and validate_only (KIP-778), v2 drops the
    // per-feature results from the response.
    api(ApiKey::UpdateFeatures, 0, 2),
    // Transactions (KIP-98); AddPartitionsToTxn v4+ batched with verify_only
    // and EndTxn v5 are KIP-890's transaction version 2.
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 5),
    // KIP-664; ListTransactions v1 adds the duration filter (KIP-994), v2
    // the transactional id pattern.
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 2),
    // KIP-98; v0 (not flexible) was removed in Kafka 4.0 (KIP-896).
    api(ApiKey::WriteTxnMarkers, 1, 1),
    // KIP-664.
    api(ApiKey::DescribeProducers, 0, 0),
    // KIP-140; Kafka 4.0 removed v0 (KIP-896).
    api(ApiKey::DescribeAcls, 1, 3),
    api(ApiKey::CreateAcls, 1, 3),
    api(ApiKey::DeleteAcls, 1, 3),
    // KIP-43 / KIP-152: on SASL listeners the connection answers these
    // before authentication; elsewhere they are ILLEGAL_SASL_STATE.
    // SaslAuthenticate v1 adds session_lifetime_ms (KIP-368).
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    // KIP-554.
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
];

/// The supported range of `key`, if samsa implements it.
pub fn supported(key: ApiKey) -> Option<SupportedApi> {
    SUPPORTED_APIS.iter().copied().find(|a| a.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_has_a_guard_schema() {
        // parse_request walks every body with the guard before decoding it, so an
        // advertised version without a schema could never be parsed.
        for api in SUPPORTED_APIS {
            let covered = crate::guard::covered_versions(api.key as i16)
                .unwrap_or_else(|| panic!("{:?} has no guard schema", api.key));
            assert!(
                covered.contains(&api.min) && covered.contains(&api.max),
                "{:?} v{}-{} advertised but the guard covers {covered:?}",
                api.key,
                api.min,
                api.max
            );
        }
    }

    #[test]
    fn api_table_lists_each_key_once() {
        for (i, api) in SUPPORTED_APIS.iter().enumerate() {
            assert!(api.min <= api.max, "{:?}", api.key);
            assert!(
                SUPPORTED_APIS[i + 1..].iter().all(|o| o.key != api.key),
                "{:?} listed twice",
                api.key
            );
        }
    }
}
