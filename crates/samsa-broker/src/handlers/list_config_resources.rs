//! ListConfigResources (KIP-1142; v0 is KIP-714's ListClientMetricsResources):
//! the resources that have configs, by type.
//!
//! v0 lists only client-metrics resources. From v1 the request names the
//! types (none = every type samsa has); a type samsa does not know fails the
//! request with UNSUPPORTED_VERSION, as Kafka answers. Topics come from the
//! metadata image, brokers are the registered brokers, groups those the
//! coordinator shards on this broker hold plus every group with a group
//! config (which need not exist yet). samsa has no client-metrics
//! subscriptions, so that list is always empty.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use samsa_coordinator as gc;

use super::s;
use crate::broker::Broker;

/// Kafka's `ConfigResource.Type` codes.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;
/// The types listed when the request names none.
const ALL_TYPES: [i8; 4] = [TOPIC, BROKER, CLIENT_METRICS, GROUP];

/// Answers ListConfigResources.
pub async fn handle(
    broker: &Broker,
    request: ListConfigResourcesRequest,
    version: i16,
) -> ListConfigResourcesResponse {
    let types: Vec<i8> = if version == 0 {
        vec![CLIENT_METRICS]
    } else if request.resource_types.is_empty() {
        ALL_TYPES.to_vec()
    } else {
        request.resource_types.clone()
    };
    if types.iter().any(|t| !ALL_TYPES.contains(t)) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code());
    }
    let image = broker.image();
    let mut resources = Vec::new();
    let mut push = |kind: i8, name: String| {
        resources.push(
            ConfigResource::default()
                .with_resource_name(s(name))
                .with_resource_type(kind),
        );
    };
    if types.contains(&TOPIC) {
        for name in image.topics.keys() {
            push(TOPIC, name.clone());
        }
    }
    if types.contains(&BROKER) {
        for id in image.brokers.keys() {
            push(BROKER, id.get().to_string());
        }
    }
    if types.contains(&GROUP) {
        let req = gc::ListGroupsRequest {
            states_filter: Vec::new(),
            types_filter: Vec::new(),
        };
        let parts = broker
            .groups
            .read_all(broker, |c, _| c.list_groups(&req))
            .await;
        if let Some(code) = parts
            .iter()
            .map(|r| r.error_code)
            .find(|c| *c != gc::codes::NONE)
        {
            return ListConfigResourcesResponse::default().with_error_code(code);
        }
        let mut groups: std::collections::BTreeSet<String> = parts
            .into_iter()
            .flat_map(|r| r.groups)
            .map(|g| g.group_id)
            .collect();
        // A group configured before it exists has configs too.
        groups.extend(image.group_configs.keys().cloned());
        for g in groups {
            push(GROUP, g);
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}
