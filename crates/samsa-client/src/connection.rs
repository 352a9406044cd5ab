//! One TCP connection to one broker: size-prefixed frames, correlation ids,
//! request/response header versions, ApiVersions negotiation, pipelined
//! requests (a reader task matches responses to waiters by correlation id),
//! a response size cap and per-request timeouts.
//!
//! Frame layout (both directions): a 4-byte big-endian size, then the header
//! and body. Request header v1 is `api_key i16, api_version i16, correlation_id
//! i32, client_id nullable string`; v2 adds tagged fields. Response header v0 is
//! the correlation id; v1 adds tagged fields. ApiVersions responses always use
//! header v0 so that a client can parse them before it knows any version.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::guard;
use crate::versions::{BrokerApi, Negotiated};

/// Kafka's error code for an unsupported API version.
const UNSUPPORTED_VERSION: i16 = 35;
/// Initial read buffer; frames grow their buffer only as bytes arrive.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Settings shared by every connection of a client.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Sent as `client_id` in every request header.
    pub client_id: String,
    pub connect_timeout: Duration,
    /// How long to wait for each response.
    pub request_timeout: Duration,
    /// Largest response frame accepted; a bigger one closes the connection.
    pub response_bytes_max: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "samsa".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            response_bytes_max: 256 * 1024 * 1024,
        }
    }
}

type Reply = oneshot::Sender<Result<Bytes, ClientError>>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<i32, Reply>,
    /// Set once the reader stops; later requests fail at once.
    closed: Option<String>,
}

/// A connection to one broker. Cheap to share (`Arc`); requests may be issued
/// concurrently and are pipelined in order.
pub struct Connection {
    addr: String,
    config: Arc<ConnectionConfig>,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Arc<Mutex<Pending>>,
    next_correlation: AtomicI32,
    versions: OnceLock<Negotiated>,
    reader: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The name of an API as kafka-protocol spells it (`Metadata`, `Produce`, ...).
pub fn api_name(key: ApiKey) -> &'static str {
    static NAMES: OnceLock<BTreeMap<i16, String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..=i16::from(u8::MAX))
            .filter_map(|k| ApiKey::try_from(k).ok().map(|key| (k, format!("{key:?}"))))
            .collect()
    });
    names.get(&(key as i16)).map_or("Unknown", String::as_str)
}

