//! The bundled healthcheck's argument grammar, as Python's argparse (3.11)
//! applies it, in front of clap: run lines written for
//! `python3 -m exabgp healthcheck` mean the same here.
//!
//! [`resolve`] turns the words of a command line into whole flags:
//! - a long flag may be shortened to any unambiguous prefix (`--withdraw`,
//!   `--fast 0.5`); prefixes are judged against every long flag exaprobe
//!   accepts, and an ambiguous one is an error naming the candidates;
//! - a value is the next word unless that word looks like a flag: a negative
//!   number (`--increase -1`) or a word with a space is a value, as in
//!   argparse; `--flag=value` works for long flags and prefixes;
//! - a short flag takes its value glued on (`-i5`), short switches combine
//!   (`-sd`), and the healthcheck's two-letter `-sF` is `--syslog-facility`
//!   (`-sFx` is `-s -F x`, as argparse reads it).
//!
//! What comes out is one canonical word per flag (`--long` or
//! `--long=value`) for clap, which then only sees whole names. [`expand`]
//! also reads `-F`/`--config` files of the healthcheck's `key = value`
//! format the way the healthcheck does: each line becomes `--key` and
//! `value`, parsed (with prefixes) before the command line.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use clap::CommandFactory;

use crate::model::file;

/// How many values a flag takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arity {
    /// A switch.
    None,
    /// Exactly one value.
    One,
    /// One value if the next word is a value (argparse's `nargs='?'`).
    Optional,
}

/// One flag: the canonical long name clap knows and how many values it takes.
#[derive(Clone, Debug)]
struct Flag {
    long: String,
    arity: Arity,
}

/// Every option string (`--ip`, `--cmd`, `--command`, `-c`, `-sF`) and the
/// flag it stands for.
#[derive(Debug)]
struct Table {
    names: Vec<(String, usize)>,
    flags: Vec<Flag>,
}

impl Table {
    fn new() -> Table {
        let cmd = super::Args::command();
        let mut t = Table { names: Vec::new(), flags: Vec::new() };
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let arity = if !arg.get_action().takes_values() {
                Arity::None
            } else if arg.get_num_args().is_some_and(|r| r.min_values() == 0) {
                Arity::Optional
            } else {
                Arity::One
            };
            let i = t.flags.len();
            t.flags.push(Flag { long: long.to_string(), arity });
            t.names.push((format!("--{long}"), i));
            for alias in arg.get_all_aliases().unwrap_or_default() {
                t.names.push((format!("--{alias}"), i));
            }
            if let Some(c) = arg.get_short() {
                t.names.push((format!("-{c}"), i));
            }
            if long == "syslog-facility" {
                t.names.push(("-sF".to_string(), i));
            }
        }
        for (long, short) in [("help", 'h'), ("version", 'V')] {
            let i = t.flags.len();
            t.flags.push(Flag { long: long.to_string(), arity: Arity::None });
            t.names.push((format!("--{long}"), i));
            t.names.push((format!("-{short}"), i));
        }
        t
    }

    fn exact(&self, name: &str) -> Option<usize> {
        self.names.iter().find(|(n, _)| n == name).map(|(_, i)| *i)
    }

    /// The long option strings starting with `prefix`, one per flag.
    fn prefixed(&self, prefix: &str) -> Vec<(&str, usize)> {
        let mut seen = BTreeSet::new();
        self.names
            .iter()
            .filter(|(n, i)| n.starts_with("--") && n.starts_with(prefix) && seen.insert(*i))
            .map(|(n, i)| (n.as_str(), *i))
            .collect()
    }
}

/// A word as argparse classifies it.
#[derive(Debug)]
enum Word {
    /// A value (a positional, in argparse's terms).
    Value(String),
    /// A flag, with what was written for it and a value glued on.
    Flag { flag: usize, written: String, glued: Option<String> },
    /// Looks like a flag but is none.
    Unknown(String),
}

/// argparse's test for a negative number (`-1`, `-0.5`, `-.5`).
fn negative_number(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('-') else { return false };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    match rest.split_once('.') {
        None => !rest.is_empty() && digits(rest),
        Some((a, b)) => digits(a) && !b.is_empty() && digits(b),
    }
}

