//! SASL listeners over real sockets: the handshake state machine as a Kafka
//! client meets it. SCRAM users are created with AlterUserScramCredentials on
//! the plaintext listener (metadata records) and authenticate on the SASL
//! one; PLAIN users come from the listener's JAAS config; a request before
//! authentication, a wrong password, an unknown mechanism and an expired
//! session each end the connection as Kafka ends it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    ApiVersionsRequest, ApiVersionsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse, MetadataRequest, MetadataResponse, RequestHeader,
    ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use samsa_metadata::scram::ScramMechanism;
use samsa_security::sasl::scram::{salted_password, ScramClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{runtime, Served};

const WAIT: Duration = Duration::from_secs(10);
const FAILURE_DELAY_MS: u64 = 400;
const REAUTH_MS: u64 = 1500;
const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_carol="carol-secret";"#;

async fn serve() -> Served {
    let settings = [
        (
            "sasl.enabled.mechanisms",
            "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN".to_string(),
        ),
        (
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            JAAS.to_string(),
        ),
        (
            "connection.failed.authentication.delay.ms",
            FAILURE_DELAY_MS.to_string(),
        ),
        ("connections.max.reauth.ms", REAUTH_MS.to_string()),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    common::serve_plain_and(dir, "SASL_PLAINTEXT", &settings).await
}

struct Conn {
    s: TcpStream,
    next: i32,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn {
            s: TcpStream::connect(addr).await.expect("connect"),
            next: 1,
        }
    }

    async fn write_frame(&mut self, body: &[u8]) {
        let mut b = BytesMut::with_capacity(4 + body.len());
        b.put_i32(body.len() as i32);
        b.put_slice(body);
        self.s.write_all(&b).await.expect("write");
    }

    /// The next frame, or `None` when the broker closed the connection.
    async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        match tokio::time::timeout(WAIT, self.s.read_exact(&mut size)).await {
            Err(_) => panic!("no answer and no close within {WAIT:?}"),
            Ok(Err(_)) => return None,
            Ok(Ok(_)) => {}
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.s.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    async fn send<Q: Encodable + HeaderVersion, R: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Q,
    ) -> Option<R> {
        let correlation_id = self.next;
        self.next += 1;
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sasl-test")))
            .encode(&mut b, Q::header_version(version))
            .expect("header");
        request.encode(&mut b, version).expect("body");
        self.write_frame(&b).await;
        let mut frame = self.read_frame().await?;
        let header =
            ResponseHeader::decode(&mut frame, R::header_version(version)).expect("header");
        assert_eq!(header.correlation_id, correlation_id);
        Some(R::decode(&mut frame, version).expect("response body"))
    }

    async fn handshake(&mut self, mechanism: &str, version: i16) -> Option<SaslHandshakeResponse> {
        let r =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into()));
        self.send(ApiKey::SaslHandshake, version, &r).await
    }

    async fn authenticate(&mut self, bytes: Vec<u8>) -> Option<SaslAuthenticateResponse> {
        let r = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        self.send(ApiKey::SaslAuthenticate, 2, &r).await
    }

    async fn metadata(&mut self) -> Option<MetadataResponse> {
        self.send(ApiKey::Metadata, 12, &MetadataRequest::default())
            .await
    }

    /// A whole SCRAM exchange; the final SaslAuthenticate response.
    async fn scram(
        &mut self,
        m: ScramMechanism,
        user: &str,
        password: &str,
    ) -> SaslAuthenticateResponse {
        let hs = self
            .handshake(m.name(), 1)
            .await
            .expect("handshake answered");
        assert_eq!(hs.error_code, 0);
        let mut client = ScramClient::new(m, user, password, "fyko+d2lbbFgONRv9qkxdawL");
        let first = self
            .authenticate(client.first())
            .await
            .expect("first answered");
        assert_eq!(first.error_code, 0, "{:?}", first.error_message);
        let last = client.last(&first.auth_bytes).expect("server first");
        let done = self.authenticate(last).await.expect("final answered");
        if done.error_code == 0 {
            assert!(
                client.verify(&done.auth_bytes),
                "the broker proves it holds the credential"
            );
        }
        done
    }
}

