//! The login file: one context per (server, user), like a kubeconfig.
//! Written with mode 0600 because it holds bearer tokens.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    #[serde(default)]
    pub current_context: String,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Context {
    pub name: String,
    pub server: String,
    pub user: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub token: String,
}

pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("PSC_CONFIG") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("psc").join("config")
}

impl Config {
    pub fn load() -> Result<Config> {
        let path = path();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_yaml::from_str(&text).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self) -> Result<()> {
        let path = path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_yaml::to_string(self)?;
        let tmp = path.with_extension("tmp");
        write_private(&tmp, text.as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    pub fn current(&self) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|c| c.name == self.current_context)
    }

    pub fn current_mut(&mut self) -> Option<&mut Context> {
        let name = self.current_context.clone();
        self.contexts.iter_mut().find(|c| c.name == name)
    }

    /// Inserts or refreshes the context for `server` and `user`, and makes it current.
    pub fn upsert(&mut self, server: &str, user: &str, token: &str) -> &mut Context {
        let name = format!(
            "{}/{user}",
            server
                .trim_start_matches("http://")
                .trim_start_matches("https://")
        );
        let idx = match self.contexts.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                self.contexts.push(Context {
                    name: name.clone(),
                    server: server.into(),
                    user: user.into(),
                    ..Default::default()
                });
                self.contexts.len() - 1
            }
        };
        self.current_context = name;
        let ctx = &mut self.contexts[idx];
        ctx.token = token.into();
        ctx
    }
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}
