//! `podspace gc`: one collection in this process, printed line by line.

use anyhow::Context;

use crate::app;
use crate::config::Config;

pub async fn once(config: Config, dry_run: bool, grace: Option<u64>) -> anyhow::Result<()> {
    let store = podspace_api::store::Store::open(&config.db)
        .await
        .with_context(|| {
            format!(
                "opening the store at {}",
                podspace_api::store::redact_url(&config.db)
            )
        })?;
    let meta = podspace_registry::meta::RegistryStore::open(store.clone())
        .await
        .context("opening the registry's tables")?;
    let storage = app::open_storage(&config).await?;
    let collector = podspace_registry::gc::Collector::new(
        meta,
        store.clone(),
        storage,
        podspace_registry::gc::GcTotals::default(),
    );
    let opts = podspace_registry::gc::GcOptions {
        grace: grace
            .map(std::time::Duration::from_secs)
            .unwrap_or(config.gc_grace),
        dry_run,
    };
    let report = collector.run(opts).await?;
    store.close().await;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for m in &report.manifests {
        println!(
            "{verb} manifest {}@{} ({} bytes)",
            m.repository, m.digest, m.size
        );
    }
    for b in &report.blobs {
        println!("{verb} blob {} ({} bytes)", b.digest, b.size);
    }
    for e in &report.errors {
        println!("error: {e}");
    }
    println!(
        "{} {} manifests and {} blobs, {} bytes; kept {} manifests and {} blobs ({} in use meanwhile) in {} ms",
        if dry_run { "would free" } else { "freed" },
        report.manifests.len(),
        report.blobs.len(),
        report.freed_bytes,
        report.kept_manifests,
        report.kept_blobs,
        report.spared,
        report.elapsed_ms
    );
    if report.errors.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} blobs could not be deleted; the next run retries them",
            report.errors.len()
        )
    }
}
