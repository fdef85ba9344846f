//! The DNS referees: dig and kdig, run as clients and their printed reply
//! parsed (status, header flags, question count, answer section, NSID).

use std::process::Command;

/// A dig or kdig reply, as printed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dig {
    /// `NOERROR`, `REFUSED`, …; `None` if no reply was printed.
    pub(crate) status: Option<String>,
    /// The header flags (`qr`, `aa`, `rd`, `ad`, `tc`, …).
    pub(crate) flags: Vec<String>,
    /// The question count.
    pub(crate) qdcount: Option<u32>,
    /// The answer section's lines.
    pub(crate) answer: Vec<String>,
    /// The NSID as text.
    pub(crate) nsid: Option<String>,
    /// All of the output, for messages.
    pub(crate) text: String,
}

impl Dig {
    /// Runs `client` (dig or kdig) with `args` and parses what it printed.
    pub(crate) fn run(client: &str, args: &[&str]) -> Dig {
        let out = Command::new(client).args(args).output().unwrap_or_else(|e| panic!("{client}: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Dig::parse(&text)
    }

    /// Parses what dig or kdig printed.
    pub(crate) fn parse(text: &str) -> Dig {
        let mut dig = Dig { text: text.to_string(), ..Dig::default() };
        let mut in_answer = false;
        for line in text.lines() {
            if let Some(rest) = line.split_once("status: ").map(|(_, r)| r) {
                dig.status = rest.split([',', ';']).next().map(|s| s.trim().to_string());
            }
            let lower = line.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix(";; flags:") {
                let flags = rest.split(';').next().unwrap_or("");
                dig.flags = flags.split_whitespace().map(str::to_string).collect();
                dig.qdcount = rest
                    .split_once("query: ")
                    .and_then(|(_, r)| r.split([',', ';']).next())
                    .and_then(|n| n.trim().parse().ok());
            }
            if line.contains("NSID:") {
                dig.nsid = line.split('"').nth(1).map(str::to_string);
            }
            if line.starts_with(";; ANSWER SECTION:") {
                in_answer = true;
                continue;
            }
            if in_answer {
                if line.trim().is_empty() || line.starts_with(";;") {
                    in_answer = false;
                } else {
                    dig.answer.push(line.to_string());
                }
            }
        }
        dig
    }

    /// Whether the header has `flag`.
    pub(crate) fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}
