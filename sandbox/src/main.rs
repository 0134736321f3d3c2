//! `sandbox`: the reference targets as a server for demos and manual runs.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use sandbox::{Config, FaultSet, Sandbox, config::SANDBOX_PASSKEY};

const AFTER_HELP: &str = "\
STK push outcome by the PhoneNumber's last two digits:
  00     success (ResultCode 0)
  01     1032 cancelled by user
  02     1 insufficient funds
  03     2001 wrong PIN
  04     no callback at all; STK Query pending until --query-expiry-secs, then 1037
  05     success, but the callback is delivered 3 times (duplicates)
  06     1037 DS timeout
  07     1025 error sending the push
  08     1019 transaction expired
  09     slow: success with the callback after 10x --callback-delay-ms
  other  success (0)

MTN MoMo request to pay outcome by the payer's (partyId's) last two digits:
  00     SUCCESSFUL
  01     FAILED APPROVAL_REJECTED
  02     FAILED NOT_ENOUGH_FUNDS
  03     FAILED PAYER_LIMIT_REACHED
  04     PENDING until --query-expiry-secs (nobody answers), then FAILED COULD_NOT_PERFORM_TRANSACTION
  05     SUCCESSFUL, the callback delivered 3 times
  06     FAILED EXPIRED
  07     FAILED INTERNAL_PROCESSING_ERROR
  08     FAILED PAYER_NOT_FOUND (also any non-MTN number in mtnuganda)
  09     SUCCESSFUL after 10x --callback-delay-ms
  10     FAILED SENDER_ACCOUNT_NOT_ACTIVE
  11     FAILED TRANSACTION_CANCELED
  other  SUCCESSFUL

Airtel collection outcome by subscriber.msisdn's last two digits:
  00     TS success
  01     TF refused by the payer
  02     TF not enough balance
  03     TF incorrect PIN
  04     TIP until --query-expiry-secs, then TF timed out (no callback before)
  05     TA ambiguous, no callback
  06     TS success, callback delivered 3 times
  07     TS success after 10x --callback-delay-ms
  other  TS success
Airtel's callbacks go to --airtel-callback-url (none without it: poll the enquiry).

Vodacom M-Pesa (OpenAPI) C2B outcome by input_CustomerMSISDN's last two digits (the call
answers when the customer has acted, after --callback-delay-ms):
  00     INS-0 success (HTTP 201)
  01     INS-5 cancelled by the customer
  02     INS-2006 insufficient balance
  03     INS-2001 wrong PIN
  04     INS-9 request timeout, after --query-expiry-secs
  05     INS-6 transaction failed
  06     INS-996 account not active
  07     INS-1 internal error
  08     INS-2051 MSISDN invalid
  09     INS-0 after 10x --callback-delay-ms
  other  INS-0 success

Faults (--fault SERVICE:FIELD=VALUE[,FIELD=VALUE...], or PUT /admin/faults/SERVICE with JSON):
  services: ussd, daraja, momo, airtel, mpesa-tz, shop, modem
  latency_ms=N        fixed added latency
  jitter_ms=N         normal jitter, standard deviation in ms
  error_rate=F        fraction (0..1) answered with HTTP 500
  outage=true         HTTP 503 for everything of that service
  echo=true           HTTP 500 whose body repeats the request (line, headers, body)
  callback_delay_ms=N daraja only: overrides --callback-delay-ms
  e.g. --fault daraja:error_rate=0.5 --fault ussd:latency_ms=4000