async fn set_user(addr: SocketAddr, user: &str, password: &str, m: ScramMechanism) -> i16 {
    let salt = b"0123456789abcdef".to_vec();
    let salted = salted_password(m, password.as_bytes(), &salt, 4096);
    let r = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.into()))
            .with_mechanism(m.wire())
            .with_iterations(4096)
            .with_salt(Bytes::from(salt))
            .with_salted_password(Bytes::from(salted)),
    ]);
    let mut c = Conn::open(addr).await;
    let resp: AlterUserScramCredentialsResponse = c
        .send(ApiKey::AlterUserScramCredentials, 0, &r)
        .await
        .expect("answered");
    resp.results[0].error_code
}

#[test]
fn scram_users_created_over_the_api_authenticate_and_deleted_ones_do_not() {
    runtime().block_on(async {
        let served = serve().await;
        for m in ScramMechanism::ALL {
            assert_eq!(set_user(served.plain, "alice", "alice-secret", m).await, 0);
        }
        let mut plain = Conn::open(served.plain).await;
        let described: DescribeUserScramCredentialsResponse = plain
            .send(
                ApiKey::DescribeUserScramCredentials,
                0,
                &DescribeUserScramCredentialsRequest::default(),
            )
            .await
            .expect("answered");
        assert_eq!(described.results.len(), 1);
        assert_eq!(described.results[0].credential_infos.len(), 2);
        for m in ScramMechanism::ALL {
            let mut c = Conn::open(served.secured).await;
            let versions: ApiVersionsResponse = c
                .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
                .await
                .expect("ApiVersions before SASL");
            assert!(versions
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::SaslAuthenticate as i16));
            let done = c.scram(m, "alice", "alice-secret").await;
            assert_eq!(done.error_code, 0, "{m:?}: {:?}", done.error_message);
            // KIP-368: the session lifetime is connections.max.reauth.ms.
            assert_eq!(done.session_lifetime_ms, REAUTH_MS as i64);
            assert!(
                c.metadata().await.is_some(),
                "authenticated requests are answered"
            );
        }
        // Deleted: the same password no longer works.
        let r = AlterUserScramCredentialsRequest::default().with_deletions(vec![
            ScramCredentialDeletion::default()
                .with_name(StrBytes::from_static_str("alice"))
                .with_mechanism(ScramMechanism::Sha256.wire()),
        ]);
        let deleted: AlterUserScramCredentialsResponse = plain
            .send(ApiKey::AlterUserScramCredentials, 0, &r)
            .await
            .expect("answered");
        assert_eq!(deleted.results[0].error_code, 0);
        let mut c = Conn::open(served.secured).await;
        let done = c
            .scram(ScramMechanism::Sha256, "alice", "alice-secret")
            .await;
        assert_eq!(done.error_code, 58, "SASL_AUTHENTICATION_FAILED");
        // The other mechanism's credential is still there.
        let mut c = Conn::open(served.secured).await;
        assert_eq!(
            c.scram(ScramMechanism::Sha512, "alice", "alice-secret")
                .await
                .error_code,
            0
        );
        // On the plaintext listener SASL requests are out of place.
        let hs = plain.handshake("PLAIN", 1).await.expect("answered");
        assert_eq!(hs.error_code, 34, "ILLEGAL_SASL_STATE");
    });
}

#[test]
fn a_wrong_password_is_answered_late_and_closes_the_connection() {
    runtime().block_on(async {
        let served = serve().await;
        assert_eq!(
            set_user(
                served.plain,
                "alice",
                "alice-secret",
                ScramMechanism::Sha256
            )
            .await,
            0
        );
        let mut c = Conn::open(served.secured).await;
        assert_eq!(
            c.handshake("SCRAM-SHA-256", 1)
                .await
                .expect("answered")
                .error_code,
            0
        );
        let mut client = ScramClient::new(ScramMechanism::Sha256, "alice", "guess", "abcdef");
        let first = c.authenticate(client.first()).await.expect("answered");
        let last = client.last(&first.auth_bytes).expect("server first");
        let start = Instant::now();
        let failed = c.authenticate(last).await.expect("failure answered");
        let waited = start.elapsed();
        assert_eq!(failed.error_code, 58, "SASL_AUTHENTICATION_FAILED");
        let message = failed
            .error_message
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(message.contains("SCRAM-SHA-256"), "{message}");
        assert!(
            waited >= Duration::from_millis(FAILURE_DELAY_MS - 50),
            "answered after {waited:?}, before connection.failed.authentication.delay.ms"
        );
        assert!(c.read_frame().await.is_none(), "closed after the failure");
        // PLAIN with a wrong password: the same.
        let mut c = Conn::open(served.secured).await;
        assert_eq!(
            c.handshake("PLAIN", 1).await.expect("answered").error_code,
            0
        );
        let failed = c
            .authenticate(b"\0carol\0nope".to_vec())
            .await
            .expect("answered");
        assert_eq!(failed.error_code, 58);
        assert!(c.read_frame().await.is_none());
    });
}

