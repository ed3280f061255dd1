//! `registry login` / `logout` and authenticated push/pull against real registries: htpasswd
//! (Basic) and token (Bearer) auth, the interactive prompt on a real terminal, and the
//! credentials shared with Helm v4 and Docker (config files and credential helpers).

mod fault;
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use fault::{Sandbox, error_line_of, get_manifest};
use support::{Helm, Registry, describe};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Logs in with `--password-stdin`, which must succeed.
fn login_stdin(sb: &Sandbox, host: &str, user: &str, pass: &str) {
    let out = sb.run_stdin(
        &["registry", "login", host, "-u", user, "--password-stdin"],
        &format!("{pass}\n"),
    );
    assert!(out.status.success(), "login: {}", describe(&out));
    assert_eq!(stdout(&out).trim(), "Login succeeded", "{}", describe(&out));
}

#[test]
fn htpasswd_login_push_pull_logout() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let host = reg.host();
    let mut sb = Sandbox::new();
    // A config file in a directory that does not exist yet: login creates it, private.
    let config = sb.path().join("helmconfig/registry/config.json");
    sb.set_env("HELM_REGISTRY_CONFIG", &config);
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);

    // Not logged in: one clear line naming the host and the fix.
    let line = sb.fails(&["chart", "push", &reference]);
    assert!(
        line.contains(&host) && line.contains(&format!("chartcache registry login {host}")),
        "{line}"
    );

    // A wrong password: refused, nothing written, and -p warns that it is insecure.
    let out = sb.run(&["registry", "login", &host, "-u", "alice", "-p", "WRONG"]);
    let line = error_line_of(&out, "registry login (wrong password)");
    assert!(line.contains(&host), "{line}");
    assert!(!line.contains("WRONG"), "the password leaked: {line}");
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l.starts_with("WARNING:") && l.contains("--password-stdin")),
        "no insecure-password warning: {}",
        describe(&out)
    );
    assert!(
        !config.exists(),
        "a failed login wrote {}: {}",
        config.display(),
        fs::read_to_string(&config).unwrap_or_default()
    );

    // --password-stdin: stored as Helm stores it (docker config.json, base64 user:pass).
    let out = sb.run_stdin(
        &[
            "registry",
            "login",
            &host,
            "-u",
            "alice",
            "--password-stdin",
        ],
        "s3cret\n",
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out).trim(), "Login succeeded");
    assert!(
        !stdout(&out).contains("s3cret") && !stderr(&out).contains("s3cret"),
        "the password leaked: {}",
        describe(&out)
    );
    assert_eq!(mode(&config), 0o600, "credentials file mode");
    assert_eq!(
        mode(config.parent().unwrap()),
        0o700,
        "credentials dir mode"
    );
    let doc = read_json(&config);
    assert_eq!(
        doc["auths"][&host]["auth"].as_str(),
        Some(b64("alice:s3cret").as_str()),
        "{doc}"
    );

    // Now push and pull work.
    sb.ok(&["chart", "push", &reference]);
    let remote = get_manifest(&reg, "myrepo/mychart", "0.1.0");
    assert_eq!(remote.body, sb.ref_blob(&reference, "manifest"));
    sb.ok(&["chart", "rm", &reference]);
    sb.ok(&["chart", "prune"]);
    let out = sb.ok(&["chart", "pull", &reference]);
    assert!(out.contains("Status: Downloaded newer chart for"), "{out}");
    let tags = sb.ok(&["registry", "tags", &format!("{host}/myrepo/mychart")]);
    assert_eq!(tags.trim(), "0.1.0");

    // logout removes the entry; a second logout has nothing to remove.
    assert_eq!(
        sb.ok(&["registry", "logout", &host]).trim(),
        "Logout succeeded"
    );
    let doc = read_json(&config);
    assert!(doc["auths"].get(&host).is_none(), "{doc}");
    let line = sb.fails(&["registry", "logout", &host]);
    assert!(line.contains(&host), "{line}");
    let line = sb.fails(&["chart", "pull", &reference]);
    assert!(line.contains("registry login"), "{line}");
}

