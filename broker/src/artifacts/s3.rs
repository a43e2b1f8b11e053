//! The S3 artifact store: objects `<N>/artifacts/<name>` in one S3-compatible bucket (AWS,
//! MinIO, Ceph, ...), through the `object_store` crate (reqwest with rustls).
//!
//! Configured as the Workflow Service was, from the environment the binary hands to
//! [`crate::Config::load`] ([`S3Settings::from_env`]): `S3_ENDPOINT_URL` (unset: AWS;
//! `http://` allowed, for a local server), `S3_BUCKET`, `S3_REGION_NAME` (default
//! `us-east-1`), `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`; each falls back to its `AWS_*`
//! name (`AWS_ENDPOINT_URL`, `AWS_BUCKET`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; `AWS_SESSION_TOKEN` for temporary keys).
//!
//! Uploads: a body up to [`PART_SIZE`] is one PUT; a longer one is a multipart upload of
//! [`PART_SIZE`] parts, one at a time (reading the body waits while a part is sent), so
//! memory stays at about one part whatever the size. It is aborted (nothing stored) when
//! the body fails or passes its limit, so an object is whole or absent. Copies are server-side (CopyObject,
//! which S3 limits to 5 GiB).

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayloadMut, WriteMultipart,
};
use tokio::io::AsyncWriteExt;

use super::{missing, Artifact, ByteStream, Opened, Store};
use crate::error::Error;
use crate::job::JobId;

/// Size of a multipart upload's parts, and the largest body sent as one PUT. S3's minimum
/// part size (all parts but the last), so the least memory an upload can hold.
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// Parts uploaded at once. One keeps memory at about one part, at the cost of throughput
/// on a distant store (the body is not read while a part is sent).
const PARTS_IN_FLIGHT: usize = 1;

/// Time limit of a request whose body is small (lists, deletes, heads, parts, small puts):
/// `object_store`'s default.
const QUICK_TIMEOUT: Duration = Duration::from_secs(30);

/// Time limit of a request that may carry a whole artifact (a download streamed to a slow
/// client, a server-side copy of a large object): long enough for any of them, short of
/// forever.
const LONG_TIMEOUT: Duration = Duration::from_secs(3600);

/// Where the bucket is and how to sign requests to it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `S3_ENDPOINT_URL`: an S3-compatible server's URL; unset for AWS itself.
    pub endpoint: Option<String>,
    /// `S3_BUCKET`: the bucket (required for `artifact_store = s3`).
    pub bucket: String,
    /// `S3_REGION_NAME` (default `us-east-1`).
    pub region: String,
    /// `S3_ACCESS_KEY_ID`; unset: the instance's role (IMDS) or the like.
    pub access_key_id: Option<String>,
    /// `S3_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            endpoint: None,
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
        }
    }
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .finish()
    }
}

impl S3Settings {
    /// The settings in `env` (the `S3_*` names, else their `AWS_*` ones; empty values count
    /// as unset).
    pub fn from_env(env: &[(String, String)]) -> Self {
        let get = |names: &[&str]| {
            names.iter().find_map(|name| {
                env.iter()
                    .find(|(k, v)| k == name && !v.trim().is_empty())
                    .map(|(_, v)| v.trim().to_string())
            })
        };
        Self {
            endpoint: get(&["S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"]),
            bucket: get(&["S3_BUCKET", "AWS_BUCKET"]).unwrap_or_default(),
            region: get(&["S3_REGION_NAME", "AWS_REGION", "AWS_DEFAULT_REGION"])
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: get(&["S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"]),
            secret_access_key: get(&["S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"]),
            session_token: get(&["AWS_SESSION_TOKEN"]),
        }
    }

    /// A client for the bucket whose requests time out after `timeout`.
    fn client(&self, timeout: Duration) -> Result<AmazonS3, Error> {
        if self.bucket.is_empty() {
            return Err(Error::Config(
                "artifact_store = s3 needs S3_BUCKET (the bucket's name)".into(),
            ));
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_client_options(ClientOptions::new().with_timeout(timeout));
        if let Some(url) = &self.endpoint {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(Error::Config(format!(
                    "S3_ENDPOINT_URL: {url:?} must be an http:// or https:// URL"
                )));
            }
            b = b
                .with_endpoint(url)
                .with_allow_http(url.starts_with("http://"));
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
            }
            (None, None) => {}
            _ => {
                return Err(Error::Config(
                    "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together".into(),
                ))
            }
        }
        if let Some(token) = &self.session_token {
            b = b.with_token(token);
        }
        b.build()
            .map_err(|e| Error::Config(format!("artifact_store = s3: {e}")))
    }
}

/// Artifacts as objects in an S3-compatible bucket.
#[derive(Clone)]
pub struct S3Store {
    /// For requests with small bodies ([`QUICK_TIMEOUT`]).
    quick: Arc<AmazonS3>,
    /// For downloads and copies of whole artifacts ([`LONG_TIMEOUT`]).
    long: Arc<AmazonS3>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Store({})", self.quick)
    }
}

