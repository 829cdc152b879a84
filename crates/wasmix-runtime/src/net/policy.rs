//! What network a guest may reach: nothing unless the user grants it.
//!
//! ```text
//! --net                      everything (as a native program)
//! --net-allow RULE[,RULE…]   only what a rule covers (the flag may repeat)
//!   RULE  := connect=HOST:PORTS    connect, or send a datagram, to HOST
//!          | bind=HOST:PORTS       bind (and so listen or receive) on HOST
//!          | resolve=NAME          look NAME up (`*`: any name)
//!   HOST  := * | localhost | IPv4 | [IPv6] | IPv4/BITS | [IPv6]/BITS | a host name
//!   PORTS := * | N | N-M           (port 0, an ephemeral bind, needs `*` or a range with 0)
//! ```
//!
//! `localhost` is 127.0.0.0/8 and ::1; a host name in a rule is looked up when the policy
//! is built, and may then be resolved by the guest too. `localhost` and address literals
//! always resolve. Unix-domain sockets never reach the network and need no rule: their
//! paths are inside the guest's mounts as its files are (`sock_pair`'s are unnamed). A
//! refusal answers what a firewalled Linux program sees: connect
//! ECONNREFUSED, bind and send EACCES. Incoming connections to a socket the policy let
//! bind are accepted.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// A network operation a policy rules on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetOp {
    /// Connecting, or sending a datagram, to an address.
    Connect,
    /// Binding to a local address.
    Bind,
}

impl fmt::Display for NetOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetOp::Connect => "connect",
            NetOp::Bind => "bind",
        })
    }
}

/// Which addresses a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Hosts {
    Any,
    /// Networks, each an address and prefix length.
    Nets(Vec<(IpAddr, u8)>),
}

/// One `--net-allow` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    text: String,
    kind: RuleKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RuleKind {
    Addr {
        op: NetOp,
        hosts: Hosts,
        /// Host names the rule was written with (they may be resolved).
        names: Vec<String>,
        ports: (u16, u16),
    },
    Resolve(String),
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A rule that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad --net-allow rule `{rule}`: {why} (rules look like connect=HOST:PORTS, bind=HOST:PORTS or resolve=NAME; e.g. connect=localhost:8000-8100)")]
pub struct BadRule {
    rule: String,
    why: String,
}

/// The network a run's guests may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetPolicy {
    everything: bool,
    rules: Vec<NetRule>,
}

/// Why an operation was allowed: `--net`, or the rule that covers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed<'a> {
    /// `--net`.
    Everything,
    /// This rule.
    Rule(&'a NetRule),
}

impl NetPolicy {
    /// No network at all (the default).
    pub fn none() -> NetPolicy {
        NetPolicy::default()
    }

    /// Everything, as a native program has (`--net`).
    pub fn everything() -> NetPolicy {
        NetPolicy {
            everything: true,
            rules: Vec::new(),
        }
    }

    /// Only what `rules` cover, each `connect=…`, `bind=…` or `resolve=…` (a list item may
    /// itself hold several, comma-separated).
    pub fn rules<S: AsRef<str>>(rules: &[S]) -> Result<NetPolicy, BadRule> {
        let mut parsed = Vec::new();
        for list in rules {
            for text in list.as_ref().split(',').filter(|r| !r.trim().is_empty()) {
                parsed.push(parse_rule(text.trim())?);
            }
        }
        Ok(NetPolicy {
            everything: false,
            rules: parsed,
        })
    }

    /// Whether any network is allowed.
    pub fn is_none(&self) -> bool {
        !self.everything && self.rules.is_empty()
    }

    /// Whether `op` on `addr` is allowed, and by what.
    pub fn check(&self, op: NetOp, addr: SocketAddr) -> Option<Allowed<'_>> {
        if self.everything {
            return Some(Allowed::Everything);
        }
        self.rules
            .iter()
            .find(|r| match &r.kind {
                RuleKind::Addr {
                    op: rop,
                    hosts,
                    ports,
                    ..
                } => {
                    *rop == op
                        && (ports.0..=ports.1).contains(&addr.port())
                        && covers(hosts, addr.ip())
                }
                RuleKind::Resolve(_) => false,
            })
            .map(Allowed::Rule)
    }

    /// Whether the guest may look `name` up.
    pub fn may_resolve(&self, name: &str) -> bool {
        if self.everything || is_local_name(name) || name.parse::<IpAddr>().is_ok() {
            return true;
        }
        self.rules.iter().any(|r| match &r.kind {
            RuleKind::Resolve(n) => n == "*" || n.eq_ignore_ascii_case(name),
            RuleKind::Addr { names, .. } => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        })
    }
}

fn is_local_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost") || name.to_ascii_lowercase().ends_with(".localhost")
}