#[test]
fn login_with_p_warns_but_works() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let sb = Sandbox::new();
    let out = sb.run(&[
        "registry",
        "login",
        &reg.host(),
        "-u",
        "alice",
        "-p",
        "s3cret",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out).trim(), "Login succeeded");
    assert!(
        stderr(&out).contains("WARNING") && stderr(&out).contains("insecure"),
        "{}",
        describe(&out)
    );
    assert!(!stderr(&out).contains("s3cret"), "{}", describe(&out));
}

/// Drives `argv` on a fresh pseudo-terminal (its controlling terminal), answering each
/// prompt in turn; an answer is typed only once the terminal no longer echoes when
/// `wait_no_echo` is set for it. Returns the exit code and everything the terminal showed.
const PTY_DRIVER: &str = r#"
import fcntl, json, os, pty, select, subprocess, sys, termios, time

answers = json.loads(sys.argv[1])
argv = sys.argv[2:]
master, slave = pty.openpty()

def make_controlling_tty():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)

proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                        preexec_fn=make_controlling_tty, close_fds=True)
seen = b""
deadline = time.time() + 60

def pump(timeout):
    global seen
    ready, _, _ = select.select([master], [], [], timeout)
    if ready:
        try:
            data = os.read(master, 4096)
        except OSError:
            data = b""
        seen += data
        return len(data)
    return 0

def give_up(why):
    proc.kill()
    sys.stdout.buffer.write(seen)
    sys.stderr.write("pty driver: " + why + "\n")
    sys.exit(99)

pos = 0
for prompt, answer, wait_no_echo in answers:
    prompt = prompt.encode()
    while seen.find(prompt, pos) < 0:
        if time.time() > deadline:
            give_up("timed out waiting for %r" % prompt)
        if pump(0.05) == 0 and proc.poll() is not None:
            give_up("exited before %r" % prompt)
    pos = seen.find(prompt, pos) + len(prompt)
    if wait_no_echo:
        while termios.tcgetattr(slave)[3] & termios.ECHO:
            if time.time() > deadline or proc.poll() is not None:
                give_up("echo was never turned off")
            time.sleep(0.01)
    os.write(master, (answer + "\n").encode())

while proc.poll() is None:
    if time.time() > deadline:
        give_up("timed out waiting for exit")
    pump(0.05)
while pump(0.05):
    pass
sys.stdout.buffer.write(seen)
sys.exit(proc.returncode)
"#;

#[test]
fn interactive_login_prompts_on_a_terminal_without_echoing_the_password() {
    let reg = Registry::htpasswd("alice", "pty-s3cret");
    let host = reg.host();
    let sb = Sandbox::new();
    let answers = serde_json::json!([
        ["Username: ", "alice", false],
        ["Password: ", "pty-s3cret", true],
    ])
    .to_string();
    let mut cmd = sb.std_command("python3");
    cmd.arg("-c")
        .arg(PTY_DRIVER)
        .arg(&answers)
        .arg(Sandbox::bin())
        .arg("--home")
        .arg(sb.cache_home())
        .args(["registry", "login", &host]);
    let out = support::run_with_timeout(&mut cmd, std::time::Duration::from_secs(90));
    let screen = stdout(&out);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(screen.contains("Username: "), "{screen}");
    assert!(screen.contains("alice"), "the username is echoed: {screen}");
    assert!(
        !screen.contains("pty-s3cret"),
        "the password was echoed: {screen:?}"
    );
    assert!(screen.contains("Login succeeded"), "{screen}");
    let doc = read_json(&sb.registry_config());
    assert_eq!(
        doc["auths"][&host]["auth"].as_str(),
        Some(b64("alice:pty-s3cret").as_str())
    );
}

#[test]
fn login_without_a_terminal_or_password_fails_clearly() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let sb = Sandbox::new();
    let out = sb.run_stdin(&["registry", "login", &reg.host(), "-u", "alice"], "");
    let line = error_line_of(&out, "registry login (no tty)");
    assert!(line.contains("--password-stdin"), "{line}");
    assert!(!sb.registry_config().exists());
}

