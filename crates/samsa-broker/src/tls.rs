//! SSL listeners: the TLS handshake of an accepted connection, the two
//! halves the connection loop reads and writes whether or not it is
//! encrypted ([`ReadSide`], [`WriteSide`]), and the periodic check that
//! reloads a listener's certificates when their files change.
//!
//! A plaintext client on an SSL listener fails the handshake (its first
//! bytes are no TLS record) and a handshake that does not finish within
//! [`HANDSHAKE_TIME_MAX`] is dropped: either closes only that connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use samsa_security::ListenerTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use crate::broker::Broker;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIME_MAX: Duration = Duration::from_secs(10);
/// How often SSL listeners' key and trust store files are checked for changes.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The read half of a connection.
pub enum ReadSide {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

/// The write half of a connection. Over TLS every byte written (file
/// regions included) is copied once, into the TLS record it is encrypted in.
pub enum WriteSide {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

/// The two halves of an accepted connection, and the principal of its
/// client certificate (`CN=...`, per `ssl.principal.mapping.rules`) when
/// the client presented one. The principal is kept for the authorizer.
pub struct Established {
    pub read: ReadSide,
    pub write: WriteSide,
    pub principal: Option<String>,
}

/// Splits a plaintext connection, or completes the TLS handshake of one
/// on an SSL listener.
pub async fn establish(stream: TcpStream, tls: Option<&ListenerTls>) -> io::Result<Established> {
    let Some(tls) = tls else {
        let (read, write) = stream.into_split();
        return Ok(Established {
            read: ReadSide::Plain(read),
            write: WriteSide::Plain(write),
            principal: None,
        });
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
    let stream = tokio::time::timeout(HANDSHAKE_TIME_MAX, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|leaf| samsa_security::principal_of(leaf.as_ref(), &tls.principal_rules));
    let (read, write) = tokio::io::split(stream);
    Ok(Established {
        read: ReadSide::Tls(read),
        write: WriteSide::Tls(write),
        principal,
    })
}

impl ReadSide {
    /// Waits until a plaintext socket has bytes to read; at once for TLS,
    /// whose reads go through rustls' own buffer.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            ReadSide::Plain(r) => r.readable().await,
            ReadSide::Tls(_) => Ok(()),
        }
    }
}

impl AsyncRead for ReadSide {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadSide::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ReadSide::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteSide {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Plain(w) => Pin::new(w).poll_write(cx, buf),
            WriteSide::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteSide::Plain(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteSide::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteSide::Plain(w) => w.is_write_vectored(),
            WriteSide::Tls(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Plain(w) => Pin::new(w).poll_flush(cx),
            WriteSide::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteSide::Plain(w) => Pin::new(w).poll_shutdown(cx),
            WriteSide::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Every [`RELOAD_CHECK_INTERVAL`], rebuilds the TLS configuration of each
/// SSL listener whose key or trust store file changed; new connections use
/// the new certificates, established ones keep theirs.
pub async fn reload_task(
    broker: Arc<Broker>,
    listeners: Vec<Arc<ListenerTls>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(RELOAD_CHECK_INTERVAL) => {}
        }
        // On a blocking thread: it stats and reads the store files.
        let cfg = broker.config();
        let all = listeners.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for tls in &all {
                match tls.reload_if_changed(&cfg) {
                    Ok(true) => tracing::info!(listener = tls.listener(), "reloaded TLS certificates"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(listener = tls.listener(), error = %e, "TLS certificates changed but do not load; keeping the previous ones"),
                }
            }
        })
        .await;
    }
}
