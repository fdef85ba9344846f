//! nginx for the tests: one configuration shape (`server { … }` blocks
//! inside `http {}`, logs and temporary files in the test's directory,
//! foreground, no master process), used for the HTTP(S) probe's sites and
//! for the TLS front of Unbound's DNS over HTTPS.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;

use super::{Server, tool};

/// nginx with the given `server { … }` blocks, each listening on
/// `ip:PORT` of the `ports` it is given.
pub(crate) struct Nginx {
    /// The process (its address: the first of `ports`).
    pub(crate) server: Server,
    /// Its address.
    pub(crate) ip: Ipv4Addr,
}

impl Nginx {
    /// Starts nginx in `dir` with these server blocks (inside `http {}`),
    /// and waits until every port of `ports` (at least one) on `ip` accepts
    /// connections.
    pub(crate) fn start(nginx: &Path, dir: &Path, ip: Ipv4Addr, ports: &[u16], servers: &str) -> Nginx {
        let d = dir.display();
        let conf = format!(
            "error_log {d}/nginx-error.log info;\n\
             events {{ worker_connections 64; }}\n\
             worker_processes 1;\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
               uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
               default_type text/plain;\n\
               {servers}\n\
             }}\n"
        );
        std::fs::create_dir_all(dir.join("tmp")).expect("tmp dir");
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("nginx.conf");
        let global = format!("daemon off; master_process off; pid {d}/nginx.pid;");
        let args = [
            "-p",
            &format!("{d}/"),
            "-c",
            path.to_str().expect("utf-8 path"),
            "-g",
            &global,
            "-e",
            &format!("{d}/nginx-error.log"),
        ];
        let addr = SocketAddr::from((ip, ports[0]));
        let ready = || ports.iter().all(|&port| TcpStream::connect((ip, port)).is_ok());
        let server = Server::start("nginx", nginx, &args, dir.join("nginx.out"), addr, ready);
        Nginx { server, ip }
    }
}

/// nginx terminating TLS (HTTP/1.1) for `cert`'s name on 127.0.0.1:`port`
/// and passing `/dns-query` to an HTTP/2 cleartext DoH server (Unbound's
/// `https-port` with `http-notls-downstream`) at `upstream`; its files in
/// `dir/nginx`. `None` (said) if nginx is not installed.
pub(crate) fn nginx_doh(dir: &Path, port: u16, cert: &Path, key: &Path, upstream: SocketAddr) -> Option<Nginx> {
    let nginx = tool("nginx")?;
    let d = dir.join("nginx");
    std::fs::create_dir_all(&d).expect("nginx dir");
    let server = format!(
        "server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    \
         location /dns-query {{ grpc_pass grpc://{upstream}; }}\n  }}",
        cert.display(),
        key.display()
    );
    Some(Nginx::start(&nginx, &d, Ipv4Addr::LOCALHOST, &[port], &server))
}