#[test]
fn a_helm_login_is_used_by_chartcache_and_the_other_way_round() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let host = reg.host();
    let Some(helm) = Helm::new() else {
        panic!("Helm v4 peer missing: {}", support::INSTALL_HINT)
    };
    let mut sb = Sandbox::new();
    sb.set_env("HELM_REGISTRY_CONFIG", helm.registry_config());

    // Helm logs in; chartcache pushes with that login.
    helm.login(&host, "alice", "s3cret")
        .unwrap_or_else(|e| panic!("{e}"));
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);
    sb.ok(&["chart", "push", &reference]);
    let chart_yaml = helm
        .show_chart(&reg.oci("myrepo/mychart:0.1.0"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(chart_yaml.contains("name: mychart"), "{chart_yaml}");

    // chartcache logs in (with --registry-config); a fresh Helm uses that file.
    let helm2 = Helm::require();
    let sb2 = Sandbox::new();
    let config = helm2.registry_config();
    let out = sb2.run_stdin(
        &[
            "--registry-config",
            config.to_str().unwrap(),
            "registry",
            "login",
            &host,
            "-u",
            "alice",
            "--password-stdin",
        ],
        "s3cret\n",
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        !sb2.registry_config().exists(),
        "--registry-config must win over HELM_REGISTRY_CONFIG"
    );
    let chart_yaml = helm2
        .show_chart(&reg.oci("myrepo/mychart:0.1.0"))
        .unwrap_or_else(|e| panic!("Helm did not use chartcache's login: {e}"));
    assert!(chart_yaml.contains("version: 0.1.0"), "{chart_yaml}");
}

#[test]
fn docker_config_credentials_are_a_fallback() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let host = reg.host();
    let docker = serde_json::json!({"auths": {host.clone(): {"auth": b64("alice:s3cret")}}});

    // $DOCKER_CONFIG/config.json
    let mut sb = Sandbox::new();
    let docker_dir = sb.path().join("docker");
    fs::create_dir_all(&docker_dir).unwrap();
    fs::write(docker_dir.join("config.json"), docker.to_string()).unwrap();
    sb.set_env("DOCKER_CONFIG", &docker_dir);
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);
    sb.ok(&["chart", "push", &reference]);
    assert!(!sb.registry_config().exists());

    // ~/.docker/config.json (no DOCKER_CONFIG)
    let sb = Sandbox::new();
    fs::create_dir_all(sb.home().join(".docker")).unwrap();
    fs::write(sb.home().join(".docker/config.json"), docker.to_string()).unwrap();
    let out = sb.ok(&["chart", "pull", &reference]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");

    // The Helm file wins over Docker's: a wrong password there is used, and refused.
    let wrong = serde_json::json!({"auths": {host.clone(): {"auth": b64("alice:nope")}}});
    fs::write(sb.registry_config(), wrong.to_string()).unwrap();
    let line = sb.fails(&["chart", "pull", &reference]);
    assert!(line.contains(&host), "{line}");
}

/// A `docker-credential-test` helper keeping one credential in `$CREDS_DIR/entry.json` and
/// logging each action to `$CREDS_DIR/calls.log`.
const CRED_HELPER: &str = r#"#!/bin/sh
set -e
dir="${CHARTCACHE_TEST_CREDS_DIR:?}"
echo "$1" >> "$dir/calls.log"
case "$1" in
  store)
    cat > "$dir/entry.json"
    ;;
  get)
    host=$(cat)
    if [ -f "$dir/entry.json" ] && grep -qF "\"ServerURL\":\"$host\"" "$dir/entry.json"; then
      cat "$dir/entry.json"
    else
      echo "credentials not found in native keychain"
      exit 1
    fi
    ;;
  erase)
    host=$(cat)
    if [ -f "$dir/entry.json" ] && grep -qF "\"ServerURL\":\"$host\"" "$dir/entry.json"; then
      rm "$dir/entry.json"
    else
      echo "credentials not found in native keychain"
      exit 1
    fi
    ;;
  *)
    exit 2
    ;;
esac
"#;

