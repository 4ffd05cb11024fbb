pub mod adm;
pub mod asdockerfile;
pub mod auth;
pub mod builds;
pub mod describe;
pub mod detect;
pub mod gitclone;
pub mod import;
pub mod newbuild;
pub mod objects;
pub mod policy;
pub mod projects;
pub mod rollout;
pub mod set;
pub mod startbuild;
pub mod tag;
pub mod template;
pub mod upload;
pub mod webhookpost;

use anyhow::{anyhow, bail, Result};

use crate::client::Client;
use crate::config::Config;
use crate::Global;

/// A failure already printed to stderr; only the exit code is left to set.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("one or more operations failed")
    }
}

impl std::error::Error for Reported {}

/// The logged-in session: config, client and the project to act in.
pub struct Session {
    pub config: Config,
    pub client: Client,
    namespace: String,
    /// Whether -n named the project (objects in files must then agree).
    pub explicit_namespace: bool,
}

impl Session {
    pub fn load(g: &Global) -> Result<Session> {
        let config = Config::load()?;
        let ctx = config
            .current()
            .filter(|c| !c.token.is_empty())
            .ok_or_else(|| anyhow!("you are not logged in: run 'psc login SERVER -u USER'"))?;
        let client = Client::new(&ctx.server, &ctx.token)?;
        let namespace = g.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
        Ok(Session {
            config,
            client,
            namespace,
            explicit_namespace: g.namespace.is_some(),
        })
    }

    /// The project a namespaced command acts in.
    pub fn namespace(&self) -> Result<&str> {
        if self.namespace.is_empty() {
            bail!("no project is selected: use -n PROJECT, 'psc project NAME' or 'psc new-project NAME'");
        }
        Ok(&self.namespace)
    }
}