/// Maps an `object_store` error; a missing object is [`Error::Missing`].
fn store_error(id: JobId, name: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => missing(id, name),
        e => Error::Storage(format!("artifact {name:?} of job {id}: {e}")),
    }
}

/// The key of artifact `name` of job `id`, literally `<N>/artifacts/<name>`.
fn key(id: JobId, name: &str) -> Result<Key, Error> {
    Key::parse(format!("{id}/artifacts/{name}"))
        .map_err(|e| Error::Invalid(format!("artifact name {name:?}: {e}")))
}

/// The prefix of job `id`'s objects (`<N>`; listings add the `/`).
fn job_prefix(id: JobId) -> Key {
    Key::from(id.to_string())
}

/// Content-Type recorded with an object, guessed from its name.
fn attributes(name: &str) -> Attributes {
    let mut a = Attributes::new();
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    a.insert(
        Attribute::ContentType,
        mime.essence_str().to_string().into(),
    );
    a
}

impl S3Store {
    /// A store for the bucket of `settings`. Makes no request: a wrong endpoint or key shows
    /// at the first use.
    ///
    /// # Errors
    /// [`Error::Config`] when the settings are incomplete or malformed.
    pub fn new(settings: &S3Settings) -> Result<Self, Error> {
        Ok(Self {
            quick: Arc::new(settings.client(QUICK_TIMEOUT)?),
            long: Arc::new(settings.client(LONG_TIMEOUT)?),
        })
    }

    /// Uploads `body` as `key` (see the module doc); `None` past `limit`.
    async fn upload(
        &self,
        id: JobId,
        name: &str,
        mut body: ByteStream,
        limit: u64,
    ) -> Result<Option<u64>, Error> {
        let key = key(id, name)?;
        let fail = |e| store_error(id, name, e);
        let mut size: u64 = 0;
        // The first part's worth is held back: a body that ends within it is one PUT.
        let mut first = PutPayloadMut::new();
        let mut multipart: Option<WriteMultipart> = None;
        let outcome = loop {
            let chunk = match body.next().await {
                None => break Ok(Some(size)),
                Some(Err(e)) => break Err(Error::Invalid(format!("reading the upload: {e}"))),
                Some(Ok(chunk)) => chunk,
            };
            size += chunk.len() as u64;
            if size > limit {
                break Ok(None);
            }
            let writer = match multipart.as_mut() {
                Some(w) => w,
                None if first.content_length() + chunk.len() <= PART_SIZE => {
                    // Copied: a slice would pin the whole receive buffer it came from.
                    first.extend_from_slice(&chunk);
                    continue;
                }
                None => {
                    let opts = PutMultipartOptions {
                        attributes: attributes(name),
                        ..Default::default()
                    };
                    let upload = self
                        .quick
                        .put_multipart_opts(&key, opts)
                        .await
                        .map_err(fail)?;
                    let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                    for held in std::mem::take(&mut first).freeze() {
                        w.put(held);
                    }
                    multipart.insert(w)
                }
            };
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                break Err(fail(e));
            }
            writer.write(&chunk);
        };
        match (outcome, multipart) {
            (Ok(Some(size)), None) => {
                let opts = PutOptions {
                    attributes: attributes(name),
                    ..Default::default()
                };
                self.quick
                    .put_opts(&key, first.freeze(), opts)
                    .await
                    .map_err(fail)?;
                Ok(Some(size))
            }
            (Ok(Some(size)), Some(mut w)) => match w.wait_for_capacity(0).await {
                // finish() aborts the upload itself when completing it fails.
                Ok(()) => w.finish().await.map(|_| Some(size)).map_err(fail),
                Err(e) => {
                    abort(w, id, name).await;
                    Err(fail(e))
                }
            },
            (outcome, Some(w)) => {
                abort(w, id, name).await;
                outcome
            }
            (outcome, None) => outcome,
        }
    }
}

/// Aborts a multipart upload: S3 drops its parts (they are never visible as an object).
async fn abort(w: WriteMultipart, id: JobId, name: &str) {
    if let Err(e) = w.abort().await {
        tracing::warn!(job = %id, artifact = name, error = %e,
            "cannot abort a multipart upload; its parts stay until the bucket's lifecycle rule");
    }
}

