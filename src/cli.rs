//! The command line, as data. These clap definitions are the single source for parsing,
//! `--help`, the man page (`man/chartcache.1`) and shell completions; nothing here does I/O.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A fast, Helm-compatible local chart cache for OCI registries.
///
/// Save chart directories or packages into a local cache, list and export them, and push
/// them to (or pull them from) any OCI registry in the format today's Helm uses.
#[derive(Debug, Parser)]
#[command(
    name = "chartcache",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Helm home: the cache lives in DIR/registry [default: ~/.helm]
    #[arg(long, global = true, env = "HELM_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Registry credentials file [default: ~/.config/helm/registry/config.json]
    #[arg(long, global = true, env = "HELM_REGISTRY_CONFIG", value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// Print only errors (and the data a command exists to print)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print debugging details (never secrets) to stderr
    #[arg(long, global = true)]
    pub debug: bool,
    /// How long to wait for a connection to a registry or repository (TCP and TLS), like 10s
    #[arg(
        long,
        global = true,
        env = crate::env::CHARTCACHE_CONNECT_TIMEOUT,
        value_name = "DURATION",
        default_value = "30s",
        value_parser = parse_duration
    )]
    pub connect_timeout: std::time::Duration,
    /// How long to wait for an answer, and for a download or upload to move 1 KiB, like 60s
    #[arg(
        long,
        global = true,
        env = crate::env::CHARTCACHE_READ_TIMEOUT,
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_duration
    )]
    pub read_timeout: std::time::Duration,
    /// How many times to try a request that fails in a way a retry can mend (a connection
    /// refused or dropped, a timeout, 408, 429, 5xx), the first try included; a Retry-After
    /// of up to 30s is waited for
    #[arg(
        long,
        global = true,
        env = crate::env::CHARTCACHE_RETRIES,
        value_name = "N",
        default_value = "4",
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub retries: u32,
}

/// A positive duration: `30s`, `1m 30s`, `500ms`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| format!("{text:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{text:?}: must be more than zero"));
    }
    Ok(d)
}

/// A size in bytes, with an optional unit: `1048576`, `512KiB`, `256MiB`, `1GiB` (also `K`,
/// `M`, `G`, `KB`, `MB`, `GB` as powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: not a size like 256MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{text:?}: unknown unit (use KiB, MiB or GiB)")),
    };
    let size = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?}: too large"))?;
    if size == 0 {
        return Err(format!("{text:?}: must be more than zero"));
    }
    Ok(size)
}

