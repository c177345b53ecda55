//! The source-address allow-list checked before any TLS byte is exchanged.
//!
//! # File format
//!
//! One entry per line. Each entry is one of:
//!
//! - an IPv4 or IPv6 address: `10.0.0.50`, `fd00::17`;
//! - a CIDR network: `192.168.1.0/24`, `fd00:1234::/48`. An entry with host bits set
//!   (`10.1.2.3/8`) is refused, because a typo such as `10.0.0.5/0` would admit everyone;
//! - a host name: `manager.internal`. It is resolved **once, when the list is loaded** (at start
//!   and at each reload), and every address it resolves to is admitted. A name that does not
//!   resolve makes the whole list invalid.
//!
//! `#` starts a comment that runs to the end of the line; blank lines are ignored; leading and
//! trailing whitespace is trimmed.
//!
//! ```text
//! # The manager and its standby
//! 10.0.0.50
//! manager-2.internal      # resolved at load
//! 192.168.10.0/24
//! fd00:10::/64
//! ```
//!
//! # Failing closed
//!
//! The list is default-deny: an address is admitted only if an entry covers it. A file that is
//! missing, unreadable, empty (no entries once comments are removed) or holds any invalid entry
//! is an [`AllowListError`], and never a partial list. At start, use [`AllowList::load_or_deny_all`]
//! to turn such an error into a list that denies every client, with the reason logged. On a reload
//! the caller keeps the list already in force (see [`crate::transport::ReloadHandle`]).
//!
//! IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`, as seen by a dual-stack socket) are matched as
//! the IPv4 address they carry, both in entries and in peer addresses.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};

/// How long a host name entry may take to resolve before the list is refused.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where an allow-list came from, for error messages and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowListSource {
    /// Loaded from this file.
    File(PathBuf),
    /// Built in code (tests, flags).
    Inline,
}

impl fmt::Display for AllowListSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowListSource::File(path) => write!(f, "allow-list {}", path.display()),
            AllowListSource::Inline => f.write_str("allow-list"),
        }
    }
}

/// Why an allow-list was refused. Every variant means "this list admits nobody".
#[derive(Debug, thiserror::Error)]
pub enum AllowListError {
    /// The file could not be read (missing, permissions, not UTF-8).
    #[error("{source_name}: cannot read the file: {error}; every client is denied")]
    Read {
        /// The file.
        source_name: AllowListSource,
        /// The IO error.
        #[source]
        error: io::Error,
    },
    /// The list holds no entries once comments and blank lines are removed.
    #[error("{source_name}: no entries; every client is denied")]
    Empty {
        /// The list.
        source_name: AllowListSource,
    },
    /// An entry is neither an address, a CIDR network nor a valid host name.
    #[error("{source_name}: line {line}: `{entry}` is not an IP address, CIDR network or host name: {reason}; every client is denied")]
    InvalidEntry {
        /// The list.
        source_name: AllowListSource,
        /// 1-based line number.
        line: usize,
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A host name entry did not resolve to any address.
    #[error("{source_name}: line {line}: host name `{host}` does not resolve: {reason}; every client is denied")]
    Unresolvable {
        /// The list.
        source_name: AllowListSource,
        /// 1-based line number.
        line: usize,
        /// The host name.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
}

/// A parsed, not yet resolved entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// An address or network (a single address is a /32 or /128).
    Net(IpNet),
    /// A host name, resolved when the list is loaded.
    Host(String),
}

impl AllowEntry {
    /// Parses one entry (already trimmed, comment removed). The error is the reason.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if entry.is_empty() {
            return Err("empty entry".to_owned());
        }
        if entry.contains('/') {
            let net: IpNet = entry.parse().map_err(|_| {
                "invalid CIDR network (expected ADDRESS/PREFIX, prefix at most 32 for IPv4 and 128 for IPv6)".to_owned()
            })?;
            // `10.0.0.5/0` admits everyone: a typo must not open the list silently.
            if net.trunc() != net {
                return Err(format!(
                    "host bits are set; write the network as {} (or the single address without /{})",
                    net.trunc(),
                    net.prefix_len()
                ));
            }
            return Ok(AllowEntry::Net(canonical_net(net)));
        }
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Ok(AllowEntry::Net(canonical_net(IpNet::from(ip))));
        }
        if entry.contains(':') {
            return Err("invalid IPv6 address".to_owned());
        }
        validate_host_name(entry)?;
        Ok(AllowEntry::Host(entry.trim_end_matches('.').to_ascii_lowercase()))
    }
}

