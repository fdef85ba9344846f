//! The user and group a command check runs as when exaprobe is root:
//! resolved and checked once, at validation.

use std::fmt;
use std::path::PathBuf;

use nix::unistd::{Gid, Group, Uid, User, getegid, geteuid, getgid};

/// The unprivileged user and group a check runs as, resolved and checked.
///
/// The check's process gets this uid and gid, no supplementary groups (std
/// calls `setgroups(0)` before `setuid` when it runs as root) and the
/// `no_new_privs` attribute, so neither setuid programs (`sudo`, `su`,
/// `ping` on old systems) nor file capabilities can give it back any
/// privilege. Root (uid 0 or gid 0) is refused as a target: it would not
/// drop anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name (or its uid in decimal, for a uid without a passwd entry).
    pub user: String,
    /// The group's name (or its gid in decimal).
    pub group: String,
    /// The uid the check runs with.
    pub uid: u32,
    /// The gid the check runs with.
    pub gid: u32,
    /// The check's `HOME` (the user's home directory, `/` without a passwd entry).
    pub home: PathBuf,
}

impl RunAs {
    /// Resolves a user and an optional group, each a name or a numeric id.
    /// The group defaults to the user's primary group.
    ///
    /// Refused: unknown names, root as the target, a numeric uid without a
    /// passwd entry and no group, and (when exaprobe does not run as root)
    /// any user and group other than exaprobe's own, which it could not
    /// switch to.
    pub fn resolve(user: &str, group: Option<&str>) -> Result<RunAs, String> {
        if user.is_empty() {
            return Err("the user is empty".into());
        }
        let lookup = |r: nix::Result<Option<User>>| r.map_err(|e| format!("cannot look up user {user:?}: {e}"));
        let (name, uid, primary, home) = match user.parse::<u32>() {
            Ok(n) => match lookup(User::from_uid(Uid::from_raw(n)))? {
                Some(u) => (u.name, n, Some(u.gid.as_raw()), u.dir),
                None => (n.to_string(), n, None, PathBuf::from("/")),
            },
            Err(_) => match lookup(User::from_name(user))? {
                Some(u) => (u.name, u.uid.as_raw(), Some(u.gid.as_raw()), u.dir),
                None => return Err(format!("no such user {user:?}")),
            },
        };
        if uid == 0 {
            return Err(format!(
                "user {user:?} is root (uid 0): running checks as root is what a run-as user avoids; \
                 leave it out to run checks as exaprobe's own user"
            ));
        }
        let (group_name, gid) = match group {
            None => match primary {
                Some(gid) => (group_name_of(gid)?, gid),
                None => return Err(format!("uid {uid} has no passwd entry, so no primary group: give the group")),
            },
            Some(g) => resolve_group(g)?,
        };
        if gid == 0 {
            return Err(format!("group {group_name:?} is root's (gid 0): choose an unprivileged group"));
        }
        // Switching uid and gid needs root (CAP_SETUID, CAP_SETGID); without
        // it only our own ids can be "switched" to.
        let (euid, egid) = (geteuid().as_raw(), getegid().as_raw());
        if euid != 0 && (uid != euid || (gid != egid && gid != getgid().as_raw())) {
            return Err(format!(
                "running checks as {name} (uid {uid}, gid {gid}) needs root, and exaprobe runs as uid {euid} \
                 (gid {egid}): start exaprobe as root, or leave the run-as user out"
            ));
        }
        Ok(RunAs { user: name, group: group_name, uid, gid, home })
    }
}

fn group_name_of(gid: u32) -> Result<String, String> {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => Ok(g.name),
        Ok(None) => Ok(gid.to_string()),
        Err(e) => Err(format!("cannot look up gid {gid}: {e}")),
    }
}

fn resolve_group(group: &str) -> Result<(String, u32), String> {
    if group.is_empty() {
        return Err("the group is empty".into());
    }
    if let Ok(gid) = group.parse::<u32>() {
        return Ok((group_name_of(gid)?, gid));
    }
    match Group::from_name(group) {
        Ok(Some(g)) => Ok((g.name, g.gid.as_raw())),
        Ok(None) => Err(format!("no such group {group:?}")),
        Err(e) => Err(format!("cannot look up group {group:?}: {e}")),
    }
}

impl fmt::Display for RunAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.user, self.group)
    }
}

/// Sets `no_new_privs` on the calling thread, which every thread it starts
/// afterwards and every process they spawn inherit (it cannot be unset).
///
/// Call it once at startup, before the probe workers start, when some check
/// has a [`RunAs`]: then every check, with or without a run-as user, runs
/// without the means to gain privileges. exaprobe itself never executes a
/// setuid program or needs to gain a privilege, so this costs it nothing.
/// (Each spawn of a check with a [`RunAs`] sets it on its own thread too, so
/// those checks have it even if this is never called: it is a per-thread
/// attribute, and setting it in the child alone would need `pre_exec`,
/// which is `unsafe`.)
pub fn set_no_new_privs() -> Result<(), String> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("cannot set no_new_privs (prctl): {e}"))
}
