//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners: which
//! mechanisms a listener enables (`sasl.enabled.mechanisms`, per listener
//! `listener.name.<l>.sasl.enabled.mechanisms`), the PLAIN users of its JAAS
//! config (`listener.name.<l>.plain.sasl.jaas.config`, `user_<name>="<password>"`),
//! and the server side of one exchange ([`Exchange`]) for PLAIN (RFC 4616)
//! and SCRAM-SHA-256/512 ([`scram`]).
//!
//! Fails closed: a mechanism samsa does not implement (GSSAPI, Kafka's
//! default, or OAUTHBEARER), a SASL listener without enabled mechanisms, or
//! PLAIN without a JAAS config naming users is a startup error.
//!
//! The connection state machine (handshake, SaslAuthenticate, failure delay,
//! re-authentication) lives in `samsa-broker`'s `sasl` module; this module
//! knows no wire format beyond the mechanisms' own messages.

pub mod jaas;
mod plain;
pub mod scram;

use std::collections::BTreeMap;

use samsa_metadata::config::StaticConfig;
use samsa_metadata::scram::{ScramCredential, ScramMechanism};

use crate::{listener_setting, TlsError};

/// A SASL mechanism samsa implements.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    /// The mechanism's SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
        }
    }

    /// The mechanism named `name` (SASL names are upper case; compared exactly,
    /// as Kafka does).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::Scram(ScramMechanism::Sha256)),
            "SCRAM-SHA-512" => Some(Mechanism::Scram(ScramMechanism::Sha512)),
            _ => None,
        }
    }
}

/// Why an authentication step failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslFailure {
    /// Wrong user name or password (SASL_AUTHENTICATION_FAILED).
    #[error("{0}")]
    Credentials(String),
    /// A malformed or unsupported message (SASL_AUTHENTICATION_FAILED too).
    #[error("{0}")]
    Invalid(String),
    /// A broker-side problem.
    #[error("{0}")]
    Internal(String),
}

/// A SASL listener's settings.
#[derive(Clone, Debug)]
pub struct ListenerSasl {
    listener: String,
    /// Enabled mechanisms, in configured order.
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN users and passwords from the listener's JAAS config.
    plain_users: BTreeMap<String, String>,
}

const ENABLED: &str = "sasl.enabled.mechanisms";

impl ListenerSasl {
    /// The SASL settings of listener `listener`.
    pub fn build(cfg: &StaticConfig, listener: &str) -> Result<ListenerSasl, TlsError> {
        let lower = listener.to_ascii_lowercase();
        let Some(enabled) = listener_setting(cfg, listener, ENABLED) else {
            return Err(TlsError::Invalid {
                key: format!("listener.name.{lower}.{ENABLED}"),
                reason: format!("SASL listener {listener} enables no mechanism (Kafka's default, GSSAPI, is not implemented); set {ENABLED}, e.g. to SCRAM-SHA-256,SCRAM-SHA-512 or PLAIN"),
            });
        };
        let mut mechanisms = Vec::new();
        for name in enabled.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let m = Mechanism::from_name(name).ok_or_else(|| TlsError::Unsupported {
                key: ENABLED.into(),
                reason: format!("SASL mechanism {name} is not implemented (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are)"),
            })?;
            if !mechanisms.contains(&m) {
                mechanisms.push(m);
            }
        }
        if mechanisms.is_empty() {
            return Err(TlsError::Invalid {
                key: ENABLED.into(),
                reason: format!("SASL listener {listener} enables no mechanism"),
            });
        }
        let mut plain_users = BTreeMap::new();
        if mechanisms.contains(&Mechanism::Plain) {
            let key = format!("listener.name.{lower}.plain.sasl.jaas.config");
            let text = cfg.explicit(&key).ok_or_else(|| TlsError::Invalid {
                key: key.clone(),
                reason: "PLAIN is enabled but the listener has no JAAS config with its users (org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"...\";)".into(),
            })?;
            let invalid = |reason: String| TlsError::Invalid {
                key: key.clone(),
                reason,
            };
            let entries = jaas::parse(text).map_err(|e| invalid(e.to_string()))?;
            let [entry] = entries.as_slice() else {
                return Err(invalid(format!(
                    "expected one login module, found {}",
                    entries.len()
                )));
            };
            if !entry.login_module.ends_with("PlainLoginModule") {
                return Err(invalid(format!(
                    "login module {} is not Kafka's PlainLoginModule",
                    entry.login_module
                )));
            }
            plain_users = jaas::plain_users(entry);
        }
        Ok(ListenerSasl {
            listener: listener.to_owned(),
            mechanisms,
            plain_users,
        })
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The enabled mechanism named `name`.
    pub fn enabled(&self, name: &str) -> Option<Mechanism> {
        Mechanism::from_name(name).filter(|m| self.mechanisms.contains(m))
    }

