//! The API versions this client speaks and the negotiation with a broker's
//! ApiVersions answer: for each API, the highest version both sides support.
//!
//! The client speaks the flexible (tagged-field) versions of every API except
//! ApiVersions itself (v3, falling back to v0). Apache Kafka supports all of
//! them from 2.8 on, and 4.x's baseline (KIP-896) keeps them.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;

use crate::guard;

/// The version range this client implements for `key` (the guard covers the same).
pub fn client_range(key: ApiKey) -> Option<(i16, i16)> {
    guard::covered(key)
}

/// One API as a broker advertises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokerApi {
    pub key: i16,
    pub min: i16,
    pub max: i16,
}

/// The negotiated versions of one connection.
#[derive(Clone, Debug, Default)]
pub struct Negotiated {
    broker: HashMap<i16, (i16, i16)>,
}

impl Negotiated {
    /// From the broker's ApiVersions list.
    pub fn new(apis: impl IntoIterator<Item = BrokerApi>) -> Self {
        Negotiated {
            broker: apis.into_iter().map(|a| (a.key, (a.min, a.max))).collect(),
        }
    }

    /// The highest version of `key` both sides support, if the ranges overlap.
    pub fn version(&self, key: ApiKey) -> Option<i16> {
        let (cmin, cmax) = client_range(key)?;
        let &(bmin, bmax) = self.broker.get(&(key as i16))?;
        pick(cmin, cmax, bmin, bmax)
    }

    /// Whether the broker lists `key` at all (in any version).
    pub fn broker_lists(&self, key: ApiKey) -> bool {
        self.broker.contains_key(&(key as i16))
    }

    /// The broker's advertised range for `key`.
    pub fn broker_range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.broker.get(&(key as i16)).copied()
    }
}

/// The highest version in both `[cmin, cmax]` and `[bmin, bmax]`.
pub fn pick(cmin: i16, cmax: i16, bmin: i16, bmax: i16) -> Option<i16> {
    let v = cmax.min(bmax);
    (v >= cmin.max(bmin)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_common_version() {
        assert_eq!(pick(9, 12, 0, 13), Some(12));
        assert_eq!(pick(9, 12, 0, 10), Some(10));
        assert_eq!(pick(9, 12, 0, 8), None);
        assert_eq!(pick(6, 9, 8, 9), Some(9));
        let n = Negotiated::new([
            BrokerApi {
                key: ApiKey::Metadata as i16,
                min: 0,
                max: 12,
            },
            BrokerApi {
                key: ApiKey::Fetch as i16,
                min: 4,
                max: 17,
            },
            BrokerApi {
                key: ApiKey::Produce as i16,
                min: 3,
                max: 8,
            },
        ]);
        assert_eq!(n.version(ApiKey::Metadata), Some(12));
        assert_eq!(n.version(ApiKey::Fetch), Some(15));
        assert_eq!(n.version(ApiKey::Produce), None, "broker too old");
        assert_eq!(n.version(ApiKey::JoinGroup), None, "not listed");
        assert!(n.broker_lists(ApiKey::Produce));
    }
}
