//! DNS over TLS (RFC 7858): the TCP framing inside a TLS session, verified
//! as the HTTPS probe verifies (`src/probe/tls/`: `ca=`, `insecure`, the
//! wording of failures), with `tls-name` as SNI and the name checked.
//!
//! rustls's stream loops on its socket by itself (the handshake until it
//! completes, a read until a whole record is in), so a timeout set once per
//! step would restart with every byte a trickling peer sends: the socket
//! under the session is a `Bounded` one, which arms the time left before
//! the deadline before every read and write and fails with `TimedOut` once
//! past it.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use domain::base::Message;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use super::transport::{connect_tcp, framed_exchange};
use super::wire::matching_reply;
use super::{Exchange, TlsTarget};
use crate::probe::tcp::remaining;
use crate::probe::tls::{self, TlsConnector};
use crate::probe::{Outcome, io_reason};

/// One query over a fresh TLS connection to `server`.
pub(super) fn exchange(
    source: Option<IpAddr>,
    server: SocketAddr,
    target: &TlsTarget,
    query: &Message<Vec<u8>>,
    deadline: Instant,
) -> Exchange {
    let config = TlsConnector::new(&target.tls).map_err(|e| Outcome::down("tls-error").with_detail(e))?.config;
    let name = match &target.name {
        Some(n) => ServerName::try_from(n.clone())
            .map_err(|_| Outcome::down("tls-error").with_detail(format!("{n:?} is not a TLS name")))?,
        None => ServerName::IpAddress(server.ip().into()),
    };
    let conn = ClientConnection::new(config, name).map_err(|e| tls_outcome(&e))?;
    let tcp = connect_tcp(source, server, deadline).map_err(|e| Outcome::down(io_reason(&e)))?;
    let mut stream = StreamOwned::new(conn, Bounded { tcp, deadline });
    // The socket arms its own timeouts, before every system call.
    let timeouts = |_: &mut StreamOwned<ClientConnection, Bounded>, _: Duration| Ok(());
    let reply = framed_exchange(&mut stream, query, deadline, timeouts).map_err(|e| io_outcome(&e))?;
    // Polite, not needed: the connection is dropped either way.
    stream.conn.send_close_notify();
    let _ = stream.flush();
    matching_reply(reply, query)
}

/// The TCP connection under a TLS session, bounded by the exchange's
/// deadline as a whole rather than per system call.
struct Bounded {
    tcp: TcpStream,
    deadline: Instant,
}

impl Bounded {
    /// Sets the socket's timeouts to the time left; `TimedOut` once none is.
    fn arm(&self) -> std::io::Result<()> {
        let left = remaining(self.deadline).ok_or(ErrorKind::TimedOut)?;
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.set_write_timeout(Some(left))
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.arm()?;
        // The server's session tickets come in a flight of their own, its
        // reply in the next: held back by its Nagle until our ACK, which
        // Linux delays 40 ms unless asked for at once (before each read,
        // since the kernel turns quick ACKs off again by itself).
        socket2::SockRef::from(&self.tcp).set_tcp_quickack(true)?;
        self.tcp.read(buf)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.arm()?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

/// An I/O failure, worded as a TLS failure when rustls is behind it
/// (rustls reports handshake failures as I/O errors wrapping its own).
pub(super) fn io_outcome(err: &std::io::Error) -> Outcome {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(e) => tls_outcome(e),
        None => Outcome::down(io_reason(err)),
    }
}

fn tls_outcome(err: &rustls::Error) -> Outcome {
    let (reason, detail) = tls::describe(err);
    Outcome::down(reason).with_detail(detail)
}
