//! Stand's cluster records (`cluster_N` hashes, SEEDS.md 2.5): where a Spark job runs.
//! Written by `lua/cluster_put.lua` / `lua/cluster_rm.lua`, read with HGETALL, checked by
//! every submit that names one (`lua/includes/create_job.lua`), and turned into
//! `spark-submit` options by [`Cluster::spark_args`].

use std::collections::{BTreeMap, HashMap};

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Broker;
use crate::error::Error;

/// Where a cluster's jobs go, as Stand names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClusterType {
    /// Spark's local or standalone master (`local[*]`, `spark://host:7077`).
    SparkLocal,
    /// Hadoop YARN (`--master yarn`).
    Yarn,
    /// Apache Mesos (`mesos://host:5050`).
    Mesos,
    /// Kubernetes (`k8s://https://host:443`).
    Kubernetes,
}

impl ClusterType {
    /// Stand's word for the type (SPARK_LOCAL, YARN, MESOS, KUBERNETES).
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterType::SparkLocal => "SPARK_LOCAL",
            ClusterType::Yarn => "YARN",
            ClusterType::Mesos => "MESOS",
            ClusterType::Kubernetes => "KUBERNETES",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::SparkLocal, Self::Yarn, Self::Mesos, Self::Kubernetes]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

fn default_type() -> ClusterType {
    ClusterType::SparkLocal
}
fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// A cluster record, with Stand's field names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The id N of `cluster_N` (from the path on PUT).
    #[serde(default)]
    pub id: u64,
    /// A name people recognise.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// A disabled cluster refuses new jobs (CLUSTER_DISABLED).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// SPARK_LOCAL (default), YARN, MESOS or KUBERNETES.
    #[serde(rename = "type", default = "default_type")]
    pub kind: ClusterType,
    /// The master: `local[*]`, `spark://host:7077`, `mesos://...`, `k8s://...`; empty means
    /// `local[*]` for SPARK_LOCAL.
    #[serde(default)]
    pub address: String,
    /// Executors (`spark.cores.max`; `spark.executor.instances` on Kubernetes).
    #[serde(default = "one")]
    pub executors: u32,
    /// Cores per executor (`spark.executor.cores`).
    #[serde(default = "one")]
    pub executor_cores: u32,
    /// Memory per executor (`spark.executor.memory`), e.g. `1g`; empty (the default) keeps
    /// Spark's own default. Stand defaulted to `1M`, which Spark 4 refuses (at least 450m).
    #[serde(default)]
    pub executor_memory: String,
    /// Extra Spark settings: `k=v,k=v` (only `spark*` keys are used) or JSON
    /// `{"spark": {"k": "v"}, "environment": {"NAME": "value"}}`, as Stand kept them.
    #[serde(default)]
    pub general_parameters: String,
    /// When the record was last written (RFC 3339; set by Redis).
    #[serde(default, skip_deserializing)]
    pub updated: String,
}

