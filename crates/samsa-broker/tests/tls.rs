//! SSL listeners over real sockets: a TLS client is answered as over TCP,
//! a plaintext client on the TLS port (and a TLS client on a plaintext
//! port) has its connection closed without harming others, and a changed
//! key store is used by new connections while old ones keep theirs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::Served;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

async fn serve() -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = samsa_security::dev::ensure(&dir.path().join("tls"), &[]).expect("certificates");
    let settings = [
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SECURE:SSL".to_string(),
        ),
        ("ssl.keystore.type", "PEM".to_string()),
        (
            "listener.name.secure.ssl.keystore.location",
            certs.keystore.display().to_string(),
        ),
    ];
    common::serve_plain_and(dir, "SECURE", &settings).await
}

fn api_versions(correlation_id: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(0)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("tls-test")))
        .encode(&mut b, 1)
        .expect("header");
    ApiVersionsRequest::default()
        .encode(&mut b, 0)
        .expect("body");
    let size = (b.len() - 4) as i32;
    b[..4].copy_from_slice(&size.to_be_bytes());
    b.freeze()
}

/// Sends ApiVersions and returns the response's correlation id.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, correlation_id: i32) -> i32 {
    s.write_all(&api_versions(correlation_id))
        .await
        .expect("write");
    let mut size = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut size))
        .await
        .expect("answered in time")
        .expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).await.expect("response");
    i32::from_be_bytes([body[0], body[1], body[2], body[3]])
}

fn connector(ca: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add");
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    connector(ca).connect(name, tcp).await
}

/// Reads until the peer closes; true when it closed within [`WAIT`].
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let until = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn tls_clients_are_answered_and_wrong_protocols_closed() {
    let s = serve().await;
    let ca = s.dir.path().join("tls/ca.pem");
    let mut good = tls_connect(s.secured, &ca).await.expect("TLS handshake");
    assert_eq!(ask(&mut good, 7).await, 7);
    assert_eq!(
        ask(&mut good, 8).await,
        8,
        "requests in order on one connection"
    );

    // A plaintext Kafka client on the TLS port: closed.
    let mut plain = TcpStream::connect(s.secured).await.expect("connect");
    plain.write_all(&api_versions(1)).await.expect("write");
    assert!(
        closed(&mut plain).await,
        "plaintext client on the TLS port closed"
    );
    // A TLS client on the plaintext port: closed (handshake fails).
    assert!(tls_connect(s.plain, &ca).await.is_err());
    // Nobody else harmed.
    assert_eq!(ask(&mut good, 9).await, 9);
    let mut plain_ok = TcpStream::connect(s.plain).await.expect("connect");
    assert_eq!(ask(&mut plain_ok, 10).await, 10);
}

#[tokio::test]
async fn an_untrusted_client_fails_the_handshake() {
    let s = serve().await;
    let other = tempfile::tempdir().expect("tempdir");
    let other_ca = samsa_security::dev::ensure(other.path(), &[]).expect("other CA");
    let refused = tokio::time::timeout(WAIT, tls_connect(s.secured, &other_ca.ca))
        .await
        .expect("no hang");
    assert!(refused.is_err(), "a CA the client does not trust fails");
}

#[tokio::test]
async fn changed_certificates_serve_new_connections() {
    let s = serve().await;
    let old_ca = s.dir.path().join("tls/ca.pem");
    let mut old = tls_connect(s.secured, &old_ca).await.expect("handshake");
    assert_eq!(ask(&mut old, 1).await, 1);
    // New CA and key store, written over the configured file.
    let fresh = tempfile::tempdir().expect("tempdir");
    let new = samsa_security::dev::ensure(fresh.path(), &[]).expect("new certificates");
    let keystore = s.dir.path().join("tls/broker.pem");
    let tmp = keystore.with_extension("new");
    std::fs::copy(&new.keystore, &tmp).expect("copy");
    std::fs::rename(&tmp, &keystore).expect("replace");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut c) = tls_connect(s.secured, &new.ca).await {
            assert_eq!(ask(&mut c, 2).await, 2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "new certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        tls_connect(s.secured, &old_ca).await.is_err(),
        "old CA no longer matches"
    );
    assert_eq!(
        ask(&mut old, 3).await,
        3,
        "the open connection keeps its session"
    );
}
