//! The BGP attributes of a service's states: layers of `attributes`
//! objects (the state's own, the service's, the defaults') resolved key by
//! key, the `down`/`disabled` actions, and the per-service `path_id` rule.

use super::*;

impl<'t> Cx<'t> {
    pub(super) fn no_path_id(&mut self, layers: &[(&RawAttributes, String)]) {
        for (a, p) in layers {
            if a.path_id.is_some() {
                self.err(format!("{p}.path_id"), "the path id is per service: set it in attributes");
            }
        }
    }

    pub(super) fn action(
        &mut self,
        v: Option<&RawAction>,
        path: &str,
        base: &[(&RawAttributes, String); 2],
    ) -> raw::RawAction {
        match v {
            None | Some(RawAction::Withdraw) => raw::RawAction::Withdraw,
            Some(RawAction::Announce(Obj(attrs))) => {
                let mut layers = vec![(attrs, format!("{path}.announce"))];
                self.no_path_id(&layers);
                layers.extend(base.iter().cloned());
                raw::RawAction::Announce(attributes(&layers))
            }
        }
    }
}

pub(super) fn as_path(v: &RawAsPath) -> raw::RawAsPath {
    match v {
        RawAsPath::Text(s) => raw::RawAsPath::Text(s.clone()),
        RawAsPath::List(l) => raw::RawAsPath::List(l.clone()),
    }
}

/// Attributes from layers, the first layer that sets a key winning; an
/// unset key is at the first layer's path.
pub(super) fn attributes(layers: &[(&RawAttributes, String)]) -> raw::RawAttributes {
    let first = Origin::Json(layers[0].1.clone());
    let mut out = raw::RawAttributes::none(&first);
    macro_rules! resolve {
        ($field:ident, $map:expr) => {
            if let Some((v, p)) = layer!(layers, $field) {
                let origin = Origin::Json(p);
                out.$field = At { value: Some($map(v, &origin)), origin };
            }
        };
    }
    resolve!(med, |v: &u32, _: &Origin| *v);
    resolve!(local_preference, |v: &u32, _: &Origin| *v);
    resolve!(origin, |v: &String, _: &Origin| v.clone());
    resolve!(as_path, |v: &RawAsPath, _: &Origin| as_path(v));
    resolve!(communities, |v: &Vec<String>, o: &Origin| items(v, o));
    resolve!(extended_communities, |v: &Vec<String>, o: &Origin| items(v, o));
    resolve!(large_communities, |v: &Vec<String>, o: &Origin| items(v, o));
    out
}
