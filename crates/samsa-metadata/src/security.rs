//! Fail closed on security settings samsa does not implement.
//!
//! samsa serves PLAINTEXT, SSL (TLS, optionally mutual) and SASL_PLAINTEXT /
//! SASL_SSL with PLAIN and SCRAM (built by `samsa-security`): no other SASL
//! setting. (The authorizer's keys are checked by `samsa-security`, which
//! refuses an authorizer class it does not have.) A broker configured for those must not start and
//! silently serve every client with less security; it refuses, naming the
//! key. This covers the keys themselves ([`unsupported_key`], checked by
//! [`crate::config::StaticConfig::set`]) and listeners whose security
//! protocol, by name or through `listener.security.protocol.map`, is not
//! one of Kafka's four ([`unsupported_listener`], checked once the whole
//! configuration is known).

/// The security protocol of a plaintext listener.
pub const PLAINTEXT: &str = "PLAINTEXT";
/// The security protocols samsa implements.
const IMPLEMENTED: [&str; 4] = [PLAINTEXT, "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
/// Kafka's security protocol names.
const PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// Why `key=value` asks for security samsa does not have, or `None` when it
/// does not.
pub fn unsupported_key(key: &str, value: &str) -> Option<String> {
    let value = value.trim();
    let per_listener = key
        .strip_prefix("listener.name.")
        .and_then(|rest| rest.split_once('.'))
        .map(|(_, setting)| setting);
    let setting = per_listener.unwrap_or(key);
    let sasl = setting.starts_with("sasl.") || setting.contains(".sasl.");
    if sasl && !is_sasl_key(key) {
        return Some(format!(
            "this SASL setting is not implemented (samsa implements {})",
            SASL_KEYS.join(", ")
        ));
    }
    let what = match key {
        "principal.builder.class" => "authentication",
        "security.inter.broker.protocol" if !value.eq_ignore_ascii_case(PLAINTEXT) => {
            return Some(format!(
                "{value} between brokers is not implemented (only PLAINTEXT is)"
            ));
        }
        _ => return None,
    };
    (!value.is_empty()).then(|| format!("{what} is not implemented"))
}

/// The authorizer's keys (`authorizer.class.name`, `super.users`,
/// `allow.everyone.if.no.acl.found`): stored as given and validated by
/// `samsa-security`'s authorizer at startup.
pub fn is_authorizer_key(key: &str) -> bool {
    matches!(
        key,
        "authorizer.class.name"
            | "super.users"
            | "allow.everyone.if.no.acl.found"
            | "samsa.authorizer.unchecked.apis.allow"
    )
}

/// The SASL settings samsa implements (`<l>` a listener name, `<mechanism>`
/// `plain`, `scram-sha-256` or `scram-sha-512`).
pub const SASL_KEYS: [&str; 5] = [
    "sasl.enabled.mechanisms",
    "listener.name.<l>.sasl.enabled.mechanisms",
    "listener.name.<l>.<mechanism>.sasl.jaas.config",
    "sasl.mechanism.inter.broker.protocol",
    "connections.max.reauth.ms",
];

/// Whether `key` is one of [`SASL_KEYS`] (stored as given; checked as a
/// whole by `samsa-security` once every key is known).
pub fn is_sasl_key(key: &str) -> bool {
    let per_listener = key
        .strip_prefix("listener.name.")
        .and_then(|rest| rest.split_once('.'))
        .map(|(_, setting)| setting);
    match per_listener {
        Some(setting) => {
            setting == "sasl.enabled.mechanisms"
                || setting == "connections.max.reauth.ms"
                || ["plain", "scram-sha-256", "scram-sha-512"].iter().any(|m| {
                    setting
                        .strip_prefix(m)
                        .is_some_and(|rest| rest == ".sasl.jaas.config")
                })
        }
        None => [
            "sasl.enabled.mechanisms",
            "sasl.mechanism.inter.broker.protocol",
        ]
        .contains(&key),
    }
}

/// The security protocol (upper case) of listener `name`: its entry in
/// `protocol_map` (`NAME:PROTOCOL,...`), else its name when that is a
/// protocol name (Kafka's default map), else PLAINTEXT.
pub fn listener_protocol(name: &str, protocol_map: Option<&str>) -> String {
    protocol_map
        .into_iter()
        .flat_map(|m| m.split(','))
        .filter_map(|entry| entry.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, p)| p.trim().to_ascii_uppercase())
        .or_else(|| {
            let upper = name.to_ascii_uppercase();
            PROTOCOLS.contains(&upper.as_str()).then_some(upper)
        })
        .unwrap_or_else(|| PLAINTEXT.to_owned())
}

