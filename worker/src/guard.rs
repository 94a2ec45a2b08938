//! Where webhooks may go. A rule's URL is written by a tenant; POSTed as
//! written, it could reach the host's loopback, the private network or a
//! cloud's metadata address. So by default a webhook may not go to a
//! loopback, private, link-local, carrier-grade NAT, multicast, reserved or
//! unspecified address (IPv4 and IPv6, IPv4 inside IPv6 included), checked
//! on the addresses a name resolves to when the connection is made (the
//! HTTP client's resolver is [`Guarded`], so a name that resolves to
//! 127.0.0.1 is refused too, whenever it does), and redirects are not
//! followed. `STEWARD_WEBHOOK_ALLOW` (CIDRs and host names, comma
//! separated) opens what an operator trusts; `steward run --allow-loopback`
//! opens the loopback for a single team's worker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// What a webhook may reach beyond the public internet.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    nets: Vec<IpNet>,
    /// Host names allowed whatever they resolve to: `hooks.internal`, or
    /// `.corp.example` for every name under it.
    hosts: Vec<String>,
}

/// Marks a refusal in the HTTP client's error (see [`Guarded`]).
pub const REFUSED: &str = "is not an allowed destination";

impl Destinations {
    /// From `STEWARD_WEBHOOK_ALLOW`: CIDRs (`10.1.0.0/16`, `::1/128`), single
    /// addresses, and host names, separated by commas.
    pub fn from_env() -> Result<Destinations, String> {
        match std::env::var("STEWARD_WEBHOOK_ALLOW") {
            Ok(list) => {
                Destinations::parse(&list).map_err(|e| format!("STEWARD_WEBHOOK_ALLOW: {e}"))
            }
            Err(_) => Ok(Destinations::default()),
        }
    }

    pub fn parse(list: &str) -> Result<Destinations, String> {
        let mut out = Destinations::default();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if let Ok(net) = item.parse::<IpNet>() {
                out.nets.push(net);
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                out.nets.push(IpNet::from(ip));
            } else if item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && item.chars().any(|c| c.is_ascii_alphanumeric())
            {
                out.hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "`{item}` is neither a CIDR, an address nor a host name"
                ));
            }
        }
        Ok(out)
    }

    /// Opens the loopback (`127.0.0.0/8`, `::1`).
    pub fn with_loopback(mut self) -> Destinations {
        if let Ok(net) = ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8) {
            self.nets.push(IpNet::V4(net));
        }
        self.nets.push(IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        self
    }

    /// Whether `host` is allowed by name, whatever it resolves to.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|h| match h.strip_prefix('.') {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => *h == host,
        })
    }

    /// Why a connection to `ip` is refused, or `None`.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let kind = forbidden(ip)?;
        if self.nets.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        Some(kind)
    }

    /// Checks a URL before it is requested: its scheme, and its host when
    /// it is an address (the client's resolver checks names).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("`{url}` is not an http or https URL"));
        }
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(url, IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(url, IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(format!("`{url}` has no host")),
        }
    }

    /// Why a webhook to `url` will never be delivered here, whatever DNS
    /// says: a refused address written in it, `localhost` (the loopback)
    /// unless opened, or not http(s). `None` for any other name.
    pub fn never(&self, url: &str) -> Option<String> {
        if let Err(why) = self.check_url(url) {
            return Some(why);
        }
        let parsed = reqwest::Url::parse(url).ok()?;
        let host = parsed
            .host_str()?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let local = host == "localhost" || host.ends_with(".localhost");
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        (local && !self.host_allowed(&host) && self.refuses(loopback).is_some()).then(|| {
            format!(
                "{url}: `{host}` is the loopback, which {REFUSED} (STEWARD_WEBHOOK_ALLOW opens it)"
            )
        })
    }

    fn check_ip(&self, url: &str, ip: IpAddr) -> Result<(), String> {
        match self.refuses(ip) {
            Some(kind) => Err(format!(
                "{url}: {ip} ({kind}) {REFUSED} (STEWARD_WEBHOOK_ALLOW opens it)"
            )),
            None => Ok(()),
        }
    }
}

