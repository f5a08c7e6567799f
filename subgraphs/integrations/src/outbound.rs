//! The HTTP client webhook deliveries leave through, safe against server-side request
//! forgery: a webhook URL is chosen by a tenant's user, so without care the portal could
//! be made to call its own loopback services, the private network, or a cloud metadata
//! endpoint.
//!
//! - Names are resolved by the client's own resolver, which drops every address that is
//!   not public (loopback, private, shared, link-local — the metadata endpoints among
//!   them — multicast, documentation and reserved ranges, and IPv6 forms that embed such
//!   an IPv4 address). The connection is made only to the addresses it returns, so the
//!   check holds at delivery time: a name that resolves to `127.0.0.1` (or starts to,
//!   after the endpoint was registered) is refused.
//! - A URL whose host is an IP address is checked the same way before anything is sent.
//! - `https` only, unless the deployment allows `http` (demo mode).
//! - No redirects, no proxies from the environment (a proxy would resolve for us), a
//!   timeout, and at most [`EXCERPT_MAX`] bytes of a response read.
//! - Tests and the bench deliver to loopback through an explicit allow-list of networks,
//!   empty by default and logged loudly when not.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Bytes of a response body kept (for the delivery log); the rest is not read.
pub const EXCERPT_MAX: usize = 1024;

/// Whether `ip` is an address on the public internet.
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
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24; 6to4 relay anycast, 192.88.99.0/24.
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 88 && c == 99)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) reach an IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    // 6to4 (2002::/16) embeds an IPv4 address in its next 32 bits.
    if segments[0] == 0x2002 {
        let [a, b] = segments[1].to_be_bytes();
        let [c, d] = segments[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local, fc00::/7 (cloud metadata such as fd00:ec2::254 among them).
        || (segments[0] & 0xfe00) == 0xfc00
        // Link-local fe80::/10 and the deprecated site-local fec0::/10.
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        // Documentation, 2001:db8::/32; discard-only, 100::/64.
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        || segments[..4] == [0x100, 0, 0, 0]
        // IPv4-compatible (deprecated) ::a.b.c.d.
        || segments[..6] == [0, 0, 0, 0, 0, 0])
}

/// Which addresses deliveries may reach: the public internet, and the networks of an
/// explicit allow-list (tests, the bench, a partner reached over a private link).
#[derive(Clone, Debug, Default)]
pub struct Reach {
    allowed: Arc<Vec<IpNet>>,
    allow_http: bool,
}

impl Reach {
    /// Public addresses over `https` only: the default.
    pub fn public() -> Self {
        Self::default()
    }

    /// Public addresses and `allowed` networks; `http` too when `allow_http` (demo mode).
    /// A non-empty allow-list is logged as a warning: it lets tenants' webhooks reach
    /// those networks.
    pub fn with(allowed: Vec<IpNet>, allow_http: bool) -> Self {
        if !allowed.is_empty() {
            tracing::warn!(
                networks = ?allowed,
                "webhook deliveries may reach non-public networks (outbound allow-list set): \
                 never in production unless every tenant may call them"
            );
        }
        Self {
            allowed: Arc::new(allowed),
            allow_http,
        }
    }

    /// Whether a delivery may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// Why a delivery was not sent or not answered.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The URL may not be called (scheme, or an address that is not public).
    #[error("refused: {0}")]
    Refused(String),
    /// Sent, but no answer: timeout, connection refused or reset, TLS failure.
    #[error("no answer: {0}")]
    NoAnswer(String),
}

/// A receiver's answer, as the delivery log keeps it.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Its `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    /// The start of the body (at most [`EXCERPT_MAX`] bytes, lossily UTF-8).
    pub excerpt: String,
    /// From sending to the end of the excerpt.
    pub latency: Duration,
}

/// The resolver's refusal: the host has no address a delivery may reach.
#[derive(Debug, thiserror::Error)]
#[error("{0} does not resolve to a public address")]
struct NotPublic(String);

/// Resolves names to the addresses [`Reach`] permits only.
struct PermittedOnly(Reach);