/// The first listener of `listeners` (a `NAME://host:port` list) whose
/// security protocol ([`listener_protocol`]) is not one of Kafka's four,
/// as a message naming it.
pub fn unsupported_listener(listeners: &str, protocol_map: Option<&str>) -> Option<String> {
    let mapped = |name: &str| listener_protocol(name, protocol_map);
    listeners
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find_map(|l| {
            let name = l.split_once("://").map_or(PLAINTEXT, |(n, _)| n.trim());
            let protocol = mapped(name);
            (!IMPLEMENTED.contains(&protocol.as_str())).then(|| {
                format!("listener {l} uses security protocol {protocol}, which samsa does not implement (PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL are)")
            })
        })
}

/// Kafka's ACL operation codes (`org.apache.kafka.common.acl.AclOperation`),
/// the bit positions of the `authorized_operations` bitfields in Metadata,
/// DescribeCluster, DescribeGroups, ConsumerGroupDescribe and
/// DescribeTopicPartitions responses.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum AclOperation {
    Unknown = 0,
    /// Filters only: any operation.
    Any = 1,
    /// Every operation.
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

impl AclOperation {
    /// Every operation, by code.
    pub const ALL: [AclOperation; 15] = {
        use AclOperation::*;
        [
            Unknown,
            Any,
            All,
            Read,
            Write,
            Create,
            Delete,
            Alter,
            Describe,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            CreateTokens,
            DescribeTokens,
        ]
    };

    /// The operation of wire code `code`; `Unknown` for any other code.
    pub fn from_code(code: i8) -> AclOperation {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or(AclOperation::Unknown)
    }

    /// The wire code.
    pub fn code(self) -> i8 {
        self as u8 as i8
    }

    /// Kafka's name (`IdempotentWrite`, as kafka-acls.sh takes and prints it).
    pub fn name(self) -> &'static str {
        use AclOperation::*;
        match self {
            Unknown => "Unknown",
            Any => "Any",
            All => "All",
            Read => "Read",
            Write => "Write",
            Create => "Create",
            Delete => "Delete",
            Alter => "Alter",
            Describe => "Describe",
            ClusterAction => "ClusterAction",
            DescribeConfigs => "DescribeConfigs",
            AlterConfigs => "AlterConfigs",
            IdempotentWrite => "IdempotentWrite",
            CreateTokens => "CreateTokens",
            DescribeTokens => "DescribeTokens",
        }
    }

    /// The operation named `name`, case and `_` insensitive (`READ`,
    /// `idempotent_write`, `IdempotentWrite`).
    pub fn parse(name: &str) -> Option<AclOperation> {
        let norm = |s: &str| s.replace('_', "").to_ascii_lowercase();
        let wanted = norm(name);
        Self::ALL.into_iter().find(|op| norm(op.name()) == wanted)
    }
}

/// The resource kinds whose authorized operations responses report.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AclResource {
    Topic,
    Group,
    Cluster,
}

/// The value of an `authorized_operations` field a client did not ask for
/// (Kafka's `Integer.MIN_VALUE`).
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// The operations that apply to a resource kind (Kafka's
/// `AclEntry.supportedOperations`).
pub fn applicable_operations(resource: AclResource) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource {
        AclResource::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        AclResource::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
        AclResource::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
    }
}