#[test]
fn a_credential_helper_named_by_creds_store_is_used() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let host = reg.host();
    let mut sb = Sandbox::new();
    let bin = sb.path().join("bin");
    let creds = sb.path().join("creds");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(&creds).unwrap();
    let helper = bin.join("docker-credential-test");
    fs::write(&helper, CRED_HELPER).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.clone()];
    paths.extend(std::env::split_paths(&path));
    sb.set_env("PATH", std::env::join_paths(paths).unwrap());
    sb.set_env("CHARTCACHE_TEST_CREDS_DIR", &creds);
    fs::write(sb.registry_config(), r#"{"credsStore": "test"}"#).unwrap();

    login_stdin(&sb, &host, "alice", "s3cret");
    let entry = read_json(&creds.join("entry.json"));
    assert_eq!(entry["ServerURL"], host.as_str());
    assert_eq!(entry["Username"], "alice");
    assert_eq!(entry["Secret"], "s3cret");
    let config = fs::read_to_string(sb.registry_config()).unwrap();
    assert!(
        !config.contains(&b64("alice:s3cret")) && !config.contains("s3cret"),
        "the secret went to the file, not the helper: {config}"
    );

    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);
    sb.ok(&["chart", "push", &reference]);
    let calls = fs::read_to_string(creds.join("calls.log")).unwrap();
    assert!(calls.lines().any(|l| l == "get"), "{calls}");

    assert_eq!(
        sb.ok(&["registry", "logout", &host]).trim(),
        "Logout succeeded"
    );
    assert!(!creds.join("entry.json").exists(), "erase was not called");
    let calls = fs::read_to_string(creds.join("calls.log")).unwrap();
    assert_eq!(calls.lines().last(), Some("erase"), "{calls}");
    let line = sb.fails(&["chart", "push", &reference]);
    assert!(line.contains("registry login"), "{line}");
}

#[test]
fn token_registry_login_push_pull_tags() {
    let reg = Registry::token("bob", "hunter2");
    let host = reg.host();
    let sb = Sandbox::new();
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);

    let line = sb.fails(&["chart", "push", &reference]);
    assert!(
        line.contains(&format!("chartcache registry login {host}")),
        "{line}"
    );

    let out = sb.run_stdin(
        &["registry", "login", &host, "-u", "bob", "--password-stdin"],
        "wrong\n",
    );
    let line = error_line_of(&out, "registry login (token, wrong password)");
    assert!(line.contains(&host), "{line}");
    assert!(
        !sb.registry_config().exists(),
        "a failed login wrote credentials"
    );

    login_stdin(&sb, &host, "bob", "hunter2");
    let out = sb.ok(&["chart", "push", &reference]);
    assert!(out.contains("0.1.0: pushed to remote"), "{out}");
    let issuer = reg.token_issuer().expect("issuer");
    assert!(
        issuer.requests().iter().any(|r| r.status == 200
            && r.user.as_deref() == Some("bob")
            && r.granted
                .iter()
                .any(|g| g.contains("myrepo/mychart") && g.contains("push"))),
        "{:?}",
        issuer.requests()
    );

    let sb2_ref = format!("{host}/myrepo/mychart:0.2.0");
    sb.save("mychart", "0.2.0", &sb2_ref);
    sb.ok(&["chart", "push", &sb2_ref]);
    let tags = sb.ok(&["registry", "tags", &format!("{host}/myrepo/mychart")]);
    assert_eq!(tags.lines().collect::<Vec<_>>(), ["0.2.0", "0.1.0"]);

    sb.ok(&["chart", "rm", &reference, &sb2_ref]);
    sb.ok(&["chart", "prune"]);
    let out = sb.ok(&["chart", "pull", &reference]);
    assert!(out.contains("Status: Downloaded newer chart"), "{out}");
    sb.ok(&["chart", "verify"]);
}

#[test]
fn password_stdin_drops_one_crlf_and_debug_output_keeps_the_secret() {
    let reg = Registry::htpasswd("alice", "s3cret-XyZ");
    let host = reg.host();
    let sb = Sandbox::new();
    let out = sb.run_stdin(
        &[
            "registry",
            "login",
            &host,
            "-u",
            "alice",
            "--password-stdin",
        ],
        "s3cret-XyZ\r\n",
    );
    assert!(out.status.success(), "{}", describe(&out));
    let reference = format!("{host}/myrepo/mychart:0.1.0");
    sb.save("mychart", "0.1.0", &reference);
    let repo = format!("{host}/myrepo/mychart");
    for args in [
        vec!["--debug", "chart", "push", &reference],
        vec!["--debug", "registry", "tags", &repo],
        vec!["--debug", "chart", "pull", &reference],
    ] {
        let out = sb.run(&args);
        assert!(out.status.success(), "{}", describe(&out));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains("s3cret-XyZ"), "the secret leaked: {all}");
        assert!(
            !all.contains(&b64("alice:s3cret-XyZ")),
            "the encoded secret leaked: {all}"
        );
    }
}
