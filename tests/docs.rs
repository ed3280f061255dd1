//! The documents that live beside the code stay true to it:
//!
//! - `man/*.1` are rendered from the clap definitions (`chartcache::cli::command()`): one page
//!   for `chartcache`, and one per subcommand, git style (`man/chartcache-chart-save.1`). They
//!   are compared byte for byte; `UPDATE_MAN=1 cargo test --test docs` rewrites them.
//! - `plugin.yaml` is a Helm plugin that Helm 3.7+ and v4 load as `helm chart …`, and running its
//!   command the way Helm does reaches `chartcache chart …`.
//! - `README.md`: its quick start works as written (after `cargo install`, which the test
//!   replaces with the binary Cargo built), its single test command is what `.ci/run` runs, its
//!   command table covers every command, and the paths it names exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const STALE: &str = "man page is stale: run UPDATE_MAN=1 cargo test --test docs";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every man page, by file name: the root command and each visible subcommand, recursively.
/// The `help` subcommand is left out, as `clap_mangen::generate_to` does (it has no page).
fn man_pages() -> BTreeMap<String, Vec<u8>> {
    fn walk(cmd: clap::Command, out: &mut BTreeMap<String, Vec<u8>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub.clone(), out);
        }
        // Every page names the package, not the subcommand, as where it comes from.
        let man =
            clap_mangen::Man::new(cmd).source(format!("chartcache {}", env!("CARGO_PKG_VERSION")));
        let mut page = Vec::new();
        man.render(&mut page).expect("render man page");
        out.insert(man.get_filename(), page);
    }
    let mut cmd = chartcache::cli::command().disable_help_subcommand(true);
    // Building names subcommands `chartcache-chart-save` (their page and file name) and
    // propagates the global flags and the version into them.
    cmd.build();
    let mut pages = BTreeMap::new();
    walk(cmd, &mut pages);
    pages
}

#[test]
fn man_pages_are_current() {
    let dir = repo().join("man");
    let pages = man_pages();
    assert!(pages.contains_key("chartcache.1"));
    assert!(
        pages.contains_key("chartcache-chart-save.1"),
        "{:?}",
        pages.keys()
    );

    let on_disk: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("chartcache") && n.ends_with(".1"))
                .collect()
        })
        .unwrap_or_default();

    if std::env::var_os("UPDATE_MAN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).expect("create man/");
        for (name, page) in &pages {
            std::fs::write(dir.join(name), page).expect("write man page");
        }
        for name in on_disk.iter().filter(|n| !pages.contains_key(*n)) {
            std::fs::remove_file(dir.join(name)).expect("remove old man page");
        }
        return;
    }

    for (name, page) in &pages {
        let path = dir.join(name);
        let current = std::fs::read(&path);
        assert!(current.is_ok(), "{STALE} (man/{name} is missing)");
        assert!(
            current.is_ok_and(|c| c == *page),
            "{STALE} (man/{name} differs from `chartcache::cli::command()`)"
        );
    }
    for name in &on_disk {
        assert!(
            pages.contains_key(name),
            "{STALE} (man/{name} belongs to no command)"
        );
    }
}

/// The fields of a legacy (v3) `plugin.yaml` that matter here.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Plugin {
    name: String,
    version: String,
    usage: String,
    description: String,
    command: String,
    #[serde(default)]
    ignore_flags: bool,
    #[serde(default)]
    platform_command: Option<serde_norway::Value>,
}

/// Helm's own top-level commands (v3 and v4): a plugin with one of these names is shadowed, and
/// in v4 it stops every later plugin from loading.
const HELM_BUILTINS: &[&str] = &[
    "completion",
    "create",
    "dependency",
    "env",
    "get",
    "help",
    "history",
    "install",
    "lint",
    "list",
    "package",
    "plugin",
    "pull",
    "push",
    "registry",
    "repo",
    "rollback",
    "search",
    "show",
    "status",
    "template",
    "test",
    "uninstall",
    "upgrade",
    "verify",
    "version",
];

