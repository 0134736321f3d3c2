//! The one server (HTTP/1.1 and HTTP/2, bounded as in [`crate::config::HttpLimits`]): binds,
//! wires the services behind their fault layers, serves until [`SandboxHandle::shutdown`].

use crate::modem::smsc::SmsCentre;
use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use parking_lot::Mutex;
use serde_json::json;
use tokio::{net::TcpListener, sync::oneshot, task::JoinSet, time::Instant};

use crate::{
    Error,
    airtel::{self, Airtel, AirtelError},
    client::HttpClient,
    config::Config,
    daraja::{self, Daraja, DarajaError},
    error::ApiError,
    faults::{Fault, Faults, Service},
    listen,
    momo::{self, Momo, MomoError},
    mpesa_tz::{self, MpesaTz, OpenApiError},
    shop::{self, ShopState},
    ussd::{self, UssdState},
};

/// Largest request body accepted by any endpoint.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long in-flight requests may finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Background work (STK settlements and callbacks), aborted at shutdown.
#[derive(Clone, Default)]
pub(crate) struct Tasks(Arc<Mutex<JoinSet<()>>>);

impl Tasks {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.0.lock();
        // Reap what has finished so the set stays as small as the work in flight.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    async fn shutdown(&self) {
        let mut set = std::mem::take(&mut *self.0.lock());
        set.shutdown().await;
    }
}

/// Starts sandboxes.
pub struct Sandbox;

/// A running sandbox. Dropping it without [`shutdown`](SandboxHandle::shutdown) leaves the server
/// running until the runtime ends.
pub struct SandboxHandle {
    local_addr: SocketAddr,
    base_url: String,
    faults: Faults,
    sms: SmsCentre,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    tasks: Tasks,
}

impl Sandbox {
    /// Binds `config.listen` and serves every service on it.
    pub async fn start(config: Config) -> Result<SandboxHandle, Error> {
        config.validate()?;
        let addr = config.listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let base_url = base_url_for(local_addr);

        let faults = Faults::new(config.faults.clone(), config.seed);
        let tasks = Tasks::default();
        let http = HttpClient::new();
        let ussd = Arc::new(UssdState::new(&config));
        let sms = SmsCentre::default();
        let daraja = Arc::new(Daraja::new(&config, faults.clone(), tasks.clone(), http.clone(), sms.clone()));
        let momo = Arc::new(Momo::new(&config, tasks.clone(), http.clone(), sms.clone()));
        let airtel = Arc::new(Airtel::new(&config, tasks.clone(), http.clone()));
        let mpesa_tz = Arc::new(MpesaTz::new(&config).map_err(Error::Config)?);
        let shop = Arc::new(ShopState::new(&config, &base_url, http));

        let app = Router::new()
            .merge(with_faults(ussd::router(ussd.clone()), &faults, Service::Ussd))
            .merge(with_faults(daraja::router(daraja), &faults, Service::Daraja))
            .merge(with_faults(momo::router(momo), &faults, Service::Momo))
            .merge(with_faults(airtel::router(airtel), &faults, Service::Airtel))
            .merge(with_faults(mpesa_tz::router(mpesa_tz), &faults, Service::MpesaTz))
            .merge(with_faults(shop::router(shop), &faults, Service::Shop))
            .merge(ussd::inspection_router(ussd))
            .merge(admin_router(faults.clone()))
            .merge(sms_router(sms.clone()))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(middleware::from_fn_with_state((config.http.body_timeout, MAX_BODY_BYTES), listen::read_body))
            .layer(middleware::from_fn(access_log));

        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let server = tokio::spawn(listen::serve(listener, app, config.http.clone(), stopped, SHUTDOWN_GRACE));
        tracing::info!(%base_url, "sandbox listening");
        Ok(SandboxHandle { local_addr, base_url, faults, sms, stop: Some(stop), server, tasks })
    }
}

