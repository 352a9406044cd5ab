//! What a client sees of its connection, over real sockets: an acks=0
//! Produce that failed closes it (as Kafka does, so the producer refreshes
//! its metadata), idle connections are closed after `connections.max.idle.ms`, and connections
//! over `max.connections.per.ip` (and its overrides) or `max.connections`
//! are refused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;
use samsa_model::batch::{BatchBuilder, NewRecord};
use samsa_model::TimestampMs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an answer or for the connection to close.
const WAIT: Duration = Duration::from_secs(10);

/// A broker serving on a free port with topic `t` (one partition), stopped
/// when dropped.
struct Served {
    broker: Arc<Broker>,
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve(settings: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = StaticConfig::default();
    cfg.set("log.dirs", &dir.path().display().to_string())
        .expect("log.dirs");
    cfg.set("listeners", "PLAINTEXT://127.0.0.1:0")
        .expect("listeners");
    cfg.set("auto.create.topics.enable", "false")
        .expect("auto-create");
    for (k, v) in settings {
        cfg.set(k, v).expect("setting");
    }
    let cfg = Arc::new(cfg);
    let broker =
        Broker::open(BrokerSettings::from_config(&cfg).expect("settings"), cfg).expect("open");
    // One partition (num.partitions=1), as auto-creation makes it.
    let created = broker.auto_create(&["t".to_owned()]);
    assert!(created[0].is_ok(), "{:?}", created[0]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let b = broker.clone();
    tokio::spawn(async move {
        samsa_broker::serve(b, vec![("PLAINTEXT".into(), listener)], stopped).await
    });
    Served {
        broker,
        addr,
        stop,
        _dir: dir,
    }
}

fn frame<R: Encodable + HeaderVersion>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("connections-test")))
        .encode(&mut b, R::header_version(version))
        .expect("header");
    request.encode(&mut b, version).expect("body");
    let size = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&size.to_be_bytes());
    b.freeze()
}

fn api_versions(correlation_id: i32) -> Bytes {
    frame(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ApiVersionsRequest::default(),
    )
}

fn produce(acks: i16, partition: i32, records: Option<Bytes>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(records)])])
}

fn one_record() -> Bytes {
    let mut b = BatchBuilder::new();
    b.push(NewRecord::new(
        TimestampMs(samsa_broker::handlers::produce::now_ms().get()),
        None,
        Some(b"v".as_slice()),
    ));
    Bytes::from(b.build().expect("batch"))
}

/// What came back for a request.
#[derive(Debug)]
enum Answer {
    /// A response frame (after its size prefix).
    Frame(Bytes),
    /// The broker closed the connection.
    Closed,
    /// Nothing within [`WAIT`].
    Silence,
}

async fn answer(conn: &mut TcpStream) -> Answer {
    let read = async {
        let size = conn.read_i32().await?;
        let mut body = vec![0u8; usize::try_from(size).unwrap_or(0)];
        conn.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(Bytes::from(body))
    };
    match tokio::time::timeout(WAIT, read).await {
        Ok(Ok(body)) => Answer::Frame(body),
        Ok(Err(_)) => Answer::Closed,
        Err(_) => Answer::Silence,
    }
}

/// Sends `request` and returns the broker's answer.
async fn exchange(conn: &mut TcpStream, request: &[u8]) -> Answer {
    if conn.write_all(request).await.is_err() {
        return Answer::Closed;
    }
    answer(conn).await
}

fn correlation(answer: &Answer) -> Option<i32> {
    match answer {
        Answer::Frame(body) => body.get(..4).map(|mut b| b.get_i32()),
        _ => None,
    }
}