fn classify(t: &Table, s: &str) -> Result<Word, String> {
    if !s.starts_with('-') || s.len() == 1 {
        return Ok(Word::Value(s.to_string()));
    }
    if let Some(flag) = t.exact(s) {
        return Ok(Word::Flag { flag, written: s.to_string(), glued: None });
    }
    if let Some((name, value)) = s.split_once('=')
        && let Some(flag) = t.exact(name)
    {
        return Ok(Word::Flag { flag, written: name.to_string(), glued: Some(value.to_string()) });
    }
    let candidates: Vec<(String, usize, Option<String>)> = if s.starts_with("--") {
        let (prefix, glued) = match s.split_once('=') {
            Some((p, v)) => (p, Some(v.to_string())),
            None => (s, None),
        };
        t.prefixed(prefix).into_iter().map(|(n, i)| (n.to_string(), i, glued.clone())).collect()
    } else {
        // `-i5`: a short flag with its value glued on (the only reading:
        // no single-dash option string is longer than two letters but -sF,
        // which the exact match above took).
        let short = s.get(..2).unwrap_or(s);
        t.exact(short).map(|i| (short.to_string(), i, Some(s[short.len()..].to_string()))).into_iter().collect()
    };
    match candidates.len() {
        0 if negative_number(s) || s.contains(' ') => Ok(Word::Value(s.to_string())),
        0 => Ok(Word::Unknown(s.to_string())),
        1 => {
            let (written, flag, glued) = candidates.into_iter().next().unwrap_or_default();
            Ok(Word::Flag { flag, written, glued })
        }
        _ => {
            let names: Vec<&str> = candidates.iter().map(|(n, _, _)| n.as_str()).collect();
            Err(format!("ambiguous flag {s}: it could be {}", names.join(", ")))
        }
    }
}

/// One flag as given: its canonical long name and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    /// The long name clap knows, without dashes.
    pub long: String,
    /// Its value, if it took one.
    pub value: Option<String>,
}

impl Given {
    /// The one word clap reads for it.
    pub fn word(&self) -> String {
        match &self.value {
            Some(v) => format!("--{}={v}", self.long),
            None => format!("--{}", self.long),
        }
    }
}

/// Resolves the words of a command line (without the program name) into
/// flags, as argparse would, or the first error (as argparse stops there).
fn resolve_with(t: &Table, args: &[String]) -> Result<Vec<Given>, String> {
    let mut words = Vec::with_capacity(args.len());
    let mut rest = args.iter();
    for a in rest.by_ref() {
        if a == "--" {
            break;
        }
        words.push(classify(t, a)?);
    }
    words.extend(rest.map(|a| Word::Value(a.clone())));
    let mut out = Vec::new();
    let mut it = words.into_iter().peekable();
    while let Some(w) = it.next() {
        let (mut flag, mut written, mut glued) = match w {
            Word::Flag { flag, written, glued } => (flag, written, glued),
            Word::Value(v) => return Err(format!("unexpected argument {v:?}: every value follows its flag")),
            Word::Unknown(u) => return Err(format!("unknown flag {u} (see --help)")),
        };
        loop {
            let f = &t.flags[flag];
            match (f.arity, glued.take()) {
                (Arity::None, Some(g)) if !written.starts_with("--") && !g.is_empty() => {
                    // `-sd`: a switch, then the next letter is a flag too.
                    out.push(Given { long: f.long.clone(), value: None });
                    let next = format!("-{}", &g[..g.chars().next().map_or(0, char::len_utf8)]);
                    let Some(n) = t.exact(&next) else {
                        return Err(format!("{written} takes no value, but {g:?} is glued to it"));
                    };
                    let remainder = g[next.len() - 1..].to_string();
                    (flag, written, glued) = (n, next, Some(remainder).filter(|r| !r.is_empty()));
                    continue;
                }
                (Arity::None, Some(g)) => return Err(format!("{written} takes no value, but was given {g:?}")),
                (Arity::None, None) => out.push(Given { long: f.long.clone(), value: None }),
                (_, Some(g)) => out.push(Given { long: f.long.clone(), value: Some(g) }),
                (arity, None) => {
                    let value = match it.peek() {
                        Some(Word::Value(_)) => match it.next() {
                            Some(Word::Value(v)) => Some(v),
                            _ => None,
                        },
                        _ => None,
                    };
                    if value.is_none() && arity == Arity::One {
                        return Err(format!("{written} needs a value"));
                    }
                    out.push(Given { long: f.long.clone(), value });
                }
            }
            break;
        }
    }
    Ok(out)
}

