//! The client's error type: I/O, malformed responses, timeouts, and Kafka error
//! codes with their protocol names (`TOPIC_ALREADY_EXISTS`, ...).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kafka_protocol::error::ResponseError;

/// Everything that can go wrong talking to a Kafka-compatible broker.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A socket error (connect, read, write).
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The connection closed (or failed earlier) while a request was outstanding.
    #[error("connection to {addr} closed: {reason}")]
    Disconnected { addr: String, reason: String },
    /// No response within the request (or connect) timeout.
    #[error("timed out after {timeout_ms} ms waiting for {what}")]
    Timeout { what: String, timeout_ms: u64 },
    /// A response that is not valid for its API and version, or that could
    /// make the decoder allocate more than its bytes can back up.
    #[error("malformed {api} v{version} response: {reason}")]
    Decode {
        api: &'static str,
        version: i16,
        reason: String,
    },
    /// A request could not be encoded (a field not valid in the negotiated version).
    #[error("cannot encode {api} v{version} request: {reason}")]
    Encode {
        api: &'static str,
        version: i16,
        reason: String,
    },
    /// A response frame larger than the configured cap.
    #[error("response of {size} bytes from {addr} exceeds the limit of {limit} bytes")]
    ResponseTooLarge {
        addr: String,
        size: usize,
        limit: usize,
    },
    /// The broker does not support any version of an API this operation needs.
    #[error("the broker at {addr} does not support {api} in any version this client speaks")]
    UnsupportedApi { addr: String, api: &'static str },
    /// The broker answered with a Kafka error code.
    #[error("{}", kafka_display(*.code, .name, .message.as_deref(), .context.as_deref()))]
    Kafka {
        code: i16,
        name: &'static str,
        message: Option<String>,
        /// What the error applies to (a topic, partition or group), if known.
        context: Option<String>,
    },
    /// A record batch in a fetch response could not be decoded.
    #[error("cannot decode a record batch of {topic}-{partition}: {reason}")]
    Records {
        topic: String,
        partition: i32,
        reason: String,
    },
    /// Something the caller asked for is not possible (bad argument, unknown topic
    /// in a local lookup, no bootstrap server reachable, ...).
    #[error("{0}")]
    Invalid(String),
}

fn kafka_display(code: i16, name: &str, message: Option<&str>, context: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(c) = context {
        s.push_str(c);
        s.push_str(": ");
    }
    s.push_str(name);
    s.push_str(&format!(" (error code {code})"));
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

impl ClientError {
    /// A [`ClientError::Kafka`] for a non-zero error code.
    pub fn kafka(code: i16, message: Option<String>) -> ClientError {
        ClientError::Kafka {
            code,
            name: error_name(code),
            message,
            context: None,
        }
    }

    /// A Kafka error for `code`, naming what it applies to.
    pub fn at(code: i16, message: Option<String>, context: impl Into<String>) -> ClientError {
        ClientError::Kafka {
            code,
            name: error_name(code),
            message,
            context: Some(context.into()),
        }
    }

    /// `Err` for a non-zero code, naming what it applies to.
    pub fn check(
        code: i16,
        message: Option<String>,
        context: impl Into<String>,
    ) -> Result<(), ClientError> {
        if code == 0 {
            return Ok(());
        }
        Err(ClientError::Kafka {
            code,
            name: error_name(code),
            message,
            context: Some(context.into()),
        })
    }

    /// The Kafka error code, if this is a broker error.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying (after refreshing metadata) may succeed: retriable Kafka
    /// errors, timeouts and lost connections.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => is_retriable_code(*code),
            ClientError::Io { .. }
            | ClientError::Disconnected { .. }
            | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Whether Kafka marks this error code retriable.
pub fn is_retriable_code(code: i16) -> bool {
    ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// Kafka's name for an error code, e.g. 36 → `TOPIC_ALREADY_EXISTS`; 0 → `NONE`;
/// codes this client does not know → `UNKNOWN`.
pub fn error_name(code: i16) -> &'static str {
    if code == 0 {
        return "NONE";
    }
    static NAMES: OnceLock<BTreeMap<i16, String>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut map = BTreeMap::new();
        for c in -1..=i16::from(u8::MAX) {
            if let Some(e) = ResponseError::try_from_code(c) {
                if !matches!(e, ResponseError::Unknown(_)) {
                    map.insert(c, screaming_snake(&e.to_string()));
                }
            }
        }
        map
    });
    names.get(&code).map_or("UNKNOWN", String::as_str)
}

/// `TopicAlreadyExists` → `TOPIC_ALREADY_EXISTS`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

impl ClientError {
    /// A copy of this error, for reporting one failure to many waiters (I/O
    /// sources are re-created from their kind and text).
    pub fn duplicate(&self) -> ClientError {
        match self {
            ClientError::Io { addr, source } => ClientError::Io {
                addr: addr.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            ClientError::Disconnected { addr, reason } => ClientError::Disconnected {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            ClientError::Timeout { what, timeout_ms } => ClientError::Timeout {
                what: what.clone(),
                timeout_ms: *timeout_ms,
            },
            ClientError::Decode {
                api,
                version,
                reason,
            } => ClientError::Decode {
                api,
                version: *version,
                reason: reason.clone(),
            },
            ClientError::Encode {
                api,
                version,
                reason,
            } => ClientError::Encode {
                api,
                version: *version,
                reason: reason.clone(),
            },
            ClientError::ResponseTooLarge { addr, size, limit } => ClientError::ResponseTooLarge {
                addr: addr.clone(),
                size: *size,
                limit: *limit,
            },
            ClientError::UnsupportedApi { addr, api } => ClientError::UnsupportedApi {
                addr: addr.clone(),
                api,
            },
            ClientError::Kafka {
                code,
                name,
                message,
                context,
            } => ClientError::Kafka {
                code: *code,
                name,
                message: message.clone(),
                context: context.clone(),
            },
            ClientError::Records {
                topic,
                partition,
                reason,
            } => ClientError::Records {
                topic: topic.clone(),
                partition: *partition,
                reason: reason.clone(),
            },
            ClientError::Invalid(s) => ClientError::Invalid(s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_spelling() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(38), "INVALID_REPLICATION_FACTOR");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(35), "UNSUPPORTED_VERSION");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(30_000), "UNKNOWN");
    }

    #[test]
    fn kafka_error_display_names_context_code_and_message() {
        let e = ClientError::check(38, Some("only 1 broker".into()), "topic t").unwrap_err();
        assert_eq!(
            e.to_string(),
            "topic t: INVALID_REPLICATION_FACTOR (error code 38): only 1 broker"
        );
        assert_eq!(e.code(), Some(38));
        assert!(!e.is_retriable());
        assert!(ClientError::kafka(6, None).is_retriable());
    }
}
