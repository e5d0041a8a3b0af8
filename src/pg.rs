//! Talking to PostgreSQL for online base backups: `pg_backup_start` / `pg_backup_stop` in one
//! session (non-exclusive backup), and what PostgreSQL documents as safe to leave out of one.
//!
//! The session must stay open from start to stop: if it drops (cairn dies, an error), the
//! server aborts the backup by itself, so no state is left behind in PostgreSQL.

use std::path::Path;

use crate::error::{Error, Result};

/// An open non-exclusive base backup.
pub struct BaseBackup {
    client: postgres::Client,
    version: i32,
}

/// What `pg_backup_stop` returns: the files a restored data directory needs.
#[derive(Clone, Debug)]
pub struct BackupLabel {
    pub stop_lsn: String,
    /// Content of `backup_label`.
    pub label: Vec<u8>,
    /// Content of `tablespace_map`, when the cluster has tablespaces.
    pub tablespace_map: Option<Vec<u8>>,
}

fn pg_err(what: &str, e: postgres::Error) -> Error {
    let detail = format!("{what}: {e}");
    Error::service("PostgreSQL", detail, e)
}

impl BaseBackup {
    /// Connects with `conninfo` (`host=/run/postgresql user=postgres` or a URL) and starts a
    /// backup labelled `label`, asking for an immediate checkpoint.
    pub fn start(conninfo: &str, label: &str) -> Result<Self> {
        let mut client =
            postgres::Client::connect(conninfo, postgres::NoTls).map_err(|e| pg_err("cannot connect", e))?;
        let row = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .map_err(|e| pg_err("cannot read the server version", e))?;
        let version: i32 = row.get(0);
        let sql = if version >= 150000 {
            "SELECT pg_backup_start($1, true)::text"
        } else {
            "SELECT pg_start_backup($1, true, false)::text"
        };
        client.query_one(sql, &[&label]).map_err(|e| pg_err("cannot start the backup", e))?;
        Ok(BaseBackup { client, version })
    }

    /// The server's data directory, to check the snapshot is of the right cluster.
    pub fn data_directory(&mut self) -> Result<String> {
        let row = self
            .client
            .query_one("SELECT current_setting('data_directory')", &[])
            .map_err(|e| pg_err("cannot read data_directory", e))?;
        Ok(row.get(0))
    }

    /// Ends the backup, waiting until the WAL it needs is archived.
    pub fn stop(mut self) -> Result<BackupLabel> {
        let sql = if self.version >= 150000 {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(true)"
        } else {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, true)"
        };
        let row = self.client.query_one(sql, &[]).map_err(|e| pg_err("cannot stop the backup", e))?;
        let map: Option<String> = row.get(2);
        Ok(BackupLabel {
            stop_lsn: row.get(0),
            label: row.get::<_, String>(1).into_bytes(),
            tablespace_map: map.filter(|m| !m.is_empty()).map(String::into_bytes),
        })
    }
}

/// Directories whose contents a base backup leaves out (PostgreSQL recreates them or they
/// hold only transient state); the directories themselves are kept.
pub const EXCLUDED_CONTENTS: &[&str] =
    &["pg_wal", "pg_dynshmem", "pg_notify", "pg_replslot", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans"];

/// Files in the data directory's top level a base backup leaves out.
pub const EXCLUDED_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
    "backup_label.old",
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
];

/// Names left out wherever they appear: temporary files and relation cache init files.
pub const EXCLUDED_NAME_PREFIXES: &[&str] = &["pgsql_tmp", "pg_internal.init"];

/// Whether `dir` looks like a PostgreSQL data directory.
pub fn is_data_directory(dir: &Path) -> bool {
    dir.join("PG_VERSION").is_file() && dir.join("global").is_dir()
}