/// Whether a new connection from this test is served (ApiVersions answered).
async fn served(addr: SocketAddr) -> (TcpStream, bool) {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let ok = correlation(&exchange(&mut conn, &api_versions(9)).await) == Some(9);
    (conn, ok)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_failed_acks0_produce_closes_the_connection_a_good_one_does_not() {
    runtime().block_on(async {
        let s = serve(&[]).await;
        let mut conn = TcpStream::connect(s.addr).await.expect("connect");
        // A good acks=0 produce: no answer, and the connection stays usable.
        let good = frame(ApiKey::Produce, 9, 1, &produce(0, 0, Some(one_record())));
        conn.write_all(&good).await.expect("write");
        let next = exchange(&mut conn, &api_versions(2)).await;
        assert_eq!(correlation(&next), Some(2), "{next:?}");
        let t = s.broker.image().topic("t").expect("topic").id;
        let part = s.broker.partition(t, 0).expect("partition");
        assert_eq!(
            part.log().log_end_offset().get(),
            1,
            "the record was stored"
        );

        // acks=0 to a partition that does not exist: Kafka closes the
        // connection, so the producer notices and refreshes its metadata.
        let bad = frame(ApiKey::Produce, 9, 3, &produce(0, 5, Some(one_record())));
        conn.write_all(&bad).await.expect("write");
        let next = exchange(&mut conn, &api_versions(4)).await;
        assert!(matches!(next, Answer::Closed), "{next:?}");
        assert_eq!(part.log().log_end_offset().get(), 1);

        // The same with the connection's other requests pipelined behind it.
        let mut conn = TcpStream::connect(s.addr).await.expect("connect");
        let mut both = BytesMut::from(&bad[..]);
        both.extend_from_slice(&api_versions(5));
        let next = exchange(&mut conn, &both).await;
        assert!(matches!(next, Answer::Closed), "{next:?}");
    });
}

#[test]
fn idle_connections_are_closed_after_connections_max_idle_ms() {
    runtime().block_on(async {
        let s = serve(&[("connections.max.idle.ms", "600")]).await;
        let started = Instant::now();
        let mut silent = TcpStream::connect(s.addr).await.expect("connect");
        let (mut busy, ok) = served(s.addr).await;
        assert!(ok);
        // A connection with a request every 200 ms is never idle that long.
        for i in 0..8 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let a = exchange(&mut busy, &api_versions(100 + i)).await;
            assert_eq!(correlation(&a), Some(100 + i), "{a:?}");
        }
        // The silent one was closed meanwhile (not before 600 ms).
        let a = answer(&mut silent).await;
        assert!(matches!(a, Answer::Closed), "{a:?}");
        assert!(started.elapsed() >= Duration::from_millis(600));
        // One that stops half-way through a frame is closed too.
        let request = api_versions(7);
        busy.write_all(&request[..6]).await.expect("write");
        let a = answer(&mut busy).await;
        assert!(matches!(a, Answer::Closed), "{a:?}");
    });
}

/// Opens connections until one is refused; returns those served.
async fn fill_up(addr: SocketAddr, up_to: usize) -> Vec<TcpStream> {
    let mut open = Vec::new();
    for _ in 0..up_to {
        let (conn, ok) = served(addr).await;
        if !ok {
            break;
        }
        open.push(conn);
    }
    open
}

/// Waits until the broker serves a new connection again.
async fn served_again(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + WAIT;
    loop {
        let (conn, ok) = served(addr).await;
        if ok {
            return conn;
        }
        assert!(Instant::now() < deadline, "no connection served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn connections_over_the_per_ip_limit_or_max_connections_are_refused() {
    runtime().block_on(async {
        let s = serve(&[("max.connections.per.ip", "3")]).await;
        let mut open = fill_up(s.addr, 10).await;
        assert_eq!(open.len(), 3, "max.connections.per.ip=3");
        // Closing one makes room for one more.
        drop(open.pop());
        open.push(served_again(s.addr).await);
        let (_, ok) = served(s.addr).await;
        assert!(!ok, "still three");
        drop(open);
        drop(s);

        let s = serve(&[
            ("max.connections.per.ip", "1"),
            ("max.connections.per.ip.overrides", "127.0.0.1:4,10.9.9.9:1"),
        ])
        .await;
        assert_eq!(fill_up(s.addr, 10).await.len(), 4, "override for 127.0.0.1");
        drop(s);

        let s = serve(&[("max.connections", "2")]).await;
        assert_eq!(fill_up(s.addr, 10).await.len(), 2, "max.connections=2");
    });
}
