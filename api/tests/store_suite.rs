//! The store suite: every test runs against SQLite and against PostgreSQL.
//!
//! PostgreSQL comes from `PODSPACE_TEST_POSTGRES_URL` (scripts/test starts
//! one and sets it); each test gets a database of its own. Without it the
//! PostgreSQL half fails, unless `PODSPACE_SKIP_POSTGRES=1` says to skip.

use std::collections::BTreeSet;
use std::sync::Arc;

use podspace_api::kinds::by_kind;
use podspace_api::selector::LabelSelector;
use podspace_api::store::{
    Claim, DeliveryRecord, EventType, Store, StoreError, UpdateScope, KEEP_PER_CONFIG,
    REPLAY_WINDOW,
};
use podspace_api::{KindInfo, Object};
use serde_json::json;

fn kind(name: &str) -> &'static KindInfo {
    by_kind(name).unwrap()
}

use podspace_api::store::testing::TestDb as Db;

async fn project(store: &Store, ns: &str) {
    store
        .create(kind("Project"), Object::new("Project", "", ns))
        .await
        .unwrap();
}

fn stream(ns: &str, name: &str) -> Object {
    Object::new("ImageStream", ns, name).with("spec", json!({"tags": []}))
}

podspace_api::store_suite!(
    create_get_list_delete,
    generate_name_and_duplicates,
    namespaces_must_exist,
    stale_update_conflicts,
    generation_and_status_scope,
    noop_update_changes_nothing,
    label_selectors,
    watch_resumes_after_restart,
    eight_concurrent_writers_lose_no_event,
    namespace_delete_cascades,
    compaction_answers_gone,
    credentials_and_tokens,
    one_process_owns_a_sqlite_file,
    consumers_resume_from_their_position,
    batched_creates_fail_one_by_one,
    reads_never_go_back_in_time,
    a_woken_reader_sees_the_commit_that_woke_it,
    webhook_deliveries_claim_replay_and_trim,
    indexes_follow_every_write,
    controller_leases_have_one_holder,
    many_objects_change_in_one_transaction,
);

async fn create_get_list_delete(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    let created = store.create(is, stream("p", "web")).await.unwrap();
    assert_eq!(created.metadata.generation, 1);
    assert!(!created.metadata.uid.is_empty());
    assert_eq!(created.api_version, "image.openshift.io/v1");
    let got = store.get(is, "p", "web").await.unwrap();
    assert_eq!(got, created);
    let (items, rv) = store
        .list(is, "p", &LabelSelector::everything())
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(rv, created.resource_version().unwrap());
    let deleted = store.delete(is, "p", "web", None).await.unwrap();
    assert!(deleted.resource_version().unwrap() > rv);
    assert!(matches!(
        store.get(is, "p", "web").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(is, "p", "web", None).await,
        Err(StoreError::NotFound { .. })
    ));
    let events = store
        .events_since(0, Some("ImageStream"), None, 100)
        .await
        .unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(types, [EventType::Added, EventType::Deleted]);
}

async fn generate_name_and_duplicates(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    let mut obj = stream("p", "");
    obj.metadata.generate_name = "web-".into();
    let a = store.create(is, obj.clone()).await.unwrap();
    let b = store.create(is, obj).await.unwrap();
    assert!(a.metadata.name.starts_with("web-") && a.metadata.name.len() == 9);
    assert_ne!(a.metadata.name, b.metadata.name);
    let dup = store.create(is, stream("p", &a.metadata.name)).await;
    assert!(
        matches!(dup, Err(StoreError::AlreadyExists { .. })),
        "{dup:?}"
    );
    // A failed batch stores nothing.
    let before = store.current_rv().await.unwrap();
    let batch = store
        .create_many(vec![
            (is, stream("p", "new-one")),
            (is, stream("p", &b.metadata.name)),
        ])
        .await;
    assert!(matches!(batch, Err(StoreError::AlreadyExists { .. })));
    assert!(store.get(is, "p", "new-one").await.is_err());
    assert_eq!(store.current_rv().await.unwrap(), before);
}

