//! Build pruning on SQLite and PostgreSQL.

use std::time::Duration;

use podspace_api::store::testing::TestDb as Db;
use podspace_api::{kinds, Object};
use podspace_builder::prune::{prune_builds, PruneBuilds};
use serde_json::json;

podspace_api::store_suite!(prune_keeps_the_newest_per_config_and_unfinished_builds);

async fn build(store: &podspace_api::store::Store, name: &str, config: &str, phase: &str) {
    let mut b = Object::new("Build", "p", name);
    b.body.insert(
        "status".into(),
        json!({"phase": phase, "config": {"kind": "BuildConfig", "name": config, "namespace": "p"}}),
    );
    store.create(&kinds::BUILD, b).await.unwrap();
}

async fn names(store: &podspace_api::store::Store) -> Vec<String> {
    let (list, _) = store
        .list(
            &kinds::BUILD,
            "p",
            &podspace_api::selector::LabelSelector::everything(),
        )
        .await
        .unwrap();
    let mut n: Vec<String> = list.into_iter().map(|b| b.metadata.name).collect();
    n.sort();
    n
}

async fn prune_keeps_the_newest_per_config_and_unfinished_builds(db: Db) {
    let store = db.open().await;
    store
        .create(&kinds::PROJECT, Object::new("Project", "", "p"))
        .await
        .unwrap();
    store
        .create(&kinds::BUILD_CONFIG, Object::new("BuildConfig", "p", "bc"))
        .await
        .unwrap();
    for n in 1..=6 {
        build(&store, &format!("bc-{n}"), "bc", "Complete").await;
    }
    build(&store, "bc-7", "bc", "Failed").await;
    build(&store, "bc-8", "bc", "Cancelled").await;
    build(&store, "bc-9", "bc", "Running").await;
    build(&store, "gone-1", "gone", "Complete").await;
    build(&store, "gone-2", "gone", "Pending").await;
    let before = names(&store).await;
    let opts = PruneBuilds {
        keep_complete: 2,
        keep_failed: 1,
        keep_younger_than: Duration::ZERO,
        orphans: false,
        confirm: false,
    };
    let pruned = |v: Vec<podspace_builder::prune::PrunedBuild>| {
        let mut n: Vec<String> = v.into_iter().map(|b| b.name).collect();
        n.sort();
        n
    };
    let dry = pruned(prune_builds(&store, opts).await.unwrap());
    assert_eq!(dry, ["bc-1", "bc-2", "bc-3", "bc-4", "bc-7"]);
    assert_eq!(names(&store).await, before, "a dry run deletes nothing");
    let with_orphans = PruneBuilds {
        orphans: true,
        ..opts
    };
    let dry = pruned(prune_builds(&store, with_orphans).await.unwrap());
    assert_eq!(dry, ["bc-1", "bc-2", "bc-3", "bc-4", "bc-7", "gone-1"]);
    let young = PruneBuilds {
        keep_younger_than: Duration::from_secs(3600),
        ..with_orphans
    };
    assert!(
        prune_builds(&store, young).await.unwrap().is_empty(),
        "all are younger than an hour"
    );
    let done = pruned(
        prune_builds(
            &store,
            PruneBuilds {
                confirm: true,
                ..with_orphans
            },
        )
        .await
        .unwrap(),
    );
    assert_eq!(done, ["bc-1", "bc-2", "bc-3", "bc-4", "bc-7", "gone-1"]);
    assert_eq!(
        names(&store).await,
        ["bc-5", "bc-6", "bc-8", "bc-9", "gone-2"]
    );
}
