//! The rustls server configuration of an SSL listener, from Kafka's keys:
//!
//! - key store: `ssl.keystore.type=PEM` with `ssl.keystore.location` (a PEM
//!   file holding the private key and the certificate chain) or inline
//!   `ssl.keystore.key` + `ssl.keystore.certificate.chain`; an encrypted key
//!   (`ssl.key.password`) is refused, rustls reads only unencrypted keys;
//! - trust store: `ssl.truststore.type=PEM` with `ssl.truststore.location`
//!   or inline `ssl.truststore.certificates`, the CAs client certificates
//!   must chain to;
//! - `ssl.client.auth` `none` (default), `requested` or `required`;
//! - `ssl.enabled.protocols` (`TLSv1.2`, `TLSv1.3`) and `ssl.cipher.suites`
//!   (IANA names, as the JDK takes them).
//!
//! [`ListenerTls`] holds the current configuration and rebuilds it when the
//! key or trust store file changes: new connections get the new
//! certificate, established ones keep the session they negotiated.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use samsa_metadata::config::StaticConfig;

use crate::listener_setting;
use crate::principal::PrincipalRules;

/// A TLS setting samsa cannot honour.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: {reason}")]
    Unsupported { key: String, reason: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// `ssl.client.auth`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// An SSL listener's TLS state: the configuration new connections use, and
/// what it was built from (to rebuild it when a store file changes).
#[derive(Debug)]
pub struct ListenerTls {
    listener: String,
    current: RwLock<Arc<ServerConfig>>,
    /// The store files read, with their modification time when read.
    files: RwLock<Vec<(PathBuf, Option<SystemTime>)>>,
    pub client_auth: ClientAuth,
    pub principal_rules: PrincipalRules,
}

/// What [`ListenerTls::build`] read, before it is put behind locks.
struct Built {
    config: Arc<ServerConfig>,
    files: Vec<(PathBuf, Option<SystemTime>)>,
    client_auth: ClientAuth,
    principal_rules: PrincipalRules,
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ListenerTls {
    /// Builds listener `listener`'s TLS configuration from `cfg`.
    pub fn build(cfg: &StaticConfig, listener: &str) -> Result<ListenerTls, TlsError> {
        let built = build(cfg, listener)?;
        Ok(ListenerTls {
            listener: listener.to_owned(),
            current: RwLock::new(built.config),
            files: RwLock::new(built.files),
            client_auth: built.client_auth,
            principal_rules: built.principal_rules,
        })
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Rebuilds the configuration when a store file changed since it was
    /// read: true when it was replaced. A store that no longer builds (a
    /// half-written file, a key that does not match) keeps the old
    /// configuration and is tried again next time.
    pub fn reload_if_changed(&self, cfg: &StaticConfig) -> Result<bool, TlsError> {
        let changed = self
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(path, when)| modified(path) != *when);
        if !changed {
            return Ok(false);
        }
        let built = build(cfg, &self.listener)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = built.config;
        *self.files.write().unwrap_or_else(|p| p.into_inner()) = built.files;
        Ok(true)
    }
}

fn build(cfg: &StaticConfig, listener: &str) -> Result<Built, TlsError> {
    let get = |key: &str| listener_setting(cfg, listener, key);
    let mut files = Vec::new();
    let mut read = |key: &str, path: &str| -> Result<Vec<u8>, TlsError> {
        let path = PathBuf::from(path);
        let when = modified(&path);
        let bytes = std::fs::read(&path).map_err(|source| TlsError::Read {
            path: path.clone(),
            source,
        });
        files.push((path, when));
        bytes.map_err(|e| invalid(key, e.to_string()))
    };
    for key in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some(t) = get(key).filter(|t| !t.eq_ignore_ascii_case("PEM")) {
            return Err(TlsError::Unsupported {
                key: key.into(),
                reason: format!("{t} stores are not supported; use PEM"),
            });
        }
    }
    // Key store.
    let (chain_pem, key_pem) = match get("ssl.keystore.location") {
        Some(path) => {
            let pem = read("ssl.keystore.location", path)?;
            (pem.clone(), pem)
        }
        None => {
            let chain = get("ssl.keystore.certificate.chain").ok_or_else(|| {
                invalid(
                    "ssl.keystore.location",
                    format!("listener {listener} is SSL but has no key store (ssl.keystore.location, or ssl.keystore.certificate.chain and ssl.keystore.key)"),
                )
            })?;
            let key = get("ssl.keystore.key")
                .ok_or_else(|| invalid("ssl.keystore.key", "missing (the private key in PEM)"))?;
            (chain.as_bytes().to_vec(), key.as_bytes().to_vec())
        }
    };
    if String::from_utf8_lossy(&key_pem).contains("ENCRYPTED") {
        return Err(TlsError::Unsupported {
            key: "ssl.key.password".into(),
            reason: "encrypted private keys are not supported; decrypt it (openssl pkcs8 -topk8 -nocrypt) and protect the file".into(),
        });
    }
    let chain = certificates(&chain_pem, "ssl.keystore.certificate.chain")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid("ssl.keystore.key", format!("no PEM private key: {e}")))?;
    // Trust store.
    let trusted = match (
        get("ssl.truststore.location"),
        get("ssl.truststore.certificates"),
    ) {
        (Some(path), _) => Some(certificates(
            &read("ssl.truststore.location", path)?,
            "ssl.truststore.location",
        )?),
        (None, Some(inline)) => Some(certificates(
            inline.as_bytes(),
            "ssl.truststore.certificates",
        )?),
        (None, None) => None,
    };
    let client_auth = match get("ssl.client.auth").unwrap_or("none") {
        v if v.eq_ignore_ascii_case("none") => ClientAuth::None,
        v if v.eq_ignore_ascii_case("requested") => ClientAuth::Requested,
        v if v.eq_ignore_ascii_case("required") => ClientAuth::Required,
        v => {
            return Err(invalid(
                "ssl.client.auth",
                format!("{v} is not one of none, requested, required"),
            ))
        }
    };
    let principal_rules = PrincipalRules::parse(get("ssl.principal.mapping.rules"))?;
    let versions = protocol_versions(get("ssl.enabled.protocols"))?;
    let mut crypto = crypto_provider();
    if let Some(names) = get("ssl.cipher.suites") {
        crypto.cipher_suites = cipher_suites(names, &crypto.cipher_suites, &versions)?;
    }
    let builder = ServerConfig::builder_with_provider(Arc::new(crypto))
        .with_protocol_versions(&versions)
        .map_err(|e| invalid("ssl.cipher.suites", e.to_string()))?;
    let builder = match (client_auth, trusted) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(invalid(
                "ssl.client.auth",
                "client certificates are asked for but no trust store is set (ssl.truststore.location or ssl.truststore.certificates)",
            ))
        }
        (auth, Some(cas)) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots
                    .add(ca)
                    .map_err(|e| invalid("ssl.truststore.location", e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(crypto_provider()),
            );
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| invalid("ssl.truststore.location", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| invalid("ssl.keystore.key", e.to_string()))?;
    Ok(Built {
        config: Arc::new(config),
        files,
        client_auth,
        principal_rules,
    })
}