fn lock(p: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    p.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Connection {
    /// Connects and negotiates API versions (ApiVersions v3, then v0 if the
    /// broker answers UNSUPPORTED_VERSION).
    pub async fn connect(
        addr: &str,
        config: Arc<ConnectionConfig>,
    ) -> Result<Arc<Connection>, ClientError> {
        let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("connecting to {addr}"),
                timeout_ms: config.connect_timeout.as_millis() as u64,
            })?
            .map_err(|source| ClientError::Io {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let reader = tokio::spawn(read_loop(
            addr.to_string(),
            rd,
            pending.clone(),
            config.response_bytes_max,
        ));
        let conn = Arc::new(Connection {
            addr: addr.to_string(),
            config,
            writer: tokio::sync::Mutex::new(wr),
            pending,
            next_correlation: AtomicI32::new(1),
            versions: OnceLock::new(),
            reader,
        });
        let negotiated = conn.negotiate().await?;
        let _ = conn.versions.set(negotiated);
        Ok(conn)
    }

    /// The `host:port` this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection has failed or been closed by the broker.
    pub fn is_closed(&self) -> bool {
        lock(&self.pending).closed.is_some()
    }

    /// The negotiated version table.
    pub fn versions(&self) -> &Negotiated {
        static EMPTY: OnceLock<Negotiated> = OnceLock::new();
        self.versions
            .get()
            .unwrap_or_else(|| EMPTY.get_or_init(Negotiated::default))
    }

    /// The version to use for `key`, or [`ClientError::UnsupportedApi`].
    pub fn version(&self, key: ApiKey) -> Result<i16, ClientError> {
        self.versions()
            .version(key)
            .ok_or_else(|| ClientError::UnsupportedApi {
                addr: self.addr.clone(),
                api: api_name(key),
            })
    }

    async fn negotiate(&self) -> Result<Negotiated, ClientError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("samsa-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let frame = self.round_trip(&req, 3).await?;
        let mut body = strip_header::<ApiVersionsRequest>(frame, 3)?;
        // Every ApiVersions version starts with the error code; a broker that
        // does not know v3 answers 35 in the v0 body format.
        let code = body.get(0..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
        let (resp, version) = if code == Some(UNSUPPORTED_VERSION) {
            tracing::debug!(addr = %self.addr, "ApiVersions v3 unsupported; retrying with v0");
            let req0 = ApiVersionsRequest::default();
            let frame = self.round_trip(&req0, 0).await?;
            body = strip_header::<ApiVersionsRequest>(frame, 0)?;
            (
                decode_body::<ApiVersionsResponse>(ApiKey::ApiVersions, 0, body)?,
                0,
            )
        } else {
            (
                decode_body::<ApiVersionsResponse>(ApiKey::ApiVersions, 3, body)?,
                3,
            )
        };
        ClientError::check(
            resp.error_code,
            None,
            format!("ApiVersions v{version} from {}", self.addr),
        )?;
        Ok(Negotiated::new(resp.api_keys.iter().map(|a| BrokerApi {
            key: a.api_key,
            min: a.min_version,
            max: a.max_version,
        })))
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, req: &R) -> Result<(R::Response, i16), ClientError> {
        let key = api_key::<R>()?;
        let version = self.version(key)?;
        let resp = self.send_version(req, version).await?;
        Ok((resp, version))
    }

    /// Sends `req` at `version` and waits for its response.
    pub async fn send_version<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        self.send_version_timeout(req, version, self.config.request_timeout)
            .await
    }

    /// Like [`Connection::send_version`] with its own response timeout (for
    /// requests the broker may hold, such as JoinGroup during a rebalance).
    pub async fn send_version_timeout<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let key = api_key::<R>()?;
        let frame = self.round_trip_timeout(req, version, timeout).await?;
        let body = strip_header::<R>(frame, version)?;
        decode_body::<R::Response>(key, version, body)
    }

    /// Sends a request that the broker does not answer (Produce with acks=0).
    pub async fn send_no_response<R: Request>(
        &self,
        req: &R,
        version: i16,
    ) -> Result<(), ClientError> {
        let correlation = self.next_correlation();
        let frame = self.encode(req, version, correlation)?;
        if let Some(reason) = lock(&self.pending).closed.clone() {
            return Err(self.disconnected(reason));
        }
        let mut w = self.writer.lock().await;
        self.write(&mut w, &frame).await
    }

    fn next_correlation(&self) -> i32 {
        // Wraps at i32::MAX back to 1, skipping 0 and negatives.
        let c = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        if c <= 0 {
            self.next_correlation.store(2, Ordering::Relaxed);
            1
        } else {
            c
        }
    }

    fn disconnected(&self, reason: String) -> ClientError {
        ClientError::Disconnected {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn encode<R: Request>(
        &self,
        req: &R,
        version: i16,
        correlation: i32,
    ) -> Result<BytesMut, ClientError> {
        let key = api_key::<R>()?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_string(self.config.client_id.clone())));
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i32(0);
        let enc_err = |reason: String| ClientError::Encode {
            api: api_name(key),
            version,
            reason,
        };
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| enc_err(e.to_string()))?;
        req.encode(&mut buf, version)
            .map_err(|e| enc_err(e.to_string()))?;
        let size = i32::try_from(buf.len() - 4).map_err(|_| ClientError::Encode {
            api: api_name(key),
            version,
            reason: "request larger than 2 GiB".into(),
        })?;
        buf[0..4].copy_from_slice(&size.to_be_bytes());
        Ok(buf)
    }

    async fn write(&self, w: &mut OwnedWriteHalf, frame: &[u8]) -> Result<(), ClientError> {
        w.write_all(frame).await.map_err(|source| ClientError::Io {
            addr: self.addr.clone(),
            source,
        })
    }

    /// Writes a request and returns its raw response frame (header included).
    async fn round_trip<R: Request>(&self, req: &R, version: i16) -> Result<Bytes, ClientError> {
        self.round_trip_timeout(req, version, self.config.request_timeout)
            .await
    }

    async fn round_trip_timeout<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        let correlation = self.next_correlation();
        let frame = self.encode(req, version, correlation)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.writer.lock().await;
            {
                let mut p = lock(&self.pending);
                if let Some(reason) = p.closed.clone() {
                    return Err(self.disconnected(reason));
                }
                p.waiters.insert(correlation, tx);
            }
            if let Err(e) = self.write(&mut w, &frame).await {
                lock(&self.pending).waiters.remove(&correlation);
                return Err(e);
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.disconnected("the reader stopped".into())),
            Err(_) => {
                lock(&self.pending).waiters.remove(&correlation);
                let key = api_key::<R>().map(api_name).unwrap_or("request");
                Err(ClientError::Timeout {
                    what: format!("a {key} response from {}", self.addr),
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        }
    }
}

