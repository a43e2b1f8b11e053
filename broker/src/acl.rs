//! Redis ACL users, one per class of Sluice process, each with the narrowest rights it needs
//! (Redis checks key patterns on every command, those a Lua script runs included):
//!
//! | user | who | may |
//! | --- | --- | --- |
//! | `sluice-exec` | executors | read and write the job data (`job_*`, queues, streams, ...), run the scripts; **no** `apikey:*` |
//! | `sluice-api` | `sluice serve` | the same, and **read** `apikey:*` (auth) |
//! | `sluice-admin` | the `sluice` CLI of an operator | every key (keys are made here), nothing `@dangerous` |
//! | `sluice-repl` | replicas and sentinels (`supervisor/failover/`) | replicate (`PSYNC`) and what Sentinel sends; **no** key |
//!
//! and the `default` user is off, so nothing connects without a password. So a leaked
//! executor credential cannot mint an API key (finding 1 of issue 15), and the API cannot
//! either. `sluice acl setup DIR` writes `DIR/users.acl` (for Redis' `aclfile`) with fresh
//! random passwords, and one env file per class (`DIR/exec.env`, `api.env`, `admin.env`, `repl.env`)
//! holding its `SLUICE_REDIS_URL`; the shipped `redis.conf` loads `run/acl/users.acl`.

use std::path::Path;

use crate::error::Error;
use crate::keys::Keys;

/// The users, by class.
pub const USERS: [(&str, &str); 4] = [
    ("exec", "sluice-exec"),
    ("api", "sluice-api"),
    ("admin", "sluice-admin"),
    ("repl", "sluice-repl"),
];

/// What a replica (`masteruser`) and a sentinel (`sentinel auth-user`) send, as Redis'
/// replication and Sentinel docs list it: no key, one channel.
const REPL_COMMANDS: &str = "resetkeys resetchannels &__sentinel__:hello -@all \
    +psync +replconf +ping +info +role +multi +exec +slaveof +replicaof +config|rewrite \
    +client|setname +client|kill +script|kill +subscribe +publish";

/// Commands every data user may run: reads, writes, scripts (by SHA; `SCRIPT LOAD` after a
/// restart), blocking reads, connection commands; never `@dangerous` or `@admin` ones, nor
/// functions or flushing the script cache.
const DATA_COMMANDS: &str =
    "-@all +@read +@write +@scripting +@blocking +@connection +@transaction \
    -@dangerous -@admin -function -script|flush -script|kill +script|load +info +time +publish";

/// The ACL rule (without its password) of user class `class` over `keys`' schema.
///
/// # Errors
/// [`Error::Invalid`] for an unknown class.
pub fn rule(keys: &Keys, class: &str) -> Result<String, Error> {
    let p = keys.prefix();
    let data: Vec<String> = keys
        .data_patterns()
        .into_iter()
        .map(|k| format!("~{k}"))
        .collect();
    let stop = format!("&{p}stop");
    Ok(match class {
        "exec" => format!(
            "resetkeys {} resetchannels {stop} {DATA_COMMANDS}",
            data.join(" ")
        ),
        "api" => format!(
            "resetkeys {} %R~{p}apikey:* ~{p}rate:* resetchannels {stop} {DATA_COMMANDS}",
            data.join(" ")
        ),
        "admin" => format!("resetkeys ~{p}* resetchannels &{p}* +@all -@dangerous +info"),
        "repl" => REPL_COMMANDS.to_string(),
        other => {
            return Err(Error::Invalid(format!(
                "user class {other:?}: exec, api, admin or repl"
            )))
        }
    })
}

/// The text of an ACL file: the three users with `passwords` (by class), `default` off.
///
/// # Errors
/// [`Error::Invalid`] for a password with a space (ACL files split on spaces).
pub fn file(keys: &Keys, passwords: &[(&str, String)]) -> Result<String, Error> {
    let mut out = String::from("user default off\n");
    for (class, user) in USERS {
        let Some((_, pw)) = passwords.iter().find(|(c, _)| *c == class) else {
            continue;
        };
        if pw.is_empty() || pw.contains(char::is_whitespace) {
            return Err(Error::Invalid(format!("{user}: a password without spaces")));
        }
        out.push_str(&format!("user {user} on >{pw} {}\n", rule(keys, class)?));
    }
    Ok(out)
}

