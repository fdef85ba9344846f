//! The flag form of `--plugin`: `"PATH ARGS… [timeout=D] [on-fail=degrade]"`.
//!
//! The value is split on spaces (no shell, no quotes). Trailing words
//! `timeout=DURATION` and `on-fail=down|degrade` are the check's options, as
//! for every other check flag, not arguments of the plugin: the words are
//! taken from the end while they are one of the two, so a plugin argument
//! that happens to read `timeout=…` still reaches the plugin when an
//! ordinary argument follows it. In each remaining word, `\x20` (any `\xHH`
//! of an ASCII character, `\x00` excepted) and `\\` are decoded, so an
//! argument can hold a space (`-s GET\x20/health`); any other backslash is
//! kept as it is (`check_http -r '\d+'` is written `-r \d+`).
//!
//! A trailing plugin argument that reads `timeout=…` or `on-fail=…` is
//! written with its `=` escaped, `timeout\x3d5`: the options are recognised
//! before the escapes are decoded, so the plugin gets `timeout=5`.

/// A `--plugin` value, split.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginWords {
    /// The program and its arguments, unescaped.
    pub argv: Vec<String>,
    /// The trailing `timeout=` value, if given.
    pub timeout: Option<String>,
    /// The trailing `on-fail=` value, if given.
    pub on_fail: Option<String>,
}

impl PluginWords {
    /// Splits a `--plugin` value (see the module doc).
    pub fn parse(spec: &str) -> Self {
        let mut words: Vec<&str> = spec.split_whitespace().collect();
        let mut out = PluginWords::default();
        // Never the program itself: `--plugin timeout=1s` stays a program.
        while words.len() > 1 {
            let last = words[words.len() - 1];
            if let Some(t) = last.strip_prefix("timeout=")
                && out.timeout.is_none()
            {
                out.timeout = Some(t.to_string());
            } else if let Some(f) = last.strip_prefix("on-fail=")
                && out.on_fail.is_none()
            {
                out.on_fail = Some(f.to_string());
            } else {
                break;
            }
            words.pop();
        }
        out.argv = words.into_iter().map(unescape).collect();
        out
    }
}

/// Decodes `\\` and `\xHH` (ASCII, not NUL); leaves every other backslash
/// as it is. Never fails, and the result is always UTF-8.
fn unescape(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("\\\\") {
            out.push('\\');
            rest = after;
            continue;
        }
        let hex = tail.get(2..4).filter(|_| tail.as_bytes().get(1) == Some(&b'x'));
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()).filter(|b| (1..0x80).contains(b)) {
            Some(b) => {
                out.push(char::from(b));
                rest = &tail[4..];
            }
            None => {
                out.push('\\');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_check_options_are_taken_off() {
        let w = PluginWords::parse("/usr/lib/nagios/plugins/check_tcp -H 127.0.0.1 -p 80 timeout=1s on-fail=degrade");
        assert_eq!(w.argv, ["/usr/lib/nagios/plugins/check_tcp", "-H", "127.0.0.1", "-p", "80"]);
        assert_eq!(w.timeout.as_deref(), Some("1s"));
        assert_eq!(w.on_fail.as_deref(), Some("degrade"));
        // Not trailing: an argument.
        let w = PluginWords::parse("check_x timeout=5 -v");
        assert_eq!(w.argv, ["check_x", "timeout=5", "-v"]);
        assert_eq!(w.timeout, None);
        // Twice the same option: the earlier one is an argument.
        let w = PluginWords::parse("check_x timeout=5 timeout=1s");
        assert_eq!(w.argv, ["check_x", "timeout=5"]);
        assert_eq!(w.timeout.as_deref(), Some("1s"));
        // The program is never an option.
        assert_eq!(PluginWords::parse("timeout=1s").argv, ["timeout=1s"]);
        assert_eq!(PluginWords::parse("").argv, Vec::<String>::new());
    }

    #[test]
    fn an_escaped_equals_sign_keeps_a_trailing_option_for_the_plugin() {
        let w = PluginWords::parse("check_x timeout\\x3d5");
        assert_eq!(w.argv, ["check_x", "timeout=5"]);
        assert_eq!(w.timeout, None);
        let w = PluginWords::parse("check_x on-fail\\x3ddegrade timeout=2s");
        assert_eq!(w.argv, ["check_x", "on-fail=degrade"]);
        assert_eq!((w.timeout.as_deref(), w.on_fail), (Some("2s"), None));
    }

    #[test]
    fn spaces_and_backslashes() {
        assert_eq!(unescape("GET\\x20/health"), "GET /health");
        assert_eq!(unescape("a\\\\x20b"), "a\\x20b");
        assert_eq!(unescape("\\d+"), "\\d+");
        assert_eq!(unescape("\\x"), "\\x");
        assert_eq!(unescape("\\xzz"), "\\xzz");
        assert_eq!(unescape("\\xff"), "\\xff");
        assert_eq!(unescape("\\x00"), "\\x00");
        assert_eq!(unescape("end\\"), "end\\");
        assert_eq!(unescape("é\\x41é"), "éAé");
        let w = PluginWords::parse("check_http -H 127.0.0.1 -s OK\\x20default");
        assert_eq!(w.argv[3..], ["-s", "OK default"]);
    }
}
