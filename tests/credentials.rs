//! Registry credentials as users keep them, against a real registry on 127.0.0.1 that wants a
//! login: none configured fails the node saying so; `auths` in `$DOCKER_CONFIG/config.json`
//! and a `docker-credential-<helper>` named by `credHelpers` both work; the password is never
//! printed or stored.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Repo;
use common::registry::Registry;

const PASSWORD: &str = "wonder-land-7e1b";

fn quickstart(registry: &Registry) -> Repo {
    Repo::quickstart_pushing_to(&registry.address(), "")
}

#[test]
#[ignore = "needs buildah, skopeo, docker-registry and htpasswd (installed by .ci/run)"]
fn logins_come_from_docker_config_and_credential_helpers() {
    common::registry::require_image_tools();
    common::require(&["htpasswd"], "apt-get install apache2-utils");
    let registry = Registry::start_with_login("alice", PASSWORD);
    let config = tempfile::tempdir().unwrap();
    let docker_config = config.path().display().to_string();

    // No login configured: the node fails and says what to do.
    let repo = quickstart(&registry);
    let run = repo.run_with(&["run", "-f", "hephy.kdl"], &[("DOCKER_CONFIG", &docker_config)]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stdout.contains("asks for a login and none is configured"), "{}", run.stdout);

    // `auths`: the base64 login docker login writes.
    let auth = {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s 'alice:{PASSWORD}' | base64 -w0")])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    std::fs::write(
        config.path().join("config.json"),
        format!("{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}", registry.address()),
    )
    .unwrap();
    let repo = quickstart(&registry);
    let run = repo.run_with(&["run", "-f", "hephy.kdl"], &[("DOCKER_CONFIG", &docker_config)]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD) && !run.stdout.contains(&auth));

    // A credential helper, as ecr-login is used: found on PATH, asked over stdin.
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-hephytest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = {} ] || exit 1\necho '{{\"ServerURL\":\"'$server'\",\"Username\":\"alice\",\"Secret\":\"{PASSWORD}\"}}'\n",
            registry.address()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        config.path().join("config.json"),
        format!("{{\"credHelpers\": {{\"{}\": \"hephytest\"}}}}", registry.address()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let repo = quickstart(&registry);
    repo.write("base/rootfs/etc/motd", "built with a helper's login\n");
    let run = repo.run_with(
        &["run", "-f", "hephy.kdl", "--format", "json"],
        &[("DOCKER_CONFIG", &docker_config), ("PATH", &path)],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.json()["built"].as_u64().unwrap() > 0, "{}", run.stdout);
    // Never stored: not in the state, not in any log.
    let state = std::fs::read(repo.path().join(".hephy/state.db")).unwrap();
    assert!(!state.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()));
    for entry in std::fs::read_dir(repo.path().join(".hephy/logs/1")).unwrap().flatten() {
        if entry.path().is_file() {
            assert!(!std::fs::read_to_string(entry.path()).unwrap_or_default().contains(PASSWORD));
        }
    }
}