/// Resolves a command line (without the program name) into flags.
pub fn resolve(args: &[String]) -> Result<Vec<Given>, String> {
    resolve_with(&Table::new(), args)
}

/// The words a healthcheck `key = value` file stands for, as the
/// healthcheck builds them: `--key` and `value` for each line (split at the
/// first `=`, both trimmed), `--line` for a line without one; blank lines
/// and `#` comments skipped.
pub fn file_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in file::strip_bom(text).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) => out.extend([format!("--{}", k.trim()), v.trim().to_string()]),
            None => out.push(format!("--{line}")),
        }
    }
    out
}

/// Expands a command line (program name first) into the words clap reads:
/// the healthcheck's grammar resolved, a `-F`/`--config` file of flags read
/// in front of the command line (which wins). A JSON file stays a
/// `--config` for the multi-service mode. A subcommand's line is left to
/// clap.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut it = args.into_iter();
    let program = it.next().unwrap_or_else(|| OsString::from("exaprobe"));
    let rest: Vec<OsString> = it.collect();
    // A subcommand (`exaprobe check --config …`) has clap's grammar.
    if rest.first().is_some_and(|a| !a.to_string_lossy().starts_with('-')) {
        return Ok(std::iter::once(program).chain(rest).collect());
    }
    let rest: Vec<String> = rest.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let table = Table::new();
    let mut given = resolve_with(&table, &rest)?;
    // The healthcheck reads the last --config given.
    if let Some(path) = given.iter().rev().find(|g| g.long == "config").and_then(|g| g.value.clone()) {
        let text = file::read_config(Path::new(&path)).map_err(|e| format!("--config: cannot read {path}: {e}"))?;
        if !file::looks_like_json(&text) {
            let mut words = file_words(&text);
            words.extend(rest);
            given = resolve_with(&table, &words).map_err(|e| format!("{e} (in {path} or the command line)"))?;
            given.retain(|g| g.long != "config");
        }
    }
    Ok(std::iter::once(program).chain(given.iter().map(|g| OsString::from(g.word()))).collect())
}

