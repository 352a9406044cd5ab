//! Connection quotas, as Kafka's `ConnectionQuotas`: at most
//! `max.connections` client connections in all and `max.connections.per.ip`
//! from one address (`max.connections.per.ip.overrides` names other limits
//! for some addresses). The server takes a [`ConnectionPermit`] for each
//! accepted connection and closes the connection at once when it is refused;
//! dropping the permit (the connection ended) frees its place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::settings::BrokerSettings;

/// Why a new connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("max.connections ({0}) reached")]
    Total(usize),
    #[error("{ip} already has {limit} connections (max.connections.per.ip)")]
    PerIp { ip: IpAddr, limit: usize },
}

/// The limits and the current counts.
#[derive(Debug)]
pub struct ConnectionQuotas {
    total_max: usize,
    per_ip_max: usize,
    overrides: HashMap<IpAddr, usize>,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// Only addresses with at least one connection (bounded by the total).
    per_ip: HashMap<IpAddr, usize>,
}

/// One accepted connection's place in the quotas; freed on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl ConnectionQuotas {
    pub fn new(settings: &BrokerSettings) -> Arc<ConnectionQuotas> {
        Self::with_limits(
            settings.connections_max,
            settings.connections_per_ip_max,
            settings.connections_per_ip_overrides.clone(),
        )
    }

    pub fn with_limits(
        total_max: usize,
        per_ip_max: usize,
        overrides: HashMap<IpAddr, usize>,
    ) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            total_max,
            per_ip_max,
            overrides,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The limit for `ip`.
    pub fn limit_for(&self, ip: IpAddr) -> usize {
        self.overrides
            .get(&ip.to_canonical())
            .copied()
            .unwrap_or(self.per_ip_max)
    }

    /// Takes a place for a new connection from `ip`, or says which limit
    /// it would exceed.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refused> {
        let ip = ip.to_canonical();
        let limit = self.limit_for(ip);
        let mut counts = self.lock();
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= limit {
            return Err(Refused::PerIp { ip, limit });
        }
        if counts.total >= self.total_max {
            return Err(Refused::Total(self.total_max));
        }
        counts.total += 1;
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        Ok(ConnectionPermit {
            quotas: self.clone(),
            ip,
        })
    }

    /// Connections open now (in all, from `ip`).
    pub fn count(&self, ip: IpAddr) -> (usize, usize) {
        let counts = self.lock();
        let from_ip = counts.per_ip.get(&ip.to_canonical()).copied();
        (counts.total, from_ip.unwrap_or(0))
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut counts = self.quotas.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn per_ip_limits_overrides_and_total() {
        let overrides = HashMap::from([(ip("10.0.0.2"), 3), (ip("10.0.0.3"), 0)]);
        let q = ConnectionQuotas::with_limits(5, 2, overrides);
        let a: Vec<_> = (0..2)
            .map(|_| q.try_acquire(ip("10.0.0.1")).expect("within the limit"))
            .collect();
        assert_eq!(
            q.try_acquire(ip("10.0.0.1")).unwrap_err(),
            Refused::PerIp {
                ip: ip("10.0.0.1"),
                limit: 2
            }
        );
        // The same address as IPv4-mapped IPv6 (a dual-stack listener).
        assert!(q.try_acquire(ip("::ffff:10.0.0.1")).is_err());
        assert!(q.try_acquire(ip("10.0.0.3")).is_err(), "override 0");
        let b: Vec<_> = (0..3)
            .map(|_| q.try_acquire(ip("10.0.0.2")).expect("override 3"))
            .collect();
        assert_eq!(q.count(ip("10.0.0.2")), (5, 3));
        assert_eq!(
            q.try_acquire(ip("10.0.0.4")).unwrap_err(),
            Refused::Total(5)
        );
        drop(a);
        assert_eq!(q.count(ip("10.0.0.1")), (3, 0));
        let _again = q.try_acquire(ip("10.0.0.1")).expect("places freed");
        drop(b);
        assert_eq!(q.count(ip("10.0.0.2")), (1, 0));
    }
}
