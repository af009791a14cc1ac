//! Throw-away databases on the PostgreSQL and MySQL/MariaDB servers tests run against: each
//! test creates its own database and drops it when done, so runs never see each other's data.
//!
//! The servers: `ROCTA_TEST_POSTGRES` (default `postgresql://postgres@127.0.0.1:5432/postgres`)
//! and `ROCTA_TEST_MYSQL` (default `mysql://root@127.0.0.1:3306/test`). A server that does not
//! answer is an error, never a skip.

use crate::Target;

/// A database created for one test, dropped on drop.
pub struct TempDb {
    pub target: Target,
    /// The `[database] connection` URL of the new database.
    pub url: String,
    admin: Admin,
    name: String,
}

enum Admin {
    Postgres(String),
    Mysql(String),
}

fn unique_name() -> String {
    format!("rocta_t_{}", uuid::Uuid::new_v4().simple())
}

/// The same URL with another database name.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let host = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{host}/{db}{query}")
}

/// Runs `f` on a thread of its own with a runtime of its own (the caller may be inside one).
fn pg_admin(url: &str, sql: String) -> Result<(), String> {
    let url = url.to_string();
    std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let cfg: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
            let (client, conn) = cfg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("postgresql at {url}: {e}"))?;
            let task = tokio::spawn(conn);
            let r = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = task.await;
            r
        })
    })
    .join()
    .map_err(|_| "postgresql admin thread panicked".to_string())?
}

fn mysql_admin(url: &str, sql: &str) -> Result<(), String> {
    use mysql::prelude::Queryable;
    let opts = mysql::Opts::from_url(url).map_err(|e| e.to_string())?;
    let mut c = mysql::Conn::new(opts).map_err(|e| format!("mysql at {url}: {e}"))?;
    c.query_drop(sql).map_err(|e| e.to_string())
}

impl TempDb {
    pub fn postgres() -> Result<TempDb, String> {
        let admin = std::env::var("ROCTA_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into());
        let name = unique_name();
        pg_admin(&admin, format!("CREATE DATABASE {name}"))?;
        let url = with_db(&admin, &name);
        Ok(TempDb {
            target: Target::Postgres(url.clone()),
            url,
            admin: Admin::Postgres(admin),
            name,
        })
    }

    pub fn mysql() -> Result<TempDb, String> {
        let admin = std::env::var("ROCTA_TEST_MYSQL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
        let name = unique_name();
        mysql_admin(
            &admin,
            &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        )?;
        let url = with_db(&admin, &name);
        Ok(TempDb {
            target: Target::Mysql(url.clone()),
            url,
            admin: Admin::Mysql(admin),
            name,
        })
    }
}

impl TempDb {
    /// Closes every server connection to the database (what a server restart does to them).
    pub fn disconnect_all(&self) -> Result<(), String> {
        match &self.admin {
            Admin::Postgres(a) => pg_admin(
                a,
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{}' AND pid <> pg_backend_pid()",
                    self.name
                ),
            ),
            Admin::Mysql(a) => {
                use mysql::prelude::Queryable;
                let opts = mysql::Opts::from_url(a).map_err(|e| e.to_string())?;
                let mut c = mysql::Conn::new(opts).map_err(|e| e.to_string())?;
                let ids: Vec<u64> = c
                    .exec(
                        "SELECT id FROM information_schema.processlist WHERE db = ?",
                        (&self.name,),
                    )
                    .map_err(|e| e.to_string())?;
                for id in ids {
                    // One may have ended meanwhile.
                    let _ = c.query_drop(format!("KILL CONNECTION {id}"));
                }
                Ok(())
            }
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let r = match &self.admin {
            Admin::Postgres(a) => pg_admin(
                a,
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ),
            Admin::Mysql(a) => mysql_admin(a, &format!("DROP DATABASE IF EXISTS {}", self.name)),
        };
        if let Err(e) = r {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

impl crate::Tx<'_> {
    /// Runs one statement as written (tests that play an earlier release's schema).
    pub fn raw_exec(&self, sql: &str) -> Result<u64, crate::StoreError> {
        self.exec(sql, &[])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_get_another_database() {
        assert_eq!(
            super::with_db("postgresql://postgres@127.0.0.1:5432/postgres", "x"),
            "postgresql://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_db("mysql://root:pw@h:3306/test?charset=utf8", "x"),
            "mysql://root:pw@h:3306/x?charset=utf8"
        );
    }
}
