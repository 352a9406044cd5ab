//! The broker's startup settings, derived from Kafka-style config keys.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use samsa_metadata::config::StaticConfig;
use samsa_model::BrokerId;

/// A bad startup setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    /// A setting samsa refuses (e.g. a listener that is not PLAINTEXT).
    #[error(transparent)]
    Config(#[from] samsa_metadata::config::ConfigError),
}

/// What the broker needs to start, resolved from the static config.
#[derive(Clone, Debug)]
pub struct BrokerSettings {
    pub node_id: BrokerId,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Host and port given to clients in Metadata.
    pub advertised_host: String,
    pub advertised_port: u16,
    pub rack: Option<String>,
    /// The directory of the metadata log (`metadata.log.dir`, default the
    /// first of `log.dirs`).
    pub data_dir: PathBuf,
    /// Every log directory (`log.dirs`, else `log.dir`), in configured order.
    pub log_dirs: Vec<PathBuf>,
    /// `socket.request.max.bytes`: larger frames close the connection.
    pub request_bytes_max: usize,
    /// `message.max.bytes` (topic default of `max.message.bytes`).
    pub message_bytes_max: usize,
    /// `batch.decompressed.bytes.max`: bound on inspecting compressed batches.
    pub batch_decompressed_bytes_max: usize,
    /// `queued.max.request.bytes`: request frame bytes held at once across
    /// all connections; `None` (the default, -1) for no shared limit.
    pub queued_request_bytes_max: Option<usize>,
    /// `max.connections`.
    pub connections_max: usize,
    /// `max.connections.per.ip`: connections from one address; more are
    /// closed as they arrive.
    pub connections_per_ip_max: usize,
    /// `max.connections.per.ip.overrides` (`host:count,...`), hosts resolved
    /// to their addresses at startup.
    pub connections_per_ip_overrides: HashMap<IpAddr, usize>,
    /// `connections.max.idle.ms`: a connection that sends nothing for this
    /// long is closed; `None` (a negative value) for never.
    pub connection_idle_max: Option<Duration>,
    /// Where the HTTP listener (metrics, health) binds (`http.listeners`),
    /// `None` when it is disabled (an empty value).
    pub http_listen: Option<HttpListen>,
    pub auto_create_topics: bool,
    /// Every Kafka-protocol listener (not the controller's), the first being
    /// `listen`; each advertises its own endpoint.
    pub listeners: Vec<Listener>,
}

/// One Kafka-protocol listener: its name, where it binds, and what it
/// advertises (`advertised.listeners` entry of the same name, else its own
/// address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub bind: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
}

fn resolve_bind(host: &str, port: u16) -> Result<SocketAddr, String> {
    let bind_host = if host.is_empty() { "0.0.0.0" } else { host };
    format!("{bind_host}:{port}").parse().or_else(|_| {
        std::net::ToSocketAddrs::to_socket_addrs(&(bind_host, port))
            .map_err(|e| format!("cannot resolve {bind_host}: {e}"))
            .and_then(|mut a| {
                a.next()
                    .ok_or_else(|| format!("cannot resolve {bind_host}"))
            })
    })
}

/// Parses `PLAINTEXT://host:port` (or `NAME://host:port`, or `host:port`) and
/// returns (listener name, host, port).
pub fn parse_listener(s: &str) -> Result<(String, String, u16), String> {
    let s = s.trim();
    let (name, rest) = match s.split_once("://") {
        Some((n, r)) => (n.to_string(), r),
        None => ("PLAINTEXT".to_string(), s),
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?} has an invalid port"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok((name, host, port))
}

/// Parses Kafka's `max.connections.per.ip.overrides`: `host:count` pairs
/// separated by commas, each host an IP address or a name resolved to all of
/// its addresses now.
pub fn parse_per_ip_overrides(s: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut out = HashMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, count) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("{entry:?} is not HOST:COUNT"))?;
        let count = count
            .trim()
            .parse::<i32>()
            .ok()
            .and_then(|c| usize::try_from(c).ok())
            .ok_or_else(|| format!("{entry:?} has an invalid count"))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))
                .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("cannot resolve {host:?}"));
        }
        for ip in addresses {
            out.insert(ip.to_canonical(), count);
        }
    }
    Ok(out)
}