async fn namespaces_must_exist(db: Db) {
    let store = db.open().await;
    let r = store
        .create(kind("ImageStream"), stream("nowhere", "web"))
        .await;
    assert!(
        matches!(r, Err(StoreError::NamespaceNotFound(ref ns)) if ns == "nowhere"),
        "{r:?}"
    );
}

async fn stale_update_conflicts(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    let v1 = store.create(is, stream("p", "web")).await.unwrap();
    let mut a = v1.clone();
    a.metadata.labels.insert("who".into(), "a".into());
    let v2 = store.update(is, a, UpdateScope::Main).await.unwrap();
    let mut b = v1.clone();
    b.metadata.labels.insert("who".into(), "b".into());
    let r = store.update(is, b, UpdateScope::Main).await;
    assert!(matches!(r, Err(StoreError::Conflict { .. })), "{r:?}");
    assert_eq!(store.get(is, "p", "web").await.unwrap(), v2);
    let r = store.delete(is, "p", "web", v1.resource_version()).await;
    assert!(matches!(r, Err(StoreError::Conflict { .. })));
    store
        .delete(is, "p", "web", v2.resource_version())
        .await
        .unwrap();
}

async fn generation_and_status_scope(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    let v1 = store.create(is, stream("p", "web")).await.unwrap();
    let mut st = v1.clone();
    st.body
        .insert("status".into(), json!({"dockerImageRepository": "r/p/web"}));
    st.body.insert("spec".into(), json!({"ignored": true}));
    let v2 = store.update(is, st, UpdateScope::Status).await.unwrap();
    assert_eq!(
        v2.metadata.generation, 1,
        "status writes keep the generation"
    );
    assert_eq!(
        v2.body["status"],
        json!({"dockerImageRepository": "r/p/web"})
    );
    assert_eq!(
        v2.body["spec"],
        json!({"tags": []}),
        "the status scope writes only status"
    );
    let mut main = v2.clone();
    main.body
        .insert("spec".into(), json!({"tags": [{"name": "latest"}]}));
    main.body.remove("status");
    main.metadata.uid = "forged".into();
    let v3 = store.update(is, main, UpdateScope::Main).await.unwrap();
    assert_eq!(v3.metadata.generation, 2);
    assert_eq!(v3.metadata.uid, v1.metadata.uid, "uid is immutable");
    assert_eq!(
        v3.body["status"], v2.body["status"],
        "the main scope keeps status"
    );
    let v4 = store
        .mutate(is, "p", "web", None, UpdateScope::Main, |o| {
            o.metadata.labels.insert("a".into(), "b".into());
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(
        v4.metadata.generation, 2,
        "metadata changes keep the generation"
    );
}

async fn noop_update_changes_nothing(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    let v1 = store.create(is, stream("p", "web")).await.unwrap();
    let same = store
        .update(is, v1.clone(), UpdateScope::Main)
        .await
        .unwrap();
    assert_eq!(same, v1);
    assert_eq!(
        store.current_rv().await.unwrap(),
        v1.resource_version().unwrap()
    );
}

async fn label_selectors(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    for (name, app) in [("a", "shop"), ("b", "shop"), ("c", "blog")] {
        let mut o = stream("p", name);
        o.metadata.labels.insert("app".into(), app.into());
        store.create(is, o).await.unwrap();
    }
    let names = |items: Vec<Object>| {
        items
            .into_iter()
            .map(|o| o.metadata.name)
            .collect::<Vec<_>>()
    };
    let (shop, _) = store
        .list(is, "p", &LabelSelector::parse("app=shop").unwrap())
        .await
        .unwrap();
    assert_eq!(names(shop), ["a", "b"]);
    let (not_shop, _) = store
        .list(is, "p", &LabelSelector::parse("app notin (shop)").unwrap())
        .await
        .unwrap();
    assert_eq!(names(not_shop), ["c"]);
}

async fn watch_resumes_after_restart(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    store.create(is, stream("p", "before")).await.unwrap();
    let mark = store.current_rv().await.unwrap();
    store.create(is, stream("p", "after-1")).await.unwrap();
    store.create(is, stream("p", "after-2")).await.unwrap();
    store.close().await;
    drop(store);
    let store = db.open().await;
    let events = store
        .events_since(mark, Some("ImageStream"), Some("p"), 100)
        .await
        .unwrap();
    let names: Vec<_> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["after-1", "after-2"]);
    // And the counter goes on from where it was.
    let next = store.create(is, stream("p", "after-3")).await.unwrap();
    assert_eq!(next.resource_version().unwrap(), events[1].rv + 1);
}

async fn eight_concurrent_writers_lose_no_event(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let start = store.current_rv().await.unwrap();
    let is = kind("ImageStream");
    // A tailer follows the log while the writers run, the way the server's
    // event tail and the trigger controllers do.
    let done = Arc::new(tokio::sync::Notify::new());
    let tailer = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut last = start;
            let mut seen = Vec::new();
            let mut finished = false;
            loop {
                let batch = store.events_since(last, None, None, 1000).await.unwrap();
                if batch.is_empty() {
                    if finished {
                        return seen;
                    }
                    tokio::select! {
                        _ = done.notified() => finished = true,
                        _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
                    }
                    continue;
                }
                for e in batch {
                    assert_eq!(e.rv, last + 1, "the tailer saw a gap");
                    last = e.rv;
                    seen.push(e);
                }
            }
        })
    };
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 40;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..PER_WRITER {
                let name = format!("w{w}-{i}");
                store.create(is, stream("p", &name)).await.unwrap();
                store
                    .mutate(is, "p", &name, None, UpdateScope::Main, |o| {
                        o.metadata.labels.insert("touched".into(), "yes".into());
                        Ok(())
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.notify_one();
    let seen = tailer.await.unwrap();
    assert_eq!(seen.len(), WRITERS * PER_WRITER * 2);
    let rvs: BTreeSet<i64> = seen.iter().map(|e| e.rv).collect();
    assert_eq!(
        rvs.len(),
        seen.len(),
        "every event has its own resourceVersion"
    );
    assert_eq!(*rvs.iter().next().unwrap(), start + 1);
    assert_eq!(
        *rvs.iter().last().unwrap(),
        store.current_rv().await.unwrap()
    );
    for w in 0..WRITERS {
        for i in 0..PER_WRITER {
            let name = format!("w{w}-{i}");
            let mine: Vec<_> = seen
                .iter()
                .filter(|e| e.name == name)
                .map(|e| e.event_type)
                .collect();
            assert_eq!(mine, [EventType::Added, EventType::Modified], "{name}");
        }
    }
}

async fn namespace_delete_cascades(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    project(&store, "q").await;
    let is = kind("ImageStream");
    store.create(is, stream("p", "a")).await.unwrap();
    store
        .create(kind("BuildConfig"), Object::new("BuildConfig", "p", "b"))
        .await
        .unwrap();
    store.create(is, stream("q", "keep")).await.unwrap();
    let mark = store.current_rv().await.unwrap();
    store.delete_namespace(kind("Project"), "p").await.unwrap();
    assert!(store.get(is, "p", "a").await.is_err());
    assert!(store.get(kind("Project"), "", "p").await.is_err());
    assert!(store.get(is, "q", "keep").await.is_ok());
    let events = store.events_since(mark, None, None, 100).await.unwrap();
    let deleted: BTreeSet<_> = events
        .iter()
        .filter(|e| e.event_type == EventType::Deleted)
        .map(|e| format!("{}/{}", e.kind, e.name))
        .collect();
    assert_eq!(
        deleted,
        BTreeSet::from([
            "ImageStream/a".to_string(),
            "BuildConfig/b".into(),
            "Project/p".into()
        ])
    );
    assert!(matches!(
        store.create(is, stream("p", "late")).await,
        Err(StoreError::NamespaceNotFound(_))
    ));
}

async fn compaction_answers_gone(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    for i in 0..10 {
        store
            .create(is, stream("p", &format!("s{i}")))
            .await
            .unwrap();
    }
    let removed = store.compact_events(3).await.unwrap();
    assert!(removed >= 8, "{removed}");
    assert!(matches!(
        store.events_since(1, None, None, 10).await,
        Err(StoreError::Gone { .. })
    ));
    let current = store.current_rv().await.unwrap();
    assert_eq!(
        store
            .events_since(current - 3, None, None, 10)
            .await
            .unwrap()
            .len(),
        3
    );
}

async fn credentials_and_tokens(db: Db) {
    let store = db.open().await;
    let authn = podspace_api::auth::Authenticator::new(store.clone());
    authn.set_password("alice", "correct horse").await.unwrap();
    assert!(authn
        .verify_password("alice", "correct horse")
        .await
        .unwrap());
    assert!(!authn.verify_password("alice", "wrong").await.unwrap());
    assert!(!authn
        .verify_password("nobody", "correct horse")
        .await
        .unwrap());
    let issued = authn
        .login(
            "alice",
            "correct horse",
            None,
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(issued.token.starts_with("psc_"));
    assert_eq!(
        authn
            .authenticate(&issued.token)
            .await
            .unwrap()
            .unwrap()
            .name,
        "alice"
    );
    assert!(authn.authenticate("psc_forged").await.unwrap().is_none());
    assert!(authn.revoke(&issued.token).await.unwrap());
    assert!(
        authn.authenticate(&issued.token).await.unwrap().is_none(),
        "revocation is immediate"
    );
    let expired = authn
        .issue_token("alice", std::time::Duration::from_secs(0), "t")
        .await
        .unwrap();
    assert!(authn.authenticate(&expired.token).await.unwrap().is_none());
    let t = authn
        .issue_token("alice", std::time::Duration::from_secs(60), "t")
        .await
        .unwrap();
    authn.forget("alice").await.unwrap();
    assert!(authn.authenticate(&t.token).await.unwrap().is_none());
    assert!(!authn
        .verify_password("alice", "correct horse")
        .await
        .unwrap());
}

async fn batched_creates_fail_one_by_one(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    store.create(is, stream("p", "taken")).await.unwrap();
    let start = store.current_rv().await.unwrap();
    // Fired together, so that they share batches.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let (ns, name) = match i % 6 {
                0 => ("p", "taken".to_string()),
                1 => ("nowhere", format!("n{i}")),
                2 => ("p", "twice".to_string()),
                _ => ("p", format!("ok{i}")),
            };
            (i, store.create(is, stream(ns, &name)).await)
        }));
    }
    let mut ok = 0;
    let mut twice = 0;
    for t in tasks {
        let (i, r) = t.await.unwrap();
        match (i % 6, r) {
            (0, Err(StoreError::AlreadyExists { .. })) => {}
            (1, Err(StoreError::NamespaceNotFound(_))) => {}
            (2, Ok(_)) => twice += 1,
            (2, Err(StoreError::AlreadyExists { .. })) => {}
            (_, Ok(o)) => {
                ok += 1;
                assert_eq!(store.get(is, "p", &o.metadata.name).await.unwrap(), o);
            }
            (k, other) => panic!("case {k}: {other:?}"),
        }
    }
    assert_eq!((ok, twice), (30, 1));
    let events = store.events_since(start, None, None, 1000).await.unwrap();
    assert_eq!(
        events.len(),
        31,
        "one event per stored object, none for refused ones"
    );
    let (items, _) = store
        .list(is, "p", &LabelSelector::everything())
        .await
        .unwrap();
    assert_eq!(items.len(), 32);
}