fn api_key<R: Request>() -> Result<ApiKey, ClientError> {
    ApiKey::try_from(R::KEY)
        .map_err(|_| ClientError::Invalid(format!("unknown API key {}", R::KEY)))
}

/// Removes the response header (whose version follows the request's API and
/// version) from a frame; the correlation id was matched by the reader.
fn strip_header<R: Request>(mut frame: Bytes, version: i16) -> Result<Bytes, ClientError> {
    let key = api_key::<R>()?;
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    ResponseHeader::decode(&mut frame, header_version).map_err(|e| ClientError::Decode {
        api: api_name(key),
        version,
        reason: format!("response header: {e}"),
    })?;
    Ok(frame)
}

/// Guards, then decodes a response body.
pub(crate) fn decode_body<T: Decodable>(
    key: ApiKey,
    version: i16,
    mut body: Bytes,
) -> Result<T, ClientError> {
    guard::check_response_body(key, version, &body).map_err(|e| ClientError::Decode {
        api: api_name(key),
        version,
        reason: e.to_string(),
    })?;
    T::decode(&mut body, version).map_err(|e| ClientError::Decode {
        api: api_name(key),
        version,
        reason: e.to_string(),
    })
}

async fn read_loop(addr: String, mut rd: OwnedReadHalf, pending: Arc<Mutex<Pending>>, max: usize) {
    let reason = loop {
        match read_frame(&mut rd, max).await {
            Ok(frame) => {
                if frame.len() < 4 {
                    break format!(
                        "response frame of {} bytes has no correlation id",
                        frame.len()
                    );
                }
                let correlation = (&frame[..4]).get_i32();
                let waiter = lock(&pending).waiters.remove(&correlation);
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(Ok(frame));
                    }
                    // A response to a request that already timed out.
                    None => tracing::debug!(%addr, correlation, "dropping an unexpected response"),
                }
            }
            Err(reason) => break reason,
        }
    };
    tracing::debug!(%addr, %reason, "connection closed");
    let mut p = lock(&pending);
    p.closed = Some(reason.clone());
    for (_, tx) in p.waiters.drain() {
        let _ = tx.send(Err(ClientError::Disconnected {
            addr: addr.clone(),
            reason: reason.clone(),
        }));
    }
}

