//! `chartcache registry …`: login, logout, tags.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{Context as _, Result, bail};

use super::Context;
use crate::cli::{OutputFormat, RegistryCommand, TransportArgs};
use crate::constraint::Constraint;
use crate::credentials::{Credential, Secret};
use crate::reference::Reference;
use crate::registry::{Registry, Transport};
use crate::version::{parse_strict, tag_to_version};

impl From<&TransportArgs> for Transport {
    fn from(a: &TransportArgs) -> Self {
        Transport {
            plain_http: a.plain_http,
            insecure: a.insecure,
            http_fallback: false,
            ca_file: a.ca_file.clone(),
            cert_file: a.cert_file.clone(),
            key_file: a.key_file.clone(),
            timeouts: Default::default(),
        }
    }
}

/// Connects to `host` with the stored credential, if any.
pub async fn connect(ctx: &Context, host: &str, transport: &TransportArgs) -> Result<Registry> {
    let credential = ctx.credentials.get(host)?;
    if ctx.debug {
        eprintln!(
            "debug: {host}: {}",
            match &credential {
                Some(c) => format!("using stored credentials of user {:?}", c.username),
                None => "no stored credentials, anonymous".to_string(),
            }
        );
    }
    Ok(Registry::connect(host, &ctx.transport(transport), credential).await?)
}

pub async fn run(ctx: &Context, cmd: &RegistryCommand) -> Result<()> {
    match cmd {
        RegistryCommand::Login {
            host,
            username,
            password,
            password_stdin,
            transport,
        } => {
            login(
                ctx,
                host,
                username.clone(),
                password.clone(),
                *password_stdin,
                transport,
            )
            .await
        }
        RegistryCommand::Logout { host } => {
            ctx.credentials.remove(host)?;
            ctx.say("Logout succeeded");
            Ok(())
        }
        RegistryCommand::Tags {
            repository,
            constraint,
            devel,
            output,
            transport,
        } => {
            tags(
                ctx,
                repository,
                constraint.as_deref(),
                *devel,
                *output,
                transport,
            )
            .await
        }
    }
}

fn prompt(label: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "cannot prompt for {label}: standard input is not a terminal (use --username and --password-stdin)"
        );
    }
    eprint!("{label}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

async fn login(
    ctx: &Context,
    host: &str,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
    transport: &TransportArgs,
) -> Result<()> {
    let secret = if password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        // Like docker and helm: one trailing newline is not part of the password.
        let s = s.strip_suffix('\n').unwrap_or(&s);
        let s = s.strip_suffix('\r').unwrap_or(s);
        Some(Secret::new(s))
    } else if let Some(p) = password {
        ctx.warn("Using --password via the CLI is insecure. Use --password-stdin.");
        Some(Secret::new(p))
    } else {
        None
    };
    let username = match username {
        Some(u) => u,
        None => prompt("Username")?,
    };
    let secret = match secret {
        Some(s) => s,
        None => {
            if !std::io::stdin().is_terminal() {
                bail!(
                    "cannot prompt for the password: standard input is not a terminal (use --password-stdin)"
                );
            }
            let label = if username.is_empty() {
                "Token: "
            } else {
                "Password: "
            };
            Secret::new(rpassword::prompt_password(label).context("reading the password")?)
        }
    };
    if secret.expose().is_empty() {
        bail!("{host}: the password is empty");
    }
    let credential = Credential { username, secret };
    let registry =
        Registry::connect(host, &ctx.transport(transport), Some(credential.clone())).await?;
    registry.check_login().await.map_err(|e| match e {
        crate::registry::RegistryError::Unauthorized { host } => {
            anyhow::anyhow!("{host}: login failed: the registry refused the username or password")
        }
        other => other.into(),
    })?;
    ctx.credentials.put(host, &credential)?;
    ctx.say("Login succeeded");
    Ok(())
}

async fn tags(
    ctx: &Context,
    repository: &str,
    constraint: Option<&str>,
    devel: bool,
    output: OutputFormat,
    transport: &TransportArgs,
) -> Result<()> {
    let repo = Reference::parse(repository)?;
    if repo.tag().is_some() || repo.digest().is_some() {
        bail!("{repository}: name a repository, without a tag or digest");
    }
    let constraint = constraint.map(Constraint::parse).transpose()?;
    let registry = connect(ctx, repo.host(), transport).await?;
    let mut versions: Vec<(semver::Version, String)> = registry
        .tags(&repo)
        .await?
        .into_iter()
        .filter_map(|t| {
            let v = tag_to_version(&t);
            parse_strict(&v).ok().map(|sv| (sv, v))
        })
        .filter(|(sv, _)| match &constraint {
            Some(c) if devel => c.matches_devel(sv),
            Some(c) => c.matches(sv),
            None => devel || sv.pre.is_empty(),
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp_precedence(&a.0).then_with(|| b.1.cmp(&a.1)));
    let mut out = std::io::stdout().lock();
    match output {
        OutputFormat::Json => {
            let list: Vec<&str> = versions.iter().map(|(_, v)| v.as_str()).collect();
            serde_json::to_writer(&mut out, &list)?;
            writeln!(out)?;
        }
        OutputFormat::Table => {
            for (_, v) in &versions {
                writeln!(out, "{v}")?;
            }
        }
    }
    Ok(())
}
