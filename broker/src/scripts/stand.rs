//! Stand's transitions: stop requests, locks and clusters.

use super::*;

impl Scripts {
    /// Runs `lua/cluster_put.lua`: creates or replaces cluster `id` with `fields`.
    ///
    /// # Returns
    /// True when the record is new.
    pub async fn cluster_put<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: u64,
        fields: &[(&str, String)],
    ) -> Result<bool, Error> {
        let k = &self.keys;
        let mut inv = self.cluster_put.prepare_invoke();
        inv.key(k.cluster(id))
            .key(k.clusters())
            .key(k.events())
            .arg(id);
        for (f, v) in fields {
            inv.arg(*f).arg(v);
        }
        let r = inv.run(c, "cluster_put").await?;
        Ok(r.code > 0 && r.int(0) == Some(1))
    }

    /// Runs `lua/cluster_rm.lua`: deletes cluster `id`.
    ///
    /// # Returns
    /// False when there was no such cluster.
    pub async fn cluster_rm<C: ConnectionLike>(&self, c: &mut C, id: u64) -> Result<bool, Error> {
        let k = &self.keys;
        Ok(self
            .cluster_rm
            .key(k.cluster(id))
            .key(k.clusters())
            .key(k.events())
            .arg(id)
            .run(c, "cluster_rm")
            .await?
            .code
            > 0)
    }

    /// Runs `lua/stop.lua`: a waiting job is CANCELED at once; a running one gets a stop
    /// request (pushed on the `stop` list, capped at `stop_list_cap`, and published).
    ///
    /// # Returns
    /// CANCELED, or RUNNING when the executor has been asked to stop it.
    pub async fn stop<C: ConnectionLike>(&self, c: &mut C, id: JobId) -> Result<Status, Error> {
        let k = &self.keys;
        self.stop
            .key(k.job(id))
            .key(k.leases())
            .key(k.delayed())
            .key(k.stop_list())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(self.list_cap.max(1))
            .run(c, "stop")
            .await?
            .check(id, "stop")?
            .status(0)
    }

    /// Runs `lua/lock.lua`: freezes the job for `holder` (`force` takes a held lock).
    ///
    /// # Returns
    /// The job's status.
    pub async fn lock<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        holder: &str,
        force: bool,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        self.lock
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(holder)
            .arg(u8::from(force))
            .run(c, "lock")
            .await?
            .check(id, "lock")?
            .status(0)
    }

    /// Runs `lua/unlock.lua`.
    ///
    /// # Returns
    /// The job's status.
    pub async fn unlock<C: ConnectionLike>(&self, c: &mut C, id: JobId) -> Result<Status, Error> {
        let k = &self.keys;
        self.unlock
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .run(c, "unlock")
            .await?
            .check(id, "unlock")?
            .status(0)
    }
}
