//! The security database: API keys, bans, incidents, mode toggles and
//! provider latency history, in one SQLite file (`moltgate.db` in the state
//! dir), WAL mode, created and migrated on open.
//!
//! The gateway and the `moltguard` CLI open it side by side; WAL lets the
//! CLI write (create a key, block an IP, toggle lockdown) while the gateway
//! serves, and the gateway notices through `PRAGMA data_version`.
//!
//! Times are milliseconds since the Unix epoch.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

/// Bumped with every migration below.
const SCHEMA_VERSION: i64 = 2;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        salt TEXT NOT NULL,
        hash TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        rate_per_minute INTEGER,
        models TEXT
    );
    CREATE TABLE bans (
        target TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        offences INTEGER NOT NULL DEFAULT 1,
        manual INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts INTEGER NOT NULL,
        client_ip TEXT,
        kind TEXT NOT NULL,
        rule TEXT,
        action TEXT NOT NULL,
        request_id TEXT,
        detail TEXT
    );
    CREATE INDEX incidents_ts ON incidents(ts);
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE latency (
        provider TEXT NOT NULL,
        minute INTEGER NOT NULL,
        count INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        p50_ms INTEGER NOT NULL,
        p95_ms INTEGER NOT NULL,
        max_ms INTEGER NOT NULL,
        PRIMARY KEY (provider, minute)
    );
    "#,
    // 2: tokens per provider and minute, for the dashboard's token chart.
    r#"
    ALTER TABLE latency ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE latency ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// Why the security database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened.
    #[error("security database {path}: {source}. Nothing was changed. If the file is damaged, stop moltgate, move it aside (keys, bans and incidents in it are lost; create keys again with `moltguard keys create`) and start again.")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer moltgate.
    #[error("security database {path} has schema version {found}, newer than this moltgate understands ({SCHEMA_VERSION}); upgrade moltgate instead of downgrading it")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
    },
    /// A query failed.
    #[error("security database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The directory could not be made or secured.
    #[error("security database directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// A result of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Now, in milliseconds since the epoch (every timestamp in the store).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The database file inside a state dir.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join("moltgate.db")
}

/// One connection to the security database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// One API key as stored: a salted hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The key's public id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// The salt, hex.
    pub salt: String,
    /// SHA-256 of salt and secret, hex.
    pub hash: String,
    /// Its scopes, comma-separated.
    pub scopes: String,
    /// When it was made.
    pub created_at: i64,
    /// When it expires, if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Its own rate limit, if it has one.
    pub rate_per_minute: Option<u32>,
    /// Comma-separated allowed models; `None` means any.
    pub models: Option<String>,
}

/// One ban: an address or a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BanRow {
    /// The address or block.
    pub target: String,
    /// Why it was banned.
    pub reason: String,
    /// When the ban began.
    pub created_at: i64,
    /// When it ends; `None`: when lifted by hand.
    pub expires_at: Option<i64>,
    /// How many bans this address has earned (each doubles the next).
    pub offences: u32,
    /// Made by a person, not by the auto-ban.
    pub manual: bool,
}

/// One stored incident.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncidentRow {
    /// Its row id (in order of storage).
    pub id: i64,
    /// When it happened.
    pub ts: i64,
    /// The client's address, when there was a client.
    pub client_ip: Option<String>,
    /// Its kind ([`crate::inbound::IncidentKind`]'s name).
    pub kind: String,
    /// The firewall rule, if one fired.
    pub rule: Option<String>,
    /// What was done about it.
    pub action: String,
    /// The request's id, when a request caused it.
    pub request_id: Option<String>,
    /// What happened, in words (secrets redacted).
    pub detail: Option<String>,
}

/// Which incidents to list; every field left `None` lets all through.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Incidents of this kind only.
    pub kind: Option<crate::inbound::IncidentKind>,
    /// The client address, exactly as stored.
    pub client_ip: Option<String>,
    /// At or after this time (epoch ms).
    pub since_ms: Option<i64>,
}

/// One provider's traffic in one minute (or bucket).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencyRow {
    /// The provider.
    pub provider: String,
    /// The minute's (or bucket's) start, epoch ms.
    pub minute: i64,
    /// Requests.
    pub count: u32,
    /// Failed requests.
    pub errors: u32,
    /// Median latency.
    pub p50_ms: u32,
    /// 95th percentile latency.
    pub p95_ms: u32,
    /// Slowest.
    pub max_ms: u32,
    /// Tokens the provider reported (`usage`) in this minute.
    pub input_tokens: u64,
    /// Tokens the provider returned in this minute.
    pub output_tokens: u64,
}

