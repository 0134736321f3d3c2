//! `prober proxy`: a shaping TCP proxy for any client.

use std::{net::SocketAddr, time::Duration};

use clap::Args;
use netem::proxy::{Proxy, ProxyConfig};

use super::{UsageError, link_args::LinkArgs};

/// Run a shaping TCP proxy: clients connect to --listen, bytes go to --upstream through an
/// emulated link (upstream → client is the "down" direction).
///
/// Each connection gets its own link; all share one radio (the proxy stands for one phone).
/// Connecting upstream pays the profile's DNS and handshake round trips. SIGINT (Ctrl-C) or SIGTERM stops accepting
/// and lets open connections finish for --grace-secs; a second signal exits at once.
///
/// Example: a 3G link in front of a local shop, seen through curl:
///
///   prober proxy --listen 127.0.0.1:9000 --upstream 127.0.0.1:8080 --profile ea-3g
///   curl -o /dev/null -w '%{time_total}\n' http://127.0.0.1:9000/
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Address to accept clients on.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Where to forward to: host:port.
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: String,

    #[command(flatten)]
    pub link: LinkArgs,

    /// Seconds open connections may take to finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub grace_secs: f64,
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let profile = args.link.resolve(None)?;
    let seed = args.link.seed();
    netem::proxy::split_host_port(&args.upstream).map_err(|e| UsageError(format!("--upstream {e}")))?;
    if !(args.grace_secs.is_finite() && args.grace_secs >= 0.0) {
        return Err(UsageError(format!("--grace-secs must be a non-negative number, got {}", args.grace_secs)).into());
    }
    let config = ProxyConfig {
        upstream: args.upstream.clone(),
        profile: profile.clone(),
        seed,
        grace: Duration::from_secs_f64(args.grace_secs),
    };
    let proxy =
        Proxy::bind(args.listen, config).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let local = proxy.local_addr()?;
    tracing::info!(
        listen = %local, upstream = %args.upstream, profile = %profile.name, seed,
        down_kbps = %profile.down, up_kbps = %profile.up, rtt_ms = profile.rtt().as_millis() as u64,
        "proxy ready (replay this link with --seed {seed})"
    );
    let shutdown = async {
        let signal = conf::shutdown::signal().await;
        tracing::info!(%signal, "stopping: no new connections (a second SIGINT/SIGTERM exits at once)");
        tokio::spawn(async {
            conf::shutdown::signal().await;
            std::process::exit(130);
        });
    };
    let summary = proxy.run(shutdown).await;
    tracing::info!(
        connections = summary.connections,
        failed = summary.failed,
        aborted = summary.aborted,
        bytes_up = summary.bytes_up,
        bytes_down = summary.bytes_down,
        "proxy stopped"
    );
    Ok(())
}
