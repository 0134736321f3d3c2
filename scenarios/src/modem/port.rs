//! The modem's AT port: a serial device (raw mode at a baud rate) or `tcp://host:port` (a
//! networked serial server), read and written through one enum.

use std::{
    fs::OpenOptions,
    io,
    os::{
        fd::{AsFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
};

use nix::{
    fcntl::OFlag,
    sys::termios::{self, BaudRate, SetArg},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, unix::AsyncFd},
    net::TcpStream,
};

/// An open AT port.
#[derive(Debug)]
pub enum Port {
    Serial(AsyncFd<OwnedFd>),
    Tcp(TcpStream),
}

impl Port {
    /// Opens `port`: `tcp://host:port`, or a device path set to raw mode at `baud`.
    pub async fn open(port: &str, baud: u32) -> io::Result<Port> {
        if let Some(addr) = port.strip_prefix("tcp://") {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            return Ok(Port::Tcp(s));
        }
        let speed = baud_rate(baud).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("baud {baud} is not a standard rate (e.g. 115200)"))
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
            .open(port)?;
        let fd = OwnedFd::from(file);
        raw_mode(&fd, Some(speed))?;
        Port::from_fd(fd)
    }

    /// A port over an already open, non-blocking descriptor (tests: a pseudo-terminal's side).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Port> {
        // tokio deprecates `AsyncFd::new` for types whose descriptor could change or close under
        // it (tokio PR 8587); an `OwnedFd` owned by the `AsyncFd` cannot, which is the contract
        // the unsafe `register` asks for, so the safe constructor is sound here.
        #[allow(deprecated)]
        Ok(Port::Serial(AsyncFd::new(fd)?))
    }

    /// Reads what is there (at least one byte); 0 means the other end closed.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Port::Tcp(s) => s.read(buf).await,
            Port::Serial(fd) => loop {
                let mut guard = fd.readable().await?;
                match guard.try_io(|inner| nix::unistd::read(inner.get_ref(), buf).map_err(io::Error::from)) {
                    Ok(r) => return r,
                    Err(_would_block) => continue,
                }
            },
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        match self {
            Port::Tcp(s) => s.write_all(data).await,
            Port::Serial(fd) => {
                while !data.is_empty() {
                    let mut guard = fd.writable().await?;
                    match guard.try_io(|inner| nix::unistd::write(inner.get_ref(), data).map_err(io::Error::from)) {
                        Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(Ok(n)) => data = &data[n..],
                        Ok(Err(e)) => return Err(e),
                        Err(_would_block) => {}
                    }
                }
                Ok(())
            }
        }
    }
}

/// Raw mode (no echo, no line editing, no CR/LF translation), 8N1, at `speed` when given.
pub fn raw_mode(fd: &impl AsFd, speed: Option<BaudRate>) -> io::Result<()> {
    let mut t = termios::tcgetattr(fd)?;
    termios::cfmakeraw(&mut t);
    // A read returns as soon as one byte is there (with VMIN 0 it would return 0, "closed").
    t.control_chars[termios::SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[termios::SpecialCharacterIndices::VTIME as usize] = 0;
    if let Some(s) = speed {
        termios::cfsetspeed(&mut t, s)?;
    }
    termios::tcsetattr(fd, SetArg::TCSANOW, &t)?;
    Ok(())
}

fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        921_600 => BaudRate::B921600,
        _ => return None,
    })
}
