//! The runtime over a real SQLite store with a controller whose
//! reconciles are scripted: keys from events, deduplication, retries,
//! restarts after a panic, readiness, and one replica per controller.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podspace_api::store::{Change, Store, StoreError};
use podspace_api::Object;
use podspace_runtime::{Action, Controller, Supervisor};
use tokio::sync::watch;

/// Reconciles ConfigMaps; panics on the first reconcile of a key named
/// `panic`, fails the first two of a key named `flaky`.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl Recorder {
    fn count(&self, name: &str) -> u32 {
        self.seen.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Controller for Recorder {
    type Key = String;

    fn name(&self) -> &'static str {
        "recorder"
    }

    fn watches(&self) -> &'static [&'static str] {
        &["ConfigMap"]
    }

    async fn keys_for(&self, _: &Store, change: &Change) -> Result<Vec<String>, StoreError> {
        Ok(vec![change.name.clone()])
    }

    async fn all_keys(&self, store: &Store) -> Result<Vec<String>, StoreError> {
        let everything = podspace_api::selector::LabelSelector::everything();
        let (all, _) = store
            .list(&podspace_api::kinds::CONFIG_MAP, "", &everything)
            .await?;
        Ok(all.into_iter().map(|o| o.metadata.name).collect())
    }

    async fn reconcile(&self, _: &Store, key: &String) -> Result<Action, StoreError> {
        let n = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        match key.as_str() {
            "panic" if n == 1 => panic!("scripted panic"),
            "flaky" if n <= 2 => Err(StoreError::Config("scripted failure".into())),
            _ => Ok(Action::Done),
        }
    }
}

fn holder() -> String {
    format!("replica-{}", uuid::Uuid::new_v4().simple())
}

async fn store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    Store::open(&url).await.unwrap()
}

async fn config_map(store: &Store, name: &str) {
    let mut project = Object::new("Project", "", "p");
    project.metadata.name = "p".into();
    let _ = store.create(&podspace_api::kinds::PROJECT, project).await;
    store
        .create(
            &podspace_api::kinds::CONFIG_MAP,
            Object::new("ConfigMap", "p", name),
        )
        .await
        .unwrap();
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_restarted_without_losing_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (_stop, shutdown) = watch::channel(false);
    let sup = Supervisor::new(store.clone(), holder(), Duration::from_secs(5), shutdown);
    let rec = Recorder::default();
    sup.spawn(rec.clone());
    config_map(&store, "panic").await;
    // Down while it waits to be restarted, then up, and the key done.
    until("the key is reconciled", || rec.count("panic") >= 1).await;
    until("the controller is down", || !sup.down().is_empty()).await;
    assert_eq!(sup.down(), ["recorder"]);
    until("it runs again", || sup.down().is_empty()).await;
    until("the key is reconciled again", || rec.count("panic") == 2).await;
    let stats = sup.stats();
    assert_eq!(stats[0].restarts(), 1);
    // The cursor passes the event only now that its key is done.
    let rv = store.current_rv().await.unwrap();
    until("the cursor reaches the log's end", || {
        stats[0].cursor() == rv
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_back_off_and_hold_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (_stop, shutdown) = watch::channel(false);
    let sup = Supervisor::new(store.clone(), holder(), Duration::from_secs(5), shutdown);
    let rec = Recorder::default();
    sup.spawn(rec.clone());
    config_map(&store, "flaky").await;
    let flaky_rv = store.current_rv().await.unwrap();
    config_map(&store, "fine").await;
    until("the good key is done", || rec.count("fine") == 1).await;
    let stats = sup.stats();
    // While `flaky` fails, the cursor stays before its event.
    if rec.count("flaky") < 3 {
        let cursor = stats[0].cursor();
        assert!(cursor < flaky_rv, "cursor {cursor}, flaky at {flaky_rv}");
    }
    until("the flaky key succeeds", || rec.count("flaky") == 3).await;
    let rv = store.current_rv().await.unwrap();
    until("the cursor reaches the log's end", || {
        stats[0].cursor() == rv
    })
    .await;
    assert_eq!(sup.down(), Vec::<String>::new());
    assert_eq!(rec.count("fine"), 1, "a good key is not redone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_another_takes_over_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let (stop_a, shutdown_a) = watch::channel(false);
    let (_stop_b, shutdown_b) = watch::channel(false);
    let lease = Duration::from_secs(2);
    let a = Supervisor::new(store.clone(), holder(), lease, shutdown_a);
    let b = Supervisor::new(store.clone(), holder(), lease, shutdown_b);
    let (ra, rb) = (Recorder::default(), Recorder::default());
    a.spawn(ra.clone());
    until("replica a leads", || a.stats()[0].leader()).await;
    b.spawn(rb.clone());
    config_map(&store, "one").await;
    until("the key is reconciled", || {
        ra.count("one") + rb.count("one") == 1
    })
    .await;
    assert!(!b.stats()[0].leader(), "one leader at a time");
    assert_eq!(rb.count("one"), 0);
    // Replica a stops (and gives its lease up): b takes over, from a's cursor.
    stop_a.send(true).unwrap();
    until("replica b leads", || b.stats()[0].leader()).await;
    config_map(&store, "two").await;
    until("b reconciles the next key", || rb.count("two") == 1).await;
    assert_eq!(rb.count("one"), 0, "b starts from a's cursor");
    assert_eq!(ra.count("two"), 0);
}
