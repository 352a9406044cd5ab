//! DescribeCluster: the cluster id, the controller and the brokers (v2:
//! fenced brokers too, marked, when the request asks for them).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use samsa_metadata::security::{AclResource, AUTHORIZED_OPERATIONS_OMITTED};

use super::{s, Ctx};
use crate::broker::Broker;

/// Answers DescribeCluster.
pub fn handle(
    broker: &Broker,
    ctx: &Ctx,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let image = broker.image();
    let cluster_ops = if request.include_cluster_authorized_operations {
        crate::authz::operations(
            broker,
            ctx,
            AclResource::Cluster,
            samsa_metadata::acl::CLUSTER_NAME,
        )
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    // Endpoint type 1 = brokers; 2 = controllers (v1+). A single node is both.
    if version >= 1 && request.endpoint_type != 1 && request.endpoint_type != 2 {
        return DescribeClusterResponse::default()
            .with_error_code(kafka_protocol::error::ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(s("unsupported endpoint type")))
            .with_endpoint_type(request.endpoint_type.clamp(1, 2))
            .with_cluster_id(s(image.cluster_id.clone()));
    }
    // In cluster mode the controllers are the Raft voters.
    if let (Some(cluster), true) = (&broker.cluster, version >= 1 && request.endpoint_type == 2) {
        let controllers = cluster
            .settings
            .voters
            .iter()
            .map(|(id, addr)| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(*id as i32))
                    .with_host(s(addr.ip().to_string()))
                    .with_port(addr.port() as i32)
            })
            .collect();
        return DescribeClusterResponse::default()
            .with_cluster_id(s(image.cluster_id.clone()))
            .with_controller_id(BrokerId(broker.controller_id()))
            .with_brokers(controllers)
            .with_cluster_authorized_operations(cluster_ops)
            .with_endpoint_type(2);
    }
    // v2 (KIP-1073): fenced brokers are listed, marked, when asked for.
    let include_fenced = version >= 2 && request.include_fenced_brokers;
    let brokers = image
        .brokers
        .values()
        .filter(|b| include_fenced || !b.fenced)
        .map(|b| {
            let (host, port) = super::metadata::endpoint_on(b, &ctx.listener);
            let entry = DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id.get()))
                .with_host(s(host))
                .with_port(port as i32)
                .with_rack(b.rack.clone().map(s));
            if version >= 2 {
                entry.with_is_fenced(b.fenced)
            } else {
                entry
            }
        })
        .collect();
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(s(image.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(cluster_ops);
    if version >= 1 {
        response = response.with_endpoint_type(request.endpoint_type);
    }
    response
}
