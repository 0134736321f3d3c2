//! The pseudo-terminal the emulator answers on: the master side, async through tokio's
//! [`AsyncFd`], and one slave descriptor the emulator keeps open itself, so that a client closing
//! the port does not hang up the master (Linux answers reads on a master with EIO once no slave
//! is open) and the raw termios settings stay in force when the client reopens the port.

use std::{
    io::{self, Read as _, Write as _},
    os::{fd::OwnedFd, unix::fs::OpenOptionsExt as _},
    path::PathBuf,
};

use nix::{
    fcntl::{FcntlArg, OFlag, fcntl},
    pty::{PtyMaster, grantpt, posix_openpt, ptsname_r, unlockpt},
    sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr},
};
use tokio::io::{Interest, unix::AsyncFd};

/// An open pty: the async master and the slave's path.
pub struct Pty {
    master: AsyncFd<PtyMaster>,
    slave_path: PathBuf,
    // Held, never read: see the module docs.
    _slave: OwnedFd,
}

impl Pty {
    /// Opens a new pty with the slave in raw mode (no echo, no line editing, no CR/LF mapping).
    pub fn open() -> io::Result<Self> {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let slave_path = PathBuf::from(ptsname_r(&master)?);
        let slave: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlag::O_NOCTTY.bits())
            .open(&slave_path)?
            .into();
        let mut attrs = tcgetattr(&slave)?;
        cfmakeraw(&mut attrs);
        tcsetattr(&slave, SetArg::TCSANOW, &attrs)?;
        let flags = OFlag::from_bits_truncate(fcntl(&master, FcntlArg::F_GETFL)?);
        fcntl(&master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // `with_interest` is deprecated because an arbitrary `AsRawFd` type may hand out a
        // descriptor it does not own (tokio #8587); `PtyMaster` owns its descriptor and returns the
        // same one until it is dropped with the `AsyncFd`, which is what the unsafe replacement
        // asks its caller to guarantee. The workspace forbids `unsafe`, so the safe form stays.
        #[allow(deprecated)]
        let master = AsyncFd::with_interest(master, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Self { master, slave_path, _slave: slave })
    }

    /// The slave device path (`/dev/pts/N`) a client opens.
    pub fn slave_path(&self) -> &std::path::Path {
        &self.slave_path
    }

    /// Reads what the client wrote (at least one byte).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.readable().await?;
            match guard.try_io(|inner| inner.get_ref().read(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` to the client.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.master.writable().await?;
            match guard.try_io(|inner| inner.get_ref().write(data)) {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}
