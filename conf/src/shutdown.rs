//! The one way a Savanna Pulse process learns it should stop: SIGINT (Ctrl-C) or SIGTERM (systemd,
//! Kubernetes, `docker stop`). Every long-running command waits on [`signal`].

use std::fmt;

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

/// Resolves at the first SIGINT or SIGTERM. Must be called inside a tokio runtime; a handler that
/// cannot be installed (never seen on Linux) leaves only the other one.
#[cfg(unix)]
pub async fn signal() -> Signal {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        Some(()) = async { match term.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => Signal::Terminate,
        Some(()) = async { match int.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => Signal::Interrupt,
    }
}

#[cfg(not(unix))]
pub async fn signal() -> Signal {
    let _ = tokio::signal::ctrl_c().await;
    Signal::Interrupt
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sigterm_is_seen() {
        let waiting = tokio::spawn(signal());
        // Let the handlers be installed before the signal is raised.
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let pid = std::process::id().to_string();
        let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        assert_eq!(waiting.await.unwrap(), Signal::Terminate);
    }
}
