//! The raw serde types of the JSON config: what the file says, before
//! any rule is applied (`deny_unknown_fields`, so a misspelt key is an error).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::model::bgp::Prefix;

/// The keys of the top level, checked on their own: after an unknown
/// top-level key has been reported, the rest of the file is still checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with a \"services\" list")]
pub(super) struct RawTopKeys {
    #[serde(rename = "_comment")]
    pub(super) _comment: Option<String>,
    #[serde(rename = "defaults")]
    pub(super) _defaults: Option<IgnoredAny>,
    #[serde(rename = "services")]
    pub(super) _services: Option<IgnoredAny>,
    #[serde(rename = "origin_as")]
    pub(super) _origin_as: Option<IgnoredAny>,
    #[serde(rename = "control")]
    pub(super) _control: Option<IgnoredAny>,
    #[serde(rename = "metrics")]
    pub(super) _metrics: Option<IgnoredAny>,
    #[serde(rename = "workers")]
    pub(super) _workers: Option<IgnoredAny>,
    #[serde(rename = "fleet")]
    pub(super) _fleet: Option<IgnoredAny>,
}

/// The top level (its keys checked by [`RawTopKeys`]). Sections are kept
/// raw and read one by one, so an error in one does not hide the errors in
/// the others.
#[derive(Deserialize)]
pub(super) struct RawTop<'t> {
    #[serde(borrow)]
    pub(super) defaults: Option<&'t RawValue>,
    #[serde(borrow)]
    pub(super) services: Option<Vec<&'t RawValue>>,
    #[serde(borrow)]
    pub(super) origin_as: Option<&'t RawValue>,
    #[serde(borrow)]
    pub(super) control: Option<&'t RawValue>,
    #[serde(borrow)]
    pub(super) metrics: Option<&'t RawValue>,
    #[serde(borrow)]
    pub(super) workers: Option<&'t RawValue>,
    #[serde(borrow)]
    pub(super) fleet: Option<&'t RawValue>,
}

/// The name and prefixes of a service that could not be read as a whole.
#[derive(Deserialize)]
pub(super) struct RawIdentity {
    pub(super) name: Option<String>,
    pub(super) prefixes: Option<Vec<String>>,
}

/// A service, or the defaults. Every key is optional here: `name` and
/// `prefixes` are required of a service, and refused in the defaults,
/// during validation.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a service object")]
pub(super) struct RawService<'t> {
    #[serde(rename = "_comment")]
    pub(super) _comment: Option<String>,
    pub(super) name: Option<String>,
    pub(super) prefixes: Option<Vec<String>>,
    #[serde(borrow)]
    pub(super) checks: Option<Vec<&'t RawValue>>,
    pub(super) require: Option<RawRequire>,
    pub(super) interval: Option<RawDuration>,
    pub(super) fast_interval: Option<RawDuration>,
    pub(super) timeout: Option<RawDuration>,
    pub(super) rise: Option<u32>,
    pub(super) fall: Option<u32>,
    pub(super) next_hop: Option<String>,
    pub(super) next_hop6: Option<String>,
    pub(super) neighbors: Option<Vec<String>>,
    pub(super) attributes: Option<Obj<RawAttributes>>,
    pub(super) med_increase: Option<u32>,
    pub(super) on_down: Option<RawAction>,
    pub(super) degraded: Option<Obj<RawAttributes>>,
    pub(super) disabled: Option<RawAction>,
    pub(super) disable_file: Option<String>,
    pub(super) covering: Option<String>,
    pub(super) reassert: Option<RawDuration>,
    pub(super) dampening: Option<RawDampening>,
    pub(super) drain: Option<Obj<RawDrain>>,
    pub(super) run_as: Option<RawRunAs>,
    pub(super) fleet: Option<RawServiceFleet>,
    pub(super) watch: Option<Obj<RawWatch>>,
    pub(super) trust_events: Option<bool>,
}

/// The top-level `"fleet"`: the sites' shared store and this site.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a fleet object")]
pub(super) struct RawFleet {
    #[serde(rename = "_comment")]
    pub(super) _comment: Option<String>,
    pub(super) etcd: Option<Vec<String>>,
    pub(super) site: Option<String>,
    pub(super) min_sites: Option<u32>,
    pub(super) ttl: Option<RawDuration>,
    pub(super) timeout: Option<RawDuration>,
    pub(super) prefix: Option<String>,
    pub(super) tls: Option<Obj<RawFleetTls>>,
    pub(super) auth: Option<Obj<RawFleetAuth>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a tls object: {\"ca\", \"cert\", \"key\"}")]
