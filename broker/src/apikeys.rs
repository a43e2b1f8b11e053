//! API keys: `apikey:<sha256 of the key>` hashes with owner, role and created time. Only the
//! hash is stored, so a leaked Redis dump reveals no key. `sluice keys create|list|revoke`
//! and the HTTP auth filter both go through this module.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use redis::AsyncCommands;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::client::Broker;
use crate::error::Error;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Submits jobs; reads, stops, locks and retries its own.
    Client,
    /// An executor: reads every job.
    Worker,
    /// Everything, including key management and other owners' jobs.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Client => "client",
            Role::Worker => "worker",
            Role::Admin => "admin",
        })
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "client" => Ok(Role::Client),
            "worker" => Ok(Role::Worker),
            "admin" => Ok(Role::Admin),
            _ => Err(Error::Invalid(format!(
                "role must be client, worker or admin, got {s:?}"
            ))),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// Owner name; jobs carry it in their `owner` field.
    pub owner: String,
    /// What the account may do.
    pub role: Role,
    /// The executor kinds this key may submit to, when its creator granted them
    /// (`sluice keys create --executors solver,command`; `*` is every kind). None: the
    /// role's default (admins every kind, others the server's `open_executors`).
    pub executors: Option<Vec<String>>,
    /// The SHA-256 of the key (hex), to look it up again (a revoked key's open streams end).
    #[serde(skip)]
    pub key_sha: Option<String>,
}

impl Account {
    /// The account used when auth is off: an admin named "local".
    pub fn local() -> Self {
        Account {
            owner: "local".into(),
            role: Role::Admin,
            executors: None,
            key_sha: None,
        }
    }

    /// May this account read a thing (job, run, workflow, pipeline) owned by `owner`?
    /// Its owner, workers and admins may.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.role >= Role::Worker || owner == Some(self.owner.as_str())
    }

    /// May this account change a thing owned by `owner` (stop, lock, retry, replace,
    /// delete, run)? Its owner and admins may; a worker key reads but does not steer.
    pub fn may_act(&self, owner: Option<&str>) -> bool {
        self.role == Role::Admin || owner == Some(self.owner.as_str())
    }

    /// May this account submit jobs of executor kind `kind`? `open` is the server's
    /// `open_executors`: the kinds every key may use (by default the solver, which runs no
    /// code of the client's choosing).
    pub fn may_run(&self, kind: &str, open: &[String]) -> bool {
        self.allowed(open)
            .is_none_or(|kinds| kinds.iter().any(|k| k == kind))
    }

    /// The executor kinds this account may submit to, or None for every kind: its grant,
    /// else (an admin) every kind, else `open`; a list holding `*` is every kind.
    fn allowed<'a>(&'a self, open: &'a [String]) -> Option<&'a [String]> {
        let list = match (&self.executors, self.role) {
            (Some(grant), _) => grant.as_slice(),
            (None, Role::Admin) => return None,
            (None, _) => open,
        };
        (!list.iter().any(|k| k == "*")).then_some(list)
    }
}

impl Account {
    /// The owner a script must find on what this account changes, or "" for an admin (who
    /// may change anyone's): the `guard` argument of the pipeline scripts.
    pub fn guard(&self) -> &str {
        if self.role == Role::Admin {
            ""
        } else {
            &self.owner
        }
    }

    /// This account as the scripts see it, with the server's `open_executors`.
    pub fn actor(&self, open: &[String]) -> crate::scripts::Actor<'_> {
        crate::scripts::Actor {
            owner: &self.owner,
            guard: self.guard(),
            kinds: self.kinds(open),
        }
    }

    /// The executor kinds this account may submit to as a script argument: `*` for any,
    /// else `,a,b,` (each kind between commas).
    pub fn kinds(&self, open: &[String]) -> String {
        match self.allowed(open) {
            None => "*".into(),
            Some(list) => format!(",{},", list.join(",")),
        }
    }
}

