//! The fleet client's watch thread: one long-lived etcd watch on the prefix,
//! reconnected with a backoff, that tells the engine when another site's entry
//! changes ([`Notice::Changed`](crate::fleet::Notice::Changed)); this site's
//! own writes are not reported.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::{Shared, WATCH_STREAM_MAX, sleep_unless_stopping};
use crate::fleet::Notice;
use crate::fleet::gateway::{self, Gateway, int, prefix_end, unb64};
use crate::fleet::view::split_key;

/// The watch thread: reports other sites' changes under the prefix.
pub(super) fn watch(shared: &Shared, gateway: &Gateway, known: &HashSet<String>) {
    let settings = &shared.settings;
    let from = settings.prefix.as_bytes().to_vec();
    let to = prefix_end(&from);
    let connect = settings.timeout.max(Duration::from_millis(200));
    let rotate = settings.ttl.clamp(Duration::from_secs(1), Duration::from_secs(30));
    // Until the first grant, there is nothing to watch for.
    while shared.first_revision.load(Ordering::SeqCst) == 0 {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut next_revision = shared.first_revision.load(Ordering::SeqCst);
    let mut backoff = Duration::from_millis(100);
    let changed = |services: &mut Vec<String>| {
        for service in services.drain(..) {
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            (shared.notify)(Notice::Changed { service });
        }
    };
    while !shared.stopping.load(Ordering::SeqCst) {
        let (endpoint, reader) = match gateway.watch(&from, &to, next_revision, connect, rotate) {
            Ok(r) => r,
            Err(e) => {
                log::debug!("fleet watch: {e}");
                if e.auth_expired() {
                    gateway.forget_token();
                }
                sleep_unless_stopping(shared, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let stream =
            serde_json::Deserializer::from_reader(std::io::Read::take(reader, WATCH_STREAM_MAX)).into_iter::<Value>();
        let mut healthy = false;
        for message in stream {
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            let Ok(message) = message else { break };
            if let Some(e) = gateway::error_of(&message) {
                if e.auth_expired() {
                    gateway.forget_token();
                }
                break;
            }
            let result = &message["result"];
            if int(&result["compact_revision"]) > 0 || result["canceled"].as_bool() == Some(true) {
                // Events were lost to compaction: start from now, and let
                // every service look again.
                next_revision = 0;
                let mut all: Vec<String> = known.iter().cloned().collect();
                changed(&mut all);
                break;
            }
            healthy = true;
            backoff = Duration::from_millis(100);
            let revision = int(&result["header"]["revision"]);
            let mut services = Vec::new();
            for event in result["events"].as_array().map_or(&[][..], Vec::as_slice) {
                let k = unb64(&event["kv"]["key"]);
                next_revision = next_revision.max(int(&event["kv"]["mod_revision"]) + 1);
                let Some((service, site)) = split_key(&settings.prefix, &k) else { continue };
                let ours = known.is_empty() || known.contains(service);
                if site != settings.site && ours && !services.iter().any(|s| s == service) {
                    services.push(service.to_string());
                }
            }
            if result.get("created").is_some() && next_revision == 0 {
                next_revision = revision + 1;
            }
            changed(&mut services);
        }
        if !healthy {
            gateway.skip(&endpoint);
            sleep_unless_stopping(shared, backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