/// Whoever a commit wakes reads what it committed (a controller woken by
/// a push must see the pushed image, not the cache's older copy).
async fn a_woken_reader_sees_the_commit_that_woke_it(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    store.create(is, stream("p", "hot")).await.unwrap();
    const WRITES: i64 = 300;
    let mut commits = store.subscribe_commits();
    let last = *commits.borrow() + WRITES;
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut woken = 0;
            loop {
                commits.changed().await.unwrap();
                let rv = *commits.borrow_and_update();
                let read = store.get(is, "p", "hot").await.unwrap();
                assert!(
                    read.resource_version() >= Some(rv),
                    "woken at {rv}, read {:?}",
                    read.metadata.resource_version
                );
                woken += 1;
                if rv >= last {
                    return woken;
                }
            }
        })
    };
    for i in 0..WRITES {
        store
            .mutate(is, "p", "hot", None, UpdateScope::Main, |o| {
                o.metadata.labels.insert("n".into(), i.to_string());
                Ok(())
            })
            .await
            .unwrap();
        if i % 3 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let woken = tokio::time::timeout(std::time::Duration::from_secs(20), reader)
        .await
        .expect("the reader sees the last write")
        .unwrap();
    assert!(woken > 0);
}

async fn reads_never_go_back_in_time(db: Db) {
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    store.create(is, stream("p", "hot")).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers keep missing and filling while the writer writes.
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (store, stop) = (store.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = store.get_raw(is, "p", "hot").await;
                tokio::task::yield_now().await;
            }
        }));
    }
    for i in 0..200 {
        let written = store
            .mutate(is, "p", "hot", None, UpdateScope::Main, |o| {
                o.metadata.labels.insert("n".into(), i.to_string());
                Ok(())
            })
            .await
            .unwrap();
        let read = store.get(is, "p", "hot").await.unwrap();
        assert!(
            read.resource_version() >= written.resource_version(),
            "read {:?} after writing {:?}",
            read.metadata.resource_version,
            written.metadata.resource_version
        );
    }
    store.delete(is, "p", "hot", None).await.unwrap();
    assert!(matches!(
        store.get(is, "p", "hot").await,
        Err(StoreError::NotFound { .. })
    ));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(matches!(
        store.get(is, "p", "hot").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn one_process_owns_a_sqlite_file(db: Db) {
    let store = db.open().await;
    let second = Store::open(&db.url).await;
    match store.backend() {
        podspace_api::store::Backend::Sqlite => {
            let err = second
                .err()
                .expect("a second open of the same SQLite file is refused")
                .to_string();
            assert!(err.contains("in use by another podspace process"), "{err}");
            store.close().await;
            drop(store);
            Store::open(&db.url)
                .await
                .expect("free again once the first is gone");
        }
        podspace_api::store::Backend::Postgres => {
            second.expect("PostgreSQL is shared by design");
        }
    }
}

async fn consumers_resume_from_their_position(db: Db) {
    use podspace_api::store::Pending;
    let store = db.open().await;
    project(&store, "p").await;
    let is = kind("ImageStream");
    let Pending::Changed { upto, objects } = store.pending("c", None, 100).await.unwrap() else {
        panic!("the project's creation is pending");
    };
    assert!(objects.contains(&("Project".to_string(), String::new(), "p".to_string())));
    store.set_consumer_position("c", upto).await.unwrap();
    assert_eq!(
        store.pending("c", None, 100).await.unwrap(),
        Pending::Nothing
    );
    store.create(is, stream("p", "a")).await.unwrap();
    store
        .mutate(is, "p", "a", None, UpdateScope::Main, |o| {
            o.metadata.labels.insert("x".into(), "y".into());
            Ok(())
        })
        .await
        .unwrap();
    let Pending::Changed { upto, objects } =
        store.pending("c", Some("ImageStream"), 100).await.unwrap()
    else {
        panic!("the stream's changes are pending");
    };
    assert_eq!(objects.len(), 1, "two events about one object: listed once");
    assert_eq!(upto, store.current_rv().await.unwrap());
    // Compacted past the consumer: it is told to look at everything.
    for i in 0..5 {
        store
            .create(is, stream("p", &format!("b{i}")))
            .await
            .unwrap();
    }
    store.compact_events(1).await.unwrap();
    assert_eq!(
        store.pending("c", None, 100).await.unwrap(),
        Pending::Behind {
            upto: store.current_rv().await.unwrap()
        }
    );
    assert_eq!(
        store.pending("other", None, 100).await.unwrap(),
        Pending::Behind {
            upto: store.current_rv().await.unwrap()
        }
    );
}

async fn webhook_deliveries_claim_replay_and_trim(db: Db) {
    let store = Arc::new(db.open().await);
    project(&store, "p").await;
    store
        .create(kind("BuildConfig"), Object::new("BuildConfig", "p", "app"))
        .await
        .unwrap();
    let now = 10 * REPLAY_WINDOW;
    // Eight copies of one delivery race: one handles it, the rest wait.
    let mut racers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            store
                .claim_delivery("p", "app", "github:d1", "github", now, 60)
                .await
                .unwrap()
        }));
    }
    let mut mine = 0;
    for r in racers {
        match r.await.unwrap() {
            Claim::Mine => mine += 1,
            Claim::InFlight => {}
            Claim::Done(rec) => panic!("not done yet: {rec:?}"),
        }
    }
    assert_eq!(mine, 1);
    store
        .finish_delivery("p", "app", "github:d1", 200, "build app-1", Some("app-1"))
        .await
        .unwrap();
    let Claim::Done(rec) = store
        .claim_delivery("p", "app", "github:d1", "github", now + 5, 60)
        .await
        .unwrap()
    else {
        panic!("a replay is answered with the first result");
    };
    assert_eq!((rec.code, rec.build.as_deref()), (200, Some("app-1")));
    // A claim whose handler died is taken over; one past the window is new.
    assert_eq!(
        store
            .claim_delivery("p", "app", "github:d2", "github", now, 60)
            .await
            .unwrap(),
        Claim::Mine
    );
    assert_eq!(
        store
            .claim_delivery("p", "app", "github:d2", "github", now + 61, 60)
            .await
            .unwrap(),
        Claim::Mine
    );
    assert_eq!(
        store
            .claim_delivery(
                "p",
                "app",
                "github:d1",
                "github",
                now + REPLAY_WINDOW + 1,
                60
            )
            .await
            .unwrap(),
        Claim::Mine
    );
    store
        .finish_delivery("p", "app", "github:d1", 200, "build app-2", Some("app-2"))
        .await
        .unwrap();
    // A released claim is forgotten.
    store
        .release_delivery("p", "app", "github:d2")
        .await
        .unwrap();
    assert!(store
        .delivery("p", "app", "github:d2")
        .await
        .unwrap()
        .is_none());

    // Refusals: one batch, only the last few kept per config.
    let refusal = |n: i64| DeliveryRecord {
        delivery: format!("github:refused-{n:03}"),
        provider: "github".into(),
        received_at: now + n,
        done: true,
        code: 401,
        outcome: "refused".into(),
        build: None,
    };
    let batch: Vec<_> = (0..30)
        .map(|n| ("p".to_string(), "app".to_string(), refusal(n)))
        .collect();
    store.record_refusals(&batch).await.unwrap();
    let history = store.deliveries("p", "app", 100).await.unwrap();
    let refused: Vec<_> = history.iter().filter(|d| d.code == 401).collect();
    assert_eq!(refused.len(), KEEP_PER_CONFIG as usize);
    assert_eq!(refused[0].delivery, "github:refused-029", "newest first");
    assert!(history.iter().any(|d| d.delivery == "github:d1"));

    // The sweep: rows past the window beyond the last few go, and all rows
    // of a deleted config.
    let removed = store
        .sweep_deliveries(now + 3 * REPLAY_WINDOW)
        .await
        .unwrap();
    assert_eq!(removed, 1, "the oldest refusal is the 21st newest, and old");
    assert_eq!(
        store.deliveries("p", "app", 100).await.unwrap().len(),
        KEEP_PER_CONFIG as usize
    );
    store
        .delete(kind("BuildConfig"), "p", "app", None)
        .await
        .unwrap();
    assert_eq!(
        store.sweep_deliveries(now).await.unwrap(),
        KEEP_PER_CONFIG as u64
    );
}