/// The `authorized_operations` bitfield for a resource: bit `n` set when
/// operation code `n` is allowed. samsa has no authorizer, so, as Kafka
/// without one, every applicable operation is allowed. The authorizer of the
/// security work replaces this with the principal's actual rights.
pub fn authorized_operations(resource: AclResource) -> i32 {
    applicable_operations(resource)
        .iter()
        .fold(0, |bits, op| bits | 1 << (*op as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_keys_are_refused() {
        for (k, v) in [
            ("sasl.kerberos.service.name", "kafka"),
            ("listener.name.external.oauthbearer.sasl.jaas.config", "x"),
            ("sasl.jaas.config", "x"),
            (
                "listener.name.external.sasl.server.callback.handler.class",
                "x.Y",
            ),
            ("principal.builder.class", "x.Y"),
            ("security.inter.broker.protocol", "SASL_SSL"),
        ] {
            assert!(unsupported_key(k, v).is_some(), "{k}");
        }
        for (k, v) in [
            ("security.inter.broker.protocol", "PLAINTEXT"),
            ("authorizer.class.name", ""),
            ("num.partitions", "3"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT"),
            ("listener.name.internal.max.connections", "10"),
            ("ssl.keystore.location", "/etc/k.pem"),
            ("listener.name.external.ssl.keystore.location", "/k"),
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.external.sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.external.plain.sasl.jaas.config", "x"),
            ("listener.name.external.scram-sha-512.sasl.jaas.config", "x"),
            ("connections.max.reauth.ms", "60000"),
            ("listener.name.external.connections.max.reauth.ms", "60000"),
        ] {
            assert_eq!(unsupported_key(k, v), None, "{k}");
        }
    }

    #[test]
    fn listeners_must_use_one_of_kafkas_protocols() {
        let map = "PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT,EXTERNAL:SASL_SSL";
        assert_eq!(
            unsupported_listener("PLAINTEXT://:9092,REPLICATION://:9093", Some(map)),
            None
        );
        assert_eq!(
            unsupported_listener("127.0.0.1:9092,CUSTOM://:1", None),
            None
        );
        assert_eq!(unsupported_listener("PLAINTEXT://:1,SSL://:2", None), None);
        assert_eq!(
            unsupported_listener("PLAINTEXT://:2", Some("PLAINTEXT:SSL")),
            None
        );
        assert_eq!(listener_protocol("secure", Some("SECURE:ssl")), "SSL");
        for (listeners, map) in [
            ("SASL_SSL://127.0.0.1:0", None),
            ("PLAINTEXT://:1,SASL_SSL://:2", None),
            ("sasl_plaintext://:2", None),
            ("EXTERNAL://:2", Some(map)),
            ("PLAINTEXT://:2", Some("PLAINTEXT:SASL_PLAINTEXT")),
        ] {
            assert_eq!(unsupported_listener(listeners, map), None, "{listeners}");
        }
        for (listeners, map) in [
            ("EXTERNAL://:2", Some("EXTERNAL:KERBEROS")),
            ("PLAINTEXT://:2", Some("PLAINTEXT:SASL_FOO")),
        ] {
            let why = unsupported_listener(listeners, map).expect(listeners);
            assert!(why.contains("security protocol"), "{why}");
        }
    }

    #[test]
    fn without_an_authorizer_every_applicable_operation_is_allowed() {
        // Kafka reports 3576 for a topic (READ..ALTER_CONFIGS less CLUSTER_ACTION)
        // and 8096 for the cluster when no authorizer is configured.
        assert_eq!(authorized_operations(AclResource::Topic), 3576);
        assert_eq!(authorized_operations(AclResource::Cluster), 8096);
        assert_eq!(authorized_operations(AclResource::Group), 3400);
        assert_eq!(applicable_operations(AclResource::Topic).len(), 8);
        assert_eq!(applicable_operations(AclResource::Cluster).len(), 7);
    }
}