modem faults (the AT modem emulator, --modem-pty / --modem-listen):
  no_signal=true           +CSQ: 99,99, +CREG: 0,2 (searching), USSD refused +CME ERROR: 30
  not_registered=true      +CREG/+CEREG stat 3 (denied), USSD refused +CME ERROR: 30
  sim_pin=true             +CPIN: SIM PIN, network commands +CME ERROR: 11 until AT+CPIN=\"<pin>\"
  cme_error=N              every new USSD dial answered +CME ERROR: N (e.g. 31 network timeout)
  release_mid_session=N    the network releases the session at its N-th answer: +CUSD: 2
  slow_network_ms=N        delay before each +CUSD from the network
  cusd_before_ok=true      the +CUSD result arrives before the command's OK
  extra_release=true       an extra +CUSD: 2 after a final +CUSD: 0
  network_timeout=true     the network never answers: +CUSD: 5
  e.g. --fault modem:no_signal=true, or PUT /admin/faults/modem {\"release_mid_session\": 2}

SMS: POST /admin/sms {\"to\": \"+256772000100\", \"from\": \"MPESA\", \"text\": \"...\"} delivers to the
modem whose SIM has that number (--modem-msisdn); GET /admin/sms lists messages, numbers masked.
A successful STK push sends the payer an M-Pesa confirmation SMS from MPESA; a successful MoMo
request to pay one from MTNMoMo.";

/// Reference targets for Savanna Pulse: a USSD app (Africa's Talking, Hubtel and Nalo dialects),
/// Daraja (M-Pesa), MTN MoMo, Airtel Money and Vodacom M-Pesa (OpenAPI) emulations with real
/// callbacks or synchronous answers, and a shop, with fault injection.
#[derive(Parser)]
#[command(name = "sandbox", version, after_help = AFTER_HELP)]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Seed of every random choice (fault decisions, jitter, identifiers).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The USSD app's PIN.
    #[arg(long, env = "SANDBOX_USSD_PIN", default_value = "1234", hide_env_values = true)]
    ussd_pin: String,
    /// Daraja consumer key accepted by OAuth.
    #[arg(long, env = "SANDBOX_CONSUMER_KEY", default_value = "savanna-sandbox-key")]
    consumer_key: String,
    /// Daraja consumer secret accepted by OAuth.
    #[arg(long, env = "SANDBOX_CONSUMER_SECRET", default_value = "savanna-sandbox-secret", hide_env_values = true)]
    consumer_secret: String,
    /// The Daraja BusinessShortCode.
    #[arg(long, default_value = "174379")]
    shortcode: String,
    /// The Lipa na M-Pesa passkey (default: the public Daraja sandbox passkey).
    #[arg(long, env = "SANDBOX_PASSKEY", default_value = SANDBOX_PASSKEY, hide_default_value = true, hide_env_values = true)]
    passkey: String,
    /// Lifetime of OAuth access tokens, in seconds.
    #[arg(long, default_value_t = 3599)]
    token_ttl_secs: u64,
    /// The MoMo API user that is ready to use (a UUID v4; more can be provisioned over the API).
    #[arg(long, default_value = sandbox::momo::SANDBOX_API_USER)]
    momo_api_user: String,
    /// Its API key.
    #[arg(long, env = "SANDBOX_MOMO_API_KEY", default_value = sandbox::momo::SANDBOX_API_KEY, hide_env_values = true)]
    momo_api_key: String,
    /// The MoMo Collection subscription key (`Ocp-Apim-Subscription-Key`).
    #[arg(long, env = "SANDBOX_MOMO_SUBSCRIPTION_KEY", default_value = sandbox::momo::SANDBOX_SUBSCRIPTION_KEY, hide_env_values = true)]
    momo_subscription_key: String,
    /// The ready API user's callback host: MoMo refuses an `X-Callback-Url` on any other host.
    #[arg(long, default_value = "127.0.0.1")]
    momo_callback_host: String,
    /// Delay from an accepted STK push or request to pay to its result, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    callback_delay_ms: u64,
    /// How long a push, request to pay or collection nobody answers (suffix 04) stays pending, in
    /// seconds: then Daraja ends it 1037, MoMo COULD_NOT_PERFORM_TRANSACTION, Airtel TF.
    #[arg(long, default_value_t = 60)]
    query_expiry_secs: u64,
    /// Where the Airtel emulation POSTs its callbacks (Airtel's is set in its portal, not per
    /// request), e.g. http://127.0.0.1:9000/airtel/callback. None: results by the enquiry only.
    #[arg(long, value_name = "URL")]
    airtel_callback_url: Option<url::Url>,
    /// The M-Pesa OpenAPI API key (encrypted under the public key, it opens a session).
    #[arg(long, env = "SANDBOX_MPESA_TZ_API_KEY", default_value = sandbox::mpesa_tz::SANDBOX_API_KEY, hide_env_values = true)]
    mpesa_tz_api_key: String,
    /// The M-Pesa OpenAPI service provider code (the merchant's short code).
    #[arg(long, default_value = sandbox::mpesa_tz::SANDBOX_SERVICE_PROVIDER_CODE)]
    mpesa_tz_service_provider_code: String,
    /// A PKCS#8 PEM RSA private key to decrypt the OpenAPI bearers with (default: the bundled
    /// test pair, whose public half is scenarios/secrets/sandbox-mpesa-tz-public-key).
    #[arg(long, value_name = "FILE")]
    mpesa_tz_private_key: Option<std::path::PathBuf>,
    /// Most connections open at once; more are closed as soon as accepted.
    #[arg(long, default_value_t = sandbox::HttpLimits::default().max_connections)]
    max_connections: usize,
    /// A fault in force from the start, e.g. `daraja:error_rate=0.5` (repeatable).
    #[arg(long = "fault", value_name = "SERVICE:FIELD=VALUE")]
    faults: Vec<String>,
    /// Run a GSM modem emulator on a new pseudo-terminal (its path is printed: `modem: /dev/pts/N`).
    #[arg(long)]
    modem_pty: bool,
    /// Run the modem emulator behind a TCP port instead (one client at a time), e.g. 127.0.0.1:7701.
    #[arg(long, value_name = "ADDR")]
    modem_listen: Option<SocketAddr>,
    /// The modem SIM's own number: SMS to it arrive on the modem.
    #[arg(long, default_value = "+256772000100")]
    modem_msisdn: String,
    /// The modem family to behave like: quectel, simcom (text USSD) or huawei (packed hex USSD).
    #[arg(long, default_value = "quectel", value_parser = parse_profile)]
    modem_profile: sandbox::modem::Profile,
    /// The SIM PIN the modem checks when the sim_pin fault locks the SIM.
    #[arg(long, env = "SANDBOX_MODEM_SIM_PIN", default_value = "1234", hide_env_values = true)]
    modem_sim_pin: String,
    /// The radio's operator name (+COPS long form), e.g. "MTN UG" or "Safaricom".
    #[arg(long, default_value = "MTN UG")]
    modem_operator: String,
    /// The radio's +CSQ rssi (0-31).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u8).range(0..=31))]
    modem_rssi: u8,
    /// Log filter (tracing's EnvFilter syntax); RUST_LOG works too.
    #[arg(long, default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or(args.log.clone());
    // Logs go to stderr, so stdout carries only the banner with the service URLs.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // Colour only at a terminal: a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let mut faults = FaultSet::default();
    faults.apply_flags(&args.faults).context("--fault")?;
    let config = Config {
        listen: args.listen,
        seed: args.seed,
        ussd_pin: args.ussd_pin,
        consumer_key: args.consumer_key,
        consumer_secret: args.consumer_secret,
        shortcode: args.shortcode,
        passkey: args.passkey,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        callback_delay: Duration::from_millis(args.callback_delay_ms),
        query_expiry: Duration::from_secs(args.query_expiry_secs),
        momo: sandbox::momo::Settings {
            api_user: args.momo_api_user,
            api_key: args.momo_api_key,
            subscription_key: args.momo_subscription_key,
            callback_host: args.momo_callback_host,
        },
        airtel: sandbox::airtel::Settings { callback_url: args.airtel_callback_url, ..Default::default() },
        mpesa_tz: sandbox::mpesa_tz::Settings {
            api_key: args.mpesa_tz_api_key,
            service_provider_code: args.mpesa_tz_service_provider_code,
            private_key_pem: match &args.mpesa_tz_private_key {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("--mpesa-tz-private-key {}: cannot read it", path.display()))?,
                None => sandbox::mpesa_tz::TEST_PRIVATE_KEY.to_owned(),
            },
        },
        faults,
        http: sandbox::HttpLimits { max_connections: args.max_connections, ..Default::default() },
        ..Config::default()
    };
    let ussd_pin = config.ussd_pin.clone();
    let handle = Sandbox::start(config).await?;
    println!("Savanna Pulse sandbox on {}", handle.base_url());
    for (name, url) in handle.service_urls() {
        println!("  {name:<32} {url}");
    }
    let modem_config = sandbox::modem::ModemConfig {
        profile: args.modem_profile,
        msisdn: args.modem_msisdn.clone(),
        sim_pin: args.modem_sim_pin.clone(),
        ussd_pin,
        radio: sandbox::modem::Radio {
            rssi: args.modem_rssi,
            operator_long: args.modem_operator.clone(),
            ..Default::default()
        },
        faults: Some(handle.faults().clone()),
        sms: Some(handle.sms().clone()),
        ..Default::default()
    };
    let modem = match (args.modem_pty, args.modem_listen) {
        (true, Some(_)) => anyhow::bail!("--modem-pty and --modem-listen: pick one"),
        (true, None) => Some(sandbox::modem::Emulator::start_pty(modem_config).await?),
        (false, Some(addr)) => Some(sandbox::modem::Emulator::start_tcp(modem_config, addr).await?),
        (false, None) => None,
    };
    if let Some(modem) = &modem {
        println!("modem: {}", modem.port());
    }
    println!("USSD service code {} (any code is accepted). Ctrl-C stops.", sandbox::ussd::SERVICE_CODE);
    stop_signal().await?;
    if let Some(modem) = modem {
        modem.shutdown().await;
    }
    handle.shutdown().await;
    Ok(())
}

fn parse_profile(s: &str) -> Result<sandbox::modem::Profile, String> {
    sandbox::modem::Profile::parse(s)
        .ok_or_else(|| format!("unknown modem profile `{s}` (use quectel, simcom or huawei)"))
}

/// Ctrl-C, or SIGTERM (what a container runtime or systemd sends).
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}
