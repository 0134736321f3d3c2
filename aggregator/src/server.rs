//! Wiring: open the store, build the routes, listen (rustls with ALPN h2 + http/1.1 unless on
//! loopback; HTTP/1.1 and HTTP/2 either way, through httpserve's bounds on slow, idle and hostile
//! clients: `connections:` in the config), run maintenance every minute, and shut down
//! gracefully: stop accepting, let in-flight requests finish (bounded), close the store.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use httpserve::TowerToHyperService;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

use crate::{
    alerts::AlertSender,
    clock::SharedClock,
    config::{Config, TlsFiles},
    ingest::{IngestOptions, Ingestor},
    metrics::Metrics,
    relay::Relay,
    slo::service::SloService,
    store::{Store, StoreError, StoreOptions},
    web::{self, AppState},
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {path}: cannot read {what}")]
    TlsFile { path: std::path::PathBuf, what: &'static str, source: rustls::pki_types::pem::Error },
    #[error("TLS: {path}: no certificate found")]
    NoCertificate { path: std::path::PathBuf },
    #[error("TLS: {what}")]
    Tls { what: &'static str, source: rustls::Error },
    /// A start-up task (opening the store, rebuilding the SLO windows) panicked or was cancelled.
    #[error("{task} did not finish")]
    Task { task: &'static str, source: tokio::task::JoinError },
    #[error("connections.{0}")]
    Limits(#[from] httpserve::Error),
}

/// How often compaction, retention and the disk bound run.
pub const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

/// A running aggregator.
pub struct Server {
    local_addr: SocketAddr,
    tls: bool,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    store: Arc<Store>,
    state: AppState,
    grace: Duration,
    /// The OTLP push task and how long its final push may take.
    otlp: Option<(JoinHandle<()>, Duration)>,
}

impl Server {
    /// Opens the store and starts listening on `config.listen`.
    pub async fn start(config: &Config, clock: SharedClock) -> Result<Server, ServeError> {
        let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
        let opts = StoreOptions {
            retention: config.retention,
            compact_after: config.compact_after,
            max_disk_bytes: config.max_disk_bytes,
            busy_timeout: config.busy_timeout,
        };
        let dir = config.data_dir.clone();
        let store = Arc::new(
            tokio::task::spawn_blocking(move || Store::open(&dir, opts))
                .await
                .map_err(|source| ServeError::Task { task: "opening the store", source })??,
        );
        let metrics = Arc::new(Metrics::with_replica(config.replica.as_deref()));
        let ingest = Arc::new(Ingestor::new(
            config.probers.clone(),
            store.clone(),
            clock.clone(),
            metrics.clone(),
            IngestOptions::from_config(config),
        )?);
        let relay = Arc::new(Relay::new(clock.clone(), config.relay.ttl, config.relay.max_kept));
        let (stop, stopped) = watch::channel(false);

        // The SLO engine: rebuilt from what the store holds, then fed by ingest, evaluated on the clock.
        let slo = SloService::new(config.slo.slos.clone(), clock.clone());
        {
            let (store, slo, now) = (store.clone(), slo.clone(), clock.now_ms());
            let buckets = tokio::task::spawn_blocking(move || slo.hydrate(&store, now))
                .await
                .map_err(|source| ServeError::Task { task: "rebuilding the SLO windows", source })??;
            tracing::info!(buckets, slos = config.slo.slos.len(), "SLO windows rebuilt from the store");
        }
        ingest.attach_slo(slo.clone());
        let alerts = config
            .alertmanager
            .as_ref()
            .map(|a| AlertSender::new(a, config.slo.public_url.clone(), config.replica.clone(), metrics.clone()));
        let radios = (ingest.clone(), clock.clone());
        tokio::spawn(slo.clone().run(config.slo.evaluation_interval, stopped.clone(), move |svc, transitions| {
            if let Some(a) = &alerts {
                a.on_evaluation(svc, &transitions);
                a.on_radios(radios.1.now_ms(), &radios.0.site_modems());
            }
        }));

        let otlp = config.otlp.as_ref().map(|o| {
            let exporter = crate::otlp::Exporter::new(
                crate::otlp::Client::new(o.clone()),
                slo.clone(),
                metrics.clone(),
                clock.clone(),
            );
            tracing::info!(url = %o.url, interval = ?o.interval, "pushing metrics over OTLP/HTTP");
            let bound = exporter.final_push_bound();
            (tokio::spawn(exporter.run(stopped.clone())), bound)
        });

        let state = AppState {
            ingest,
            store: store.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            down_after_intervals: config.down_after_intervals,
            slo,
        };
        for rw in &config.remote_write {
            let writer = crate::remote_write::RemoteWriter::new(rw.clone(), config.replica.as_deref(), metrics.clone());
            let app = state.clone();
            let source: crate::remote_write::Source = Arc::new(move || web::exposition(&app));
            tracing::info!(remote = %rw.name, url = %rw.url, interval = ?rw.interval, "remote write on");
            tokio::spawn(writer.run(source, clock.clone(), stopped.clone()));
        }
        let router = web::router(state.clone(), relay);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Bind { addr: config.listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind { addr: config.listen, source })?;
        let grace = config.shutdown_grace;
        let has_tls = tls.is_some();
        let mut http = httpserve::Listener::new(listener, "api", config.connections.clone(), metrics.listener.clone())?;
        if let Some(acceptor) = tls {
            http = http.with_tls(acceptor);
        }
        let task = tokio::spawn(http.serve(TowerToHyperService::new(router), until_stopped(stopped.clone()), grace));
        tokio::spawn(maintenance(store.clone(), clock, metrics, stopped));
        Ok(Server { local_addr, tls: has_tls, stop, task, store, state, grace, otlp })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https://…` or `http://…` for this listener.
    pub fn base_url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.local_addr)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, waits for in-flight requests (at most `shutdown_grace`), closes the store.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        let _ = self.stop.send(true);
        if tokio::time::timeout(self.grace + Duration::from_secs(1), self.task).await.is_err() {
            tracing::warn!("the listener did not stop in time");
        }
        if let Some((task, bound)) = self.otlp
            && tokio::time::timeout(bound, task).await.is_err()
        {
            tracing::warn!("the final OTLP push did not finish in time");
        }
        drop(self.state);
        // In-flight store writes hold their own Arc; wait for them to finish before closing.
        let mut store = self.store;
        for _ in 0..100 {
            match Arc::try_unwrap(store) {
                Ok(s) => return tokio::task::spawn_blocking(move || s.close()).await.unwrap_or(Ok(())),
                Err(s) => {
                    store = s;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        tracing::warn!("the store is still in use; leaving it to be closed on exit (every commit is durable)");
        Ok(())
    }
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|source| ServeError::TlsFile { path: files.cert_file.clone(), what: "certificates", source })?;
    if certs.is_empty() {
        return Err(ServeError::NoCertificate { path: files.cert_file.clone() });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|source| ServeError::TlsFile {
        path: files.key_file.clone(),
        what: "the private key",
        source,
    })?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|source| ServeError::Tls { what: "protocol versions", source })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| ServeError::Tls { what: "certificate and key do not fit", source })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Resolves once `true` is sent (or the sender is gone).
async fn until_stopped(mut rx: watch::Receiver<bool>) {
    loop {
        let stop = *rx.borrow_and_update();
        if stop || rx.changed().await.is_err() {
            return;
        }
    }
}

async fn maintenance(store: Arc<Store>, clock: SharedClock, metrics: Arc<Metrics>, stopped: watch::Receiver<bool>) {
    let mut next = tokio::time::Instant::now() + MAINTENANCE_EVERY;
    let stop = until_stopped(stopped);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = &mut stop => return,
        }
        next += MAINTENANCE_EVERY;
        let s = store.clone();
        let now = clock.now_ms();
        match tokio::task::spawn_blocking(move || s.maintain(now)).await {
            Ok(Ok(m)) => {
                metrics.compacted_rows.inc_by(m.compacted);
                metrics.expired_rows.inc_by(m.expired);
                metrics.dropped_rows.inc_by(m.dropped_for_disk);
                if m.dropped_for_disk > 0 {
                    tracing::warn!(
                        rows = m.dropped_for_disk,
                        "the store reached max_disk_bytes; dropped the oldest rollups"
                    );
                }
            }
            Ok(Err(e)) => {
                metrics.store_errors.inc();
                tracing::error!(error = %e, "store maintenance failed");
            }
            Err(e) => tracing::error!(error = %e, "store maintenance task failed"),
        }
        metrics.disk_bytes.set(store.disk_bytes() as i64);
    }
}