impl Cluster {
    /// Checks the fields a PUT may get wrong.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.name.trim().is_empty() {
            return bad("name: must not be empty".into());
        }
        if self.executors == 0 || self.executor_cores == 0 {
            return bad("executors and executor_cores must be at least 1".into());
        }
        if self.address.chars().any(char::is_whitespace) {
            return bad(format!(
                "address: {:?} must not contain spaces",
                self.address
            ));
        }
        if !self.executor_memory.is_empty() && !is_size(&self.executor_memory) {
            return bad(format!(
                "executor_memory: {:?} is not a size like 512m or 2g",
                self.executor_memory
            ));
        }
        self.spark_settings().map(|_| ())
    }

    /// The record as hash fields, for `lua/cluster_put.lua`.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.clone()),
            ("description", self.description.clone()),
            ("enabled", self.enabled.to_string()),
            ("type", self.kind.as_str().to_string()),
            ("address", self.address.clone()),
            ("executors", self.executors.to_string()),
            ("executor_cores", self.executor_cores.to_string()),
            ("executor_memory", self.executor_memory.clone()),
            ("general_parameters", self.general_parameters.clone()),
        ]
    }

    /// Reads a record back from its hash; None for an empty (missing) hash.
    pub fn from_hash(h: &HashMap<String, String>) -> Option<Self> {
        let get = |k: &str| h.get(k).cloned().unwrap_or_default();
        let num = |k: &str| get(k).parse().unwrap_or(1);
        Some(Self {
            id: get("id").parse().ok()?,
            name: get("name"),
            description: get("description"),
            enabled: get("enabled") == "true",
            kind: ClusterType::parse(&get("type")).unwrap_or(ClusterType::SparkLocal),
            address: get("address"),
            executors: num("executors"),
            executor_cores: num("executor_cores"),
            executor_memory: get("executor_memory"),
            general_parameters: get("general_parameters"),
            updated: get("updated"),
        })
    }

    /// The `--master` value for spark-submit.
    pub fn master(&self) -> String {
        let address = self.address.trim();
        match self.kind {
            ClusterType::Yarn => "yarn".into(),
            ClusterType::Kubernetes if !address.starts_with("k8s://") => {
                format!("k8s://{address}")
            }
            ClusterType::SparkLocal if address.is_empty() => "local[*]".into(),
            _ => address.to_string(),
        }
    }

    /// Spark settings (`--conf k=v`) and environment variables from the record, as Juicer
    /// mapped them (SEEDS.md 2.6).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `general_parameters` is neither `k=v,...` nor Stand's JSON.
    pub fn spark_settings(&self) -> Result<SparkSettings, Error> {
        let mut conf = BTreeMap::new();
        let mut env = BTreeMap::new();
        if self.kind == ClusterType::Kubernetes {
            conf.insert(
                "spark.executor.instances".into(),
                self.executors.to_string(),
            );
        } else if self.kind != ClusterType::SparkLocal || !self.master().starts_with("local") {
            conf.insert("spark.cores.max".into(), self.executors.to_string());
        }
        conf.insert(
            "spark.executor.cores".into(),
            self.executor_cores.to_string(),
        );
        if !self.executor_memory.is_empty() {
            conf.insert("spark.executor.memory".into(), self.executor_memory.clone());
        }
        let text = self.general_parameters.trim();
        if text.starts_with('{') {
            let json: Value = serde_json::from_str(text)
                .map_err(|e| Error::Invalid(format!("general_parameters: not valid JSON ({e})")))?;
            for (section, into) in [("spark", &mut conf), ("environment", &mut env)] {
                if let Some(map) = json.get(section).and_then(Value::as_object) {
                    for (k, v) in map {
                        let v = v.as_str().map_or_else(|| v.to_string(), String::from);
                        into.insert(k.clone(), v);
                    }
                }
            }
        } else {
            for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Error::Invalid(format!(
                        "general_parameters: {pair:?} is not key=value (or give Stand's JSON)"
                    ))
                })?;
                if k.trim().starts_with("spark") {
                    conf.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        Ok(SparkSettings { conf, env })
    }
}

/// A JVM memory size as Spark takes it: digits and an optional unit (`512m`, `2g`, `1024`).
fn is_size(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && ["", "k", "kb", "m", "mb", "g", "gb", "t", "tb", "p", "pb"].contains(&unit)
}

/// What a cluster adds to a spark-submit run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparkSettings {
    /// `--conf` pairs.
    pub conf: BTreeMap<String, String>,
    /// Environment variables for spark-submit.
    pub env: BTreeMap<String, String>,
}

impl Broker {
    /// Creates or replaces cluster `c.id` (`lua/cluster_put.lua`); true when new.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad record; Redis errors.
    pub async fn put_cluster(&self, c: &Cluster) -> Result<bool, Error> {
        c.validate()?;
        let mut conn = self.conn().await?;
        self.scripts()
            .cluster_put(&mut *conn, c.id, &c.to_fields())
            .await
    }

    /// Cluster `id`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the missing cluster; Redis errors.
    pub async fn cluster(&self, id: u64) -> Result<Cluster, Error> {
        let mut conn = self.conn().await?;
        let h: HashMap<String, String> = conn.hgetall(self.keys().cluster(id)).await?;
        Cluster::from_hash(&h).ok_or_else(|| Error::Missing(format!("cluster {id}")))
    }

