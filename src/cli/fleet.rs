//! The flags of `exaprobe fleet`: where the store is, from a JSON config's
//! `"fleet"` or from `--fleet-*` flags named as the run's own.

use std::path::PathBuf;

/// `exaprobe fleet`: the store's view of every service × site.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("store").required(true).args(["config", "fleet_etcd"])))]
pub struct FleetArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The JSON config whose "fleet" names the store.
    #[arg(long, value_name = "FILE", conflicts_with = "fleet_etcd")]
    pub config: Option<PathBuf>,
    /// An etcd client URL of the store (repeatable), instead of --config.
    #[arg(long, value_name = "URL")]
    pub fleet_etcd: Vec<String>,
    /// etcd key prefix [default: /exaprobe/].
    #[arg(long, value_name = "PREFIX", conflicts_with = "config")]
    pub fleet_prefix: Option<String>,
    /// The longest the store may take to answer [default: 500ms].
    #[arg(long, value_name = "DURATION", conflicts_with = "config")]
    pub fleet_timeout: Option<String>,
    /// CA bundle (PEM) of etcd's certificate, for https:// URLs.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub fleet_ca: Option<PathBuf>,
    /// Client certificate (PEM) towards etcd, with --fleet-key.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub fleet_cert: Option<PathBuf>,
    /// Client private key (PEM) towards etcd.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub fleet_key: Option<PathBuf>,
    /// etcd user, with --fleet-password-file.
    #[arg(long, value_name = "USER", conflicts_with = "config")]
    pub fleet_user: Option<String>,
    /// File holding the etcd user's password (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub fleet_password_file: Option<PathBuf>,
}
