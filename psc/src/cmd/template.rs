//! `psc process` and `psc new-app --template`: a Template from a file or
//! from the project (then the shared `openshift` project), processed with
//! `-p NAME=VALUE` and `--param-file` values by `podspace_templates`; then
//! printed as a `List`, or created object by object like `oc new-app`.

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use podspace_templates::{process, Processed, Template};
use serde_json::{json, Value};

use super::detect::SHARED_PROJECT;
use super::objects::create_one;
use super::{Reported, Session};
use crate::client::error_code;
use crate::manifest::{self, Manifest};
use crate::output;
use crate::Global;

#[derive(Args)]
pub struct ValueArgs {
    /// A parameter value, NAME=VALUE (repeatable)
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A file of NAME=VALUE lines (blank lines and # comments skipped)
    #[arg(long = "param-file", value_name = "FILE")]
    param_files: Vec<String>,
}

#[derive(Args)]
pub struct ProcessArgs {
    /// The template's name, in the project or the shared project
    template: Option<String>,
    /// A file holding the template
    #[arg(short = 'f', long = "filename")]
    file: Option<String>,
    #[command(flatten)]
    values: ValueArgs,
    /// Output format: json or yaml
    #[arg(short = 'o', long = "output", default_value = "json")]
    output: String,
}

#[derive(Args)]
pub struct NewAppArgs {
    /// The template's name, in the project or the shared project
    #[arg(long = "template")]
    template: Option<String>,
    /// A file holding the template
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    #[command(flatten)]
    values: ValueArgs,
}

fn pair(s: &str, source: &str) -> Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("{source}: {s:?} is not NAME=VALUE"))?;
    if k.trim().is_empty() {
        bail!("{source}: {s:?} names no parameter");
    }
    Ok((k.trim().to_string(), v.to_string()))
}

impl ValueArgs {
    /// The values, files first and then `-p` (the later wins).
    fn pairs(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for f in &self.param_files {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?;
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                out.push(pair(line, f)?);
            }
        }
        for p in &self.params {
            out.push(pair(p, "-p")?);
        }
        Ok(out)
    }
}

/// A named template: the project's, else the shared project's. Returns
/// where it was found too.
async fn stored(session: &Session, name: &str) -> Result<(Value, String)> {
    let ns = session.namespace()?.to_string();
    for candidate in [ns.as_str(), SHARED_PROJECT] {
        let path =
            format!("/apis/template.openshift.io/v1/namespaces/{candidate}/templates/{name}");
        match session.client.get(&path).await {
            Ok(t) => return Ok((t, candidate.to_string())),
            Err(e) if matches!(error_code(&e), Some(404 | 403)) => continue,
            Err(e) => return Err(e),
        }
    }
    bail!("template {name:?} not found in project {ns:?} or {SHARED_PROJECT:?}")
}

fn from_file(file: &str) -> Result<Value> {
    let mut templates: Vec<Manifest> = manifest::read(file)?
        .into_iter()
        .filter(|m| m.value.get("kind").and_then(Value::as_str) == Some("Template"))
        .collect();
    match templates.len() {
        1 => Ok(templates.remove(0).value),
        0 => bail!("{file} holds no Template"),
        n => bail!("{file} holds {n} Templates: process them one at a time"),
    }
}

async fn load(
    session: Option<&Session>,
    name: Option<&str>,
    file: Option<&str>,
) -> Result<(Value, String)> {
    match (name, file) {
        (Some(_), Some(_)) => bail!("give a template name or -f FILE, not both"),
        (None, Some(f)) => Ok((from_file(f)?, f.to_string())),
        (Some(n), None) => {
            let session = session.ok_or_else(|| anyhow!("log in to process a stored template"))?;
            let (t, ns) = stored(session, n).await?;
            Ok((t, format!("{ns}/{n}")))
        }
        (None, None) => bail!("name a template (psc process NAME) or give -f FILE"),
    }
}

fn processed(template: &Value, values: &ValueArgs) -> Result<Processed> {
    let t: Template = serde_json::from_value(template.clone())
        .map_err(|e| anyhow!("the template is not shaped like one: {e}"))?;
    process(&t, &values.pairs()?).map_err(|e| anyhow!("error processing the template: {e}"))
}

pub async fn run_process(g: &Global, args: ProcessArgs) -> Result<()> {
    // A file needs no server; a name does.
    let session = match &args.template {
        Some(_) => Some(Session::load(g)?),
        None => None,
    };
    let (template, _) = load(
        session.as_ref(),
        args.template.as_deref(),
        args.file.as_deref(),
    )
    .await?;
    let p = processed(&template, &args.values)?;
    let list = json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": p.objects});
    match args.output.as_str() {
        "json" => print!("{}", output::json(&list)),
        "yaml" => print!("{}", output::yaml(&list)),
        other => bail!("unsupported output format {other:?}: use json or yaml"),
    }
    Ok(())
}

pub async fn run_new_app(g: &Global, args: NewAppArgs) -> Result<()> {
    if args.template.is_none() && args.file.is_none() {
        bail!("psc new-app makes an application from a template: give --template NAME or -f FILE (for a build from source, use psc new-build)");
    }
    let session = Session::load(g)?;
    let (template, source) = load(
        Some(&session),
        args.template.as_deref(),
        args.file.as_deref(),
    )
    .await?;
    let p = processed(&template, &args.values)?;
    let name = template
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    println!("--> Deploying template {name:?} ({source})");
    if let Some(m) = p.message.as_deref().filter(|m| !m.trim().is_empty()) {
        println!("\n     {}\n", m.trim().replace('\n', "\n     "));
    }
    if !p.parameters.is_empty() {
        println!("     * With parameters:");
        for param in &p.parameters {
            let shown = param.display_name.as_deref().unwrap_or(&param.name);
            let generated = if param.generate.is_some() && param.value.is_some() {
                " # generated"
            } else {
                ""
            };
            println!(
                "        * {shown}={}{generated}",
                param.value.as_deref().unwrap_or_default()
            );
        }
    }
    println!("\n--> Creating resources ...");
    let mut failed = false;
    for (i, obj) in p.objects.into_iter().enumerate() {
        let m = Manifest {
            source: format!("{source} object {}", i + 1),
            value: obj,
        };
        match create_one(&session, m, "    ").await? {
            Some((kind, name)) => println!("    {kind} {name:?} created"),
            None => failed = true,
        }
    }
    if failed {
        eprintln!("--> Failed");
        return Err(Reported.into());
    }
    println!("--> Success");
    Ok(())
}
