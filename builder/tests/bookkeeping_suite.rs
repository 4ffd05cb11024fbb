//! The build bookkeeping tables, on SQLite and on PostgreSQL (the store
//! suite's databases: `PODSPACE_TEST_POSTGRES_URL`, or
//! `PODSPACE_SKIP_POSTGRES=1`).

use std::sync::Arc;

use podspace_api::store::testing::TestDb as Db;
use podspace_api::{kinds, Object};
use podspace_builder::bookkeeping::{BuildInput, BuildLease, BuildStore};

podspace_api::store_suite!(build_leases_logs_and_inputs);

async fn build_leases_logs_and_inputs(db: Db) {
    let store = db.open().await;
    store
        .create(&kinds::PROJECT, Object::new("Project", "", "p"))
        .await
        .unwrap();
    let builds = Arc::new(BuildStore::open(store.clone()).await.unwrap());
    let build = store
        .create(&kinds::BUILD, Object::new("Build", "p", "b-1"))
        .await
        .unwrap();
    let uid = build.metadata.uid.clone();
    let lease = |node: &str| BuildLease {
        uid: uid.clone(),
        namespace: "p".into(),
        name: "b-1".into(),
        node: node.into(),
        expires_at: 1_000,
    };
    // Eight nodes race for one build: exactly one wins.
    let mut racers = Vec::new();
    for n in 0..8 {
        let (builds, l) = (builds.clone(), lease(&format!("n{n}")));
        racers.push(tokio::spawn(async move {
            builds.claim_build(&l).await.unwrap()
        }));
    }
    let mut winners = 0;
    for r in racers {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);
    let holder = builds.build_lease(&uid).await.unwrap().unwrap().node;
    // Only the holder renews; an expired lease renewed meanwhile is kept.
    assert!(builds
        .renew_leases("other", std::slice::from_ref(&uid), 2_000)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        builds
            .renew_leases(&holder, std::slice::from_ref(&uid), 2_000)
            .await
            .unwrap(),
        vec![uid.clone()]
    );
    assert!(!builds.release_build(&uid, Some(1_000)).await.unwrap());
    assert!(builds.release_build(&uid, Some(2_000)).await.unwrap());
    assert!(builds.build_lease(&uid).await.unwrap().is_none());

    // Log chunks: ordered, read from an offset, a retried chunk stored once.
    builds
        .append_build_log("p", "b-1", &uid, 0, b"one\n")
        .await
        .unwrap();
    builds
        .append_build_log("p", "b-1", &uid, 4, b"two\n")
        .await
        .unwrap();
    builds
        .append_build_log("p", "b-1", &uid, 4, b"two\n")
        .await
        .unwrap();
    let all = builds.build_log("p", "b-1", &uid, 0).await.unwrap();
    assert_eq!(all, vec![(0, b"one\n".to_vec()), (4, b"two\n".to_vec())]);
    assert_eq!(
        builds.build_log("p", "b-1", &uid, 4).await.unwrap().len(),
        1
    );
    assert!(builds
        .build_log("p", "b-1", "another-uid", 0)
        .await
        .unwrap()
        .is_empty());

    let input = BuildInput {
        uid: uid.clone(),
        location: "blobs/x".into(),
        size: 3,
        digest: "sha256:00".into(),
    };
    builds.set_build_input("p", "b-1", &input).await.unwrap();
    assert_eq!(builds.build_input(&uid).await.unwrap(), Some(input.clone()));

    // Nothing is swept while the build exists; everything once it is gone.
    assert!(builds.sweep_build_leftovers(-10).await.unwrap().is_empty());
    assert_eq!(
        builds.build_log("p", "b-1", &uid, 0).await.unwrap().len(),
        2
    );
    store.delete(&kinds::BUILD, "p", "b-1", None).await.unwrap();
    assert_eq!(
        builds.sweep_build_leftovers(-10).await.unwrap(),
        vec![input]
    );
    assert!(builds
        .build_log("p", "b-1", &uid, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(builds.build_input(&uid).await.unwrap().is_none());
}
