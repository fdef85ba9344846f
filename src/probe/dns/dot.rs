//! DNS over TLS (RFC 7858): the TCP framing inside a TLS session, verified
//! as the HTTPS probe verifies (`src/probe/tls/`: `ca=`, `insecure`, the
//! wording of failures), with `tls-name` as SNI and the name checked.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use domain::base::Message;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use super::transport::{connect_tcp, framed_exchange};
use super::wire::matching_reply;
use super::{Exchange, TlsTarget};
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
    let mut stream = StreamOwned::new(conn, tcp);
    let timeouts = |s: &mut StreamOwned<ClientConnection, TcpStream>, left: Duration| {
        // The server's session tickets come in a flight of their own, its
        // reply in the next: held back by its Nagle until our ACK, which
        // Linux delays 40 ms unless asked for at once (before each read,
        // since the kernel turns quick ACKs off again by itself).
        socket2::SockRef::from(&s.sock).set_tcp_quickack(true)?;
        s.sock.set_read_timeout(Some(left))?;
        s.sock.set_write_timeout(Some(left))
    };
    let reply = framed_exchange(&mut stream, query, deadline, timeouts).map_err(|e| io_outcome(&e))?;
    // Polite, not needed: the connection is dropped either way.
    stream.conn.send_close_notify();
    let _ = stream.flush();
    matching_reply(reply, query)
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
