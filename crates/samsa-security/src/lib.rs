//! Listener security: which protocol each listener speaks
//! (`listener.security.protocol.map`), the rustls server configuration of an
//! SSL listener built from Kafka's `ssl.*` keys (PEM key and trust stores,
//! `ssl.client.auth`, `ssl.enabled.protocols`, `ssl.cipher.suites`, each
//! overridable per listener as `listener.name.<name>.ssl.*`), the principal
//! of a client certificate (`ssl.principal.mapping.rules`), and reloading
//! the certificates when their files change.
//!
//! SASL_PLAINTEXT and SASL_SSL listeners authenticate clients with PLAIN or
//! SCRAM ([`sasl`]).
//!
//! Fails closed: an `ssl.*` or SASL value samsa cannot honour exactly is a
//! startup error naming the key, never a silently weaker listener.

pub mod authorizer;
pub mod dev;
mod principal;
pub mod sasl;
mod tls;

pub use authorizer::{Action, Authorizer, AuthorizerError, Requester};
pub use principal::{principal_of, KafkaPrincipal, PrincipalRules};
pub use tls::{ClientAuth, ListenerTls, TlsError};

use samsa_metadata::config::StaticConfig;

/// The security protocol of a listener.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    /// Whether the listener speaks TLS.
    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// The protocol of listener `name`: its entry in `listener.security.protocol.map`,
/// else its name when that is a protocol name (Kafka's default map), else
/// PLAINTEXT.
pub fn listener_protocol(cfg: &StaticConfig, name: &str) -> Result<Protocol, TlsError> {
    let protocol = samsa_metadata::security::listener_protocol(
        name,
        cfg.get("listener.security.protocol.map"),
    );
    match protocol.as_str() {
        "PLAINTEXT" => Ok(Protocol::Plaintext),
        "SSL" => Ok(Protocol::Ssl),
        "SASL_PLAINTEXT" => Ok(Protocol::SaslPlaintext),
        "SASL_SSL" => Ok(Protocol::SaslSsl),
        other => Err(TlsError::Unsupported {
            key: "listener.security.protocol.map".into(),
            reason: format!("listener {name} uses security protocol {other}, which samsa does not implement (PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL are)"),
        }),
    }
}

/// The value of `ssl.<key>` for `listener`: `listener.name.<listener>.<key>`
/// (the listener name in lower case, as Kafka writes it) over `<key>`.
pub fn listener_setting<'a>(cfg: &'a StaticConfig, listener: &str, key: &str) -> Option<&'a str> {
    let lower = listener.to_ascii_lowercase();
    cfg.explicit(&format!("listener.name.{lower}.{key}"))
        .or_else(|| cfg.explicit(&format!("listener.name.{listener}.{key}")))
        .or_else(|| cfg.explicit(key))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Checks every listener of `listeners` at startup: an SSL or SASL listener
