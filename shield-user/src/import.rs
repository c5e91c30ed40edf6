//! Parsing blocklist feeds: one address or CIDR per line, `#` and `;` comments (the formats of
//! the Spamhaus DROP and FireHOL lists). The whole input is checked; every bad line is reported
//! with its number, and a list with any bad line is refused as a whole.

use std::collections::BTreeSet;

use ipnet::IpNet;

use crate::lists::parse_net;

/// A bad line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {:?}: {}", self.line, self.text, self.reason)
    }
}

/// Parse a list; duplicates are folded. `Err` carries every bad line.
pub fn parse_list(text: &str) -> Result<Vec<IpNet>, Vec<LineError>> {
    let mut nets = BTreeSet::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.split(['#', ';']).next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let mut fields = content.split_whitespace();
        let first = fields.next().unwrap_or("");
        let result = if fields.next().is_some() {
            Err("one address or CIDR per line (use # or ; before comments)".to_owned())
        } else {
            parse_net(first).map_err(|e| e.to_string())
        };
        match result {
            Ok(net) => {
                nets.insert(net);
            }
            Err(reason) => {
                errors.push(LineError { line: i + 1, text: raw.trim_end().to_owned(), reason })
            }
        }
    }
    if errors.is_empty() { Ok(nets.into_iter().collect()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spamhaus_drop_format() {
        let text = "; Spamhaus DROP List 2026/11/27 - (c) 2026 The Spamhaus Project\n; Last-Modified: Thu, 27 Nov 2026\n198.18.16.0/20 ; SBL256894\n198.19.0.0/16 ; SBL1\n";
        assert_eq!(parse_list(text).unwrap().len(), 2);
    }

    #[test]
    fn firehol_format_with_bare_addresses_and_ipv6() {
        let text = "#\n# firehol_level1\n#\n198.18.0.0/15\n198.18.7.7\n2001:db8::/32\n\n  \n";
        let nets = parse_list(text).unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets.contains(&"198.18.7.7/32".parse().unwrap()));
    }

    #[test]
    fn duplicates_fold() {
        assert_eq!(parse_list("198.18.0.1\n198.18.0.1/32\n").unwrap().len(), 1);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = "198.18.0.0/24\nnot-an-ip\n198.18.0.7/16 # typo\n198.18.1.0/24 extra\n";
        let errs = parse_list(text).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.line).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert!(errs[1].reason.contains("did you mean 198.18.0.0/16"));
    }

    #[test]
    fn empty_input_is_an_empty_list() {
        assert_eq!(parse_list("").unwrap(), Vec::<IpNet>::new());
        assert_eq!(parse_list("# nothing\n; here\n").unwrap(), Vec::<IpNet>::new());
    }
}
