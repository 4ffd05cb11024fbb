//! Databases for the store suites of every crate that owns tables: a
//! SQLite file in a temp dir, and a fresh PostgreSQL database from
//! `PODSPACE_TEST_POSTGRES_URL` (scripts/test starts one and sets it).
//! Without that variable the PostgreSQL half fails, unless
//! `PODSPACE_SKIP_POSTGRES=1` says to skip it (and it says so).

use super::Store;

/// A place for a store that outlives reopening it.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }
}

pub async fn sqlite() -> Option<TestDb> {
    let dir = tempfile::tempdir().expect("temp dir");
    Some(TestDb {
        url: format!("sqlite://{}", dir.path().join("store.db").display()),
        _dir: Some(dir),
    })
}

pub async fn postgres() -> Option<TestDb> {
    let Ok(base) = std::env::var("PODSPACE_TEST_POSTGRES_URL") else {
        if std::env::var("PODSPACE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            eprintln!("PostgreSQL half skipped (PODSPACE_SKIP_POSTGRES=1)");
            return None;
        }
        panic!("PODSPACE_TEST_POSTGRES_URL is not set: run scripts/test, or set PODSPACE_SKIP_POSTGRES=1 to skip the PostgreSQL half");
    };
    sqlx::any::install_default_drivers();
    let db = format!("podspace_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::AnyPool::connect(&base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .expect("create test database");
    admin.close().await;
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
    Some(TestDb {
        url: format!("{prefix}/{db}"),
        _dir: None,
    })
}

/// Runs each named `async fn(TestDb)` of the calling file once on SQLite
/// (`on_sqlite::name`) and once on PostgreSQL (`on_postgres::name`).
#[macro_export]
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(db) = $crate::store::testing::sqlite().await { super::$name(db).await }
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(db) = $crate::store::testing::postgres().await { super::$name(db).await }
            })*
        }
    };
}