#[async_trait::async_trait]
impl Store for S3Store {
    async fn put_file(&self, id: JobId, name: &str, from: &Path) -> Result<u64, Error> {
        let file = tokio::fs::File::open(from)
            .await
            .map_err(|e| Error::Storage(format!("reading {}: {e}", from.display())))?;
        let body = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).boxed();
        match self.upload(id, name, body, u64::MAX).await {
            Ok(size) => Ok(size.unwrap_or_default()),
            // A failing body here is the local file, not a client.
            Err(Error::Invalid(why)) => Err(Error::Storage(format!("{}: {why}", from.display()))),
            Err(e) => Err(e),
        }
    }

    async fn put_stream(
        &self,
        id: JobId,
        name: &str,
        body: ByteStream,
        limit: u64,
    ) -> Result<Option<u64>, Error> {
        self.upload(id, name, body, limit).await
    }

    async fn fetch(&self, id: JobId, name: &str, to: &Path) -> Result<(), Error> {
        let got = self
            .long
            .get(&key(id, name)?)
            .await
            .map_err(|e| store_error(id, name, e))?;
        let written = async {
            let mut file = tokio::fs::File::create(to).await?;
            let mut body = got.into_stream();
            while let Some(chunk) = body.next().await {
                file.write_all(&chunk.map_err(io::Error::other)?).await?;
            }
            file.flush().await
        };
        if let Err(e) = written.await {
            let _ = tokio::fs::remove_file(to).await;
            return Err(Error::Storage(format!(
                "fetching artifact {name:?} of job {id} to {}: {e}",
                to.display()
            )));
        }
        Ok(())
    }

    async fn copy(&self, from: JobId, name: &str, to: JobId, to_name: &str) -> Result<(), Error> {
        self.long
            .copy(&key(from, name)?, &key(to, to_name)?)
            .await
            .map_err(|e| store_error(from, name, e))
    }

    async fn size(&self, id: JobId, name: &str) -> Result<u64, Error> {
        let meta = self
            .quick
            .head(&key(id, name)?)
            .await
            .map_err(|e| store_error(id, name, e))?;
        Ok(meta.size)
    }

    async fn open(
        &self,
        id: JobId,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<Opened, Error> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .long
            .get_opts(&key(id, name)?, opts)
            .await
            .map_err(|e| store_error(id, name, e))?;
        Ok(Opened {
            size: got.meta.size,
            range: got.range.clone(),
            body: got.into_stream().map_err(io::Error::other).boxed(),
        })
    }

    async fn list(&self, id: JobId) -> Result<Vec<Artifact>, Error> {
        let prefix = Key::from_iter([id.to_string(), "artifacts".to_string()]);
        let listed = self
            .quick
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| Error::Storage(format!("artifacts of job {id}: {e}")))?;
        let mut out: Vec<Artifact> = listed
            .objects
            .into_iter()
            .filter_map(|o| {
                let name = o.location.filename()?.to_string();
                super::validate_name(&name).ok()?;
                Some(Artifact { name, size: o.size })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn job_ids(&self) -> Result<Vec<JobId>, Error> {
        let listed = self
            .quick
            .list_with_delimiter(None)
            .await
            .map_err(|e| Error::Storage(format!("listing the bucket: {e}")))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.as_ref().parse().ok().map(JobId))
            .collect())
    }

    async fn remove(&self, id: JobId) -> Result<(), Error> {
        let fail = |e: object_store::Error| {
            Error::Storage(format!("deleting the artifacts of job {id}: {e}"))
        };
        let keys = self
            .quick
            .list(Some(&job_prefix(id)))
            .map_ok(|o| o.location)
            .boxed();
        self.quick
            .delete_stream(keys)
            .try_collect::<Vec<_>>()
            .await
            .map_err(fail)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn settings_come_from_s3_names_then_aws_names() {
        let s = S3Settings::from_env(&env(&[
            ("S3_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("S3_BUCKET", "jobs"),
            ("AWS_ACCESS_KEY_ID", "aws-id"),
            ("S3_ACCESS_KEY_ID", "s3-id"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ("AWS_REGION", "eu-west-1"),
        ]));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.bucket, "jobs");
        assert_eq!(s.access_key_id.as_deref(), Some("s3-id"), "S3_* wins");
        assert_eq!(s.secret_access_key.as_deref(), Some("aws-secret"));
        assert_eq!(s.region, "eu-west-1");
        let d = S3Settings::from_env(&env(&[("S3_REGION_NAME", " ")]));
        assert_eq!(d, S3Settings::default());
        assert_eq!(d.region, "us-east-1");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = S3Settings {
            secret_access_key: Some("very-secret".into()),
            session_token: Some("token-secret".into()),
            ..S3Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("secret\"") && !shown.contains("very-secret"),
            "{shown}"
        );
        assert!(!shown.contains("token-secret"), "{shown}");
    }

    #[test]
    fn bad_settings_are_one_clear_error() {
        let e = |s: S3Settings| {
            S3Store::new(&s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(e(S3Settings::default()).contains("S3_BUCKET"));
        let bucket = || S3Settings {
            bucket: "b".into(),
            ..S3Settings::default()
        };
        assert!(e(S3Settings {
            endpoint: Some("localhost:9000".into()),
            ..bucket()
        })
        .contains("S3_ENDPOINT_URL"));
        assert!(e(S3Settings {
            access_key_id: Some("id".into()),
            ..bucket()
        })
        .contains("go together"));
        assert!(S3Store::new(&S3Settings {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..bucket()
        })
        .is_ok());
    }

    #[test]
    fn keys_are_the_local_layout_literally() {
        let k = key(JobId(7), "model v2 (final)%.glm").map(|k| k.to_string());
        assert_eq!(k.ok().as_deref(), Some("7/artifacts/model v2 (final)%.glm"));
    }
}