/// `http://IP:PORT` for a bound address; an unspecified address (0.0.0.0, ::) is reached over
/// loopback.
fn base_url_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`: the Daraja, MoMo, Airtel and M-Pesa OpenAPI base URL, and the prefix of every other
    /// service.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The live fault settings: `set`, `get`, `clear`.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The SMS centre: give it to a modem emulator ([`crate::modem::ModemConfig::sms`]) so the
    /// payment confirmations and `POST /admin/sms` messages reach that modem.
    pub fn sms(&self) -> &SmsCentre {
        &self.sms
    }

    /// Each service's name and base URL, as the binary prints them.
    pub fn service_urls(&self) -> Vec<(&'static str, String)> {
        let b = &self.base_url;
        vec![
            ("USSD, Africa's Talking", format!("{b}/ussd/at")),
            ("USSD, AT end-of-session events", format!("{b}/ussd/at/events")),
            ("USSD, Hubtel", format!("{b}/ussd/hubtel")),
            ("USSD, Nalo", format!("{b}/ussd/nalo")),
            ("Daraja (base URL)", b.clone()),
            ("MTN MoMo (base URL)", b.clone()),
            ("Airtel Money (base URL)", b.clone()),
            ("Vodacom M-Pesa OpenAPI (base URL)", b.clone()),
            ("Shop API", format!("{b}/shop/api")),
            ("Fault admin", format!("{b}/admin/faults")),
            ("Health", format!("{b}/healthz")),
        ]
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s), and aborts pending callbacks.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The server drains for SHUTDOWN_GRACE itself; the extra second is for it to return.
        if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), &mut self.server).await.is_err() {
            self.server.abort();
        }
        self.tasks.shutdown().await;
        tracing::info!("sandbox stopped");
    }
}

fn with_faults(router: Router, faults: &Faults, service: Service) -> Router {
    router.layer(middleware::from_fn_with_state((faults.clone(), service), fault_layer))
}

/// Applies the service's faults to one request: outage → 503 at once; otherwise the drawn delay,
/// then the request echoed in a 500, an injected 500, or the service's own answer.
async fn fault_layer(State((faults, service)): State<(Faults, Service)>, request: Request, next: Next) -> Response {
    let decision = faults.decide(service);
    if decision.outage {
        return fault_response(service, StatusCode::SERVICE_UNAVAILABLE, "outage");
    }
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    if decision.echo {
        return crate::faults::echo(request).await;
    }
    if decision.error {
        return fault_response(service, StatusCode::INTERNAL_SERVER_ERROR, "error");
    }
    next.run(request).await
}

/// The injected answer in the service's own style; `x-sandbox-fault` says it was injected.
fn fault_response(service: Service, status: StatusCode, kind: &'static str) -> Response {
    let unavailable = status == StatusCode::SERVICE_UNAVAILABLE;
    let mut response = match service {
        Service::Ussd => {
            let text = if unavailable { "Service unavailable" } else { "Internal server error" };
            (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Service::Daraja if unavailable => DarajaError::injected_outage().into_response(),
        Service::Daraja => DarajaError::injected_error().into_response(),
        Service::Momo if unavailable => MomoError::injected_outage().into_response(),
        Service::Momo => MomoError::injected_error().into_response(),
        Service::Airtel if unavailable => AirtelError::injected_outage().into_response(),
        Service::Airtel => AirtelError::injected_error().into_response(),
        Service::MpesaTz if unavailable => OpenApiError::injected_outage().into_response(),
        Service::MpesaTz => OpenApiError::injected_error().into_response(),
        Service::Shop => {
            let text =
                if unavailable { "shop unavailable (injected outage)" } else { "internal error (injected fault)" };
            ApiError::new(status, text).into_response()
        }
        // The modem has no HTTP routes; its faults act on the AT port (crate::modem).
        Service::Modem => (status, "modem fault").into_response(),
    };
    response.headers_mut().insert("x-sandbox-fault", HeaderValue::from_static(kind));
    response
}

/// One debug line per request: method, path (never the query; phone numbers in it masked),
/// status, time.
async fn access_log(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let path = crate::mask::mask_phones(request.uri().path());
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_ms = start.elapsed().as_millis() as u64, "request");
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!("no route for {} {}", request.method(), request.uri().path()))
}

fn admin_router(faults: Faults) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/admin/faults", get(list_faults).delete(clear_faults))
        .route("/admin/faults/{service}", get(get_fault).put(put_fault).delete(clear_fault))
        .with_state(faults)
}

/// `POST /admin/sms` `{"to": "+2547…", "from": "MPESA", "text": "…"}` injects a message;
/// `GET /admin/sms` lists them (numbers masked).
fn sms_router(sms: SmsCentre) -> Router {
    Router::new().route("/admin/sms", get(list_sms).post(post_sms)).with_state(sms)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSms {
    to: String,
    from: String,
    text: String,
}

async fn post_sms(State(sms): State<SmsCentre>, body: Bytes) -> Result<Response, ApiError> {
    let new: NewSms = crate::error::parse_json(&body)?;
    sms.send(&new.to, &new.from, &new.text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(to = %crate::mask_phone(&new.to), "sms injected");
    Ok((StatusCode::CREATED, Json(json!({ "status": "queued" }))).into_response())
}

async fn list_sms(State(sms): State<SmsCentre>) -> Response {
    Json(json!({ "messages": sms.list() })).into_response()
}

fn service(name: &str) -> Result<Service, ApiError> {
    name.parse::<Service>().map_err(|e| ApiError::not_found(e.reason))
}

async fn list_faults(State(faults): State<Faults>) -> Response {
    Json(faults.snapshot()).into_response()
}

async fn clear_faults(State(faults): State<Faults>) -> Response {
    faults.clear();
    tracing::info!("faults cleared");
    Json(faults.snapshot()).into_response()
}

async fn get_fault(State(faults): State<Faults>, Path(name): Path<String>) -> Result<Json<Fault>, ApiError> {
    Ok(Json(faults.get(service(&name)?)))
}

async fn put_fault(
    State(faults): State<Faults>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Fault>, ApiError> {
    let service = service(&name)?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let fault = Fault::from_json(service, &value).map_err(|e| ApiError::bad_request(e.to_string()))?;
    faults.set(service, fault.clone()).map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(%service, ?fault, "fault set");
    Ok(Json(fault))
}

async fn clear_fault(State(faults): State<Faults>, Path(name): Path<String>) -> Result<Json<Fault>, ApiError> {
    let service = service(&name)?;
    faults.clear_service(service);
    tracing::info!(%service, "fault cleared");
    Ok(Json(faults.get(service)))
}

#[cfg(test)]
mod tests {
    use super::base_url_for;

    #[test]
    fn base_urls_reach_unspecified_addresses_over_loopback() {
        assert_eq!(base_url_for("0.0.0.0:7700".parse().unwrap()), "http://127.0.0.1:7700");
        assert_eq!(base_url_for("[::]:7700".parse().unwrap()), "http://[::1]:7700");
        assert_eq!(base_url_for("127.0.0.2:80".parse().unwrap()), "http://127.0.0.2:80");
    }
}