impl BrokerSettings {
    /// Resolves settings from `cfg`.
    /// Fails closed on listeners whose security protocol samsa does not
    /// implement ([`StaticConfig::check_listener_security`]).
    pub fn from_config(cfg: &StaticConfig) -> Result<BrokerSettings, SettingsError> {
        cfg.check_listener_security()?;
        let invalid = |key, reason: String| SettingsError::Invalid { key, reason };
        let node_id = cfg
            .explicit("node.id")
            .or_else(|| cfg.explicit("broker.id"))
            .or_else(|| cfg.get("node.id"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let listeners = cfg.get("listeners").unwrap_or("PLAINTEXT://127.0.0.1:9092");
        let controller_names = crate::cluster::controller_listener_names(cfg);
        let mut client_listener = None;
        for l in listeners.split(',').filter(|l| !l.trim().is_empty()) {
            let (name, host, port) = parse_listener(l).map_err(|r| invalid("listeners", r))?;
            if !controller_names.contains(&name) && client_listener.is_none() {
                client_listener = Some((host, port));
            }
        }
        let (host, port) = client_listener
            .ok_or_else(|| invalid("listeners", "no client listener configured".into()))?;
        let bind_host = if host.is_empty() {
            "0.0.0.0".to_string()
        } else {
            host.clone()
        };
        let listen: SocketAddr = format!("{bind_host}:{port}")
            .parse()
            .or_else(|_| {
                std::net::ToSocketAddrs::to_socket_addrs(&(bind_host.as_str(), port))
                    .map_err(|e| e.to_string())
                    .and_then(|mut a| a.next().ok_or_else(|| "no address".to_string()))
            })
            .map_err(|e| invalid("listeners", format!("cannot resolve {bind_host}: {e}")))?;
        let (adv_host, adv_port) = match cfg.get("advertised.listeners") {
            Some(adv) if !adv.trim().is_empty() => {
                // The first advertised listener that is not a controller's.
                let mut client = None;
                for l in adv.split(',').filter(|l| !l.trim().is_empty()) {
                    let (name, h, p) =
                        parse_listener(l).map_err(|r| invalid("advertised.listeners", r))?;
                    if !controller_names.contains(&name) {
                        client = Some((h, p));
                        break;
                    }
                }
                client.ok_or_else(|| {
                    invalid(
                        "advertised.listeners",
                        "no client listener advertised".into(),
                    )
                })?
            }
            _ => {
                let h = if host.is_empty() || host == "0.0.0.0" || host == "::" {
                    "127.0.0.1".to_string()
                } else {
                    host.clone()
                };
                (h, listen.port())
            }
        };
        let log_dirs = configured_log_dirs(cfg);
        let data_dir = metadata_log_dir(cfg);
        let num = |key: &'static str| -> Result<usize, SettingsError> {
            cfg.get_i64(key)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| invalid(key, "not a non-negative number".into()))
        };
        let mut advertised: Vec<(String, String, u16)> = Vec::new();
        if let Some(adv) = cfg.get("advertised.listeners") {
            for l in adv.split(',').filter(|l| !l.trim().is_empty()) {
                advertised.push(parse_listener(l).map_err(|r| invalid("advertised.listeners", r))?);
            }
        }
        let mut all = Vec::new();
        for l in listeners.split(',').filter(|l| !l.trim().is_empty()) {
            let (name, host, port) = parse_listener(l).map_err(|r| invalid("listeners", r))?;
            if controller_names.contains(&name) {
                continue;
            }
            let bind = resolve_bind(&host, port).map_err(|r| invalid("listeners", r))?;
            let (ah, ap) = match advertised.iter().find(|(n, _, _)| *n == name) {
                Some((_, h, p)) => (h.clone(), *p),
                None if all.is_empty() => (adv_host.clone(), adv_port),
                None => {
                    let h = if host.is_empty() || host == "0.0.0.0" || host == "::" {
                        "127.0.0.1".to_string()
                    } else {
                        host.clone()
                    };
                    (h, bind.port())
                }
            };
            if all.iter().any(|x: &Listener| x.name == name) {
                return Err(invalid(
                    "listeners",
                    format!("listener {name} is named twice"),
                ));
            }
            all.push(Listener {
                name,
                bind,
                advertised_host: ah,
                advertised_port: ap,
            });
        }
        if let Some(first) = all.first_mut() {
            first.bind = listen;
        }
        let connections_per_ip_max = num("max.connections.per.ip")?;
        let connections_per_ip_overrides =
            parse_per_ip_overrides(cfg.get("max.connections.per.ip.overrides").unwrap_or(""))
                .map_err(|r| invalid("max.connections.per.ip.overrides", r))?;
        if connections_per_ip_max == 0 && connections_per_ip_overrides.is_empty() {
            return Err(invalid(
                "max.connections.per.ip",
                "can be 0 only if max.connections.per.ip.overrides is set".into(),
            ));
        }
        check_group_consumer_bounds(cfg)?;
        check_cordoned_log_dirs(cfg, &log_dirs)?;
        Ok(BrokerSettings {
            listeners: all,
            node_id: BrokerId(node_id),
            listen,
            advertised_host: adv_host,
            advertised_port: adv_port,
            rack: cfg.get("broker.rack").map(str::to_string),
            data_dir,
            log_dirs,
            request_bytes_max: num("socket.request.max.bytes")?,
            message_bytes_max: num("message.max.bytes")?,
            batch_decompressed_bytes_max: num("batch.decompressed.bytes.max")?,
            connections_max: num("max.connections")?,
            connections_per_ip_max,
            connections_per_ip_overrides,
            connection_idle_max: cfg
                .get_i64("connections.max.idle.ms")
                .and_then(|ms| u64::try_from(ms).ok())
                .map(Duration::from_millis),
            queued_request_bytes_max: cfg
                .get_i64("queued.max.request.bytes")
                .filter(|&b| b > 0)
                .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
            auto_create_topics: cfg.get_bool("auto.create.topics.enable"),
            http_listen: http_listen(cfg)?,
        })
    }
}

