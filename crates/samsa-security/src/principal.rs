//! The principal of a TLS client: its certificate's subject distinguished
//! name in RFC 2253 form (Kafka's `X500Principal.getName()`: the RDNs last
//! to first, `CN=client,OU=eng,O=acme`), mapped by
//! `ssl.principal.mapping.rules`. samsa implements the `DEFAULT` rule (the
//! DN as it is); `RULE:` rules are refused at startup rather than mapped
//! differently from Kafka.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::tls::TlsError;

/// `ssl.principal.mapping.rules`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PrincipalRules {
    /// The subject DN, unchanged.
    #[default]
    Default,
}

impl PrincipalRules {
    pub fn parse(rules: Option<&str>) -> Result<PrincipalRules, TlsError> {
        match rules.map(str::trim) {
            None | Some("") | Some("DEFAULT") => Ok(PrincipalRules::Default),
            Some(other) => Err(TlsError::Unsupported {
                key: "ssl.principal.mapping.rules".into(),
                reason: format!("{other}: only DEFAULT is implemented"),
            }),
        }
    }
}

/// Short names Java's RFC 2253 output uses; other attributes are written
/// as their dotted OID.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// Escapes an RFC 2253 attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The principal name (`User:` is the caller's) of the client certificate
/// `der`; `None` when it does not parse (the handshake accepted it, so this
/// is not expected).
pub fn principal_of(der: &[u8], rules: &PrincipalRules) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let oid = attr.attr_type().to_id_string();
                let name = short_name(&oid).map_or(oid.clone(), str::to_owned);
                let value = attr.as_str().map(escape).unwrap_or_else(|_| {
                    let hex: String = attr
                        .attr_value()
                        .data
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    format!("#{hex}")
                });
                format!("{name}={value}")
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    match rules {
        PrincipalRules::Default => Some(rdns.join(",")),
    }
}

/// Who a request comes from: Kafka's `KafkaPrincipal`, a type and a name,
/// written `Type:name` (`User:alice`, `User:CN=client,O=acme`). A client
/// that did not authenticate (plaintext, or TLS without a client
/// certificate) is `User:ANONYMOUS`, as in Kafka.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    /// Kafka's `KafkaPrincipal.USER_TYPE`.
    pub const USER_TYPE: &'static str = "User";

    /// `User:<name>`.
    pub fn user(name: impl Into<String>) -> KafkaPrincipal {
        KafkaPrincipal {
            principal_type: Self::USER_TYPE.to_owned(),
            name: name.into(),
        }
    }

    /// `User:ANONYMOUS`, the principal of an unauthenticated client.
    pub fn anonymous() -> KafkaPrincipal {
        Self::user("ANONYMOUS")
    }

    /// Parses `Type:name` (split at the first `:`, as Kafka's
    /// `SecurityUtils.parseKafkaPrincipal`); `None` without a `:` or with
    /// an empty type.
    pub fn parse(s: &str) -> Option<KafkaPrincipal> {
        let (principal_type, name) = s.split_once(':')?;
        if principal_type.is_empty() {
            return None;
        }
        Some(KafkaPrincipal {
            principal_type: principal_type.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl std::fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod kafka_principal_tests {
    use super::KafkaPrincipal;

    #[test]
    fn principals_parse_and_print_as_kafka_writes_them() {
        let p = KafkaPrincipal::parse("User:CN=a:b,O=x").expect("parses");
        assert_eq!(p.principal_type, "User");
        assert_eq!(p.name, "CN=a:b,O=x");
        assert_eq!(p.to_string(), "User:CN=a:b,O=x");
        assert_eq!(KafkaPrincipal::anonymous().to_string(), "User:ANONYMOUS");
        assert_eq!(KafkaPrincipal::parse("alice"), None);
        assert_eq!(KafkaPrincipal::parse(":alice"), None);
    }
}