impl reqwest::dns::Resolve for PermittedOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let reach = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|addr| reach.permits(addr.ip()))
                .collect();
            if permitted.is_empty() {
                tracing::warn!(%host, addresses = ?found, "webhook host refused: no public address");
                return Err(Box::new(NotPublic(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

/// The client deliveries use.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    reach: Reach,
}

impl Outbound {
    /// A client that reaches what `reach` permits, giving up on an answer after `timeout`.
    pub fn new(reach: Reach, timeout: Duration) -> Result<Self, OutboundError> {
        // reqwest is built without a default TLS provider; make sure one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .dns_resolver(PermittedOnly(reach.clone()))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("portal-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| OutboundError::Refused(err.to_string()))?;
        Ok(Self { client, reach })
    }

    /// Checks `url` before sending: its scheme, and its address when the host is one.
    pub fn check(&self, url: &url::Url) -> Result<(), OutboundError> {
        match url.scheme() {
            "https" => {}
            "http" if self.reach.allow_http => {}
            scheme => {
                return Err(OutboundError::Refused(format!(
                    "`{scheme}` URLs are not called (https only)"
                )));
            }
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(OutboundError::Refused("the URL has no host".into())),
        };
        match literal {
            Some(ip) if !self.reach.permits(ip) => Err(OutboundError::Refused(format!(
                "{ip} is not a public address"
            ))),
            _ => Ok(()),
        }
    }

    /// `POST`s `body` (JSON) to `url` with `headers`; the receiver's answer, whatever its
    /// status, or why there was none.
    pub async fn post(
        &self,
        url: &url::Url,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Reply, OutboundError> {
        self.check(url)?;
        let mut request = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let started = Instant::now();
        let mut response = request.send().await.map_err(|err| {
            if is_refused_by_resolver(&err) {
                OutboundError::Refused(error_chain(&err))
            } else {
                OutboundError::NoAnswer(error_chain(&err))
            }
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut excerpt = Vec::new();
        while excerpt.len() < EXCERPT_MAX {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = EXCERPT_MAX - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                // The status is the answer; a body cut short does not change it.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Reply {
            status,
            retry_after,
            excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
            latency: started.elapsed(),
        })
    }
}

/// The error and its causes, one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether the resolver refused the host (rather than the network failing).
fn is_refused_by_resolver(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<NotPublic>() {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::",
            "::127.0.0.1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(!is_public(ip(private)), "{private} is not public");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::",
        ] {
            assert!(is_public(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn an_allow_list_permits_its_networks_only() {
        let reach = Reach::with(vec!["127.0.0.1/32".parse().expect("a network")], true);
        assert!(reach.permits(ip("127.0.0.1")));
        assert!(!reach.permits(ip("127.0.0.2")));
        assert!(!reach.permits(ip("10.0.0.1")));
        assert!(reach.permits(ip("8.8.8.8")));
        assert!(!Reach::public().permits(ip("127.0.0.1")));
    }

    #[test]
    fn urls_are_checked_before_sending() -> Result<(), OutboundError> {
        let public = Outbound::new(Reach::public(), Duration::from_secs(5))?;
        let url = |text: &str| url::Url::parse(text).expect("a URL");
        assert!(public.check(&url("https://hooks.example.com/x")).is_ok());
        assert!(public.check(&url("https://8.8.8.8/x")).is_ok());
        for refused in [
            "http://hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:10.0.0.1]/x",
        ] {
            assert!(
                matches!(public.check(&url(refused)), Err(OutboundError::Refused(_))),
                "{refused}"
            );
        }
        let demo = Outbound::new(Reach::with(Vec::new(), true), Duration::from_secs(5))?;
        assert!(demo.check(&url("http://hooks.example.com/x")).is_ok());
        assert!(demo.check(&url("http://127.0.0.1/x")).is_err());
        Ok(())
    }

    /// `localhost` resolves to loopback: refused at resolution, nothing sent — and sent
    /// once the allow-list names loopback.
    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() -> Result<(), OutboundError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| OutboundError::NoAnswer(e.to_string()))?;
        let port = listener
            .local_addr()
            .map_err(|e| OutboundError::NoAnswer(e.to_string()))?
            .port();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(|| async { (axum::http::StatusCode::NO_CONTENT, "") }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = url::Url::parse(&format!("http://localhost:{port}/hook")).expect("a URL");
        let demo = Outbound::new(Reach::with(Vec::new(), true), Duration::from_secs(5))?;
        let refused = demo.post(&url, &[], b"{}".to_vec()).await;
        assert!(
            matches!(refused, Err(OutboundError::Refused(_))),
            "{refused:?}"
        );
        let allowed = Outbound::new(
            Reach::with(
                vec![
                    "127.0.0.0/8".parse().expect("a network"),
                    "::1/128".parse().expect("a network"),
                ],
                true,
            ),
            Duration::from_secs(5),
        )?;
        let reply = allowed.post(&url, &[], b"{}".to_vec()).await?;
        assert_eq!(reply.status, 204);
        Ok(())
    }
}