/// The largest index.yaml a classic repository command reads.
#[derive(Debug, Clone, Args)]
pub struct IndexArgs {
    /// Refuse a repository index.yaml larger than this (bytes, or with KiB, MiB, GiB)
    #[arg(
        long,
        env = crate::env::CHARTCACHE_MAX_INDEX_SIZE,
        value_name = "BYTES",
        default_value = "256MiB",
        value_parser = parse_size
    )]
    pub max_index_size: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with charts in the local cache, and push or pull them
    #[command(subcommand)]
    Chart(ChartCommand),
    /// See everything the local cache holds: charts, images, indexes, other artifacts
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Log in to and out of registries, and list what they hold
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Read classic (index.yaml) chart repositories: fetch a chart, or migrate them all
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Make a registry (or the cache) hold what another holds, like `skopeo sync`
    ///
    /// SRC is a repository (HOST/PATH/NAME: every tag), one tag (HOST/PATH/NAME:TAG), or the
    /// cache (`cache:` for all of it, `cache:HOST/PATH/NAME` for one repository). DEST is a
    /// registry with an optional path prefix (HOST[/PREFIX]) or the cache (`cache:` keeps the
    /// source names, `cache:HOST/PREFIX` renames like a registry). Destination names follow
    /// skopeo: DEST/NAME:TAG, or with --scoped DEST/HOST/PATH/NAME:TAG. With --config, the
    /// sources come from a skopeo sync YAML file and only DEST is given.
    ///
    /// Either side can also be an OCI image layout directory (`oci:DIR[:REF]`) or an OCI
    /// archive (`oci-archive:FILE[:REF]`), as skopeo and oras read and write them: written
    /// there, artifacts keep their full names as ref names (or take REF, for one artifact);
    /// read from there, they go to DEST/NAME:TAG. Whole artifacts move, image indexes with
    /// every platform, byte for byte. An archive is written to a temporary file and renamed
    /// into place when the sync is done. The air-gapped move is `sync REG/charts/app
    /// oci-archive:app.tar` outside and `sync oci-archive:app.tar REG2/vendor` inside.
    ///
    /// SRC can also be a classic chart repository (`https://HOST/PATH`, read through its
    /// index.yaml): each chart version becomes the manifest `repo migrate` pushes (same
    /// digests), named DEST/NAME:VERSION; --src-creds, --src-ca-file and --src-insecure reach it.
    Sync(SyncArgs),
    /// Serve the cache as a classic chart repository and a read-only OCI registry
    ///
    /// One port answers `helm repo add` (GET /index.yaml, /charts/NAME-VERSION.tgz) and
    /// `helm pull oci://`, skopeo and chartcache (the OCI distribution pull API under /v2/).
    /// Repositories are served under their cache names: localhost:5000/myrepo/mychart is
    /// /v2/localhost_5000/myrepo/mychart, and its prefix is a classic repository of its own at
    /// /localhost_5000/myrepo/index.yaml. The root /index.yaml lists every chart; a chart name
    /// found under several prefixes is listed there as PREFIX/NAME. With --upstream the server is
    /// a pull-through cache of that registry instead: names are relative to it, and a chart not
    /// yet cached is fetched, verified and stored on first request. Runs until SIGTERM or
    /// Ctrl-C, then finishes the requests in flight.
    Serve(ServeArgs),
    /// Print a shell completion script
    Completion {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChartCommand {
    /// Save a chart directory or packaged .tgz into the cache
    ///
    /// A directory is packaged like `helm package` (honouring .helmignore), reproducibly:
    /// the same files give the same digests on any machine. A .tgz is validated and stored
    /// byte for byte, with PATH.prov as its provenance layer when present. The tag defaults
    /// to the chart version (with `+` written as `_`); without REF the chart is saved as
    /// localhost/NAME:VERSION.
    ///
    /// With --sign, the chart is signed as `helm package --sign` signs it: an OpenPGP
    /// clear-signed provenance file (Chart.yaml and the archive's SHA-256) becomes its
    /// provenance layer, which `helm verify` and `helm pull --verify` accept.
    Save {
        /// Chart directory or .tgz package
        path: PathBuf,
        /// Where the chart belongs: [oci://]HOST[:PORT]/PATH/NAME[:TAG]
        #[arg(value_name = "REF")]
        reference: Option<String>,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// List the charts in the cache
    #[command(visible_alias = "ls")]
    List {
        /// Only the repositories equal to or under this one: HOST[/PATH…]
        #[arg(value_name = "PREFIX")]
        prefix: Option<String>,
        /// Output format
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Unpack a cached chart into a directory
    ///
    /// With --verify, DIR/NAME-VERSION.tgz and its provenance file (.tgz.prov) are written
    /// too, as `helm pull --verify` writes them, and checked as written; nothing is written
    /// when they do not verify.
    Export {
        /// The chart: HOST/PATH/NAME:TAG or HOST/PATH/NAME@sha256:…
        #[arg(value_name = "REF")]
        reference: String,
        /// Directory to write NAME/ into
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        destination: PathBuf,
        /// Replace DIR/NAME even if it exists and is not empty
        #[arg(short, long)]
        force: bool,
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// Remove tags from the cache (blobs stay until `chart prune`)
    #[command(visible_alias = "rm")]
    Remove {
        /// The refs to remove
        #[arg(value_name = "REF", required = true)]
        references: Vec<String>,
    },
    /// Give a cached chart another reference, like `docker tag`
    Tag {
        /// The existing ref
        #[arg(value_name = "SRC_REF")]
        source: String,
        /// The new ref (its tag defaults to the chart version)
        #[arg(value_name = "DST_REF")]
        target: String,
    },
    /// Print a cached chart's Chart.yaml, values.yaml or README, or its referrers
    ///
    /// With --referrers, lists what the cache holds that refers to the chart's manifest
    /// (signatures, SBOMs, attestations a pull or sync brought along): each one's digest,
    /// artifact type, size, how it was found (subject: listed in the referrers tag schema and
    /// naming the chart as its subject; tag-schema: listed there without naming it;
    /// cosign-tag: cosign's sha256-<hex>.sig/.att/.sbom tags) and when it was created, with
    /// what refers to each indented under it.
    Show {
        /// The chart
        #[arg(value_name = "REF")]
        reference: String,
        /// What to print
        #[arg(value_enum, default_value_t = ShowWhat::Chart, conflicts_with = "referrers")]
        what: ShowWhat,
        /// List the chart's referrers held in the cache instead
        #[arg(long)]
        referrers: bool,
        /// Output format of --referrers
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table, requires = "referrers")]
        output: OutputFormat,
    },
    /// List the images a chart runs, with where each was found
    ///
    /// CHART is a cached chart (HOST/PATH/NAME:TAG), a chart directory or a .tgz; its
    /// subcharts (charts/*.tgz and charts/DIR/) count too, with their values scoped as Helm
    /// scopes them. Images come from the Chart.yaml annotations helm.sh/images, images and
    /// artifacthub.io/images; from the values (with --values and --set applied as helm install
    /// applies them) in the shapes charts use ({registry, repository, tag, digest} with
    /// global.imageRegistry, {repository, tag} with the tag defaulting to appVersion,
    /// {name, tag}, "repo:tag" strings and lists of them); from the templates, rendered as far
    /// as they can be without a cluster; and from Images.lock, whose digests win. Each image is
    /// shown once, normalised as Docker does (nginx is docker.io/library/nginx:latest). A
    /// template line that needs the release or the cluster to build its image, an invalid
    /// reference, and a dependency missing from charts/ are warnings (on stderr in table
    /// output).
    Images(ImagesArgs),
    /// Upload a cached chart to its registry
    ///
    /// Uploads exactly the cached blobs and manifest, so the registry's manifest digest is
    /// the cache's. Blobs the registry already has are skipped; blobs another repository of
    /// the same registry holds are mounted.
    Push {
        /// The chart: HOST/PATH/NAME:TAG
        #[arg(value_name = "REF")]
        reference: String,
        #[command(flatten)]
        transport: TransportArgs,
    },
    /// Download a chart from a registry into the cache
    ///
    /// Every blob is checked against its digest before it is stored. Accepts what Helm 3.8+
    /// and v4 push, and what Helm 3.0-3.6 pushed (with a warning).
    ///
    /// With --verify (the chart's provenance, as `helm pull --verify` checks it) or
    /// --cosign-key (a cosign signature on the chart's manifest), a chart whose signature
    /// does not verify is not stored at all.
    Pull {
        /// The chart: HOST/PATH/NAME:TAG or HOST/PATH/NAME@sha256:…
        #[arg(value_name = "REF")]
        reference: String,
        #[command(flatten)]
        verify: VerifyArgs,
        /// Keep the chart only if a cosign signature made with this public key (PEM, ECDSA
        /// P-256, as `cosign generate-key-pair` writes) signs its manifest; keyless
        /// signatures are not checked
        #[arg(long, value_name = "FILE")]
        cosign_key: Option<PathBuf>,
        #[command(flatten)]
        transport: TransportArgs,
    },
    /// Delete blobs and chart markers that no ref uses
    Prune,
    /// Re-hash every blob and check every ref, or check a chart's signatures
    ///
    /// Without REF, every blob of the cache is re-hashed and every ref checked; exit 1 on
    /// any problem. With REF, the cached chart's provenance is checked as `helm verify`
    /// checks it (the signature, its signer in --keyring, the archive's SHA-256), and with
    /// --cosign-key its cosign signature is read from its registry and checked; exit 1 with
    /// the check that failed.
    Verify {
        /// A cached chart whose signatures to check
        #[arg(value_name = "REF")]
        reference: Option<String>,
        /// Public keys to trust for the provenance (as `gpg --export` writes them, or a
        /// keybox) [default: $GNUPGHOME/pubring.gpg or ~/.gnupg/pubring.gpg]
        #[arg(long, value_name = "FILE", requires = "reference")]
        keyring: Option<PathBuf>,
        /// Check the cosign signature of the chart's manifest with this public key (PEM,
        /// ECDSA P-256); keyless signatures are not checked
        #[arg(long, value_name = "FILE", requires = "reference")]
        cosign_key: Option<PathBuf>,
        #[command(flatten)]
        transport: TransportArgs,
    },
}

/// `chart save --sign`: the key to sign with, as `helm package --sign` takes it.
#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Sign the chart with an OpenPGP key (writes its provenance layer)
    #[arg(long, requires = "key")]
    pub sign: bool,
    /// The signing key: its user ID, or a part of it that only one key has
    #[arg(long, value_name = "NAME", requires = "sign")]
    pub key: Option<String>,
    /// Keyring holding the secret key (as `gpg --export-secret-keys` writes it)
    /// [default: $GNUPGHOME/pubring.gpg or ~/.gnupg/pubring.gpg]
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub keyring: Option<PathBuf>,
    /// Read the key's passphrase from the first line of FILE (`-`: standard input);
    /// without it, a protected key's passphrase is asked for on the terminal
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub passphrase_file: Option<PathBuf>,
}

/// `--verify`: a chart's provenance checked as `helm verify` checks it.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Check the chart's provenance: its OpenPGP signature, the signer in --keyring, and
    /// the archive's SHA-256
    #[arg(long)]
    pub verify: bool,
    /// Public keys to trust (as `gpg --export` writes them, or a keybox)
    /// [default: $GNUPGHOME/pubring.gpg or ~/.gnupg/pubring.gpg]
    #[arg(long, value_name = "FILE", requires = "verify")]
    pub keyring: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List every ref in the cache with what it is: helm chart, image, image index, docker
    /// image, docker list, or an artifact by its type
    ///
    /// SIZE is the manifest and everything it names (for an index, every platform's manifest,
    /// config and layers), each blob counted once. `chart list` shows the charts only.
    #[command(visible_alias = "ls")]
    List {
        /// Only the repositories equal to or under this one: HOST[/PATH…]
        #[arg(value_name = "PREFIX")]
        prefix: Option<String>,
        /// Output format
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// The chart: a cached REF, a chart directory or a .tgz
    #[arg(value_name = "CHART")]
    pub chart: String,
    /// A values file applied over the chart's, as with helm -f (repeatable; later files win)
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    pub values: Vec<PathBuf>,
    /// Set a value in Helm's syntax, like image.tag=1.2 or a.b[0].c=x (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Set a value that stays a string (repeatable)
    #[arg(long = "set-string", value_name = "KEY=VALUE")]
    pub set_string: Vec<String>,
    /// Show every place each image was found, not only the first (JSON always has them all)
    #[arg(long)]
    pub why: bool,
    /// Output format
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Log in to a registry (credentials shared with `helm registry login`)
    ///
    /// Prompts for what is missing (the password without echo), checks the credentials
    /// against the registry, then stores them.
    Login {
        /// The registry host, like localhost:5000
        #[arg(default_value = "docker.io")]
        host: String,
        /// Username
        #[arg(short, long)]
        username: Option<String>,
        /// Password (insecure: it shows in the process list; prefer --password-stdin)
        #[arg(short, long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from standard input
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        transport: TransportArgs,
    },
    /// Remove the stored login for a registry
    Logout {
        /// The registry host
        host: String,
    },
    /// List the chart versions a repository holds, newest first
    Tags {
        /// The repository: HOST/PATH/NAME
        #[arg(value_name = "REPO")]
        repository: String,
        /// Only versions matching this Helm constraint, like ">=1.2 <2" or "^1.2"
        #[arg(long, value_name = "C")]
        constraint: Option<String>,
        /// Include pre-release versions when no constraint names one
        #[arg(long)]
        devel: bool,
        /// Output format
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        #[command(flatten)]
        transport: TransportArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Download one chart from a classic repository, as `helm pull --repo` does
    ///
    /// Reads REPO_URL/index.yaml, resolves the version as Helm does (an exact version first,
    /// else the newest matching the constraint; the newest stable version by default),
    /// checks the download against the index digest and writes DIR/NAME-VERSION.tgz.
    #[command(disable_version_flag = true)]
    Fetch {
        /// The repository URL (the folder holding index.yaml)
        repo_url: String,
        /// The chart name
        chart: String,
        /// A version or a Helm constraint, like 1.2.3, ^1.2 or ">=1.2 <2"
        #[arg(long = "version", value_name = "C")]
        chart_version: Option<String>,
        /// Consider pre-release versions when no version is given
        #[arg(long)]
        devel: bool,
        /// Where to write the archive
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        destination: PathBuf,
        /// Also save the chart into the cache under this ref
        #[arg(long, value_name = "REF")]
        save: Option<String>,
        #[command(flatten)]
        auth: RepoAuthArgs,
        /// Verify the repository's certificate with this CA bundle (PEM)
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Skip TLS certificate verification
        #[arg(long)]
        insecure: bool,
        #[command(flatten)]
        index: IndexArgs,
    },
    /// Copy every chart version of a classic repository into an OCI registry
    ///
    /// Each version goes to DEST_PREFIX/CHART:VERSION (+ written as _) byte for byte: the OCI
    /// chart layer digest is the index digest. Versions already there are skipped, so a rerun
    /// pushes nothing. A .prov beside a chart goes along as its provenance layer.
    #[command(disable_version_flag = true)]
    Migrate {
        /// The repository URL (the folder holding index.yaml)
        repo_url: String,
        /// Where the charts go: HOST[:PORT]/PATH
        dest_prefix: String,
        /// Only these charts (repeatable)
        #[arg(long = "chart", value_name = "NAME")]
        charts: Vec<String>,
        /// Only versions matching this Helm constraint
        #[arg(long = "version", value_name = "C")]
        chart_version: Option<String>,
        /// Let the constraint match pre-release versions too
        #[arg(long)]
        devel: bool,
        /// Transfers to run at once
        #[arg(short, long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Print the plan and change nothing
        #[arg(long)]
        dry_run: bool,
        /// After a failure, finish the other versions before exiting non-zero
        #[arg(long)]
        keep_going: bool,
        /// Output format: a line per version and a summary, or one JSON document at the end
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        #[command(flatten)]
        auth: RepoAuthArgs,
        #[command(flatten)]
        transport: TransportArgs,
        #[command(flatten)]
        index: IndexArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Read settings from this YAML file: its keys are the long names of these flags
    /// (listen: 127.0.0.1:8080, htpasswd: FILE, repo: [a, b], revalidate: true, ...); flags
    /// and their environment variables win over it
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Make chart URLs in index.yaml absolute, under this URL (default: relative); with
    /// --chart-url oci, its host names this server in oci:// URLs
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// How index entries point at charts: http (a download from this server) or oci
    /// (oci://HOST/NAME:TAG, pulled from this server's registry API)
    #[arg(long, value_enum, default_value_t = ChartUrl::Http, value_name = "KIND")]
    pub chart_url: ChartUrl,
    /// Access log and event lines on stderr as plain text or one JSON object per line
    #[arg(long, value_enum, default_value_t = LogFormatArg::Plain, value_name = "FORMAT")]
    pub log_format: LogFormatArg,
    /// Be a pull-through cache of this registry (HOST[/PREFIX]), with its stored login, or
    /// serve this classic repository (https://HOST/PATH, with an index.yaml) as OCI
    #[arg(long, value_name = "REGISTRY|URL")]
    pub upstream: Option<String>,
    /// What --upstream is: auto (an http(s):// URL whose index.yaml reads is a classic
    /// repository, anything else a registry), registry or classic
    #[arg(long, value_enum, default_value_t = UpstreamKind::Auto, value_name = "KIND")]
    pub upstream_kind: UpstreamKind,
    /// With --upstream: a repository (relative to it) to list in index.yaml when the upstream
    /// keeps its catalog private
    #[arg(long = "repo", value_name = "NAME")]
    pub repos: Vec<String>,
    /// With --upstream: check a cached tag against the upstream before serving it
    #[arg(long)]
    pub revalidate: bool,
    /// With a registry --upstream: serve only charts whose signatures verify, their Helm
    /// provenance (signed by a key of --keyring) and/or, with --cosign-key, their cosign
    /// signature; any other chart is refused (403 DENIED, saying why) and never stored
    #[arg(long)]
    pub require_signed: bool,
    /// With --require-signed: the OpenPGP public keyring provenance is checked against
    /// (default: Helm's ~/.gnupg/pubring.gpg)
    #[arg(long, value_name = "FILE")]
    pub keyring: Option<PathBuf>,
    /// With --require-signed: check cosign signatures with this public key (PEM, ECDSA P-256)
    #[arg(long, value_name = "FILE")]
    pub cosign_key: Option<PathBuf>,
    /// With --upstream: seconds before the upstream is listed (or its index.yaml read) again
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub index_ttl: u64,
    /// Require Basic authentication against this htpasswd file (bcrypt entries, htpasswd -B)
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// MiB of small blobs kept in memory (0: always read from disk)
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub memory_cache: u64,
    /// Connections served at once; more wait to be accepted
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// How long a client may take to send a request's headers, and an idle kept-alive
    /// connection may wait for its next request
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
    /// How long a response may make no progress (a client that stopped reading) before its
    /// connection is closed; also the window of --min-write-rate
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub write_timeout: std::time::Duration,
    /// Bytes a client must take per --write-timeout window spent waiting on it, or its
    /// connection is closed (a client reading a trickle cannot hold a slot)
    #[arg(long, default_value_t = 16384, value_name = "BYTES")]
    pub min_write_rate: u64,
    /// How to reach the --upstream registry
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// `serve --upstream-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpstreamKind {
    Auto,
    Registry,
    Classic,
}

/// `serve --chart-url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChartUrl {
    Http,
    Oci,
}

/// `serve --log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Plain,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct SyncArgs {
    /// [SRC] DEST
    #[arg(value_name = "PLACES", num_args = 1..=2, required = true)]
    pub places: Vec<String>,
    /// Output format: a line per reference and a summary, or one JSON document at the end
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Read the sources from a skopeo sync YAML file
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Name destinations after the whole source path, host included (images too)
    #[arg(long)]
    pub scoped: bool,
    /// Copy each chart's images with it, to the same destination, before it: the images
    /// `chart images` finds (annotations, values, templates, Images.lock; the chart's own
    /// values), each read from its registry (reached with the --src-* TLS flags and the stored
    /// logins), every platform or --platform, digests kept, referrers along. Images are named
    /// as skopeo sync names: DEST/<last path element>:<tag> (docker.io/library/nginx:1.25 goes
    /// to DEST/nginx:1.25), with --scoped DEST/<registry>/<whole path>:<tag>
    /// (DEST/docker.io/library/nginx:1.25, a :port written _port); cache: and oci:/oci-archive:
    /// without a prefix keep the full reference. An image with a tag and a digest is read by
    /// its digest and written under its tag. A chart whose image cannot be copied fails, naming
    /// the image and why, and is not copied (--keep-going goes on with the rest)
    #[arg(long)]
    pub images: bool,
    /// With --images, also copy the images listed in FILE with every chart: one reference
    /// per line, as `chart images -q` prints them (blank lines and # comments skipped)
    #[arg(long, value_name = "FILE", requires = "images")]
    pub images_from: Option<PathBuf>,
    /// Only tags whose version matches this Helm constraint (`_` read as `+`)
    #[arg(long, value_name = "C")]
    pub constraint: Option<String>,
    /// Only tags matching this regular expression
    #[arg(long, value_name = "REGEX")]
    pub tag_regex: Option<String>,
    /// Copies to run at once
    #[arg(short, long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Print the plan and change nothing (with --images: each chart's images, where each
    /// would go, and whether it is there already)
    #[arg(long)]
    pub dry_run: bool,
    /// After a failure, finish the rest before exiting non-zero
    #[arg(long)]
    pub keep_going: bool,
    /// Trust that a tag present at the destination is the same (no digest check)
    #[arg(long)]
    pub immutable_tags: bool,
    /// Copy only this platform of image indexes, OS/ARCH[/VARIANT] (repeatable; default:
    /// every platform, and the index keeps its digest). An index that holds more is rewritten
    /// with only the chosen platforms, so its digest changes.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Vec<String>,
    /// Copy no referrers (signatures, SBOMs, attestations: by default every manifest's
    /// referrers and cosign's sha256-<hex>.sig/.att/.sbom tags travel with it)
    #[arg(long, conflicts_with = "referrers_type")]
    pub no_referrers: bool,
    /// Copy only referrers of this artifact type (repeatable)
    #[arg(long, value_name = "TYPE")]
    pub referrers_type: Vec<String>,
    /// Copy only references whose signatures verify: their Helm provenance (signed by a key
    /// of --keyring) and/or, with --cosign-key, their cosign signature; report the rest
    /// (unsigned, bad signature, unknown signer…) and exit 1
    #[arg(long)]
    pub require_signed: bool,
    /// Public keys to trust for provenance (as `gpg --export` writes them, or a keybox)
    /// [default with --require-signed and no --cosign-key: $GNUPGHOME/pubring.gpg or
    /// ~/.gnupg/pubring.gpg]
    #[arg(long, value_name = "FILE", requires = "require_signed")]
    pub keyring: Option<PathBuf>,
    /// cosign public key (PEM, ECDSA P-256, as `cosign generate-key-pair` makes) whose
    /// signature (the `sha256-<hex>.sig` tag) each reference needs
    #[arg(long, value_name = "FILE", requires = "require_signed")]
    pub cosign_key: Option<PathBuf>,
    /// Source credentials, overriding stored logins
    #[arg(long, value_name = "USER:PASS")]
    pub src_creds: Option<String>,
    /// Destination credentials, overriding stored logins
    #[arg(long, value_name = "USER:PASS")]
    pub dest_creds: Option<String>,
    /// Use plain HTTP for the source
    #[arg(long)]
    pub src_plain_http: bool,
    /// Skip TLS verification for the source
    #[arg(long)]
    pub src_insecure: bool,
    /// skopeo's flag: false skips TLS verification and allows plain HTTP for the source
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub src_tls_verify: Option<bool>,
    /// CA bundle (PEM) for the source
    #[arg(long, value_name = "FILE")]
    pub src_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for the source
    #[arg(long, value_name = "FILE", requires = "src_key_file")]
    pub src_cert_file: Option<PathBuf>,
    /// Client key (PEM) for the source
    #[arg(long, value_name = "FILE", requires = "src_cert_file")]
    pub src_key_file: Option<PathBuf>,
    /// Docker-style certificate directory for the source (*.crt, NAME.cert + NAME.key)
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,
    /// Use plain HTTP for the destination
    #[arg(long)]
    pub dest_plain_http: bool,
    /// Skip TLS verification for the destination
    #[arg(long)]
    pub dest_insecure: bool,
    /// skopeo's flag: false skips TLS verification and allows plain HTTP for the destination
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub dest_tls_verify: Option<bool>,
    /// CA bundle (PEM) for the destination
    #[arg(long, value_name = "FILE")]
    pub dest_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for the destination
    #[arg(long, value_name = "FILE", requires = "dest_key_file")]
    pub dest_cert_file: Option<PathBuf>,
    /// Client key (PEM) for the destination
    #[arg(long, value_name = "FILE", requires = "dest_cert_file")]
    pub dest_key_file: Option<PathBuf>,
    /// Docker-style certificate directory for the destination
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,
}

/// Credentials for a classic repository.
#[derive(Debug, Clone, Args)]
pub struct RepoAuthArgs {
    /// Repository username
    #[arg(long)]
    pub username: Option<String>,
    /// Repository password (insecure; prefer --password-stdin)
    #[arg(long, requires = "username", conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the repository password from standard input
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Send the credentials to chart URLs on other hosts too
    #[arg(long)]
    pub pass_credentials: bool,
}

/// How to reach a registry.
#[derive(Debug, Clone, Args)]
pub struct TransportArgs {
    /// Use plain HTTP, not HTTPS (loopback registries fall back to it by themselves)
    #[arg(long)]
    pub plain_http: bool,
    /// Skip TLS certificate verification
    #[arg(long)]
    pub insecure: bool,
    /// Verify the registry's certificate with this CA bundle (PEM)
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for registries that require one
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM)
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowWhat {
    /// Chart.yaml
    Chart,
    /// values.yaml
    Values,
    /// README
    Readme,
    /// All three, separated by `---`
    All,
}

/// The clap command tree, for the man page and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks (unique names, valid defaults…) over the whole tree.
    #[test]
    fn command_tree_is_consistent() {
        super::command().debug_assert();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(super::parse_size("1024"), Ok(1024));
        assert_eq!(super::parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(super::parse_size("2 KiB"), Ok(2048));
        assert_eq!(super::parse_size("1g"), Ok(1 << 30));
        assert!(super::parse_size("0").is_err());
        assert!(super::parse_size("12XB").is_err());
        assert!(super::parse_size("MiB").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            super::parse_duration("10s"),
            Ok(std::time::Duration::from_secs(10))
        );
        assert!(super::parse_duration("0s").is_err());
        assert!(super::parse_duration("soon").is_err());
    }
}