    /// Every cluster, by id.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn clusters(&self) -> Result<Vec<Cluster>, Error> {
        let mut conn = self.conn().await?;
        let mut ids: Vec<u64> = conn.smembers(self.keys().clusters()).await?;
        ids.sort_unstable();
        if ids.is_empty() {
            return Ok(Vec::new()); // an empty pipeline is an error to Redis
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(self.keys().cluster(*id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut *conn).await?;
        Ok(hashes.iter().filter_map(Cluster::from_hash).collect())
    }

    /// Deletes cluster `id` (`lua/cluster_rm.lua`).
    ///
    /// # Errors
    /// [`Error::Missing`] when there is no such cluster; Redis errors.
    pub async fn remove_cluster(&self, id: u64) -> Result<(), Error> {
        let mut conn = self.conn().await?;
        if self.scripts().cluster_rm(&mut *conn, id).await? {
            Ok(())
        } else {
            Err(Error::Missing(format!("cluster {id}")))
        }
    }
}

/// Deserializes a cluster id given as a number (Stand's `"cluster": 1`) or as text, as text.
///
/// # Errors
/// Neither a number nor a string.
pub fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Number(n) => n.to_string(),
        Id::Text(t) => t,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(json: &str) -> Cluster {
        serde_json::from_str(json).expect("valid cluster JSON")
    }

    #[test]
    fn stand_defaults_and_master_mapping() {
        let c = cluster(r#"{"name": "local"}"#);
        assert!(c.enabled);
        assert_eq!(c.kind, ClusterType::SparkLocal);
        assert_eq!(c.master(), "local[*]");
        let c = cluster(r#"{"name": "y", "type": "YARN", "address": "ignored"}"#);
        assert_eq!(c.master(), "yarn");
        let c = cluster(r#"{"name": "k", "type": "KUBERNETES", "address": "https://k:443"}"#);
        assert_eq!(c.master(), "k8s://https://k:443");
        let c = cluster(r#"{"name": "s", "address": "spark://h:7077", "executors": 4}"#);
        assert_eq!(c.master(), "spark://h:7077");
        assert_eq!(
            c.spark_settings().expect("test value").conf["spark.cores.max"],
            "4"
        );
    }

    #[test]
    fn general_parameters_in_both_of_stands_formats() {
        let c =
            cluster(r#"{"name": "a", "general_parameters": "spark.ui.enabled=false, other=1"}"#);
        let s = c.spark_settings().expect("test value");
        assert_eq!(s.conf["spark.ui.enabled"], "false");
        assert!(!s.conf.contains_key("other"), "only spark* keys are used");
        let c = cluster(
            r#"{"name": "b", "general_parameters": "{\"spark\": {\"spark.sql.shuffle.partitions\": 2}, \"environment\": {\"SPARK_LOCAL_IP\": \"127.0.0.1\"}}"}"#,
        );
        let s = c.spark_settings().expect("test value");
        assert_eq!(s.conf["spark.sql.shuffle.partitions"], "2");
        assert_eq!(s.env["SPARK_LOCAL_IP"], "127.0.0.1");
        let bad = cluster(r#"{"name": "c", "general_parameters": "no-equals"}"#);
        assert!(matches!(bad.validate(), Err(Error::Invalid(_))));
    }

    #[test]
    fn round_trips_through_hash_fields() {
        let mut c = cluster(r#"{"name": "x", "enabled": false, "type": "MESOS"}"#);
        c.id = 3;
        let mut h: HashMap<String, String> = c
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        h.insert("id".into(), "3".into());
        assert_eq!(Cluster::from_hash(&h), Some(c));
        assert_eq!(Cluster::from_hash(&HashMap::new()), None);
    }

    #[test]
    fn refuses_bad_records() {
        assert!(cluster(r#"{"name": " "}"#).validate().is_err());
        assert!(cluster(r#"{"name": "m", "executor_memory": "lots"}"#)
            .validate()
            .is_err());
        assert!(
            serde_json::from_str::<Cluster>(r#"{"name": "t", "type": "SLURM"}"#).is_err(),
            "unknown type"
        );
    }
}
