//! Test support: a one-broker cluster on 127.0.0.1 that answers ApiVersions
//! with a given list and every other request with a handler.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{api_versions_response, ApiKey, ApiVersionsResponse};
use kafka_protocol::messages::{metadata_response, BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A Metadata answer: this broker (node 1, also the controller) and those of
/// `topics` (name, partition count) the request asks for, each partition led
/// by node 1 alone.
pub fn metadata(port: u16, topics: &[(&str, i32)], req: &MetadataRequest) -> MetadataResponse {
    let wanted = |n: &str| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.name.as_ref().is_some_and(|x| x.0.as_str() == n)),
    };
    let partition = |i: i32| {
        metadata_response::MetadataResponsePartition::default()
            .with_partition_index(i)
            .with_leader_id(BrokerId(1))
            .with_replica_nodes(vec![BrokerId(1)])
            .with_isr_nodes(vec![BrokerId(1)])
    };
    MetadataResponse::default()
        .with_controller_id(BrokerId(1))
        .with_brokers(vec![metadata_response::MetadataResponseBroker::default()
            .with_node_id(BrokerId(1))
            .with_host(super::sb("127.0.0.1"))
            .with_port(i32::from(port))])
        .with_topics(
            topics
                .iter()
                .filter(|(n, _)| wanted(n))
                .map(|(n, count)| {
                    metadata_response::MetadataResponseTopic::default()
                        .with_name(Some(super::topic_name(n)))
                        .with_partitions((0..*count).map(partition).collect())
                })
                .collect(),
        )
}

/// An encoded response body.
pub struct Reply(BytesMut);

impl Reply {
    pub fn encode<T: Encodable>(msg: &T, version: i16) -> Reply {
        let mut out = BytesMut::new();
        msg.encode(&mut out, version).expect("encode response");
        Reply(out)
    }
}

/// The handler: (the broker's port, api key, version, request body) to the reply.
type Handler = dyn Fn(u16, ApiKey, i16, &mut Bytes) -> Reply + Send + Sync;

/// Starts the broker; returns its address. `apis` is what ApiVersions lists.
pub async fn spawn(
    apis: Vec<(ApiKey, i16, i16)>,
    handler: impl Fn(u16, ApiKey, i16, &mut Bytes) -> Reply + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handler: Arc<Handler> = Arc::new(handler);
    let apis = Arc::new(apis);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, addr.port(), apis.clone(), handler.clone()));
        }
    });
    addr.to_string()
}

/// One request off `s`: its api key, version, header and body (`None` once
/// the client closed the connection).
pub async fn read_request(s: &mut TcpStream) -> Option<(ApiKey, i16, RequestHeader, Bytes)> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).await.ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).await.expect("body");
    let mut b = Bytes::from(body);
    let key = i16::from_be_bytes([b[0], b[1]]);
    let version = i16::from_be_bytes([b[2], b[3]]);
    let api = ApiKey::try_from(key).expect("key");
    let header =
        RequestHeader::decode(&mut b, api.request_header_version(version)).expect("header");
    Some((api, version, header, b))
}

/// Writes `body` as the answer of `api`/`version` to the request `correlation_id`.
pub async fn write_response(
    s: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &[u8],
) {
    let mut out = BytesMut::new();
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, api.response_header_version(version))
        .expect("encode header");
    out.extend_from_slice(body);
    let n = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&n.to_be_bytes());
    s.write_all(&out).await.expect("write");
}

async fn serve(
    mut s: TcpStream,
    port: u16,
    apis: Arc<Vec<(ApiKey, i16, i16)>>,
    handler: Arc<Handler>,
) {
    while let Some((api, version, header, mut b)) = read_request(&mut s).await {
        let reply = if api == ApiKey::ApiVersions {
            let keys = apis
                .iter()
                .map(|(k, min, max)| {
                    api_versions_response::ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect();
            Reply::encode(&ApiVersionsResponse::default().with_api_keys(keys), version)
        } else {
            handler(port, api, version, &mut b)
        };
        write_response(&mut s, api, version, header.correlation_id, &reply.0).await;
    }
}