/// whose settings do not build, or a secured listener named by
/// `inter.broker.listener.name` or `controller.listener.names` (replication
/// and the quorum connect in plaintext, without SASL) is an error.
pub fn check_listeners(cfg: &StaticConfig) -> Result<(), TlsError> {
    for key in ["inter.broker.listener.name", "controller.listener.names"] {
        for name in cfg.get(key).unwrap_or_default().split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            let protocol = listener_protocol(cfg, name)?;
            if protocol != Protocol::Plaintext {
                let what = if protocol.sasl() { "SASL" } else { "TLS" };
                return Err(TlsError::Unsupported {
                    key: key.into(),
                    reason: format!("listener {name} is {protocol:?}; {what} between brokers and controllers is not implemented yet (replication and the quorum connect without it): name a PLAINTEXT listener"),
                });
            }
        }
    }
    for entry in cfg.get("listeners").unwrap_or_default().split(',') {
        let Some((name, _)) = entry.trim().split_once("://") else {
            continue;
        };
        let protocol = listener_protocol(cfg, name.trim())?;
        if protocol.tls() {
            ListenerTls::build(cfg, name.trim())?;
        }
        if protocol.sasl() {
            sasl::ListenerSasl::build(cfg, name.trim())?;
        }
    }
    for entry in cfg
        .get("advertised.listeners")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((name, _)) = entry.trim().split_once("://") {
            listener_protocol(cfg, name.trim())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with an SSL listener `SECURE` whose key store is a fresh
    /// development certificate, plus `extra`.
    fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> StaticConfig {
        let made = dev::ensure(dir, &[]).expect("certificates");
        let mut cfg = StaticConfig::default();
        cfg.set("listeners", "PLAINTEXT://:9092,SECURE://:9093")
            .expect("listeners");
        cfg.set(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SECURE:SSL",
        )
        .expect("map");
        cfg.set(
            "listener.name.secure.ssl.keystore.location",
            &made.keystore.display().to_string(),
        )
        .expect("keystore");
        for (k, v) in extra {
            cfg.set(k, v).expect("setting");
        }
        cfg
    }

    fn error(cfg: &StaticConfig) -> String {
        check_listeners(cfg).expect_err("refused").to_string()
    }

    #[test]
    fn ssl_and_sasl_listeners_build_and_secured_inter_broker_listeners_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path(), &[]);
        check_listeners(&cfg).expect("a PEM key store builds");
        assert_eq!(listener_protocol(&cfg, "SECURE").ok(), Some(Protocol::Ssl));
        assert_eq!(
            listener_protocol(&cfg, "PLAINTEXT").ok(),
            Some(Protocol::Plaintext)
        );
        let map = (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL",
        );
        let sasl = config(dir.path(), &[map]);
        assert!(
            error(&sasl).contains("sasl.enabled.mechanisms"),
            "{}",
            error(&sasl)
        );
        let sasl = config(
            dir.path(),
            &[map, ("sasl.enabled.mechanisms", "SCRAM-SHA-256")],
        );
        check_listeners(&sasl).expect("a SASL_SSL listener builds");
        assert_eq!(
            listener_protocol(&sasl, "SECURE").ok(),
            Some(Protocol::SaslSsl)
        );
        let inter = config(dir.path(), &[("inter.broker.listener.name", "SECURE")]);
        assert!(error(&inter).contains("inter.broker.listener.name"));
        let inter = config(
            dir.path(),
            &[
                map,
                ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
                ("inter.broker.listener.name", "SECURE"),
            ],
        );
        assert!(
            error(&inter).contains("SASL between brokers"),
            "{}",
            error(&inter)
        );
    }

    #[test]
    fn bad_tls_settings_are_startup_errors_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (key, value) in [
            ("ssl.keystore.type", "JKS"),
            ("ssl.enabled.protocols", "TLSv1.1"),
            ("ssl.cipher.suites", "TLS_NOT_A_SUITE"),
            ("ssl.client.auth", "required"),
            ("ssl.client.auth", "sometimes"),
            ("ssl.principal.mapping.rules", "RULE:^CN=(.*)$/$1/"),
            (
                "listener.name.secure.ssl.keystore.location",
                "/nonexistent/k.pem",
            ),
        ] {
            let cfg = config(dir.path(), &[(key, value)]);
            let why = error(&cfg);
            let named = key.rsplit_once("secure.").map_or(key, |(_, k)| k);
            assert!(why.contains(named), "{key}={value}: {why}");
        }
        // No TLS 1.3 suite while TLS 1.3 is enabled.
        let cfg = config(
            dir.path(),
            &[("ssl.cipher.suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")],
        );
        assert!(error(&cfg).contains("TLSv1_3"), "{}", error(&cfg));
    }

    #[test]
    fn kafka_names_select_protocols_suites_and_client_auth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = dev::ensure(&dir.path().join("ca"), &[]).expect("ca");
        let cfg = config(
            dir.path(),
            &[
                ("ssl.enabled.protocols", "TLSv1.2"),
                (
                    "ssl.cipher.suites",
                    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                ),
                ("ssl.client.auth", "required"),
                ("ssl.truststore.location", &made.ca.display().to_string()),
            ],
        );
        let tls = ListenerTls::build(&cfg, "SECURE").expect("builds");
        assert_eq!(tls.client_auth, tls::ClientAuth::Required);
        let config = tls.config();
        let names: Vec<String> = config
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            ]
        );
        // The per-listener value wins over the global one.
        assert_eq!(
            listener_setting(&cfg, "SECURE", "ssl.keystore.location"),
            cfg.explicit("listener.name.secure.ssl.keystore.location")
        );
    }

    #[test]
    fn the_default_principal_is_the_subject_dn_in_rfc2253_order() {
        let mut params = rcgen::CertificateParams::new(vec!["c".to_owned()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "DE");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            principal_of(cert.der(), &PrincipalRules::Default).as_deref(),
            Some("CN=alice,O=Acme\\, Inc,C=DE")
        );
    }
}