/// The HTTP listener's address, and whether the operator chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpListen {
    pub addr: SocketAddr,
    /// Set in the configuration (binding it must succeed), as opposed to the
    /// default `http://127.0.0.1:9644` (a port in use only logs a warning).
    pub explicit: bool,
}

/// `http.listeners`: one `http://host:port` entry, or empty to disable.
/// `https://` fails closed until the HTTP listener speaks TLS.
fn http_listen(cfg: &StaticConfig) -> Result<Option<HttpListen>, SettingsError> {
    let invalid = |reason: String| SettingsError::Invalid {
        key: "http.listeners",
        reason,
    };
    let value = cfg.get("http.listeners").unwrap_or("").trim();
    let entries: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let entry = match entries.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => {
            return Err(invalid(
                "samsa serves HTTP on one address; give one entry".into(),
            ))
        }
    };
    if entry.starts_with("https://") {
        return Err(invalid(
            "https is not implemented yet for the HTTP listener; use http:// on a trusted address"
                .into(),
        ));
    }
    let hostport = entry
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("{entry}: expected http://host:port")))?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .map_err(|e| invalid(format!("{entry}: {e}")))?
        .next()
        .ok_or_else(|| invalid(format!("{entry}: no address")))?;
    Ok(Some(HttpListen {
        addr,
        explicit: cfg.explicit("http.listeners").is_some(),
    }))
}

