//! `psc adm prune images` and `psc adm prune builds`: OpenShift's pruning,
//! done by the server (`POST /admin/prune/…`, cluster-admins) so that what
//! deployments and running builds use is judged where it is known. Without
//! `--confirm` it only reports, as `oc adm prune` does.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::Session;
use crate::Global;

#[derive(Subcommand)]
pub enum AdmCommand {
    /// Remove old objects: psc adm prune images
    Prune {
        #[command(subcommand)]
        command: PruneCommand,
    },
}

#[derive(Subcommand)]
pub enum PruneCommand {
    /// Remove old image stream revisions and the images only they used
    Images(PruneImagesArgs),
    /// Remove old finished builds of each build config
    Builds(PruneBuildsArgs),
}

#[derive(Args)]
pub struct PruneBuildsArgs {
    /// The newest complete builds of each build config that are kept
    #[arg(long, default_value_t = 5)]
    keep_complete: u64,
    /// The newest failed, errored or cancelled builds of each config that are kept
    #[arg(long, default_value_t = 1)]
    keep_failed: u64,
    /// Builds younger than this are kept (e.g. 60m, 2h, 7d)
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    keep_younger_than: Duration,
    /// Also remove finished builds whose build config no longer exists
    #[arg(long)]
    orphans: bool,
    /// Delete; without it, only show what would be deleted
    #[arg(long)]
    confirm: bool,
}

#[derive(Args)]
pub struct PruneImagesArgs {
    /// The newest revisions of each tag that are kept
    #[arg(long, default_value_t = 3)]
    keep_tag_revisions: u64,
    /// Revisions and images younger than this are kept (e.g. 60m, 2h, 7d)
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    keep_younger_than: Duration,
    /// Delete; without it, only show what would be deleted
    #[arg(long)]
    confirm: bool,
}

/// `90s`, `60m`, `2h`, `7d`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 60m, 2h, 7d)"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown duration unit {other:?}: use s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(unit)))
}

pub async fn run(g: &Global, command: AdmCommand) -> Result<()> {
    let AdmCommand::Prune { command } = command;
    let session = Session::load(g)?;
    match command {
        PruneCommand::Images(args) => {
            if args.keep_tag_revisions == 0 {
                bail!("--keep-tag-revisions must be at least 1");
            }
            let path = format!(
                "/admin/prune/images?keepTagRevisions={}&keepYoungerThanSeconds={}&confirm={}",
                args.keep_tag_revisions,
                args.keep_younger_than.as_secs(),
                args.confirm
            );
            let report = session.client.post(&path, &Value::Null).await?;
            print_report(&report, args.confirm);
        }
        PruneCommand::Builds(args) => {
            let path = format!(
                "/admin/prune/builds?keepComplete={}&keepFailed={}&keepYoungerThanSeconds={}&orphans={}&confirm={}",
                args.keep_complete,
                args.keep_failed,
                args.keep_younger_than.as_secs(),
                args.orphans,
                args.confirm
            );
            let report = session.client.post(&path, &Value::Null).await?;
            let builds = report["builds"].as_array().cloned().unwrap_or_default();
            if builds.is_empty() {
                println!("No builds to prune.");
            } else {
                println!("{:<20} {:<40} {:<12} CONFIG", "NAMESPACE", "NAME", "PHASE");
                for b in &builds {
                    let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
                    println!(
                        "{:<20} {:<40} {:<12} {}",
                        s("namespace"),
                        s("name"),
                        s("phase"),
                        s("config")
                    );
                }
            }
            let verb = if args.confirm {
                "Deleted"
            } else {
                "Would delete"
            };
            println!("{verb} {} builds.", builds.len());
            if !args.confirm && !builds.is_empty() {
                println!("Dry run: nothing was deleted. Run again with --confirm to delete.");
            }
        }
    }
    Ok(())
}

fn print_report(r: &Value, confirm: bool) {
    let revisions = r["revisions"].as_array().cloned().unwrap_or_default();
    let images = r["images"].as_array().cloned().unwrap_or_default();
    if revisions.is_empty() {
        println!("No image stream revisions to prune.");
    } else {
        println!(
            "{:<30} {:<20} {:<73} CREATED",
            "IMAGESTREAM", "TAG", "IMAGE"
        );
        for rev in &revisions {
            let s = |k: &str| rev[k].as_str().unwrap_or_default().to_string();
            println!(
                "{:<30} {:<20} {:<73} {}",
                format!("{}/{}", s("namespace"), s("stream")),
                s("tag"),
                s("image"),
                s("created")
            );
        }
    }
    for i in &images {
        println!("image {}", i.as_str().unwrap_or_default());
    }
    let verb = if confirm { "Deleted" } else { "Would delete" };
    println!(
        "{verb} {} revisions and {} images.",
        revisions.len(),
        images.len()
    );
    if let Some(gc) = r.get("gc").filter(|g| !g.is_null()) {
        println!(
            "Registry: freed {} manifests and {} blobs ({} bytes).",
            gc["manifests"].as_array().map_or(0, Vec::len),
            gc["blobs"].as_array().map_or(0, Vec::len),
            gc["freedBytes"].as_i64().unwrap_or(0)
        );
    }
    if !confirm && !revisions.is_empty() {
        println!("Dry run: nothing was deleted. Run again with --confirm to delete.");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60m"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("m").is_err());
    }
}