/// Reads one frame; the buffer grows only as bytes arrive, so a size prefix
/// alone cannot make us allocate `max` bytes.
async fn read_frame(rd: &mut OwnedReadHalf, max: usize) -> Result<Bytes, String> {
    let mut size = [0u8; 4];
    if let Err(e) = rd.read_exact(&mut size).await {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "closed by the broker".to_string()
        } else {
            e.to_string()
        });
    }
    let n = i32::from_be_bytes(size);
    let n = usize::try_from(n).map_err(|_| format!("negative response size {n}"))?;
    if n > max {
        return Err(format!(
            "response of {n} bytes exceeds the limit of {max} bytes"
        ));
    }
    let mut buf = BytesMut::with_capacity(n.min(READ_CHUNK_BYTES));
    while buf.len() < n {
        let missing = n - buf.len();
        if buf.capacity() == buf.len() {
            buf.reserve(missing.min(buf.len().max(READ_CHUNK_BYTES)));
        }
        let spare = (buf.capacity() - buf.len()).min(missing);
        let mut limited = (&mut *rd).take(spare as u64);
        match limited.read_buf(&mut buf).await {
            Ok(0) => return Err("closed by the broker in the middle of a response".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::fake_broker::{read_request, write_response};
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use tokio::net::TcpListener;

    /// A fake broker: answers ApiVersions v3 with 35 (v0 body), then v0 with a
    /// table, then one Metadata request; records the request headers it saw.
    async fn fake_broker(listener: TcpListener) -> Vec<(i16, i16, i32, Option<String>)> {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (api, version, header, _) = read_request(&mut s).await.expect("a request");
            seen.push((
                api as i16,
                version,
                header.correlation_id,
                header.client_id.as_ref().map(|c| c.to_string()),
            ));
            let mut out = BytesMut::new();
            match (api, version) {
                (ApiKey::ApiVersions, 3) => {
                    // v0 body: error 35 and an empty table.
                    out.put_i16(35);
                    out.put_i32(0);
                }
                (ApiKey::ApiVersions, 0) => {
                    ApiVersionsResponse::default()
                        .with_api_keys(vec![
                            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                                .with_api_key(ApiKey::Metadata as i16)
                                .with_min_version(0)
                                .with_max_version(10),
                        ])
                        .encode(&mut out, 0)
                        .expect("encode");
                }
                (ApiKey::Metadata, v) => {
                    MetadataResponse::default()
                        .with_cluster_id(Some(StrBytes::from_static_str("fake")))
                        .encode(&mut out, v)
                        .expect("encode");
                }
                other => panic!("unexpected {other:?}"),
            }
            write_response(&mut s, api, version, header.correlation_id, &out).await;
        }
        seen
    }

    #[tokio::test]
    async fn negotiates_with_fallback_and_uses_header_versions() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let broker = tokio::spawn(fake_broker(listener));
        let config = Arc::new(ConnectionConfig {
            client_id: "cid".into(),
            ..ConnectionConfig::default()
        });
        let conn = Connection::connect(&addr, config).await.expect("connect");
        assert_eq!(conn.version(ApiKey::Metadata).expect("metadata"), 10);
        assert!(conn.version(ApiKey::Produce).is_err());
        let (resp, v) = conn
            .send(&MetadataRequest::default())
            .await
            .expect("metadata");
        assert_eq!(v, 10);
        assert_eq!(resp.cluster_id.as_deref(), Some("fake"));
        let seen = broker.await.expect("broker");
        assert_eq!(seen[0].0, ApiKey::ApiVersions as i16);
        assert_eq!(seen[0].1, 3);
        assert_eq!(seen[1].1, 0);
        assert_eq!(
            seen[2],
            (ApiKey::Metadata as i16, 10, seen[2].2, Some("cid".into()))
        );
        let ids: Vec<i32> = seen.iter().map(|s| s.2).collect();
        assert!(
            ids.windows(2).all(|w| w[1] > w[0]),
            "increasing correlation ids {ids:?}"
        );
    }

    #[tokio::test]
    async fn oversized_response_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            // Claims 1 GiB and sends nothing more.
            let _ = s.write_all(&(1i32 << 30).to_be_bytes()).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let config = Arc::new(ConnectionConfig {
            response_bytes_max: 1 << 20,
            ..ConnectionConfig::default()
        });
        let err = match Connection::connect(&addr, config).await {
            Ok(_) => panic!("must fail"),
            Err(e) => e,
        };
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn api_names() {
        assert_eq!(api_name(ApiKey::Metadata), "Metadata");
        assert_eq!(api_name(ApiKey::ApiVersions), "ApiVersions");
    }
}