/// Maps an IPv4-mapped IPv6 network (`::ffff:a.b.c.d/96+n`) to the IPv4 network it covers.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map(IpNet::V4).unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

fn validate_host_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("a host name must be 1 to 253 characters long".to_owned());
    }
    let mut all_numeric = true;
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated part of a host name must be 1 to 63 characters long".to_owned());
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err("a host name may hold only letters, digits, '-' and '.'".to_owned());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a part of a host name may not start or end with '-'".to_owned());
        }
        all_numeric &= label.bytes().all(|b| b.is_ascii_digit());
    }
    if all_numeric {
        return Err("invalid IPv4 address".to_owned());
    }
    Ok(())
}

/// Splits list text into `(line number, entry)` pairs, dropping comments and blank lines.
fn entries_of(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let entry = line.split('#').next().unwrap_or("").trim();
        (!entry.is_empty()).then_some((index + 1, entry))
    })
}

/// The set of source addresses admitted to the agent's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
    source: AllowListSource,
    /// Why this list is deny-all, when it was built from an error.
    deny_reason: Option<String>,
}

impl AllowList {
    /// A list that admits nobody; `reason` is kept for logs.
    pub fn deny_all(reason: impl Into<String>) -> Self {
        AllowList { nets: Vec::new(), source: AllowListSource::Inline, deny_reason: Some(reason.into()) }
    }

    /// Builds a list from entries given in code (for example on the command line). Each string is
    /// one entry as in the file format; comments are not allowed here.
    pub async fn from_entries<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowListError> {
        let numbered: Vec<(usize, &str)> =
            entries.iter().enumerate().map(|(i, e)| (i + 1, e.as_ref().trim())).collect();
        Self::build(numbered, AllowListSource::Inline).await
    }

    /// Parses list text in the file format; `source` names it in errors.
    pub async fn parse(text: &str, source: AllowListSource) -> Result<Self, AllowListError> {
        Self::build(entries_of(text).collect(), source).await
    }

    /// Reads and parses the file at `path`.
    pub async fn load(path: &Path) -> Result<Self, AllowListError> {
        let source = AllowListSource::File(path.to_owned());
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(error) => return Err(AllowListError::Read { source_name: source, error }),
        };
        Self::parse(&text, source).await
    }

    /// Like [`AllowList::load`], but an error is logged and becomes a deny-all list: the agent
    /// starts, and admits nobody until the file is fixed and reloaded.
    pub async fn load_or_deny_all(path: &Path) -> Self {
        match Self::load(path).await {
            Ok(list) => list,
            Err(error) => {
                tracing::error!(%error, "allow-list refused; denying every client");
                Self::deny_all(error.to_string())
            }
        }
    }

    async fn build(entries: Vec<(usize, &str)>, source: AllowListSource) -> Result<Self, AllowListError> {
        if entries.is_empty() {
            return Err(AllowListError::Empty { source_name: source });
        }
        let mut parsed = Vec::with_capacity(entries.len());
        // Parse everything first so a syntax error is reported before any DNS query is made.
        for (line, entry) in entries {
            match AllowEntry::parse(entry) {
                Ok(parsed_entry) => parsed.push((line, parsed_entry)),
                Err(reason) => {
                    return Err(AllowListError::InvalidEntry {
                        source_name: source,
                        line,
                        entry: entry.to_owned(),
                        reason,
                    })
                }
            }
        }
        let mut nets = Vec::new();
        for (line, entry) in parsed {
            match entry {
                AllowEntry::Net(net) => nets.push(net),
                AllowEntry::Host(host) => {
                    let addrs = resolve(&host).await.map_err(|reason| AllowListError::Unresolvable {
                        source_name: source.clone(),
                        line,
                        host: host.clone(),
                        reason,
                    })?;
                    tracing::debug!(host = %host, addresses = ?addrs, "allow-list host name resolved");
                    nets.extend(addrs.into_iter().map(|ip| canonical_net(IpNet::from(ip))));
                }
            }
        }
        nets.sort();
        nets.dedup();
        Ok(AllowList { nets, source, deny_reason: None })
    }

    /// Whether `ip` is admitted. IPv4-mapped IPv6 addresses are matched as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => self.nets.iter().any(|net| matches!(net, IpNet::V4(n) if n.contains(&v4))),
            IpAddr::V6(v6) => self.nets.iter().any(|net| matches!(net, IpNet::V6(n) if n.contains(&v6))),
        }
    }

    /// The networks admitted, host names already resolved (sorted, deduplicated).
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// Where the list came from.
    pub fn source(&self) -> &AllowListSource {
        &self.source
    }

    /// Why this list admits nobody, when it was made by [`AllowList::deny_all`].
    pub fn deny_reason(&self) -> Option<&str> {
        self.deny_reason.as_deref()
    }
}

