//! The keys and values in etcd, and the read-only view behind
//! `exaprobe fleet`.
//!
//! A service's key for a site is `<prefix><service>/<site>`; its value is
//! JSON: `{"announcing":…, "held":…, "state":…, "since": unix ms,
//! "reason":…, "site":…}`. exaprobe writes every key bound to its lease, so
//! a key exists only while the site that wrote it keeps its lease alive:
//! there are no stale, lease-less entries to age out. A key written by hand
//! with `etcdctl put` would be one: the guard does not count it, and the
//! view marks its reason "no lease, not counted" (and logs it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::gateway::{Gateway, b64, prefix_end, unb64};
use super::{Entry, Row};
use crate::model::fleet::FleetSettings;

/// The most keys the view reads (every service × site).
pub(crate) const VIEW_KEYS: usize = 10_000;

/// The longest reason published (longer ones are cut at a character
/// boundary): values stay small however verbose a probe's error is.
pub(crate) const REASON_MAX: usize = 512;

/// What the view puts before the reason of a key without a lease.
pub(crate) const NO_LEASE: &str = "no lease, not counted";

/// A key's value, as stored.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct Value {
    announcing: bool,
    held: bool,
    state: String,
    since: u64,
    reason: String,
    site: String,
}

/// The key of a service's entry for a site.
pub(crate) fn key(prefix: &str, service: &str, site: &str) -> Vec<u8> {
    format!("{prefix}{service}/{site}").into_bytes()
}

/// The prefix of every site's key for a service.
pub(crate) fn service_prefix(prefix: &str, service: &str) -> Vec<u8> {
    format!("{prefix}{service}/").into_bytes()
}

/// The value of an entry.
pub(crate) fn encode(entry: &Entry, site: &str) -> Vec<u8> {
    let mut reason = entry.reason.as_str();
    if reason.len() > REASON_MAX {
        let mut cut = REASON_MAX;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason = &reason[..cut];
    }
    let since = entry.since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let value = Value {
        announcing: entry.announcing,
        held: entry.held,
        state: entry.state.clone(),
        since,
        reason: reason.to_string(),
        site: site.to_string(),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The entry of a value; a value that is not ours reads as a site not
/// announcing (it is not counted), state `INVALID`.
pub(crate) fn decode(bytes: &[u8]) -> Entry {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Entry {
            announcing: v.announcing,
            held: v.held,
            state: v.state,
            since: UNIX_EPOCH + Duration::from_millis(v.since),
            reason: v.reason,
        },
        Err(e) => Entry {
            announcing: false,
            held: false,
            state: "INVALID".into(),
            since: UNIX_EPOCH,
            reason: format!("not an exaprobe entry: {e}"),
        },
    }
}

/// Splits a key into service and site (`None`: not one of ours).
pub(crate) fn split_key<'a>(prefix: &str, key: &'a [u8]) -> Option<(&'a str, &'a str)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    let (service, site) = rest.rsplit_once('/')?;
    (!service.is_empty() && !site.is_empty()).then_some((service, site))
}

/// Every service × site under the prefix, sorted.
pub(crate) fn view(settings: &FleetSettings) -> anyhow::Result<Vec<Row>> {
    let gateway = Gateway::new(settings).map_err(anyhow::Error::msg)?;
    let prefix = settings.prefix.as_bytes();
    let body = json!({
        "key": b64(prefix),
        "range_end": b64(&prefix_end(prefix)),
        "limit": (VIEW_KEYS + 1).to_string(),
    });
    let reply = gateway.call("/v3/kv/range", &body, settings.timeout).map_err(anyhow::Error::msg)?;
    let kvs = reply["kvs"].as_array().cloned().unwrap_or_default();
    if kvs.len() > VIEW_KEYS || reply["more"].as_bool() == Some(true) {
        anyhow::bail!("more than {VIEW_KEYS} keys under {}: not a fleet prefix?", settings.prefix);
    }
    let mut rows: Vec<Row> = kvs
        .iter()
        .filter_map(|kv| {
            let key = unb64(&kv["key"]);
            let (service, site) = split_key(&settings.prefix, &key)?;
            let mut entry = decode(&unb64(&kv["value"]));
            if !super::client::leased(kv) {
                log::warn!("fleet: {service}/{site} has no lease (written by hand?): the guard does not count it");
                entry.reason = format!("{NO_LEASE}: {}", entry.reason);
            }
            Some(Row { service: service.into(), site: site.into(), entry })
        })
        .collect();
    rows.sort_by(|a, b| (&a.service, &a.site).cmp(&(&b.service, &b.site)));
    Ok(rows)
}

/// The age of an entry, now.
pub(crate) fn age(entry: &Entry) -> Duration {
    SystemTime::now().duration_since(entry.since).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_reasons_are_cut() {
        let since = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let e = Entry { announcing: true, held: false, state: "UP".into(), since, reason: "é".repeat(400) };
        let back = decode(&encode(&e, "ams1"));
        assert_eq!(back.since, since);
        assert!(back.announcing && back.state == "UP");
        assert!(back.reason.len() <= REASON_MAX && back.reason.chars().all(|c| c == 'é'));
        assert_eq!(decode(b"garbage").state, "INVALID");
        assert!(!decode(b"{}").announcing);
    }

    #[test]
    fn keys_split() {
        assert_eq!(split_key("/exaprobe/", b"/exaprobe/dns/ams1"), Some(("dns", "ams1")));
        assert_eq!(split_key("/exaprobe/", b"/exaprobe/dns"), None);
        assert_eq!(split_key("/exaprobe/", b"/other/dns/ams1"), None);
        assert_eq!(split_key("/exaprobe/", b"/exaprobe/dns/"), None);
        assert_eq!(key("/p/", "s", "x"), b"/p/s/x".to_vec());
    }
}
