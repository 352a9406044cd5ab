//! `samsa serve`: run a broker in the foreground until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use samsa_broker::cluster::ClusterSettings;
use samsa_broker::{Broker, BrokerSettings};
use samsa_metadata::config::StaticConfig;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on for Kafka clients (sets `listeners`).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Data directory (sets `log.dirs`). Default: ./samsa-data
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A Kafka-style properties file (server.properties).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one config key, e.g. --set num.partitions=3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Serve over TLS with a development CA and broker certificate,
    /// generated once into <data dir>/tls, and print the client settings.
    /// The listener is `SSL://` on --listen (default: `listeners` when set,
    /// else SSL://127.0.0.1:9093); SSL and SASL_SSL listeners use the certificate.
    #[arg(long)]
    dev_tls: bool,
}

fn load_config(args: &ServeArgs) -> anyhow::Result<StaticConfig> {
    let mut cfg = StaticConfig::default();
    let apply =
        |cfg: &mut StaticConfig, key: &str, value: &str, origin: &str| -> anyhow::Result<()> {
            let known = cfg
                .set(key, value)
                .with_context(|| format!("{origin}: {key}={value}"))?;
            if !known {
                tracing::warn!(
                    key,
                    origin,
                    "the configuration key is not known to samsa and is ignored"
                );
            }
            Ok(())
        };
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let props = StaticConfig::parse_properties(&text)
            .with_context(|| format!("parsing {}", path.display()))?;
        for (k, v) in props {
            apply(&mut cfg, &k, &v, &path.display().to_string())?;
        }
    }
    for kv in &args.set {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--set expects KEY=VALUE, got {kv:?}");
        };
        apply(&mut cfg, k.trim(), v.trim(), "--set")?;
    }
    let protocol = if args.dev_tls { "SSL" } else { "PLAINTEXT" };
    if let Some(listen) = &args.listen {
        apply(
            &mut cfg,
            "listeners",
            &format!("{protocol}://{listen}"),
            "--listen",
        )?;
    } else if args.dev_tls && cfg.explicit("listeners").is_none() {
        apply(&mut cfg, "listeners", "SSL://127.0.0.1:9093", "--dev-tls")?;
    }
    if let Some(dir) = &args.data_dir {
        apply(
            &mut cfg,
            "log.dirs",
            &dir.display().to_string(),
            "--data-dir",
        )?;
    }
    if args.dev_tls {
        dev_tls(&mut cfg)?;
    }
    // Fail closed: never serve with less security than configured.
    cfg.check_listener_security()?;
    samsa_security::check_listeners(&cfg)
        .context("samsa refuses to start rather than serve with less security than configured")?;
    samsa_security::Authorizer::from_config(&cfg)
        .context("samsa refuses to start rather than serve with less security than configured")?;
    Ok(cfg)
}

