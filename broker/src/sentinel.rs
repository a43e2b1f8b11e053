//! Redis Sentinel URLs: where the primary is, asked of a set of sentinels.
//!
//! `redis+sentinel://[user:password@]host:port[,host:port...]/<master-name>[/<db>]`
//! names the sentinels (all of them, or the ones this host should ask) and the master name
//! they watch (`sentinel monitor <master-name> ...`). The user and password are the Redis
//! nodes' (the ACL user of `sluice acl setup`); sentinels that require a password of their
//! own take `?sentinel_user=...&sentinel_password=...`. Every Sluice process accepts it as
//! `redis_url`; [`crate::pool`] asks the sentinels again whenever a connection is lost, so
//! the pool follows a failover by itself.

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::ConnectionAddr;

/// The URL scheme of a Sentinel `redis_url`.
pub const SCHEME: &str = "redis+sentinel://";

/// A parsed Sentinel URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The sentinels, `(host, port)`.
    pub nodes: Vec<(String, u16)>,
    /// The master name the sentinels watch.
    pub master: String,
    /// Database number on the Redis nodes.
    pub db: i64,
    /// ACL user and password on the Redis nodes.
    pub user: Option<String>,
    /// See `user`.
    pub password: Option<String>,
    /// ACL user and password on the sentinels themselves.
    pub sentinel_user: Option<String>,
    /// See `sentinel_user`.
    pub sentinel_password: Option<String>,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("nodes", &self.nodes)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("user", &self.user)
            .finish_non_exhaustive() // no passwords in logs
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses `url` when it is a Sentinel URL: `None` for any other scheme.
pub fn parse(url: &str) -> Option<Result<SentinelUrl, String>> {
    let rest = url.strip_prefix(SCHEME)?;
    Some(parse_rest(rest).map_err(|why| {
        format!("redis_url: {why} (expected {SCHEME}[user:password@]host:port[,host:port...]/<master-name>[/<db>])")
    }))
}

fn parse_rest(rest: &str) -> Result<SentinelUrl, String> {
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').ok_or("no master name")?;
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => ((!user.is_empty()).then(|| decode(user)), Some(decode(pw))),
            None => ((!u.is_empty()).then(|| decode(u)), None),
        },
    };
    let mut nodes = Vec::new();
    for node in hosts.split(',').filter(|n| !n.is_empty()) {
        let (host, port) = match node.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{node:?}: port is not a number"))?,
            ),
            None => (node, 26379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{node:?}: no host"));
        }
        nodes.push((host.to_string(), port));
    }
    if nodes.is_empty() {
        return Err("no sentinel host".into());
    }
    let (master, db) = match path.trim_end_matches('/').split_once('/') {
        Some((m, db)) => (
            m,
            db.parse::<i64>()
                .map_err(|_| format!("database {db:?} is not a number"))?,
        ),
        None => (path.trim_end_matches('/'), 0),
    };
    if master.is_empty() {
        return Err("no master name".into());
    }
    let mut url = SentinelUrl {
        nodes,
        master: decode(master),
        db,
        user,
        password,
        sentinel_user: None,
        sentinel_password: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sentinel_user", v)) => url.sentinel_user = Some(decode(v)),
            Some(("sentinel_password", v)) => url.sentinel_password = Some(decode(v)),
            _ => return Err(format!("unknown parameter {pair:?}")),
        }
    }
    Ok(url)
}

impl SentinelUrl {
    /// A redis-rs client that asks these sentinels for the current primary.
    ///
    /// # Errors
    /// redis-rs' refusal of the settings.
    pub fn client(&self) -> redis::RedisResult<SentinelClient> {
        let nodes = self
            .nodes
            .iter()
            .map(|(h, p)| ConnectionAddr::Tcp(h.clone(), *p));
        let mut b = SentinelClientBuilder::new(nodes, &self.master, SentinelServerType::Master)?
            .set_client_to_redis_db(self.db);
        if let Some(u) = &self.user {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &self.password {
            b = b.set_client_to_redis_password(p);
        }
        if let Some(u) = &self.sentinel_user {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &self.sentinel_password {
            b = b.set_client_to_sentinel_password(p);
        }
        b.build()
    }
}

/// `url` (a Sentinel URL) with `user` and `password` for the Redis nodes in it, replacing
/// any it had.
pub fn with_user(url: &str, user: &str, password: &str) -> Option<String> {
    let rest = url.strip_prefix(SCHEME)?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    Some(format!(
        "{SCHEME}{}:{}@{hosts}/{path}",
        enc(user),
        enc(password)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentinels_master_db_and_credentials() {
        let u = parse("redis+sentinel://sluice-api:p%40ss@10.0.0.1:26379,[::1]:26380,s3/sluice/2?sentinel_password=x")
            .expect("a sentinel url")
            .expect("valid");
        assert_eq!(
            u.nodes,
            vec![
                ("10.0.0.1".to_string(), 26379),
                ("::1".to_string(), 26380),
                ("s3".to_string(), 26379)
            ]
        );
        assert_eq!(u.master, "sluice");
        assert_eq!(u.db, 2);
        assert_eq!(u.user.as_deref(), Some("sluice-api"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.sentinel_password.as_deref(), Some("x"));
        assert!(!format!("{u:?}").contains("p@ss"), "no password in Debug");
        assert!(parse("redis://127.0.0.1:6379").is_none());
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for bad in [
            "redis+sentinel://127.0.0.1:26379",
            "redis+sentinel://127.0.0.1:26379/",
            "redis+sentinel:///sluice",
            "redis+sentinel://h:port/sluice",
            "redis+sentinel://h:1/sluice/zero",
            "redis+sentinel://h:1/sluice?what=1",
        ] {
            let e = parse(bad).expect("a sentinel url").expect_err(bad);
            assert!(e.contains("redis+sentinel://"), "{e}");
        }
    }

    #[test]
    fn puts_a_user_in() {
        let u = with_user(
            "redis+sentinel://old:pw@h1:1,h2:2/sluice",
            "sluice-exec",
            "a/b",
        )
        .expect("sentinel");
        assert_eq!(u, "redis+sentinel://sluice%2Dexec:a%2Fb@h1:1,h2:2/sluice");
        let p = parse(&u).expect("url").expect("valid");
        assert_eq!(p.user.as_deref(), Some("sluice-exec"));
        assert_eq!(p.password.as_deref(), Some("a/b"));
    }
}
