//! `chartcache serve`: flags (and `--config`, see [`config`]) in, the server out. Reading the
//! htpasswd file and the upstream login happens here, before the port opens, so a mistake is
//! an error at start-up rather than a server that refuses everyone.

mod config;

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};

use super::Context;
use crate::classic::RepoOptions;
use crate::cli::{ChartUrl, LogFormatArg, ServeArgs, UpstreamKind};
use crate::reference::Reference;
use crate::serve::bridge::{self, ClassicOptions};
use crate::serve::{self, Htpasswd, Log, LogFormat, ServeOptions, UpstreamOptions, UpstreamSpec};

pub async fn run(ctx: &Context, args: &ServeArgs) -> Result<()> {
    let merged;
    let args = match &args.config {
        None => args,
        Some(path) => {
            let text = config::read(path)?;
            let explicit = config::command_line_matches();
            merged = config::merge(args, explicit.as_ref(), &text, path)?;
            &merged
        }
    };
    if args.upstream.is_none() {
        if !args.repos.is_empty() {
            bail!("--repo is for --upstream: list a repository of the upstream");
        }
        if args.revalidate {
            bail!("--revalidate is for --upstream");
        }
        if args.require_signed {
            bail!("--require-signed is for --upstream: it checks what is pulled through");
        }
    }
    if !args.require_signed && (args.keyring.is_some() || args.cosign_key.is_some()) {
        bail!("--keyring and --cosign-key are for --require-signed");
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        bail!("--tls-cert and --tls-key go together");
    }
    let upstream = match &args.upstream {
        None => None,
        Some(text) => Some(upstream(ctx, args, text).await?),
    };
    let htpasswd = match &args.htpasswd {
        Some(path) => Some(Htpasswd::load(path)?),
        None => None,
    };
    if let Some(base) = &args.base_url
        && !(base.starts_with("http://") || base.starts_with("https://"))
    {
        bail!("--base-url {base}: an http:// or https:// URL is needed");
    }
    let what = match &upstream {
        Some(UpstreamSpec::Registry(u)) => format!(
            "a pull-through cache of {}",
            args.upstream.as_deref().unwrap_or(&u.host)
        ),
        Some(UpstreamSpec::Classic(c)) => {
            format!("the classic repository {} as OCI", redact_url(&c.url))
        }
        None => format!("the cache at {}", ctx.store.root().display()),
    };
    let options = ServeOptions {
        listen: args.listen.clone(),
        base_url: args.base_url.clone(),
        oci_urls: args.chart_url == ChartUrl::Oci,
        upstream,
        htpasswd,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        log: Log {
            format: match args.log_format {
                LogFormatArg::Plain => LogFormat::Plain,
                LogFormatArg::Json => LogFormat::Json,
            },
            access: !ctx.quiet,
        },
        memory_cache: args.memory_cache.saturating_mul(1024 * 1024),
        max_connections: args.max_connections as usize,
        header_timeout: args.header_timeout,
        write_timeout: args.write_timeout,
        min_write_bytes: args.min_write_rate,
    };
    serve::serve(ctx.store.clone(), options, |url| {
        // The first line says where the server is: tests and scripts read it (port 0), as
        // its first URL, before what it serves (which may be a URL too).
        println!(
            "Serving at {url} (chart repository: {url}/index.yaml, registry: {url}/v2/): {what}"
        );
        let _ = std::io::stdout().flush();
    })
    .await?;
    Ok(())
}

fn redact_url(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| crate::classic::http::redact(&u))
        .unwrap_or_else(|_| url.to_string())
}

/// What `--upstream TEXT` names: a classic repository (an http(s):// URL whose index.yaml
/// reads, or any URL with `--upstream-kind classic`) or a registry `HOST[/PREFIX]`.
async fn upstream(ctx: &Context, args: &ServeArgs, text: &str) -> Result<UpstreamSpec> {
    let url = text.starts_with("http://") || text.starts_with("https://");
    let classic = || -> Result<ClassicOptions> {
        let parsed = reqwest::Url::parse(text)
            .map_err(|e| anyhow::anyhow!("--upstream {}: not a URL: {e}", redact_url(text)))?;
        let host = parsed.host_str().unwrap_or_default();
        let credential = match parsed.port() {
            Some(p) => ctx.credentials.get(&format!("{host}:{p}"))?,
            None => ctx.credentials.get(host)?,
        };
        Ok(ClassicOptions {
            url: text.to_string(),
            repo: RepoOptions {
                credential,
                pass_credentials: false,
                ca_file: args.transport.ca_file.clone(),
                insecure: args.transport.insecure,
                timeouts: ctx.timeouts,
                max_index_size: crate::classic::http::DEFAULT_MAX_INDEX_SIZE,
            },
            index_ttl: Duration::from_secs(args.index_ttl),
        })
    };
    match args.upstream_kind {
        UpstreamKind::Classic if !url => {
            bail!("--upstream {text}: a classic repository is an http:// or https:// URL")
        }
        UpstreamKind::Classic if args.require_signed => {
            bail!("--require-signed needs a registry --upstream, not a classic repository")
        }
        UpstreamKind::Classic => return Ok(UpstreamSpec::Classic(classic()?)),
        UpstreamKind::Auto if url => {
            let options = classic()?;
            match bridge::read_index(&options).await {
                Ok(_) if args.require_signed => bail!(
                    "--upstream {}: a classic repository; --require-signed needs a registry",
                    redact_url(text)
                ),
                Ok(_) => return Ok(UpstreamSpec::Classic(options)),
                Err(e) => ctx.warn(format!(
                    "--upstream {}: no classic repository there ({e}); serving it as a registry (--upstream-kind classic says otherwise)",
                    redact_url(text)
                )),
            }
        }
        UpstreamKind::Auto | UpstreamKind::Registry => {}
    }
    let base = text
        .trim_start_matches("oci://")
        .trim_start_matches("docker://")
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    // Checked as a reference with a dummy last component, so `host` alone is fine.
    let probe = Reference::parse(&format!("{base}/x"))
        .map_err(|e| anyhow::anyhow!("--upstream {text}: not a REGISTRY[/PREFIX]: {e}"))?;
    if base.contains(['@']) || probe.tag().is_some() {
        bail!("--upstream {text}: give a registry and an optional path, without a tag");
    }
    let host = probe.host().to_string();
    let prefix = probe
        .path()
        .strip_suffix("x")
        .unwrap_or("")
        .trim_end_matches('/');
    let credential = ctx.credentials.get(&host)?;
    // Keys are read before anything is contacted.
    let signatures = super::signing::required(
        args.require_signed,
        args.keyring.as_deref(),
        args.cosign_key.as_deref(),
    )?;
    Ok(UpstreamSpec::Registry(UpstreamOptions {
        signatures: Box::new(signatures),
        prefix: prefix.to_string(),
        transport: ctx.transport(&args.transport),
        credential,
        repos: args.repos.clone(),
        revalidate: args.revalidate,
        index_ttl: Duration::from_secs(args.index_ttl),
        host,
    }))
}