/// Every entry of `cordoned.log.dirs` is `*` or one of `log.dirs`
/// (KIP-1066): a mistyped path would otherwise cordon nothing, silently.
fn check_cordoned_log_dirs(cfg: &StaticConfig, log_dirs: &[PathBuf]) -> Result<(), SettingsError> {
    match cordoned_outside_log_dirs(cfg.get("cordoned.log.dirs").unwrap_or(""), log_dirs) {
        Some(entry) => Err(SettingsError::Invalid {
            key: "cordoned.log.dirs",
            reason: format!(
                "{entry} is not one of log.dirs ({})",
                cfg.get("log.dirs").unwrap_or("")
            ),
        }),
        None => Ok(()),
    }
}

/// The first entry of the `cordoned.log.dirs` value `value` that is neither
/// `*` nor one of `log_dirs` (also checked for a dynamic change,
/// `handlers::alter_configs`).
pub(crate) fn cordoned_outside_log_dirs(value: &str, log_dirs: &[PathBuf]) -> Option<String> {
    let same = |a: &Path, b: &Path| a.components().eq(b.components());
    value
        .split(',')
        .map(str::trim)
        .find(|e| !e.is_empty() && *e != "*" && !log_dirs.iter().any(|d| same(d, Path::new(e))))
        .map(str::to_string)
}

/// The consumer-group (KIP-848) defaults must lie within their own bounds
/// and the heartbeat must come before the session ends, or Kafka's group
/// coordinator refuses to start; a group config could otherwise never be
/// valid (every change is checked against the defaults it leaves in place).
fn check_group_consumer_bounds(cfg: &StaticConfig) -> Result<(), SettingsError> {
    let get = |k: &str| cfg.get_i64(k).unwrap_or(0);
    for (key, min_key, max_key) in [
        (
            "group.consumer.session.timeout.ms",
            "group.consumer.min.session.timeout.ms",
            "group.consumer.max.session.timeout.ms",
        ),
        (
            "group.consumer.heartbeat.interval.ms",
            "group.consumer.min.heartbeat.interval.ms",
            "group.consumer.max.heartbeat.interval.ms",
        ),
    ] {
        let (v, min, max) = (get(key), get(min_key), get(max_key));
        let bad = |reason: String| Err(SettingsError::Invalid { key, reason });
        if max < min {
            return bad(format!(
                "{max_key} must be greater than or equal to {min_key}"
            ));
        }
        if v < min {
            return bad(format!("{key} must be greater than or equal to {min_key}"));
        }
        if v > max {
            return bad(format!("{key} must be less than or equal to {max_key}"));
        }
    }
    if get("group.consumer.heartbeat.interval.ms") >= get("group.consumer.session.timeout.ms") {
        return Err(SettingsError::Invalid {
            key: "group.consumer.heartbeat.interval.ms",
            reason: "group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms".into(),
        });
    }
    Ok(())
}

/// The log directories of `cfg`: `log.dirs` (comma-separated, blanks and
/// repeats dropped), else `log.dir`, else `./samsa-data`.
pub fn configured_log_dirs(cfg: &StaticConfig) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in cfg.get("log.dirs").unwrap_or("").split(',') {
        let d = PathBuf::from(d.trim());
        if !d.as_os_str().is_empty() && !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    if dirs.is_empty() {
        dirs.push(PathBuf::from(cfg.get("log.dir").unwrap_or("./samsa-data")));
    }
    dirs
}