pub(super) struct RawFleetTls {
    pub(super) ca: Option<String>,
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an auth object: {\"user\", \"password_file\"}")]
pub(super) struct RawFleetAuth {
    pub(super) user: Option<String>,
    pub(super) password_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a service fleet object")]
pub(super) struct RawServiceFleetFields {
    pub(super) min_sites: Option<u32>,
}

/// A service's `"fleet"`: `false`, `true` or `{"min_sites": N}`.
pub(super) enum RawServiceFleet {
    Off,
    On(Option<u32>),
}

impl<'de> Deserialize<'de> for RawServiceFleet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawServiceFleet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("false, true or {\"min_sites\": N}")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawServiceFleet, E> {
                Ok(if v { RawServiceFleet::On(None) } else { RawServiceFleet::Off })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawServiceFleet, A::Error> {
                RawServiceFleetFields::deserialize(MapAccessDeserializer::new(map))
                    .map(|f| RawServiceFleet::On(f.min_sites))
            }
        }
        d.deserialize_any(V)
    }
}

/// Event sources of a service ([`crate::model::watch`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a watch object: {\"pid_file\": …, \"listen\": …, \"unit\": …}")]
pub(super) struct RawWatch {
    pub(super) pid_file: Option<String>,
    pub(super) pid: Option<i64>,
    pub(super) listen: Option<OneOrMany>,
    pub(super) unit: Option<String>,
}