/// Indexes ConfigMaps under their `data.stream` value.
struct ByStream;

impl podspace_api::store::Indexer for ByStream {
    fn index(&self) -> &'static str {
        "by-stream"
    }

    fn kind(&self) -> &'static str {
        "ConfigMap"
    }

    fn values(&self, obj: &Object) -> Vec<String> {
        obj.body
            .get("data")
            .and_then(|d| d.get("stream"))
            .and_then(|v| v.as_str())
            .map(|v| vec![v.to_string()])
            .unwrap_or_default()
    }
}

fn config_map(ns: &str, name: &str, stream: &str) -> Object {
    Object::new("ConfigMap", ns, name).with("data", json!({"stream": stream}))
}

async fn indexes_follow_every_write(db: Db) {
    let store = db.open().await;
    let cm = kind("ConfigMap");
    project(&store, "p").await;
    project(&store, "q").await;
    // Built from what is there at registration…
    store.create(cm, config_map("p", "old", "a")).await.unwrap();
    store
        .register_indexer(std::sync::Arc::new(ByStream))
        .await
        .unwrap();
    let found = |v: &'static str| {
        let store = store.clone();
        async move { store.indexed("by-stream", "ConfigMap", v).await.unwrap() }
    };
    assert_eq!(found("a").await, [("p".to_string(), "old".to_string())]);
    // …then kept by creates (single and batched), updates, deletes.
    store.create(cm, config_map("q", "new", "a")).await.unwrap();
    store
        .create_many(vec![(cm, config_map("p", "two", "b"))])
        .await
        .unwrap();
    assert_eq!(found("a").await.len(), 2);
    assert_eq!(found("b").await, [("p".to_string(), "two".to_string())]);
    store
        .mutate(cm, "p", "old", None, UpdateScope::All, |o| {
            o.body.insert("data".into(), json!({"stream": "b"}));
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(found("a").await, [("q".to_string(), "new".to_string())]);
    assert_eq!(found("b").await.len(), 2);
    store.delete(cm, "p", "two", None).await.unwrap();
    assert_eq!(found("b").await, [("p".to_string(), "old".to_string())]);
    store.delete_namespace(kind("Project"), "p").await.unwrap();
    assert!(found("b").await.is_empty());
    assert_eq!(found("a").await.len(), 1);
    // Reopened (as at every start): registration rebuilds the same rows.
    drop(store);
    let store = db.open().await;
    store
        .register_indexer(std::sync::Arc::new(ByStream))
        .await
        .unwrap();
    assert_eq!(
        store.indexed("by-stream", "ConfigMap", "a").await.unwrap(),
        [("q".to_string(), "new".to_string())]
    );
}

async fn controller_leases_have_one_holder(db: Db) {
    let store = db.open().await;
    let (now, later) = (1_000, 2_000);
    assert!(store
        .hold_controller_lease("c", "a", now, later)
        .await
        .unwrap());
    assert!(!store
        .hold_controller_lease("c", "b", now + 10, later)
        .await
        .unwrap());
    assert!(store
        .hold_controller_lease("c", "a", now + 10, later + 10)
        .await
        .unwrap());
    // Expired: another replica takes it.
    assert!(store
        .hold_controller_lease("c", "b", later + 11, later + 1_000)
        .await
        .unwrap());
    assert!(!store
        .hold_controller_lease("c", "a", later + 12, later + 1_000)
        .await
        .unwrap());
    store.release_controller_lease("c", "b").await.unwrap();
    assert!(store
        .hold_controller_lease("c", "a", later + 13, later + 1_000)
        .await
        .unwrap());
}

async fn many_objects_change_in_one_transaction(db: Db) {
    let store = db.open().await;
    let cm = kind("ConfigMap");
    project(&store, "p").await;
    for n in ["a", "b", "c"] {
        store.create(cm, config_map("p", n, "x")).await.unwrap();
    }
    let before = store.current_rv().await.unwrap();
    let targets: Vec<(String, String)> = ["a", "missing", "b", "c"]
        .iter()
        .map(|n| ("p".to_string(), n.to_string()))
        .collect();
    let outcomes = store
        .mutate_many_spawning(cm, &targets, UpdateScope::All, |i, o| {
            match o.metadata.name.as_str() {
                "b" => Err(podspace_api::Status::bad_request("refused")),
                "c" => Ok(Vec::new()),
                _ => {
                    o.body
                        .insert("data".into(), json!({"stream": format!("y{i}")}));
                    Ok(vec![(cm, config_map("p", &format!("child-{i}"), "z"))])
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes[0]
        .as_ref()
        .is_ok_and(|(_, created)| created.len() == 1));
    assert!(matches!(outcomes[1], Err(StoreError::NotFound { .. })));
    assert!(matches!(outcomes[2], Err(StoreError::Rejected(_))));
    assert!(outcomes[3]
        .as_ref()
        .is_ok_and(|(o, created)| created.is_empty() && o.metadata.name == "c"));
    // One change and one child: two new events, nothing for the others.
    let events = store.events_since(before, None, None, 100).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a", "child-0"]);
    let a = store.get(cm, "p", "a").await.unwrap();
    assert_eq!(a.body["data"]["stream"], "y0");
    assert_eq!(
        store.get(cm, "p", "b").await.unwrap().body["data"]["stream"],
        "x",
        "a refused edit is not written"
    );
}
