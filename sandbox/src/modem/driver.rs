//! The emulator's I/O loop: line assembly on CR (V.250 §6.2.1, S3), echo of what is typed
//! (V.250 §6.2.4, `E1`), delayed network answers, the network's USSD inactivity timer, and the
//! transport (the pty, or one TCP client after another).

use std::{io, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::{Instant, sleep, sleep_until},
};

use tokio::sync::mpsc;

use super::{
    at::{Modem, Out},
    pty::Pty,
    smsc::Sms,
};
use crate::faults::{Faults, Service};

/// Longest command line kept (V.250 asks for at least 40 characters; real modems take 256–1024).
const MAX_LINE: usize = 1024;

/// A byte stream to a client.
trait Port {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()>;
}

impl Port for &Pty {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Pty::read(self, buf).await
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        Pty::write_all(self, data).await
    }
}

impl Port for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        AsyncReadExt::read(self, buf).await
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        AsyncWriteExt::write_all(self, data).await
    }
}

/// Serves the pty until the emulator is stopped. Clients may close and reopen the slave: the
/// emulator holds a slave descriptor of its own, so the master never sees a hang-up.
pub(super) async fn serve_pty(
    pty: Pty,
    mut modem: Modem,
    faults: Faults,
    mut inbox: mpsc::Receiver<Sms>,
    idle: Duration,
) {
    let mut port = &pty;
    if let Err(e) = serve(&mut port, &mut modem, &faults, &mut inbox, idle).await {
        tracing::warn!(error = %e, "modem pty stopped");
    }
}

/// Serves TCP clients one after another; the modem's state carries over, as a modem behind a
/// serial server keeps its own.
pub(super) async fn serve_tcp(
    listener: TcpListener,
    mut modem: Modem,
    faults: Faults,
    mut inbox: mpsc::Receiver<Sms>,
    idle: Duration,
) {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "modem listener: accept failed");
                // A transient failure (out of descriptors): do not spin.
                sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(e) = serve(&mut stream, &mut modem, &faults, &mut inbox, idle).await {
            tracing::debug!(error = %e, "modem client gone");
        }
    }
}

/// One client's conversation, until it closes the connection (a pty never does).
async fn serve<P: Port>(
    port: &mut P,
    modem: &mut Modem,
    faults: &Faults,
    inbox: &mut mpsc::Receiver<Sms>,
    idle: Duration,
) -> io::Result<()> {
    let mut line: Vec<u8> = Vec::with_capacity(128);
    let mut overflow = false;
    let mut buf = [0u8; 512];
    let mut deadline: Option<Instant> = None;
    let mut answers = modem.network_answers();
    loop {
        let timer = async {
            match deadline {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = port.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                let mut echo = Vec::with_capacity(n);
                for &b in &buf[..n] {
                    if modem.echo() {
                        echo.push(b);
                    }
                    match b {
                        b'\r' => {
                            port.write_all(&echo).await?;
                            echo.clear();
                            let text = String::from_utf8_lossy(&line).into_owned();
                            line.clear();
                            let out = if std::mem::take(&mut overflow) {
                                vec![Out::Text(super::at::urc("ERROR"))]
                            } else {
                                modem.line(&text, &faults.get(Service::Modem))
                            };
                            write(port, out).await?;
                            // The network's timer runs from its latest screen; other commands
                            // (a +CSQ poll) do not restart it.
                            if !modem.in_session() {
                                deadline = None;
                            } else if modem.network_answers() != answers || deadline.is_none() {
                                deadline = Some(Instant::now() + idle);
                            }
                            answers = modem.network_answers();
                        }
                        b'\n' => {}
                        0x08 | 0x7F => {
                            line.pop();
                        }
                        _ if line.len() >= MAX_LINE => overflow = true,
                        _ => line.push(b),
                    }
                }
                port.write_all(&echo).await?;
            }
            Some(sms) = inbox.recv() => {
                for index in modem.sms.deliver(&sms) {
                    if let Some(out) = modem.new_message_indication(index) {
                        write(port, out).await?;
                    }
                }
            }
            () = timer => {
                deadline = None;
                write(port, modem.session_timed_out()).await?;
            }
        }
    }
}

async fn write<P: Port>(port: &mut P, out: Vec<Out>) -> io::Result<()> {
    for o in out {
        match o {
            Out::Text(t) => port.write_all(t.as_bytes()).await?,
            Out::Delay(d) => sleep(d).await,
        }
    }
    Ok(())
}