/// The metadata log's directory: `metadata.log.dir`, else the first log
/// directory (Kafka's rule).
pub fn metadata_log_dir(cfg: &StaticConfig) -> PathBuf {
    match cfg.get("metadata.log.dir").map(str::trim) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => configured_log_dirs(cfg).swap_remove(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cordoned_log_dirs_must_name_log_dirs() {
        let mut cfg = StaticConfig::default();
        cfg.set("log.dirs", "/data/a,/data/b/").unwrap();
        cfg.set("cordoned.log.dirs", "/data/b").unwrap();
        assert!(
            BrokerSettings::from_config(&cfg).is_ok(),
            "a trailing slash is the same dir"
        );
        cfg.set("cordoned.log.dirs", "*").unwrap();
        assert!(BrokerSettings::from_config(&cfg).is_ok());
        cfg.set("cordoned.log.dirs", "/data/a,/data/c").unwrap();
        let e = BrokerSettings::from_config(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("cordoned.log.dirs") && e.contains("/data/c is not one of log.dirs"),
            "{e}"
        );
    }

    #[test]
    fn group_consumer_defaults_outside_their_bounds_refuse_startup() {
        let mut cfg = StaticConfig::default();
        assert!(
            BrokerSettings::from_config(&cfg).is_ok(),
            "Kafka's defaults fit"
        );
        cfg.set("group.consumer.session.timeout.ms", "30000")
            .unwrap();
        let e = BrokerSettings::from_config(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("group.consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms"),
            "{e}"
        );
        cfg.set("group.consumer.min.session.timeout.ms", "20000")
            .unwrap();
        assert!(BrokerSettings::from_config(&cfg).is_ok());
        cfg.set("group.consumer.heartbeat.interval.ms", "16000")
            .unwrap();
        let e = BrokerSettings::from_config(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("must be less than or equal to group.consumer.max.heartbeat.interval.ms"),
            "{e}"
        );
        cfg.set("group.consumer.max.heartbeat.interval.ms", "40000")
            .unwrap();
        cfg.set("group.consumer.heartbeat.interval.ms", "30000")
            .unwrap();
        let e = BrokerSettings::from_config(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("must be less than group.consumer.session.timeout.ms"),
            "{e}"
        );
    }

    #[test]
    fn listeners_and_defaults_resolve_like_kafka() {
        let mut cfg = StaticConfig::default();
        let s = BrokerSettings::from_config(&cfg).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(s.data_dir, PathBuf::from("./samsa-data"));
        assert_eq!(s.request_bytes_max, 104_857_600);
        assert!(s.auto_create_topics);
        cfg.set(
            "listeners",
            "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        )
        .unwrap();
        cfg.set("controller.listener.names", "CONTROLLER").unwrap();
        cfg.set("advertised.listeners", "PLAINTEXT://localhost:29092")
            .unwrap();
        cfg.set("log.dirs", "/tmp/a,/tmp/b").unwrap();
        let s = BrokerSettings::from_config(&cfg).unwrap();
        assert_eq!(s.listen.port(), 19092);
        assert_eq!(
            (s.advertised_host.as_str(), s.advertised_port),
            ("localhost", 29092)
        );
        assert_eq!(s.data_dir, PathBuf::from("/tmp/a"));
        assert_eq!(
            s.log_dirs,
            vec![PathBuf::from("/tmp/a"), PathBuf::from("/tmp/b")]
        );
        assert_eq!(s.listeners.len(), 1);
        assert_eq!(s.listeners[0].name, "PLAINTEXT");

        // A second (inter-broker) listener with its own advertised endpoint.
        cfg.set(
            "listeners",
            "PLAINTEXT://127.0.0.1:19092,REPLICATION://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093",
        )
        .unwrap();
        cfg.set(
            "advertised.listeners",
            "PLAINTEXT://localhost:29092,REPLICATION://127.0.0.1:39094",
        )
        .unwrap();
        let s = BrokerSettings::from_config(&cfg).unwrap();
        assert_eq!(s.listeners.len(), 2);
        assert_eq!(s.listeners[1].name, "REPLICATION");
        assert_eq!(s.listeners[1].bind.port(), 19094);
        assert_eq!(s.listeners[1].advertised_port, 39094);
        cfg.set("listeners", "nonsense").unwrap();
        assert!(BrokerSettings::from_config(&cfg).is_err());
    }

    #[test]
    fn ssl_and_sasl_listeners_are_accepted_and_unknown_protocols_refused() {
        // SSL and SASL listeners are served (their TLS and SASL setups are
        // built and checked by samsa-security when the server starts).
        for listeners in [
            "SSL://127.0.0.1:9092",
            "SASL_SSL://127.0.0.1:9092",
            "SASL_PLAINTEXT://127.0.0.1:9092",
        ] {
            let mut cfg = StaticConfig::default();
            cfg.set("listeners", listeners).unwrap();
            let settings = BrokerSettings::from_config(&cfg).expect(listeners);
            assert_eq!(
                Some(settings.listeners[0].name.as_str()),
                listeners.split_once("://").map(|(n, _)| n)
            );
        }
        let mut cfg = StaticConfig::default();
        cfg.set(
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,INTERNAL://127.0.0.1:9093",
        )
        .unwrap();
        cfg.set(
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,INTERNAL:KERBEROS",
        )
        .unwrap();
        let err = BrokerSettings::from_config(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("INTERNAL://127.0.0.1:9093") && err.contains("refuses to start"),
            "{err}"
        );
    }

    #[test]
    fn connection_limits_parse_like_kafka() {
        let mut cfg = StaticConfig::default();
        let s = BrokerSettings::from_config(&cfg).unwrap();
        assert_eq!(s.connection_idle_max, Some(Duration::from_secs(600)));
        assert_eq!(s.connections_per_ip_max, i32::MAX as usize);
        assert!(s.connections_per_ip_overrides.is_empty());

        cfg.set("connections.max.idle.ms", "-1").unwrap();
        cfg.set("max.connections.per.ip", "0").unwrap();
        let refused = BrokerSettings::from_config(&cfg).unwrap_err().to_string();
        assert!(refused.contains("max.connections.per.ip"), "{refused}");
        // localhost may resolve to ::1 too; name [::1] after it to pin it.
        cfg.set(
            "max.connections.per.ip.overrides",
            " 10.0.0.1:5,localhost:7, [::1]:0",
        )
        .unwrap();
        let s = BrokerSettings::from_config(&cfg).unwrap();
        assert_eq!(s.connection_idle_max, None, "negative: never");
        let o = &s.connections_per_ip_overrides;
        assert_eq!(o.get(&"10.0.0.1".parse::<IpAddr>().unwrap()), Some(&5));
        assert_eq!(o.get(&"::1".parse::<IpAddr>().unwrap()), Some(&0));
        assert_eq!(o.get(&"127.0.0.1".parse::<IpAddr>().unwrap()), Some(&7));

        for bad in [
            "10.0.0.1",
            "10.0.0.1:x",
            "10.0.0.1:-1",
            "no-such-host.invalid:3",
        ] {
            assert!(parse_per_ip_overrides(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_http_listener_defaults_to_local_9644_and_refuses_what_it_cannot_serve() {
        let mut cfg = StaticConfig::default();
        let s = BrokerSettings::from_config(&cfg).unwrap();
        assert_eq!(
            s.http_listen,
            Some(HttpListen {
                addr: "127.0.0.1:9644".parse().unwrap(),
                explicit: false
            })
        );
        cfg.set("http.listeners", "http://127.0.0.1:0").unwrap();
        let s = BrokerSettings::from_config(&cfg).unwrap();
        assert_eq!(
            s.http_listen.map(|h| (h.addr.port(), h.explicit)),
            Some((0, true))
        );
        cfg.set("http.listeners", "").unwrap();
        assert_eq!(BrokerSettings::from_config(&cfg).unwrap().http_listen, None);
        for bad in [
            "https://127.0.0.1:9644",
            "http://127.0.0.1:1,http://127.0.0.1:2",
            "127.0.0.1:9644",
        ] {
            cfg.set("http.listeners", bad).unwrap();
            let e = BrokerSettings::from_config(&cfg).unwrap_err().to_string();
            assert!(e.contains("http.listeners"), "{bad}: {e}");
        }
    }
}