/// `redis_url` with the user and password of `class` in it.
///
/// # Errors
/// [`Error::Config`] when the URL cannot carry them.
pub fn url_for(redis_url: &str, user: &str, password: &str) -> Result<String, Error> {
    if let Some(url) = crate::sentinel::with_user(redis_url, user, password) {
        return Ok(url);
    }
    let mut url = url::Url::parse(redis_url)
        .map_err(|e| Error::Config(format!("redis_url {redis_url:?}: {e}")))?;
    if url.scheme() == "unix" || url.scheme() == "redis+unix" {
        // redis-rs reads unix socket credentials from the query.
        url.query_pairs_mut()
            .append_pair("user", user)
            .append_pair("pass", password);
        return Ok(url.to_string());
    }
    url.set_username(user)
        .and_then(|()| url.set_password(Some(password)))
        .map_err(|()| Error::Config(format!("redis_url {redis_url:?} cannot carry a user")))?;
    Ok(url.to_string())
}

/// `sluice acl setup DIR`: writes `DIR/users.acl` and one env file per class with a fresh
/// random password each (files mode 0600); keeps existing files unless `rotate`. Returns
/// what it did, line by line.
///
/// # Errors
/// I/O errors naming the file.
pub fn setup(dir: &Path, keys: &Keys, redis_url: &str, rotate: bool) -> Result<Vec<String>, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let acl = dir.join("users.acl");
    if acl.exists() && !rotate {
        return Ok(vec![format!(
            "{} exists; kept (sluice acl setup --rotate makes new passwords)",
            acl.display()
        )]);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    let passwords: Vec<(&str, String)> = USERS
        .iter()
        .map(|(class, _)| (*class, uuid::Uuid::new_v4().simple().to_string()))
        .collect();
    // Each file is written private and whole (a temporary name, then a rename), the users'
    // file last: a reader that sees users.acl sees every class's URL beside it.
    let write = |path: &Path, text: &str| -> Result<(), Error> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    };
    let mut done = Vec::new();
    for ((class, user), (_, pw)) in USERS.iter().zip(&passwords) {
        let env = dir.join(format!("{class}.env"));
        write(
            &env,
            &format!("SLUICE_REDIS_URL={}\n", url_for(redis_url, user, pw)?),
        )?;
        done.push(format!("wrote {}", env.display()));
    }
    write(&acl, &file(keys, &passwords)?)?;
    done.push(format!(
        "wrote {} (users sluice-exec, sluice-api, sluice-admin, sluice-repl; default off)",
        acl.display()
    ));
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_keep_api_keys_from_executors_and_follow_the_prefix() {
        let keys = Keys::new("t1:");
        let exec = rule(&keys, "exec").unwrap_or_default();
        assert!(exec.contains("~t1:job_*") && exec.contains("~t1:queue:*"));
        assert!(!exec.contains("apikey"));
        let api = rule(&keys, "api").unwrap_or_default();
        assert!(api.contains("%R~t1:apikey:*"));
        assert!(rule(&keys, "root").is_err());
        let repl = rule(&keys, "repl").unwrap_or_default();
        assert!(repl.contains("+psync") && !repl.contains('~'), "{repl}");
        let text = file(&keys, &[("exec", "pw1".into())]).unwrap_or_default();
        assert!(text.starts_with("user default off\nuser sluice-exec on >pw1 "));
        assert!(file(&keys, &[("exec", "a b".into())]).is_err());
    }

    #[test]
    fn urls_carry_the_user() {
        assert_eq!(
            url_for("redis://127.0.0.1:6379", "sluice-exec", "pw")
                .ok()
                .as_deref(),
            Some("redis://sluice-exec:pw@127.0.0.1:6379")
        );
        assert_eq!(
            url_for("unix:///tmp/r.sock", "sluice-api", "pw")
                .ok()
                .as_deref(),
            Some("unix:///tmp/r.sock?user=sluice-api&pass=pw")
        );
    }
}
