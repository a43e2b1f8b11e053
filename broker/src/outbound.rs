//! One policy for every request Sluice sends to an address a client chose: job inputs
//! downloaded by the executors, run callbacks and failure webhooks POSTed by `sluice serve`.
//! A client must not reach through Sluice what it cannot reach itself (SSRF):
//!
//! 1. only `http://` and `https://` URLs with a host and no user name or password;
//! 2. the host's every address must be public: no loopback, private, shared (CGNAT),
//!    link-local, multicast, broadcast, unspecified, documentation, benchmarking or reserved
//!    address, of either family, IPv4 inside IPv6 (mapped, compatible, 6to4, NAT64) included;
//!    numeric spellings (`2130706433`, `0x7f.1`, `127.1`) are parsed as the IPv4 they are;
//! 3. names are resolved by Sluice ([`PublicOnly`]) and the connection goes to an address that
//!    passed the check, so a name cannot resolve differently between check and connect;
//! 4. the same on every redirect hop of a download (at most [`MAX_REDIRECTS`]); POSTs never
//!    follow redirects;
//! 5. bounded connect, read and total times, and sizes (a download at most
//!    `max_artifact_size`, a POST's answer is not read);
//! 6. hosts in `outbound_allow` (trusted internal services, by name or address) skip rule 2.
//!
//! Refusals and connection failures read the same whatever the port's state: "refused by
//! the outbound policy" or "could not connect"; only an HTTP answer's status is reported.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy as Redirects;
use reqwest::Url;

use crate::error::Error;

/// Most redirects a download follows.
pub const MAX_REDIRECTS: usize = 5;
/// Longest wait for a server to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while a download runs (the whole may take longer).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a callback or webhook POST may take in all.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Is `ip` an address on the public Internet?
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0                                   // "this network"
        || (a == 100 && (64..128).contains(&b))     // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0)           // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))       // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00                // unique local
        || (s[0] & 0xffc0) == 0xfe80                // link-local
        || (s[0] & 0xffc0) == 0xfec0                // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8)       // documentation
        || (s[0] == 0x2001 && s[1] == 0)            // Teredo (tunnels to anything)
        || s[0] == 0x0100) // discard-only
}

/// The IPv4 address an IPv6 one carries: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`), 6to4 (`2002:aabb:ccdd::`) or NAT64 (`64:ff9b::a.b.c.d`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    if s[0] == 0x0064 && s[1] == 0xff9b {
        return Some(tail);
    }
    None
}

/// The outbound policy, with the `outbound_allow` list of trusted hosts.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    allow: Arc<Vec<String>>,
}

impl Outbound {
    /// A policy that lets the hosts in `allow` (names or addresses, any case) through.
    pub fn new(allow: &[String]) -> Self {
        Outbound {
            allow: Arc::new(
                allow
                    .iter()
                    .map(|h| h.trim().to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    fn allowed_host(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
        self.allow.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Checks a URL before anything is sent (rules 1, 2 for literal addresses, 6).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `what` and why.
    pub fn check(&self, what: &str, url: &str) -> Result<Url, Error> {
        let parsed = Url::parse(url)
            .map_err(|e| Error::Invalid(format!("{what}: {url:?} is not a URL ({e})")))?;
        self.check_parsed(what, &parsed)?;
        Ok(parsed)
    }

    fn check_parsed(&self, what: &str, url: &Url) -> Result<(), Error> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Invalid(format!(
                "{what}: must be an http:// or https:// URL"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::Invalid(format!(
                "{what}: a URL may not carry a user name or password"
            )));
        }
        let Some(host) = url.host_str() else {
            return Err(Error::Invalid(format!("{what}: the URL has no host")));
        };
        if self.allowed_host(host) {
            return Ok(());
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        let name = host.trim_end_matches('.');
        if literal.is_some_and(|ip| !is_public(ip)) || name.eq_ignore_ascii_case("localhost") {
            return Err(Error::Invalid(format!(
                "{what}: refused by the outbound policy (not a public address)"
            )));
        }
        Ok(())
    }

    /// A client for downloads: the policy's resolver, redirects checked hop by hop.
    ///
    /// # Errors
    /// [`Error::Config`] if the client cannot be built (TLS roots).
    pub fn downloader(&self) -> Result<reqwest::Client, Error> {
        let policy = self.clone();
        let redirects = Redirects::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            match policy.check_parsed("redirect", attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => attempt.error(e.to_string()),
            }
        });
        self.builder()
            .redirect(redirects)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))
    }

    /// A client for callbacks and webhooks: the policy's resolver, no redirects, short.
    ///
    /// # Errors
    /// [`Error::Config`] if the client cannot be built (TLS roots, the CA file).
    pub fn poster(
        &self,
        extra: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<reqwest::Client, Error> {
        extra(
            self.builder()
                .redirect(Redirects::none())
                .timeout(POST_TIMEOUT),
        )
        .build()
        .map_err(|e| Error::Config(format!("http client: {e}")))
    }

    fn builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .dns_resolver(Arc::new(PublicOnly(self.clone())))
            .no_proxy()
    }
}

/// The policy's resolver: a name's public addresses only (all of them for an allowed host).
#[derive(Debug, Clone)]
pub struct PublicOnly(Outbound);

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| -> Box<dyn std::error::Error + Send + Sync> {
                    "could not resolve the host".into()
                })?
                .collect();
            let trusted = policy.allowed_host(&host);
            let public: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| trusted || is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err("refused by the outbound policy (not a public address)".into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// What to tell the client about a failed request: the policy's refusal, a timeout, or a
/// plain "could not connect", never the kind of connection failure (port state).
pub fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("outbound policy") || text.contains("too many redirects") {
            return if text.contains("redirects") {
                "too many redirects".into()
            } else {
                "refused by the outbound policy (not a public address)".into()
            };
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timed out".into()
    } else if let Some(status) = e.status() {
        format!("HTTP {status}")
    } else {
        "could not connect".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for bad in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.1.1",
            "::127.0.0.1",
            "2002:7f00:1::",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "2001::1",
            "fec0::1",
        ] {
            assert!(!is_public(ip(bad)), "{bad} passed");
        }
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(good)), "{good} refused");
        }
    }

    #[tokio::test]
    async fn the_resolver_drops_private_addresses_of_a_name() {
        let name: Name = "localhost".parse().expect("a name");
        let refused = PublicOnly(Outbound::default()).resolve(name).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("outbound policy")));
        let name: Name = "localhost".parse().expect("a name");
        let trusted = PublicOnly(Outbound::new(&["localhost".into()]))
            .resolve(name)
            .await;
        assert!(trusted.is_ok_and(|mut a| a.next().is_some()));
    }

    #[test]
    fn urls_are_checked_before_anything_is_sent() {
        let p = Outbound::default();
        for bad in [
            "http://127.0.0.1:6379/",
            "http://2130706433:8080/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]:3323/",
            "http://localhost/",
            "http://LOCALHOST./x",
            "http://user:pw@example.com/",
            "http://user@example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://169.254.169.254/latest/meta-data/",
        ] {
            assert!(p.check("input url", bad).is_err(), "{bad} passed");
        }
        assert!(p.check("input url", "https://example.com/data.csv").is_ok());
        let trusted = Outbound::new(&["127.0.0.1".into(), "minio.internal".into()]);
        assert!(trusted
            .check("input url", "http://127.0.0.1:9000/b/k")
            .is_ok());
        assert!(trusted
            .check("input url", "http://MINIO.internal/b/k")
            .is_ok());
        assert!(trusted.check("input url", "http://127.0.0.2/").is_err());
    }
}