#[test]
fn requests_before_authentication_and_unknown_mechanisms_close_the_connection() {
    runtime().block_on(async {
        let served = serve().await;
        let mut c = Conn::open(served.secured).await;
        assert!(
            c.metadata().await.is_none(),
            "Metadata before SASL closes the connection"
        );
        let mut c = Conn::open(served.secured).await;
        let hs = c.handshake("GSSAPI", 1).await.expect("answered");
        assert_eq!(hs.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
        let names: Vec<String> = hs.mechanisms.iter().map(|m| m.to_string()).collect();
        assert_eq!(names, ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]);
        assert!(c.read_frame().await.is_none());
        // After a handshake, only SaslAuthenticate is expected.
        let mut c = Conn::open(served.secured).await;
        assert_eq!(
            c.handshake("PLAIN", 1).await.expect("answered").error_code,
            0
        );
        assert!(c.metadata().await.is_none());
    });
}

#[test]
fn plain_with_the_v0_handshake_exchanges_raw_tokens() {
    runtime().block_on(async {
        let served = serve().await;
        let mut c = Conn::open(served.secured).await;
        let hs = c.handshake("PLAIN", 0).await.expect("answered");
        assert_eq!(hs.error_code, 0);
        // v0: the token is a bare size-prefixed frame, and so is the answer.
        c.write_frame(b"\0carol\0carol-secret").await;
        let answer = c.read_frame().await.expect("an empty token");
        assert!(answer.is_empty());
        assert!(c.metadata().await.is_some(), "authenticated");
        // A wrong password on a v0 exchange: closed, without an answer.
        let mut c = Conn::open(served.secured).await;
        assert_eq!(
            c.handshake("PLAIN", 0).await.expect("answered").error_code,
            0
        );
        c.write_frame(b"\0carol\0wrong").await;
        assert!(c.read_frame().await.is_none());
    });
}

#[test]
fn a_session_re_authenticates_before_it_expires_and_is_closed_after() {
    runtime().block_on(async {
        let served = serve().await;
        assert_eq!(
            set_user(served.plain, "alice", "pw-alice", ScramMechanism::Sha512).await,
            0
        );
        assert_eq!(
            set_user(served.plain, "bob", "pw-bob", ScramMechanism::Sha512).await,
            0
        );
        let mut c = Conn::open(served.secured).await;
        assert_eq!(
            c.scram(ScramMechanism::Sha512, "alice", "pw-alice")
                .await
                .error_code,
            0
        );
        // KIP-368: a new exchange on the live connection renews the session.
        tokio::time::sleep(Duration::from_millis(REAUTH_MS / 2)).await;
        assert_eq!(
            c.scram(ScramMechanism::Sha512, "alice", "pw-alice")
                .await
                .error_code,
            0
        );
        tokio::time::sleep(Duration::from_millis(REAUTH_MS * 2 / 3)).await;
        assert!(
            c.metadata().await.is_some(),
            "the renewed session has not expired"
        );
        tokio::time::sleep(Duration::from_millis(REAUTH_MS)).await;
        assert!(
            c.metadata().await.is_none(),
            "an expired session is closed on its next request"
        );
        // Re-authenticating as someone else fails.
        let mut c = Conn::open(served.secured).await;
        assert_eq!(
            c.scram(ScramMechanism::Sha512, "alice", "pw-alice")
                .await
                .error_code,
            0
        );
        assert_eq!(
            c.scram(ScramMechanism::Sha512, "bob", "pw-bob")
                .await
                .error_code,
            58
        );
    });
}

/// Before authentication a SASL listener reads at most 512 KiB per frame
/// (Kafka's `sasl.server.max.receive.size`): announcing a bigger frame
/// closes the connection at once, before any of its body is read or any
/// request memory is reserved for it.
#[test]
fn a_large_frame_before_authentication_closes_the_connection() {
    runtime().block_on(async {
        let served = serve().await;
        let mut anonymous = Conn::open(served.secured).await;
        let announced: i32 = 600 * 1024;
        anonymous
            .s
            .write_all(&announced.to_be_bytes())
            .await
            .expect("write");
        assert!(
            anonymous.read_frame().await.is_none(),
            "the connection stays open"
        );
    });
}