/// The kind of address a webhook may not reach by default, or `None` for
/// a public one.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => Some("unspecified"),
        (127, _, _) => Some("loopback"),
        (10, _, _) => Some("private"),
        (172, 16..=31, _) => Some("private"),
        (192, 168, _) => Some("private"),
        (169, 254, _) => Some("link-local"),
        (100, 64..=127, _) => Some("carrier-grade NAT"),
        (224..=239, _, _) => Some("multicast"),
        (240..=255, _, _) => Some("reserved"),
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Some("reserved"),
        (198, 18..=19, _) => Some("reserved"),
        _ => None,
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    let s = ip.segments();
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    // NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::): the IPv4
    // address decides.
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return Some(forbidden_v4(embedded(s[6], s[7])).unwrap_or("reserved"));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return forbidden_v4(embedded(s[1], s[2]));
    }
    match s[0] {
        0xfc00..=0xfdff => Some("private"),
        0xfe80..=0xfebf => Some("link-local"),
        0xfec0..=0xfeff => Some("private"),
        0xff00..=0xffff => Some("multicast"),
        0x2001 if s[1] == 0x0db8 => Some("reserved"),
        // Teredo hides the address it reaches.
        0x2001 if s[1] == 0 => Some("reserved"),
        0x0100 if s[1..4] == [0, 0, 0] => Some("reserved"),
        _ => None,
    }
}

/// The HTTP client's resolver: the system's, then only the addresses a
/// webhook may reach (all of them for a host allowed by name). A name with
/// none left is an error that says so ([`REFUSED`]).
pub struct Guarded(pub Arc<Destinations>);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?
                .collect();
            if destinations.host_allowed(&host) {
                return Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs);
            }
            let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = found
                .into_iter()
                .partition(|a| destinations.refuses(a.ip()).is_none());
            if allowed.is_empty() {
                let why: Vec<String> = refused
                    .iter()
                    .map(|a| format!("{} ({})", a.ip(), forbidden(a.ip()).unwrap_or("refused")))
                    .collect();
                return Err(format!(
                    "`{host}` resolves to {}, which {REFUSED} (STEWARD_WEBHOOK_ALLOW opens it)",
                    why.join(", ")
                )
                .into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_refused_by_default() {
        let none = Destinations::default();
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("192.0.2.10", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::10.0.0.1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "reserved"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(none.refuses(ip), Some(kind), "{ip}");
        }
    }

    #[test]
    fn public_addresses_allowed() {
        let none = Destinations::default();
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.169.0.1",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
            "::ffff:93.184.215.14",
            "64:ff9b::8.8.8.8",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(none.refuses(ip), None, "{ip}");
        }
    }

    #[test]
    fn what_an_operator_opens() {
        let d =
            Destinations::parse("10.1.0.0/16, 192.168.5.7, hooks.internal, .corp.example").unwrap();
        assert_eq!(d.refuses("10.1.200.3".parse().unwrap()), None);
        assert_eq!(d.refuses("10.2.0.1".parse().unwrap()), Some("private"));
        assert_eq!(d.refuses("192.168.5.7".parse().unwrap()), None);
        assert_eq!(d.refuses("192.168.5.8".parse().unwrap()), Some("private"));
        assert!(d.host_allowed("hooks.internal"));
        assert!(d.host_allowed("HOOKS.internal."));
        assert!(d.host_allowed("pms.corp.example"));
        assert!(!d.host_allowed("corp.example.evil"));
        assert!(!d.host_allowed("evilhooks.internal"));
        assert!(Destinations::parse("10.0.0.0/33").is_err());
        assert!(Destinations::parse("not a host!").is_err());
        let loopback = Destinations::default().with_loopback();
        assert_eq!(loopback.refuses("127.0.0.1".parse().unwrap()), None);
        assert_eq!(loopback.refuses("::1".parse().unwrap()), None);
        assert_eq!(
            loopback.refuses("10.0.0.1".parse().unwrap()),
            Some("private")
        );
    }

    #[test]
    fn urls_with_addresses_checked_before_any_request() {
        let d = Destinations::default();
        for url in [
            "http://127.0.0.1:18099/internal-admin",
            "http://[::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://10.0.0.1/",
        ] {
            let e = d.check_url(url).unwrap_err();
            assert!(e.contains(REFUSED), "{url}: {e}");
        }
        assert!(d.check_url("https://pms.example.com/price").is_ok());
        assert!(d.check_url("ftp://example.com/").is_err());
        // What a deploy warns of: never delivered, whatever DNS says.
        assert!(d.never("http://10.0.0.1/x").is_some());
        assert!(d.never("http://localhost:8080/x").is_some());
        assert!(d.never("http://api.localhost/x").is_some());
        assert!(d.never("https://pms.example.com/price").is_none());
        let open = Destinations::default().with_loopback();
        assert!(open.never("http://localhost:8080/x").is_none());
        assert!(open.never("http://127.0.0.1:8080/x").is_none());
    }

    #[test]
    fn names_are_checked_on_what_they_resolve_to() {
        use reqwest::dns::Resolve;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let guarded = Guarded(Arc::new(Destinations::default()));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let e = rt
            .block_on(guarded.resolve(name))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(REFUSED) && e.contains("loopback"), "{e}");
        let open = Guarded(Arc::new(Destinations::parse("localhost").unwrap()));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(rt.block_on(open.resolve(name)).is_ok());
    }
}