#[test]
fn plugin_yaml_runs_chartcache_chart() {
    let text = read("plugin.yaml");
    let plugin: Plugin = serde_norway::from_str(&text).expect("plugin.yaml parses");

    assert_eq!(plugin.name, "chart");
    assert!(
        plugin
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "Helm accepts plugin names matching ^[A-Za-z0-9_-]+$"
    );
    assert!(
        !HELM_BUILTINS.contains(&plugin.name.as_str()),
        "{:?} is a built-in Helm command",
        plugin.name
    );
    assert_eq!(plugin.version, env!("CARGO_PKG_VERSION"));
    assert!(!plugin.usage.trim().is_empty(), "usage is empty");
    assert!(
        !plugin.description.trim().is_empty(),
        "description is empty"
    );
    assert!(!plugin.ignore_flags, "ignoreFlags must be false");
    assert!(
        plugin.platform_command.is_none(),
        "platformCommand would override command"
    );

    // Helm runs `command` without a shell: os.ExpandEnv, split on spaces, then the user's
    // arguments appended. So `helm chart list -o json` must become this argv.
    assert!(
        !plugin.command.contains('$'),
        "command needs no environment"
    );
    let mut argv: Vec<&str> = plugin.command.split(' ').collect();
    assert_eq!(argv, ["chartcache", "chart"]);
    assert_eq!(
        argv[0],
        chartcache::cli::command().get_name(),
        "the binary on PATH"
    );
    argv.extend(["list", "-o", "json"]);
    let cli = <chartcache::cli::Cli as clap::Parser>::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(matches!(
        cli.command,
        chartcache::cli::Command::Chart(chartcache::cli::ChartCommand::List { .. })
    ));
}

/// The command in the README's fenced block right after the `<!-- test-command -->` marker.
fn readme_test_command(readme: &str) -> String {
    let after = readme
        .split_once("<!-- test-command -->")
        .expect("README.md marks its test command with <!-- test-command -->")
        .1;
    let mut lines = after.lines().map(str::trim).skip_while(|l| l.is_empty());
    let fence = lines.next().unwrap_or_default();
    assert!(fence.starts_with("```"), "a code block follows the marker");
    let command = lines.next().unwrap_or_default().to_string();
    assert!(
        lines.next().is_some_and(|l| l.starts_with("```")),
        "the test command is a single line"
    );
    command
}

#[test]
fn ci_runs_the_readme_test_command() {
    let command = readme_test_command(&read("README.md"));
    assert!(command.starts_with("cargo test"), "{command:?}");
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run does not run the README's test command {command:?} on a line of its own"
    );
}

#[test]
fn readme_lists_every_command() {
    fn leaves(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{prefix}{}", sub.get_name());
            if sub.has_subcommands() {
                leaves(sub, &format!("{name} "), out);
            } else {
                out.push(name);
            }
        }
    }
    let readme = read("README.md");
    let mut commands = Vec::new();
    leaves(
        &chartcache::cli::command().disable_help_subcommand(true),
        "",
        &mut commands,
    );
    for command in commands {
        assert!(
            readme.contains(&format!("| `{command}")),
            "README.md's command table has no row for `{command}`"
        );
    }
}

#[test]
fn readme_paths_exist() {
    // The paths the README tells people to use from the repository root.
    let readme = read("README.md");
    for rel in [
        "testdata/",
        "bench/",
        ".ci/",
        "tests/",
        "plugin.yaml",
        "man/",
    ] {
        for (i, _) in readme.match_indices(rel) {
            let rest = &readme[i..];
            let end = rest
                .find(|c: char| c.is_whitespace() || "`)\"'|,;".contains(c))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(['.', ':']);
            if path.contains(['<', '*', '…']) {
                continue;
            }
            assert!(
                Path::new(&repo().join(path)).exists(),
                "README.md mentions {path}, which does not exist"
            );
        }
    }
}

#[test]
fn readme_quick_start_works() {
    let readme = read("README.md");
    let block = readme
        .split_once("<!-- quick-start -->")
        .expect("README.md marks its quick start with <!-- quick-start -->")
        .1;
    let line = block
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("```"))
        .expect("a command follows the quick-start marker");
    let home = tempfile::tempdir().expect("temp dir");
    let mut last = String::new();
    for step in line.split(" && ") {
        let words: Vec<&str> = step.split_whitespace().collect();
        match words.first() {
            Some(&"cargo") => continue, // `cargo install`: this test runs the binary Cargo built
            Some(&"chartcache") => {}
            _ => panic!("unexpected quick-start step {step:?}"),
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chartcache"))
            .args(&words[1..])
            .current_dir(repo())
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .output()
            .expect("run chartcache");
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "quick start step {step:?} failed: {}\n{last}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        last.contains("localhost:5000/myrepo/simple:0.1.0"),
        "the quick start ends by listing the saved chart:\n{last}"
    );
    assert!(home.path().join(".helm/registry/index.json").is_file());
}