/// Parses a grant: executor kinds separated by commas (`solver,command`, or `*`).
///
/// # Errors
/// [`Error::Invalid`] for an empty list or a kind that is not a plain name.
pub fn parse_grant(text: &str) -> Result<Vec<String>, Error> {
    let kinds: Vec<String> = text
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    let plain = |k: &str| {
        k == "*"
            || (k.len() <= 64
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    };
    match kinds.iter().find(|k| !plain(k)) {
        _ if kinds.is_empty() => Err(Error::Invalid(
            "executors: name at least one kind (or *)".into(),
        )),
        Some(bad) => Err(Error::Invalid(format!(
            "executors: {bad:?} is not an executor kind"
        ))),
        None => Ok(kinds),
    }
}

/// A stored key, as listed (never the key itself).
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// First 12 hex digits of the key's SHA-256, enough to revoke it.
    pub id: String,
    /// Owner.
    pub owner: String,
    /// Role.
    pub role: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// The executor kinds it may submit to, if granted ("" = the role's default).
    pub executors: String,
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn redis_key(b: &Broker, sha: &str) -> String {
    format!("{}apikey:{sha}", b.keys().prefix())
}

async fn stored(b: &Broker) -> Result<Vec<String>, Error> {
    let mut c = b.conn().await?;
    crate::client::scan(&mut *c, redis_key(b, "*")).await
}

fn sha_of(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or_default()
}

impl Broker {
    /// Creates a key for `owner` with `role` and the role's executor kinds; returns the key,
    /// shown once.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty owner; Redis errors.
    pub async fn create_key(&self, owner: &str, role: Role) -> Result<String, Error> {
        self.create_key_granted(owner, role, None).await
    }
    /// Creates a key for `owner` with `role` that may submit to the executor kinds `executors`
    /// (None: the role's default); returns the key, shown once.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty owner or a bad kind; Redis errors.
    pub async fn create_key_granted(
        &self,
        owner: &str,
        role: Role,
        executors: Option<&[String]>,
    ) -> Result<String, Error> {
        if owner.trim().is_empty() || owner.len() > 128 {
            return Err(Error::Invalid("owner must be 1-128 characters".into()));
        }
        let grant = match executors {
            Some(kinds) => Some(parse_grant(&kinds.join(","))?.join(",")),
            None => None,
        };
        let key = format!("sk_{}", uuid::Uuid::new_v4().simple());
        let created = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let role = role.to_string();
        let mut fields = vec![("owner", owner), ("role", &role), ("created", &created)];
        if let Some(g) = &grant {
            fields.push(("executors", g));
        }
        let mut c = self.conn().await?;
        let () = c
            .hset_multiple(redis_key(self, &digest(&key)), &fields)
            .await?;
        Ok(key)
    }
    /// The account a key belongs to, if it is a live key.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn key_account(&self, key: &str) -> Result<Option<Account>, Error> {
        self.key_account_by_sha(&digest(key)).await
    }
    /// The account of the key whose SHA-256 is `sha`, if it is still live.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn key_account_by_sha(&self, sha: &str) -> Result<Option<Account>, Error> {
        let mut c = self.conn().await?;
        let h: HashMap<String, String> = c.hgetall(redis_key(self, sha)).await?;
        Ok(
            match (h.get("owner"), h.get("role").and_then(|r| r.parse().ok())) {
                (Some(owner), Some(role)) => Some(Account {
                    owner: owner.clone(),
                    role,
                    executors: h
                        .get("executors")
                        .map(|g| g.split(',').map(String::from).collect()),
                    key_sha: Some(sha.to_string()),
                }),
                _ => None,
            },
        )
    }
    /// Every stored key (without the keys themselves).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn api_keys(&self) -> Result<Vec<KeyInfo>, Error> {
        let names = stored(self).await?;
        let mut c = self.conn().await?;
        let mut out = Vec::new();
        for name in names {
            let h: HashMap<String, String> = c.hgetall(&name).await?;
            let field = |f: &str| h.get(f).cloned().unwrap_or_default();
            out.push(KeyInfo {
                id: sha_of(&name).chars().take(12).collect(),
                owner: field("owner"),
                role: field("role"),
                created: field("created"),
                executors: field("executors"),
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }
    /// Revokes the key whose id (a SHA-256 hex prefix of at least 8 digits, as `list` shows)
    /// or whose full text is `which`.
    ///
    /// Returns the id of the revoked key (never the key itself).
    ///
    /// # Errors
    /// [`Error::Invalid`] when it matches no key or more than one.
    pub async fn revoke_key(&self, which: &str) -> Result<String, Error> {
        let is_id = which.len() >= 8 && which.chars().all(|c| c.is_ascii_hexdigit());
        let want = if is_id {
            which.to_ascii_lowercase()
        } else {
            digest(which)
        };
        let found: Vec<String> = stored(self)
            .await?
            .into_iter()
            .filter(|n| sha_of(n).starts_with(&want))
            .collect();
        match found.as_slice() {
            [one] => {
                let mut c = self.conn().await?;
                let _: i64 = c.del(one).await?;
                Ok(sha_of(one).chars().take(12).collect())
            }
            [] if is_id => Err(Error::Invalid(format!("no key matches {which:?}"))),
            [] => Err(Error::Invalid("no key matches the given key".into())),
            _ => Err(Error::Invalid(format!(
                "{which:?} matches {} keys; give more digits",
                found.len()
            ))),
        }
    }
}