/// `--dev-tls`: makes (once) a CA and broker certificate in the data
/// directory, points the key store at them and prints the client settings.
fn dev_tls(cfg: &mut StaticConfig) -> anyhow::Result<()> {
    let dir = samsa_broker::settings::metadata_log_dir(cfg).join("tls");
    let hosts: Vec<String> = ["listeners", "advertised.listeners"]
        .iter()
        .filter_map(|k| cfg.get(k))
        .flat_map(|l| l.split(','))
        .filter_map(|l| l.split_once("://"))
        .filter_map(|(_, addr)| addr.rsplit_once(':'))
        .map(|(host, _)| host.trim_matches(['[', ']']).to_owned())
        .filter(|h| !h.is_empty() && h != "0.0.0.0" && h != "::")
        .collect();
    let made = samsa_security::dev::ensure(&dir, &hosts)
        .with_context(|| format!("--dev-tls: certificates in {}", dir.display()))?;
    cfg.set("ssl.keystore.type", "PEM")?;
    cfg.set(
        "ssl.keystore.location",
        &made.keystore.display().to_string(),
    )?;
    let bootstrap = cfg
        .get("advertised.listeners")
        .or(cfg.get("listeners"))
        .and_then(|l| l.split(',').next())
        .and_then(|l| l.split_once("://"))
        .map_or("127.0.0.1:9093".to_owned(), |(_, a)| a.to_owned());
    let state = if made.created { "generated" } else { "reused" };
    println!(
        "samsa --dev-tls: {state} a development CA and broker certificate in {dir}\n\
         Client settings (librdkafka / confluent-kafka; Java clients: ssl.truststore.type=PEM, ssl.truststore.location=...):\n\
         \x20 bootstrap.servers={bootstrap}\n\
         \x20 security.protocol=SSL\n\
         \x20 ssl.ca.location={ca}",
        dir = dir.display(),
        ca = made.ca.display(),
    );
    Ok(())
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = Arc::new(load_config(&args)?);
    // `controller.quorum.voters` set: one node of a cluster whose metadata is
    // a Raft quorum; otherwise the single-node broker (local metadata log).
    let cluster = ClusterSettings::from_config(&cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if let Some(c) = cluster.as_ref().filter(|c| !c.broker_role) {
        let served = runtime.block_on(controller_only(c.clone(), &cfg));
        runtime.shutdown_timeout(RUNTIME_STOP_WAIT);
        return served;
    }
    let settings = BrokerSettings::from_config(&cfg)?;
    let served = runtime.block_on(async move {
        // Installed before the listeners accept connections: a SIGTERM that
        // arrives while the logs are still opening ends the process cleanly
        // once startup is done (instead of killing it half-way).
        let mut signals = Signals::install()?;
        let mut listeners = Vec::new();
        for l in &settings.listeners {
            let socket = tokio::net::TcpListener::bind(l.bind)
                .await
                .with_context(|| format!("binding listener {} on {}", l.name, l.bind))?;
            listeners.push((l.name.clone(), socket));
        }
        let data_dir = settings.data_dir.clone();
        let broker = match cluster {
            None => Broker::open(settings, cfg).context("opening the data directory")?,
            Some(c) => {
                tracing::info!(node_id = c.node_id, voters = ?c.voters, voter = c.controller_listen.is_some(), "starting a cluster node");
                tokio::select! {
                    b = Broker::open_cluster(settings, cfg, c) => b.context("starting the cluster node")?,
                    _ = signals.wait() => {
                        tracing::info!("stopped while starting");
                        return Ok(());
                    }
                }
            }
        };
        tracing::info!(
            listen = %broker.settings.listen,
            data_dir = %data_dir.display(),
            node_id = broker.settings.node_id.get(),
            cluster_id = %broker.image().cluster_id,
            "samsa is serving"
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut server = tokio::spawn(samsa_broker::serve(broker.clone(), listeners, stop_rx));
        // The server ends by itself only when it cannot serve (a listener's
        // TLS setup, an HTTP address that cannot be bound): then the
        // process exits with that error instead of running without
        // listeners.
        let ended = tokio::select! {
            _ = signals.wait() => None,
            r = &mut server => Some(r),
        };
        if let Some(ended) = ended {
            broker.shutdown();
            return match ended {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("serving")),
                Err(e) => Err(anyhow::anyhow!("server task failed: {e}")),
            };
        }
        if broker.cluster.is_some() {
            tracing::info!("controlled shutdown: moving partition leadership to other brokers");
            samsa_broker::cluster::controlled_shutdown(&broker).await;
        }
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_tx.send(true);
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "server stopped with an error"),
            Err(e) => tracing::error!(error = %e, "server task failed"),
        }
        broker.shutdown();
        tracing::info!("shut down cleanly");
        Ok(())
    });
    // A blocking task still running (a metadata write that outlived the
    // shutdown) must not keep the process alive.
    runtime.shutdown_timeout(RUNTIME_STOP_WAIT);
    served
}

/// How long the process waits, once shut down, for blocking tasks to end.
const RUNTIME_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// `process.roles=controller`: a metadata voter that serves no Kafka clients;
/// while it leads the quorum it is the active controller (fences brokers that
/// stop heartbeating and moves their leaderships).
async fn controller_only(cluster: ClusterSettings, cfg: &Arc<StaticConfig>) -> anyhow::Result<()> {
    let data_dir = samsa_broker::settings::metadata_log_dir(cfg);
    let node_id = cluster.node_id;
    let _lock = samsa_broker::data_dir::DataDirLock::acquire(&data_dir)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let node =
        samsa_broker::cluster::ControllerNode::start(cluster, &data_dir, cfg.clone(), stop_rx)
            .await
            .context("starting the metadata quorum")?;
    tracing::info!(node_id, listen = ?node.local_addr(), "samsa controller is serving");
    Signals::install()?.wait().await;
    let _ = stop_tx.send(true);
    tracing::info!("shut down cleanly");
    Ok(())
}

/// SIGTERM and SIGINT handlers; a signal received after `install` is kept
/// until `wait` sees it.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