fn covers(hosts: &Hosts, ip: IpAddr) -> bool {
    match hosts {
        Hosts::Any => true,
        Hosts::Nets(nets) => nets.iter().any(|&(net, bits)| in_net(ip, net, bits)),
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    // An IPv4-mapped IPv6 address is its IPv4 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn parse_rule(text: &str) -> Result<NetRule, BadRule> {
    let bad = |why: &str| BadRule {
        rule: text.to_owned(),
        why: why.to_owned(),
    };
    let (kind, target) = text
        .split_once('=')
        .ok_or_else(|| bad("no `=` after the operation"))?;
    let op = match kind.trim() {
        "connect" => NetOp::Connect,
        "bind" => NetOp::Bind,
        "resolve" => {
            let name = target.trim();
            if name.is_empty() {
                return Err(bad("no name to resolve"));
            }
            return Ok(NetRule {
                text: text.to_owned(),
                kind: RuleKind::Resolve(name.to_owned()),
            });
        }
        other => return Err(bad(&format!("unknown operation `{other}`"))),
    };
    let (host, ports) = target
        .rsplit_once(':')
        .ok_or_else(|| bad("no `:PORTS` after the host"))?;
    let ports = parse_ports(ports).ok_or_else(|| bad("ports are `*`, N or N-M (0-65535)"))?;
    let (hosts, names) = parse_hosts(host).map_err(|why| bad(&why))?;
    Ok(NetRule {
        text: text.to_owned(),
        kind: RuleKind::Addr {
            op,
            hosts,
            names,
            ports,
        },
    })
}

fn parse_ports(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    if s == "*" {
        return Some((0, u16::MAX));
    }
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

fn parse_hosts(host: &str) -> Result<(Hosts, Vec<String>), String> {
    let host = host.trim();
    if host == "*" {
        return Ok((Hosts::Any, Vec::new()));
    }
    if is_local_name(host) {
        let nets = vec![
            (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        ];
        return Ok((Hosts::Nets(nets), vec![host.to_owned()]));
    }
    let (addr, bits) = match host.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (host, None),
    };
    let literal = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']'));
    let ip = literal.unwrap_or(addr).parse::<IpAddr>();
    match (ip, bits) {
        (Ok(ip), bits) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or(format!("a prefix length is 0 to {max}"))?,
                None => max,
            };
            Ok((Hosts::Nets(vec![(ip, bits)]), Vec::new()))
        }
        (Err(_), Some(_)) => Err(format!("`{addr}` is not an IP address")),
        (Err(_), None) if literal.is_some() => Err(format!("`{addr}` is not an IPv6 address")),
        (Err(_), None) => {
            // A host name: the addresses it has now.
            let found: Vec<(IpAddr, u8)> = (host, 0)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
                .map(|a| (a.ip(), if a.is_ipv4() { 32 } else { 128 }))
                .collect();
            Ok((Hosts::Nets(found), vec![host.to_owned()]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let p = NetPolicy::none();
        assert!(p.is_none());
        assert_eq!(p.check(NetOp::Connect, sa("127.0.0.1:80")), None);
        assert_eq!(p.check(NetOp::Bind, sa("0.0.0.0:8080")), None);
        assert!(p.may_resolve("localhost"));
        assert!(p.may_resolve("10.0.0.1"));
        assert!(!p.may_resolve("example.com"));
    }

    #[test]
    fn everything_allows_all() {
        let p = NetPolicy::everything();
        assert_eq!(
            p.check(NetOp::Connect, sa("8.8.8.8:53")),
            Some(Allowed::Everything)
        );
        assert!(p.may_resolve("example.com"));
    }

    #[test]
    fn rules_cover_their_hosts_ports_and_operation_only() {
        let p = NetPolicy::rules(&[
            "connect=localhost:8000-8100,bind=*:9000",
            "connect=10.1.0.0/16:*",
            "connect=[::1]:443",
        ])
        .unwrap();
        let rule = |addr: &str, op| match p.check(op, sa(addr)) {
            Some(Allowed::Rule(r)) => Some(r.to_string()),
            _ => None,
        };
        assert_eq!(
            rule("127.0.0.1:8080", NetOp::Connect).as_deref(),
            Some("connect=localhost:8000-8100")
        );
        assert_eq!(
            rule("[::1]:8000", NetOp::Connect).as_deref(),
            Some("connect=localhost:8000-8100")
        );
        assert_eq!(rule("127.0.0.1:8101", NetOp::Connect), None);
        assert_eq!(rule("127.0.0.1:8080", NetOp::Bind), None);
        assert_eq!(
            rule("0.0.0.0:9000", NetOp::Bind).as_deref(),
            Some("bind=*:9000")
        );
        assert_eq!(rule("0.0.0.0:0", NetOp::Bind), None);
        assert!(rule("10.1.200.3:1", NetOp::Connect).is_some());
        assert!(rule("[::ffff:10.1.2.3]:1", NetOp::Connect).is_some());
        assert_eq!(rule("10.2.0.1:1", NetOp::Connect), None);
        assert!(rule("[::1]:443", NetOp::Connect).is_some());
        assert!(!p.may_resolve("example.com"));
    }

    #[test]
    fn resolve_rules_and_named_hosts_allow_lookups() {
        let p = NetPolicy::rules(&["resolve=db.internal"]).unwrap();
        assert!(p.may_resolve("DB.internal"));
        assert!(!p.may_resolve("other"));
        assert!(NetPolicy::rules(&["resolve=*"]).unwrap().may_resolve("x.y"));
    }

    #[test]
    fn bad_rules_are_named() {
        for (rule, why) in [
            ("connect", "no `=`"),
            ("listen=*:80", "unknown operation `listen`"),
            ("connect=localhost", "no `:PORTS`"),
            ("connect=localhost:99999", "ports are"),
            ("connect=localhost:9-1", "ports are"),
            ("bind=1.2.3.4/33:1", "prefix length is 0 to 32"),
            ("bind=[zz]:1", "not an IPv6 address"),
            ("resolve=", "no name"),
        ] {
            let e = NetPolicy::rules(&[rule]).unwrap_err().to_string();
            assert!(e.contains(rule) && e.contains(why), "{rule}: {e}");
        }
    }
}
