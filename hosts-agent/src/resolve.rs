//! Resolving DNS targets with hickory-resolver. The agent must never read
//! the hosts file it writes (it would find its own answer), so the resolver
//! asks DNS servers only, and reports how long each answer is valid.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

/// Answers are re-checked at least this often, whatever their TTL, and no
/// more often than the floor (a TTL of 0 must not become a busy loop).
const MAX_WAIT: Duration = Duration::from_secs(3600);
const MIN_WAIT: Duration = Duration::from_secs(1);

pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    /// Uses `nameservers` when given, else the system's resolv.conf.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Resolver, String> {
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("reading the system DNS configuration: {e}"))?
        } else {
            let mut config = ResolverConfig::new();
            for addr in nameservers {
                config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.use_hosts_file = ResolveHosts::Never;
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        // We schedule our own re-resolution by TTL; a cache would only
        // hand back the answer we are replacing.
        opts.cache_size = 0;
        Ok(Resolver { inner: builder.build() })
    }

    /// The name's first address and until when it is valid.
    pub async fn resolve(&self, name: &str) -> Result<(IpAddr, Instant), String> {
        let lookup = self.inner.lookup_ip(name).await.map_err(|e| format!("resolving {name}: {e}"))?;
        let address = lookup.iter().next().ok_or_else(|| format!("resolving {name}: no addresses"))?;
        let now = Instant::now();
        let valid_until = lookup.valid_until().clamp(now + MIN_WAIT, now + MAX_WAIT);
        Ok((address, valid_until))
    }
}