/// rustls' `ring` provider: classical key exchange (X25519, P-256, P-384),
/// which every Kafka client speaks. rustls deprecates it for lacking
/// post-quantum key exchange, which only its `aws-lc-rs` provider has; that
/// one needs cmake and a C toolchain build of its own, `ring` does not.
#[allow(deprecated)]
fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn certificates(pem: &[u8], key: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(key, "no PEM certificate found"));
    }
    Ok(certs)
}

/// `ssl.enabled.protocols`; default both TLS 1.2 and 1.3 (Kafka's).
fn protocol_versions(
    names: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let Some(names) = names else {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    };
    let mut out = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let version = match name {
            "TLSv1.3" => &rustls::version::TLS13,
            "TLSv1.2" => &rustls::version::TLS12,
            other => {
                return Err(TlsError::Unsupported {
                    key: "ssl.enabled.protocols".into(),
                    reason: format!("{other} is not supported (TLSv1.2 and TLSv1.3 are)"),
                })
            }
        };
        if !out.contains(&version) {
            out.push(version);
        }
    }
    if out.is_empty() {
        return Err(invalid("ssl.enabled.protocols", "no protocol enabled"));
    }
    Ok(out)
}

/// The IANA name of a rustls suite (rustls spells TLS 1.3 suites `TLS13_`).
fn iana_name(suite: &SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// `ssl.cipher.suites`: IANA names, in order; a name rustls does not
/// implement is an error, as is a list with no suite for an enabled version.
fn cipher_suites(
    names: &str,
    available: &[SupportedCipherSuite],
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let mut out = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let suite = available
            .iter()
            .find(|s| iana_name(s).eq_ignore_ascii_case(name))
            .ok_or_else(|| TlsError::Unsupported {
                key: "ssl.cipher.suites".into(),
                reason: format!(
                    "{name} is not supported; supported: {}",
                    available
                        .iter()
                        .map(iana_name)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            })?;
        out.push(*suite);
    }
    for v in versions {
        if !out.iter().any(|s| s.version() == *v) {
            return Err(invalid(
                "ssl.cipher.suites",
                format!(
                    "no suite for {:?}, which ssl.enabled.protocols enables",
                    v.version
                ),
            ));
        }
    }
    Ok(out)
}