/// The healthcheck's long option strings (5.0.15), for judging which of
/// their prefixes exaprobe's own flags make ambiguous.
#[cfg(test)]
const HEALTHCHECK_LONG: &[&str] = &[
    "help",
    "silent",
    "syslog-facility",
    "no-syslog",
    "debug",
    "no-ack",
    "sudo",
    "name",
    "config",
    "pid",
    "user",
    "group",
    "interval",
    "fast-interval",
    "timeout",
    "rise",
    "fall",
    "disable",
    "command",
    "cmd",
    "next-hop",
    "ip",
    "ip-ifname",
    "local-preference",
    "deaggregate-networks",
    "no-ip-setup",
    "dynamic-ip-setup",
    "label",
    "label-exact-match",
    "start-ip",
    "up-metric",
    "down-metric",
    "disabled-metric",
    "increase",
    "community",
    "extended-community",
    "large-community",
    "disabled-community",
    "as-path",
    "up-as-path",
    "down-as-path",
    "disabled-as-path",
    "withdraw-on-down",
    "path-id",
    "neighbor",
    "debounce",
    "execute",
    "up-execute",
    "down-execute",
    "disabled-execute",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Result<Vec<String>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        resolve(&args).map(|g| g.iter().map(Given::word).collect())
    }

    #[test]
    fn prefixes_negative_numbers_and_short_flags() {
        assert_eq!(
            words(&["--withdraw", "--fast", "0.5", "--local-pref", "200", "--deaggregate"]).unwrap(),
            ["--withdraw-on-down", "--fast-interval=0.5", "--local-preference=200", "--deaggregate-networks"]
        );
        assert_eq!(words(&["--increase", "-1", "--start-ip=-2"]).unwrap(), ["--increase=-1", "--start-ip=-2"]);
        assert_eq!(
            words(&["-i5", "-sd", "-c", "exit 1"]).unwrap(),
            ["--interval=5", "--silent", "--debug", "--cmd=exit 1"]
        );
        assert_eq!(words(&["-sF", "daemon"]).unwrap(), ["--syslog-facility=daemon"]);
        assert_eq!(words(&["-sF"]).unwrap(), ["--syslog-facility"]);
        assert_eq!(words(&["-sFdaemon"]).unwrap(), ["--silent", "--config=daemon"]);
        assert_eq!(words(&["--command", "true", "--commu", "65000:1"]).unwrap(), ["--cmd=true", "--community=65000:1"]);
        assert_eq!(words(&["--cmd", "-1"]).unwrap(), ["--cmd=-1"]);
    }

    #[test]
    fn errors_name_the_flag() {
        let e = words(&["--co", "x"]).unwrap_err();
        assert!(e.contains("--co") && e.contains("--config") && e.contains("--community"), "{e}");
        assert!(words(&["--cmd"]).unwrap_err().contains("--cmd needs a value"));
        assert!(words(&["--cmd", "-x"]).unwrap_err().contains("--cmd needs a value"));
        assert!(words(&["--debug=1"]).unwrap_err().contains("--debug takes no value"));
        assert!(words(&["--frobnicate"]).unwrap_err().contains("unknown flag --frobnicate"));
        assert!(words(&["stray"]).unwrap_err().contains("\"stray\""));
    }

    #[test]
    fn file_lines_are_words() {
        assert_eq!(
            file_words("# c\n\ncmd = curl -sf x\nwithdraw\nrise=5\n"),
            ["--cmd", "curl -sf x", "--withdraw", "--rise", "5"]
        );
    }

    /// The prefixes of the healthcheck's long flags that argparse accepts
    /// against the healthcheck's own set but exaprobe's extra flags make
    /// ambiguous (listed in the migration table).
    #[test]
    fn prefixes_made_ambiguous_by_exaprobe_flags() {
        let t = Table::new();
        let mut lost = BTreeSet::new();
        for name in HEALTHCHECK_LONG {
            for end in 3..name.len() + 2 {
                let prefix = format!("--{}", &name[..end - 2]);
                let theirs: BTreeSet<&str> = HEALTHCHECK_LONG
                    .iter()
                    .filter(|n| format!("--{n}").starts_with(&prefix))
                    .map(|n| if *n == "cmd" { "command" } else { *n })
                    .collect();
                if theirs.len() == 1 && t.exact(&prefix).is_none() && t.prefixed(&prefix).len() > 1 {
                    lost.insert(prefix);
                }
            }
        }
        let lost: Vec<&str> = lost.iter().map(String::as_str).collect();
        assert_eq!(lost, AMBIGUOUS_HERE, "update the migration table");
    }

    const AMBIGUOUS_HERE: &[&str] = &[
        "--a",       // --as-path, and --ack-timeout
        "--con",     // --config, and --control-socket
        "--h",       // --help, and --http
        "--ip-",     // --ip-ifname, and the refused --ip-setup
        "--lo",      // --local-preference, and --log-level, --log-target
        "--nex",     // --next-hop, and --next-hop6 (also --next, --next-, --next-h, --next-ho)
        "--next",    //
        "--next-",   //
        "--next-h",  //
        "--next-ho", //
        "--r",       // --rise, and --require, --reassert
        "--si",      // --silent, and --site
        "--st",      // --start-ip, and --state-file (also --sta)
        "--sta",     //
        "--t",       // --timeout, and --tcp
        "--w",       // --withdraw-on-down, and --watch-pid-file, --watch-listen, --watch-unit
    ];
}