/// A string (`true`: written as one string), or a list of strings.
pub(super) struct OneOrMany(pub(super) Vec<String>, pub(super) bool);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"IP:PORT\" or a list of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()], true))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out, false))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a run_as object: {\"user\": …, \"group\": …}")]
pub(super) struct RawRunAs {
    pub(super) user: Option<String>,
    pub(super) group: Option<String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an attributes object")]
pub(super) struct RawAttributes {
    pub(super) med: Option<u32>,
    pub(super) local_preference: Option<u32>,
    pub(super) communities: Option<Vec<String>>,
    pub(super) large_communities: Option<Vec<String>>,
    pub(super) extended_communities: Option<Vec<String>>,
    pub(super) as_path: Option<RawAsPath>,
    pub(super) origin: Option<String>,
    pub(super) path_id: Option<u32>,
}

/// `"withdraw"` or `{"announce": {attributes}}`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum RawAction {
    Withdraw,
    Announce(Obj<RawAttributes>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a dampening object")]
pub(super) struct RawDampeningFields {
    pub(super) half_life: Option<RawDuration>,
    pub(super) penalty: Option<f64>,
    pub(super) suppress: Option<f64>,
    pub(super) reuse: Option<f64>,
    pub(super) max_suppress: Option<RawDuration>,
}

/// `false`, `true` or a dampening object.
pub(super) enum RawDampening {
    Off,
    On(Option<RawDampeningFields>),
}

impl<'de> Deserialize<'de> for RawDampening {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDampening;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("false, true or a dampening object")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawDampening, E> {
                Ok(if v { RawDampening::On(None) } else { RawDampening::Off })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawDampening, A::Error> {
                RawDampeningFields::deserialize(MapAccessDeserializer::new(map)).map(|f| RawDampening::On(Some(f)))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a drain object")]
pub(super) struct RawDrain {
    pub(super) communities: Option<Vec<String>>,
    pub(super) med: Option<u32>,
    pub(super) as_path: Option<RawAsPath>,
    pub(super) duration: Option<RawDuration>,
    pub(super) on_shutdown: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a control object")]
pub(super) struct RawControl {
    pub(super) socket: Option<String>,
    pub(super) mode: Option<String>,
    pub(super) group: Option<String>,
    pub(super) state_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a metrics object")]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
    pub(super) textfile: Option<String>,
}

/// A struct that must be written as a JSON object. serde's derived
/// structs also accept an array, taking its items as the fields in order,
/// which would let `"attributes": [100]` mean a MED of 100.
pub(super) struct Obj<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(PhantomData)).map(Obj)
    }
}

/// A duration as written: a string, or a number of seconds kept as its
/// decimal text. Parsed by [`duration::parse`] during validation, so the
/// error carries the path.
#[derive(Clone)]
pub(super) struct RawDuration(pub(super) String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (\"250ms\", \"2s\", \"1m\") or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `"all"`, `"any"` or a number.
pub(super) enum RawRequire {
    All,
    Any,
    AtLeast(u64),
}

impl<'de> Deserialize<'de> for RawRequire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawRequire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\", \"any\" or a number of checks")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawRequire, E> {
                Ok(RawRequire::AtLeast(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRequire, E> {
                match v {
                    "all" => Ok(RawRequire::All),
                    "any" => Ok(RawRequire::Any),
                    _ => {
                        v.parse().map(RawRequire::AtLeast).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
                    }
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of AS numbers, or a string of them.
#[derive(Clone)]
pub(super) enum RawAsPath {
    Text(String),
    List(Vec<u32>),
}

impl<'de> Deserialize<'de> for RawAsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAsPath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of AS numbers or a string such as \"64500 64500\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawAsPath, E> {
                Ok(RawAsPath::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawAsPath, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<u32>()? {
                    out.push(n);
                }
                Ok(RawAsPath::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number or a string (an AS number, an HTTP status list), kept as text.
pub(super) struct RawText(pub(super) String);

impl<'de> Deserialize<'de> for RawText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, a string or a list of numbers")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawText, E> {
                Ok(RawText(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawText, E> {
                Ok(RawText(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawText, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<u16>()? {
                    out.push(n.to_string());
                }
                Ok(RawText(out.join(",")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawOnFail {
    Down,
    Degrade,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawExitCodes {
    Nagios,
    ZeroIsHealthy,
}

/// A DNS check's `nsid`: `true` asks for the NSID, a string requires it.
#[derive(Clone, Deserialize)]
#[serde(untagged, expecting = "true, false or the NSID required (a string)")]
pub(super) enum RawNsid {
    Ask(bool),
    Require(String),
}

/// Only the type of a check, read first to pick the struct for the rest.
#[derive(Deserialize)]
pub(super) struct RawCheckType {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
}

/// Declares one raw struct per check type, each with the keys every check
/// takes. (serde's `flatten` would share them, but cannot be combined with
/// `deny_unknown_fields`.)
macro_rules! raw_checks {
    ($($name:ident $what:literal { $($field:ident : $ty:ty),* $(,)? })*) => {$(
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, expecting = $what)]
        pub(super) struct $name {
            #[serde(rename = "type")]
            _kind: String,
            #[serde(rename = "_comment")]
            _comment: Option<String>,
            timeout: Option<RawDuration>,
            rise: Option<u32>,
            fall: Option<u32>,
            on_fail: Option<RawOnFail>,
            $(pub(super) $field: $ty,)*
        }

        impl $name {
            pub(super) fn common_owned(&self) -> Common {
                Common { timeout: self.timeout.clone(), rise: self.rise, fall: self.fall, on_fail: self.on_fail }
            }
        }
    )*};
}

raw_checks! {
    RawTcp "a tcp check object" { address: String, send: Option<String>, expect: Option<String> }
    RawHttp "an http check object" {
        url: String,
        method: Option<String>,
        status: Option<RawText>,
        body: Option<String>,
        body_regex: Option<String>,
        headers: Option<BTreeMap<String, String>>,
        host: Option<String>,
        ca: Option<String>,
        insecure: Option<bool>,
        follow_redirects: Option<bool>,
        request_headers: Option<BTreeMap<String, String>>,
        expect_headers: Option<BTreeMap<String, String>>,
        cert: Option<String>,
        key: Option<String>,
        resolve: Option<Vec<String>>,
    }
    RawDns "a dns check object" {
        server: Option<String>,
        query: String,
        qtype: Option<String>,
        tcp: Option<bool>,
        rcode: Option<RawText>,
        answer: Option<String>,
        source: Option<String>,
        norecurse: Option<bool>,
        soa_reference: Option<String>,
        soa_max_lag: Option<RawText>,
        soa_zone: Option<String>,
        edns: Option<bool>,
        bufsize: Option<RawText>,
        nsid: Option<RawNsid>,
        class: Option<String>,
        dnssec: Option<bool>,
        ad: Option<bool>,
        aa: Option<bool>,
        nodata: Option<String>,
        tls: Option<bool>,
        tls_name: Option<String>,
        ca: Option<String>,
        insecure: Option<bool>,
        doh: Option<String>,
        method: Option<String>,
    }
    RawNtp "an ntp check object" {
        server: Option<String>,
        max_stratum: Option<RawText>,
        max_offset: Option<RawDuration>,
        max_dispersion: Option<RawDuration>,
        max_root_distance: Option<RawDuration>,
        max_ref_age: Option<RawDuration>,
        source: Option<String>,
    }
    RawCommand "a command check object" {
        argv: Option<Vec<String>>,
        shell: Option<String>,
        exit_codes: Option<RawExitCodes>,
    }
}

/// A maintenance file: no probe, so none of the probe keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a file check object")]
pub(super) struct RawFile {
    #[serde(rename = "type")]
    pub(super) _kind: String,
    #[serde(rename = "_comment")]
    pub(super) _comment: Option<String>,
    pub(super) path: String,
}

/// The keys every probe check takes.
pub(super) struct Common {
    pub(super) timeout: Option<RawDuration>,
    pub(super) rise: Option<u32>,
    pub(super) fall: Option<u32>,
    pub(super) on_fail: Option<RawOnFail>,
}

/// What identifies a service across the file.
pub(super) struct Identity {
    pub(super) name: Option<String>,
    pub(super) prefixes: Vec<(usize, Prefix)>,
}