async fn resolve(host: &str) -> Result<Vec<IpAddr>, String> {
    let lookup = tokio::net::lookup_host((host, 0));
    let addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Err(_) => return Err(format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs())),
        Ok(Err(error)) => return Err(error.to_string()),
        Ok(Ok(addrs)) => addrs.map(|sa| sa.ip()).collect::<Vec<_>>(),
    };
    if addrs.is_empty() {
        return Err("no addresses".to_owned());
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    async fn list(text: &str) -> AllowList {
        AllowList::parse(text, AllowListSource::Inline).await.expect("valid list")
    }

    #[tokio::test]
    async fn single_addresses_and_default_deny() {
        let l = list("10.0.0.50\nfd00::17\n").await;
        assert!(l.allows(ip("10.0.0.50")));
        assert!(!l.allows(ip("10.0.0.51")));
        assert!(l.allows(ip("fd00::17")));
        assert!(!l.allows(ip("fd00::18")));
        assert!(!l.allows(ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn ipv4_and_ipv6_cidrs() {
        let l = list("127.0.0.0/30\nfd00:1234::/48\n").await;
        assert!(l.allows(ip("127.0.0.0")));
        assert!(l.allows(ip("127.0.0.3")));
        assert!(!l.allows(ip("127.0.0.4")));
        assert!(!l.allows(ip("127.0.0.9")));
        assert!(l.allows(ip("fd00:1234:0:ffff::1")));
        assert!(!l.allows(ip("fd00:1235::1")));
    }

    #[tokio::test]
    async fn host_bits_in_a_cidr_are_refused() {
        // `10.0.0.5/0` would otherwise admit everyone.
        for (entry, network) in [("10.1.2.3/8", "10.0.0.0/8"), ("10.0.0.5/0", "0.0.0.0/0"), ("fd00::1/64", "fd00::/64")]
        {
            let err = AllowList::parse(entry, AllowListSource::Inline).await.expect_err(entry).to_string();
            assert!(err.contains(&format!("host bits are set; write the network as {network}")), "{err}");
        }
        let l = list("10.0.0.0/8").await;
        assert_eq!(l.networks(), &["10.0.0.0/8".parse::<IpNet>().expect("net")]);
        assert!(l.allows(ip("10.200.0.1")));
    }

    #[tokio::test]
    async fn ipv4_mapped_peer_matches_ipv4_entry() {
        let l = list("127.0.0.1\n192.168.0.0/16").await;
        assert!(l.allows(ip("::ffff:127.0.0.1")));
        assert!(l.allows(ip("::ffff:192.168.4.5")));
        assert!(!l.allows(ip("::ffff:127.0.0.2")));
    }

    #[tokio::test]
    async fn ipv4_mapped_entry_matches_ipv4_peer() {
        let l = list("::ffff:10.0.0.1\n::ffff:192.168.0.0/112").await;
        assert!(l.allows(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert!(l.allows(ip("192.168.77.1")));
        assert!(!l.allows(ip("192.169.0.1")));
        assert!(l.allows(ip("::ffff:10.0.0.1")));
    }

    #[tokio::test]
    async fn ipv6_loopback_is_not_ipv4_loopback() {
        let l = list("127.0.0.1").await;
        assert!(!l.allows(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[tokio::test]
    async fn comments_blank_lines_and_whitespace() {
        let text = "# the manager\n\n   10.0.0.50   # primary\n\t# indented comment\n10.0.0.51#no space\n";
        let l = list(text).await;
        assert!(l.allows(ip("10.0.0.50")));
        assert!(l.allows(ip("10.0.0.51")));
        assert_eq!(l.networks().len(), 2);
    }

    #[tokio::test]
    async fn host_names_are_resolved_at_load() {
        let l = list("localhost").await;
        assert!(l.allows(ip("127.0.0.1")));
        assert!(!l.allows(ip("10.0.0.1")));
        assert_eq!(l.source(), &AllowListSource::Inline);
    }

    #[tokio::test]
    async fn empty_or_comment_only_list_is_refused() {
        for text in ["", "\n\n", "# nothing here\n   # nor here\n"] {
            let err = AllowList::parse(text, AllowListSource::Inline).await.expect_err("empty list");
            assert!(matches!(err, AllowListError::Empty { .. }), "{err}");
            assert!(err.to_string().contains("every client is denied"), "{err}");
        }
    }

    #[tokio::test]
    async fn bad_entries_are_named_with_their_line() {
        let cases = [
            ("10.0.0.1\n10.0.0.0/33\n", 2, "10.0.0.0/33"),
            ("300.1.1.1", 1, "300.1.1.1"),
            ("# c\n\n10.0.0.1/abc", 3, "10.0.0.1/abc"),
            ("fd00::1::2", 1, "fd00::1::2"),
            ("bad_host!name", 1, "bad_host!name"),
            ("-leading.example", 1, "-leading.example"),
            ("1.2.3", 1, "1.2.3"),
        ];
        for (text, want_line, want_entry) in cases {
            let source = AllowListSource::File(PathBuf::from("/etc/patchdeck/allow.list"));
            let err = AllowList::parse(text, source).await.expect_err(text);
            match &err {
                AllowListError::InvalidEntry { line, entry, .. } => {
                    assert_eq!((*line, entry.as_str()), (want_line, want_entry), "{err}");
                }
                other => panic!("{text}: unexpected error {other}"),
            }
            let message = err.to_string();
            assert!(message.contains("/etc/patchdeck/allow.list"), "{message}");
            assert!(message.contains(want_entry), "{message}");
            assert!(message.contains("every client is denied"), "{message}");
        }
    }

    #[tokio::test]
    async fn unresolvable_host_name_is_named() {
        // `.invalid` is reserved (RFC 2606) and never resolves.
        let err =
            AllowList::parse("10.0.0.1\nno-such-host.invalid", AllowListSource::Inline).await.expect_err("nxdomain");
        match &err {
            AllowListError::Unresolvable { line, host, .. } => {
                assert_eq!((*line, host.as_str()), (2, "no-such-host.invalid"));
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(err.to_string().contains("no-such-host.invalid"));
    }

    #[tokio::test]
    async fn missing_file_is_refused_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.list");
        let err = AllowList::load(&path).await.expect_err("missing");
        assert!(matches!(err, AllowListError::Read { .. }));
        assert!(err.to_string().contains("absent.list"), "{err}");
        let denied = AllowList::load_or_deny_all(&path).await;
        assert!(!denied.allows(ip("127.0.0.1")));
        assert!(denied.deny_reason().is_some_and(|r| r.contains("absent.list")));
    }

    #[tokio::test]
    async fn from_entries_builds_inline_lists() {
        let l = AllowList::from_entries(&["127.0.0.1", "::1"]).await.expect("list");
        assert!(l.allows(ip("127.0.0.1")));
        assert!(l.allows(ip("::1")));
        let err = AllowList::from_entries(&["127.0.0.1", "nope nope"]).await.expect_err("bad");
        assert!(matches!(err, AllowListError::InvalidEntry { line: 2, .. }), "{err}");
        let empty: [&str; 0] = [];
        assert!(matches!(AllowList::from_entries(&empty).await, Err(AllowListError::Empty { .. })));
    }
}