    /// The enabled mechanisms' names, as SaslHandshake lists them.
    pub fn names(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }
}

/// What one step of an exchange produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send these (possibly empty) bytes.
    Done { user: String, response: Vec<u8> },
}

/// The server side of one authentication exchange.
pub enum Exchange {
    Plain,
    /// Boxed: its state (messages kept for the final proof) is far larger.
    Scram(Box<scram::ScramServer>),
}

impl Exchange {
    /// A new exchange for `mechanism`.
    pub fn new(mechanism: Mechanism) -> Exchange {
        match mechanism {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::Scram(m) => Exchange::Scram(Box::new(scram::ScramServer::new(m))),
        }
    }

    /// Takes the client's next message. `scram` looks up SCRAM credentials
    /// (the metadata image's).
    pub fn step(
        &mut self,
        sasl: &ListenerSasl,
        message: &[u8],
        scram: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Step, SaslFailure> {
        match self {
            Exchange::Plain => {
                let user = plain::authenticate(&sasl.plain_users, message)?;
                Ok(Step::Done {
                    user,
                    response: Vec::new(),
                })
            }
            Exchange::Scram(server) => Ok(match server.step(message, scram)? {
                scram::ScramStep::Continue(b) => Step::Continue(b),
                scram::ScramStep::Done { user, response } => Step::Done { user, response },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> StaticConfig {
        let mut cfg = StaticConfig::default();
        for (k, v) in pairs {
            cfg.set(k, v).expect(k);
        }
        cfg
    }

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#;

    #[test]
    fn listener_mechanisms_and_plain_users_come_from_kafkas_keys() {
        let cfg = config(&[
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            (
                "listener.name.sasl_ssl.sasl.enabled.mechanisms",
                "PLAIN,SCRAM-SHA-512",
            ),
            ("listener.name.sasl_ssl.plain.sasl.jaas.config", JAAS),
        ]);
        let global = ListenerSasl::build(&cfg, "SASL_PLAINTEXT").expect("builds");
        assert_eq!(global.names(), ["SCRAM-SHA-256"]);
        let own = ListenerSasl::build(&cfg, "SASL_SSL").expect("builds");
        assert_eq!(own.names(), ["PLAIN", "SCRAM-SHA-512"]);
        assert_eq!(own.enabled("PLAIN"), Some(Mechanism::Plain));
        assert_eq!(own.enabled("SCRAM-SHA-256"), None);
        let mut plain = Exchange::new(Mechanism::Plain);
        assert_eq!(
            plain.step(&own, b"\0alice\0alice-secret", |_| None),
            Ok(Step::Done {
                user: "alice".into(),
                response: Vec::new()
            })
        );
    }

    #[test]
    fn unimplemented_or_incomplete_sasl_settings_are_startup_errors() {
        for (pairs, named) in [
            (vec![], "sasl.enabled.mechanisms"),
            (vec![("sasl.enabled.mechanisms", "GSSAPI")], "GSSAPI"),
            (
                vec![("sasl.enabled.mechanisms", "OAUTHBEARER")],
                "OAUTHBEARER",
            ),
            (
                vec![("sasl.enabled.mechanisms", "PLAIN")],
                "plain.sasl.jaas.config",
            ),
            (
                vec![
                    ("sasl.enabled.mechanisms", "PLAIN"),
                    (
                        "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                        "Foo required;",
                    ),
                ],
                "PlainLoginModule",
            ),
        ] {
            let why = ListenerSasl::build(&config(&pairs), "SASL_PLAINTEXT")
                .expect_err("refused")
                .to_string();
            assert!(why.contains(named), "{pairs:?}: {why}");
        }
    }
}