/// How many incidents of one kind fell in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IncidentCount {
    /// The bucket's start (epoch ms, a multiple of the bucket width).
    pub at: i64,
    /// The incident kind.
    pub kind: String,
    /// How many.
    pub count: u64,
}

impl Store {
    /// Opens (creating and migrating) the database in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Dir {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let path = db_path(state_dir);
        let fresh = !path.exists();
        let err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        if fresh {
            restrict_permissions(&path);
        }
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // WAL: the CLI writes while the gateway reads; NORMAL is durable
        // across process crashes (only an OS crash may lose the last commit).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|source| StoreError::Open {
                path: self.path.clone(),
                source,
            })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes whenever another connection commits (`PRAGMA data_version`).
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

    // ---- keys

    /// Stores a new key.
    pub fn insert_key(&self, k: &KeyRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO keys (id, label, salt, hash, scopes, created_at, expires_at, revoked_at, rate_per_minute, models)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![k.id, k.label, k.salt, k.hash, k.scopes, k.created_at, k.expires_at, k.revoked_at, k.rate_per_minute, k.models],
        )?;
        Ok(())
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> Result<Vec<KeyRow>> {
        self.keys_where("1 = 1 ORDER BY created_at, id", [])
    }

    /// The key with this id.
    pub fn key(&self, id: &str) -> Result<Option<KeyRow>> {
        Ok(self.keys_where("id = ?1", [id])?.pop())
    }

    fn keys_where<P: rusqlite::Params>(&self, filter: &str, params: P) -> Result<Vec<KeyRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, label, salt, hash, scopes, created_at, expires_at, revoked_at, rate_per_minute, models
             FROM keys WHERE {filter}"
        ))?;
        let rows = st.query_map(params, |r| {
            Ok(KeyRow {
                id: r.get(0)?,
                label: r.get(1)?,
                salt: r.get(2)?,
                hash: r.get(3)?,
                scopes: r.get(4)?,
                created_at: r.get(5)?,
                expires_at: r.get(6)?,
                revoked_at: r.get(7)?,
                rate_per_minute: r.get(8)?,
                models: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Revokes by id or by label; returns how many keys were revoked.
    pub fn revoke_key(&self, id_or_label: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE keys SET revoked_at = ?2 WHERE (id = ?1 OR label = ?1) AND revoked_at IS NULL",
            params![id_or_label, now_ms()],
        )?)
    }

    // ---- bans

    /// Stores a ban, replacing any on the same target.
    pub fn upsert_ban(&self, b: &BanRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO bans (target, reason, created_at, expires_at, offences, manual)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(target) DO UPDATE SET reason = ?2, created_at = ?3, expires_at = ?4, offences = ?5, manual = ?6",
            params![b.target, b.reason, b.created_at, b.expires_at, b.offences, b.manual],
        )?;
        Ok(())
    }

    /// Lifts a ban (the row stays, expired, so repeat offences still escalate).
    pub fn lift_ban(&self, target: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE bans SET expires_at = ?2, manual = 0 WHERE target = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
            params![target, now_ms()],
        )?)
    }

    /// Every ban row, active or not (offence counts live in expired rows).
    pub fn bans(&self) -> Result<Vec<BanRow>> {
        let mut st = self.conn.prepare(
            "SELECT target, reason, created_at, expires_at, offences, manual FROM bans ORDER BY created_at",
        )?;
        let rows = st.query_map([], |r| {
            Ok(BanRow {
                target: r.get(0)?,
                reason: r.get(1)?,
                created_at: r.get(2)?,
                expires_at: r.get(3)?,
                offences: r.get(4)?,
                manual: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ---- incidents

    /// Stores incidents in one transaction.
    pub fn insert_incidents(&mut self, batch: &[IncidentRow]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO incidents (ts, client_ip, kind, rule, action, request_id, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for i in batch {
                st.execute(params![
                    i.ts,
                    i.client_ip,
                    i.kind,
                    i.rule,
                    i.action,
                    i.request_id,
                    i.detail
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The failures that count toward a ban or the login limit (failed
    /// keys and logins, firewall blocks) since `since_ms`, oldest first:
    /// `(ts, client_ip, kind)`. At most `limit` rows (the newest).
    pub fn failures_since(&self, since_ms: i64, limit: u32) -> Result<Vec<(i64, String, String)>> {
        let mut st = self.conn.prepare(
            "SELECT ts, client_ip, kind FROM (
                 SELECT id, ts, client_ip, kind FROM incidents
                 WHERE ts > ?1 AND client_ip IS NOT NULL
                   AND kind IN ('auth_failure', 'login_failure', 'firewall_block')
                 ORDER BY id DESC LIMIT ?2
             ) ORDER BY id",
        )?;
        let rows = st.query_map(params![since_ms, limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest `limit` incidents that pass `filter`, newest first (by
    /// time, then by arrival).
    pub fn incidents(&self, limit: u32, filter: &IncidentFilter) -> Result<Vec<IncidentRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, ts, client_ip, kind, rule, action, request_id, detail FROM incidents
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR client_ip = ?2)
               AND (?3 IS NULL OR ts >= ?3)
             ORDER BY ts DESC, id DESC LIMIT ?4",
        )?;
        let kind = filter.kind.map(crate::inbound::IncidentKind::as_str);
        let rows = st.query_map(
            params![kind, filter.client_ip, filter.since_ms, limit],
            |r| {
                Ok(IncidentRow {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    client_ip: r.get(2)?,
                    kind: r.get(3)?,
                    rule: r.get(4)?,
                    action: r.get(5)?,
                    request_id: r.get(6)?,
                    detail: r.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Applies the retention settings: age first, then the row cap.
    pub fn prune(&self, older_than_ms: i64, max_rows: u64) -> Result<usize> {
        let mut n = self
            .conn
            .execute("DELETE FROM incidents WHERE ts < ?1", [older_than_ms])?;
        n += self.conn.execute(
            "DELETE FROM incidents WHERE id <= (SELECT id FROM incidents ORDER BY id DESC LIMIT 1 OFFSET ?1)",
            [max_rows as i64],
        )?;
        n += self
            .conn
            .execute("DELETE FROM latency WHERE minute < ?1", [older_than_ms])?;
        Ok(n)
    }

    // ---- settings (mode toggles)

    /// The stored value of setting `key` (a mode toggle).
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets `key` to `value`, recording who did it and when.
    pub fn set_setting(&self, key: &str, value: &str, by: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(key) DO UPDATE SET value = ?2, updated_at = ?3, updated_by = ?4",
            params![key, value, now_ms(), by],
        )?;
        Ok(())
    }

    // ---- provider latency history

    /// Stores latency rows, replacing those of the same provider and minute.
    pub fn upsert_latency(&mut self, rows: &[LatencyRow]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO latency (provider, minute, count, errors, p50_ms, p95_ms, max_ms, input_tokens, output_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(provider, minute) DO UPDATE SET count = ?3, errors = ?4, p50_ms = ?5, p95_ms = ?6,
                     max_ms = ?7, input_tokens = ?8, output_tokens = ?9",
            )?;
            for r in rows {
                st.execute(params![
                    r.provider,
                    r.minute,
                    r.count,
                    r.errors,
                    r.p50_ms,
                    r.p95_ms,
                    r.max_ms,
                    r.input_tokens as i64,
                    r.output_tokens as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The latency rows since `since_ms`, one per provider and minute.
    pub fn latency(&self, since_ms: i64) -> Result<Vec<LatencyRow>> {
        self.latency_buckets(since_ms, 60_000)
    }

    /// The latency rows since `since_ms` summed per provider into buckets
    /// `bucket_ms` wide (aligned to the epoch; `minute` is the bucket's
    /// start): counts, errors and tokens add up; p50 is the mean of the
    /// minutes' medians weighted by their requests, p95 and max the worst
    /// minute's. A one-minute bucket gives the rows as stored.
    pub fn latency_buckets(&self, since_ms: i64, bucket_ms: i64) -> Result<Vec<LatencyRow>> {
        let mut st = self.conn.prepare(
            "SELECT provider, (minute / ?2) * ?2 AS at, SUM(count), SUM(errors),
                    COALESCE(SUM(p50_ms * count) / NULLIF(SUM(count), 0), 0),
                    MAX(p95_ms), MAX(max_ms), SUM(input_tokens), SUM(output_tokens)
             FROM latency WHERE minute >= ?1 GROUP BY provider, at ORDER BY provider, at",
        )?;
        let rows = st.query_map(params![since_ms, bucket_ms.max(1)], |r| {
            Ok(LatencyRow {
                provider: r.get(0)?,
                minute: r.get(1)?,
                count: r.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
                errors: r.get::<_, i64>(3)?.clamp(0, u32::MAX as i64) as u32,
                p50_ms: r.get::<_, i64>(4)?.clamp(0, u32::MAX as i64) as u32,
                p95_ms: r.get(5)?,
                max_ms: r.get(6)?,
                input_tokens: r.get::<_, i64>(7)?.max(0) as u64,
                output_tokens: r.get::<_, i64>(8)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Incidents since `since_ms`, counted per kind in buckets `bucket_ms`
    /// wide (aligned to the epoch), oldest bucket first.
    pub fn incident_counts(&self, since_ms: i64, bucket_ms: i64) -> Result<Vec<IncidentCount>> {
        let bucket = bucket_ms.max(1);
        let mut st = self.conn.prepare(
            "SELECT (ts / ?2) * ?2 AS at, kind, COUNT(*) FROM incidents
             WHERE ts >= ?1 GROUP BY at, kind ORDER BY at, kind",
        )?;
        let rows = st.query_map(params![since_ms, bucket], |r| {
            Ok(IncidentCount {
                at: r.get(0)?,
                kind: r.get(1)?,
                count: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Key hashes and client IPs: owner-only, like the rest of the state dir.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.set_setting("lockdown", "on", "test").unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.setting("lockdown").unwrap().as_deref(), Some("on"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(db_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let junk = b"this is not a database, it is a grocery list\n".repeat(200);
        std::fs::write(db_path(dir.path()), &junk).unwrap();
        let e = Store::open(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("moltgate.db") && e.contains("move it aside"),
            "{e}"
        );
        assert_eq!(std::fs::read(db_path(dir.path())).unwrap(), junk);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = Store::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("newer"), "{e}");
    }

    #[test]
    fn a_first_schema_database_keeps_its_rows_and_gains_token_columns() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(db_path(dir.path())).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO latency (provider, minute, count, errors, p50_ms, p95_ms, max_ms) VALUES ('groq', 60000, 3, 1, 10, 20, 30)",
                [],
            )
            .unwrap();
        }
        let mut s = Store::open(dir.path()).unwrap();
        let rows = s.latency(0).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].count, rows[0].errors), (3, 1));
        assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (0, 0));
        let mut r = rows[0].clone();
        r.input_tokens = 1200;
        r.output_tokens = 345;
        s.upsert_latency(&[r.clone()]).unwrap();
        assert_eq!(s.latency(0).unwrap(), vec![r]);
    }

    #[test]
    fn incidents_are_listed_by_time_not_by_arrival() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let row = |ts| IncidentRow {
            id: 0,
            ts,
            client_ip: None,
            kind: "auth_failure".into(),
            rule: None,
            action: "refused".into(),
            request_id: None,
            detail: None,
        };
        // A batch written late (an overloaded queue drained) holds older times.
        s.insert_incidents(&[row(300), row(100)]).unwrap();
        s.insert_incidents(&[row(200)]).unwrap();
        let ts: Vec<i64> = s
            .incidents(10, &IncidentFilter::default())
            .unwrap()
            .iter()
            .map(|r| r.ts)
            .collect();
        assert_eq!(ts, [300, 200, 100]);
    }

    #[test]
    fn latency_buckets_add_counts_and_tokens_and_keep_the_worst_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let row = |minute: i64, count, p50, p95, tokens| LatencyRow {
            provider: "groq".into(),
            minute: minute * 60_000,
            count,
            errors: 1,
            p50_ms: p50,
            p95_ms: p95,
            max_ms: p95 + 1,
            input_tokens: tokens,
            output_tokens: tokens / 2,
        };
        let stored = [
            row(10, 1, 100, 150, 10),
            row(11, 3, 200, 900, 30),
            // Tokens that arrived after their minute's last request.
            row(12, 0, 0, 0, 4),
            row(15, 2, 50, 60, 20),
        ];
        s.upsert_latency(&stored).unwrap();
        let b = s.latency_buckets(0, 5 * 60_000).unwrap();
        assert_eq!(b.len(), 2, "{b:?}");
        assert_eq!(b[0].minute, 10 * 60_000);
        assert_eq!((b[0].count, b[0].errors), (4, 3));
        // (1×100 + 3×200) / 4
        assert_eq!(b[0].p50_ms, 175);
        assert_eq!((b[0].p95_ms, b[0].max_ms), (900, 901));
        assert_eq!((b[0].input_tokens, b[0].output_tokens), (44, 22));
        assert_eq!(b[1].minute, 15 * 60_000);
        // Minutes are the rows as stored.
        assert_eq!(s.latency(0).unwrap(), stored);
    }

    #[test]
    fn incident_counts_group_by_bucket_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let row = |ts, kind: &str| IncidentRow {
            id: 0,
            ts,
            client_ip: None,
            kind: kind.into(),
            rule: None,
            action: "refused".into(),
            request_id: None,
            detail: None,
        };
        s.insert_incidents(&[
            row(500, "firewall_block"),
            row(61_000, "firewall_block"),
            row(61_500, "auto_block"),
            row(119_999, "firewall_block"),
            row(120_000, "firewall_block"),
        ])
        .unwrap();
        let got: Vec<(i64, String, u64)> = s
            .incident_counts(60_000, 60_000)
            .unwrap()
            .into_iter()
            .map(|c| (c.at, c.kind, c.count))
            .collect();
        assert_eq!(
            got,
            [
                (60_000, "auto_block".to_string(), 1),
                (60_000, "firewall_block".to_string(), 2),
                (120_000, "firewall_block".to_string(), 1),
            ]
        );
    }

    #[test]
    fn other_connections_commits_change_data_version() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path()).unwrap();
        let b = Store::open(dir.path()).unwrap();
        let v0 = a.data_version().unwrap();
        b.set_setting("emergency", "on", "cli").unwrap();
        assert_ne!(a.data_version().unwrap(), v0);
    }

    #[test]
    fn prune_keeps_the_newest_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let rows: Vec<IncidentRow> = (0..10)
            .map(|i| IncidentRow {
                id: 0,
                ts: 1000 + i,
                client_ip: None,
                kind: "auth_failure".into(),
                rule: None,
                action: "refused".into(),
                request_id: None,
                detail: None,
            })
            .collect();
        s.insert_incidents(&rows).unwrap();
        s.prune(1002, 5).unwrap();
        let left = s.incidents(100, &IncidentFilter::default()).unwrap();
        assert_eq!(left.len(), 5);
        assert_eq!(left[0].ts, 1009);
        assert_eq!(left[4].ts, 1005);
    }

    #[test]
    fn incident_filters_combine() {
        use crate::inbound::IncidentKind;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let row = |ts, ip: &str, kind: IncidentKind| IncidentRow {
            id: 0,
            ts,
            client_ip: Some(ip.into()),
            kind: kind.as_str().into(),
            rule: None,
            action: "refused".into(),
            request_id: None,
            detail: None,
        };
        s.insert_incidents(&[
            row(10, "10.0.0.1", IncidentKind::AuthFailure),
            row(20, "10.0.0.2", IncidentKind::AuthFailure),
            row(30, "10.0.0.1", IncidentKind::FirewallBlock),
            row(40, "10.0.0.1", IncidentKind::AuthFailure),
        ])
        .unwrap();
        let ts = |f: IncidentFilter| -> Vec<i64> {
            s.incidents(100, &f).unwrap().iter().map(|r| r.ts).collect()
        };
        let auth = Some(IncidentKind::AuthFailure);
        let ip1 = Some("10.0.0.1".to_string());
        assert_eq!(ts(IncidentFilter::default()), [40, 30, 20, 10]);
        assert_eq!(
            ts(IncidentFilter {
                kind: auth,
                ..Default::default()
            }),
            [40, 20, 10]
        );
        assert_eq!(
            ts(IncidentFilter {
                client_ip: ip1.clone(),
                ..Default::default()
            }),
            [40, 30, 10]
        );
        assert_eq!(
            ts(IncidentFilter {
                since_ms: Some(30),
                ..Default::default()
            }),
            [40, 30]
        );
        let all = IncidentFilter {
            kind: auth,
            client_ip: ip1,
            since_ms: Some(15),
        };
        assert_eq!(ts(all), [40]);
    }

    #[test]
    fn every_incident_kind_round_trips_its_name() {
        use crate::inbound::IncidentKind;
        for &k in IncidentKind::all() {
            assert_eq!(IncidentKind::parse(k.as_str()), Some(k));
            let v = serde_json::to_value(k).unwrap();
            assert_eq!(v, k.as_str(), "serde and the stored name agree");
            let clap = clap::ValueEnum::to_possible_value(&k).unwrap();
            assert_eq!(clap.get_name(), k.as_str(), "the CLI takes the stored name");
        }
        assert_eq!(IncidentKind::parse("auth_failures"), None);
    }
}
