//! Executors that are build engines elsewhere: a BuildKit daemon per architecture
//! (`buildkit="tcp://…"`, driven with `buildctl --addr`, the engine `docker buildx` uses for
//! multi-node builds) and a Kubernetes cluster (`kubernetes="NAMESPACE"`: a Job per build with
//! `nodeSelector: kubernetes.io/arch`, running kaniko).
//!
//! Neither is installed where hephy is developed: their commands and the Job manifest are
//! rendered exactly and unit-tested here, never run by the test suite. On a machine with
//! `buildctl` or `kubectl`, hephy runs them and reads the digest back.
//!
//! The Kubernetes build, step by step: `kubectl apply` the Job (an init container waits for the
//! build context; kaniko builds from it, pushes, and writes the digest to its termination
//! message); wait for the pod's init container; `kubectl cp` the context tar into it and mark it
//! ready; `kubectl wait` for the Job to complete; read the digest from the terminated kaniko
//! container; delete the Job.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::builders::{self, Builder, Rendered, Request};

/// How long a Kubernetes build may take before hephy gives up on it.
pub(crate) const KUBERNETES_TIMEOUT: &str = "30m";

/// The kaniko image Kubernetes builds run.
pub(crate) const KANIKO_IMAGE: &str = "gcr.io/kaniko-project/executor:v1.23.2";

/// `buildctl --addr ADDR build …` for `request`.
pub(crate) fn buildkit(addr: &str, request: &Request) -> Rendered {
    let mut rendered = builders::render(Builder::Buildkit, request).unwrap_or_else(|| Rendered {
        program: "buildctl".to_owned(),
        args: Vec::new(),
        env: Vec::new(),
        dir: None,
    });
    rendered.args.splice(0..0, ["--addr".to_owned(), addr.to_owned()]);
    rendered
}

/// A Kubernetes object name for a node (`curl@linux/arm64` → `hephy-curl-linux-arm64-<key>`).
pub(crate) fn job_name(node_id: &str, key_hex: &str) -> String {
    let mut name: String = node_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-');
    let short: String = name.chars().take(40).collect();
    format!("hephy-{}-{}", short.trim_end_matches('-'), &key_hex[..12.min(key_hex.len())])
}

/// The architecture a platform's nodes are selected by (`linux/arm64/v8` → `arm64`).
fn arch(platform: &str) -> &str {
    platform.split('/').nth(1).unwrap_or("amd64")
}

/// The Job that builds `request` with kaniko on a node of its architecture. The context arrives
/// as `/workspace/context.tar.gz`; the Dockerfile path is relative to the context.
pub(crate) fn kubernetes_job(
    namespace: &str,
    name: &str,
    request: &Request,
    dockerfile_in_context: &str,
) -> Value {
    let mut args = vec![
        "--context=tar:///workspace/context.tar.gz".to_owned(),
        format!("--dockerfile={dockerfile_in_context}"),
        format!("--destination={}", request.destination),
        format!("--custom-platform={}", request.platform),
        "--digest-file=/dev/termination-log".to_owned(),
        "--reproducible".to_owned(),
    ];
    if let Some(target) = &request.target {
        args.push(format!("--target={target}"));
    }
    for (k, v) in &request.build_args {
        args.push(format!("--build-arg={k}={v}"));
    }
    if request.insecure {
        args.extend(["--insecure".to_owned(), "--insecure-pull".to_owned()]);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { "app.kubernetes.io/managed-by": "hephy" },
        },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": { "labels": { "app.kubernetes.io/managed-by": "hephy", "hephy.dev/job": name } },
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": { "kubernetes.io/arch": arch(&request.platform) },
                    "volumes": [{ "name": "workspace", "emptyDir": {} }],
                    "initContainers": [{
                        "name": "context",
                        "image": "busybox:1.36",
                        "command": ["sh", "-c", "until [ -f /workspace/.ready ]; do sleep 1; done"],
                        "volumeMounts": [{ "name": "workspace", "mountPath": "/workspace" }],
                    }],
                    "containers": [{
                        "name": "kaniko",
                        "image": KANIKO_IMAGE,
                        "args": args,
                        "volumeMounts": [
                            { "name": "workspace", "mountPath": "/workspace" },
                        ],
                    }],
                },
            },
        },
    })
}

fn kubectl(args: &[&str]) -> Rendered {
    Rendered {
        program: "kubectl".to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: Vec::new(),
        dir: None,
    }
}

/// The commands of a Kubernetes build, in order. `POD` stands for the Job's pod, which the
/// third prints (`pod=NAME`); the seventh prints the digest (`digest=sha256:…`).
pub(crate) fn kubernetes_steps(
    namespace: &str,
    name: &str,
    job_file: &Path,
    context_tar: &Path,
) -> Vec<Rendered> {
    let selector = format!("hephy.dev/job={name}");
    let tar = context_tar.display().to_string();
    vec![
        kubectl(&["apply", "--namespace", namespace, "-f", &job_file.display().to_string()]),
        kubectl(&[
            "wait",
            "--namespace",
            namespace,
            "--for=jsonpath={.status.initContainerStatuses[0].state.running}",
            "pod",
            "--selector",
            &selector,
            "--timeout=10m",
        ]),
        kubectl(&[
            "get",
            "pod",
            "--namespace",
            namespace,
            "--selector",
            &selector,
            "-o",
            "jsonpath=pod={.items[0].metadata.name}{\"\\n\"}",
        ]),
        kubectl(&["cp", "--namespace", namespace, "-c", "context", &tar, "POD:/workspace/context.tar.gz"]),
        kubectl(&[
            "exec",
            "--namespace",
            namespace,
            "-c",
            "context",
            "POD",
            "--",
            "touch",
            "/workspace/.ready",
        ]),
        kubectl(&[
            "wait",
            "--namespace",
            namespace,
            "--for=condition=complete",
            &format!("job/{name}"),
            &format!("--timeout={KUBERNETES_TIMEOUT}"),
        ]),
        kubectl(&[
            "get",
            "pod",
            "POD",
            "--namespace",
            namespace,
            "-o",
            "jsonpath=digest={.status.containerStatuses[?(@.name==\"kaniko\")].state.terminated.message}{\"\\n\"}",
        ]),
        kubectl(&["delete", "job", name, "--namespace", namespace, "--wait=false"]),
    ]
}

/// The working files of a Kubernetes build.
pub(crate) struct KubernetesFiles {
    pub(crate) job: PathBuf,
    pub(crate) context: PathBuf,
}

impl KubernetesFiles {
    pub(crate) fn in_dir(work: &Path) -> KubernetesFiles {
        KubernetesFiles { job: work.join("job.json"), context: work.join("context.tar.gz") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::tests::{line, request};

    #[test]
    fn buildkit_executors_address_their_daemon() {
        assert_eq!(
            line(&buildkit("tcp://buildkitd-arm64:1234", &request())),
            "buildctl --addr tcp://buildkitd-arm64:1234 build --frontend dockerfile.v0 --local context=/repo/curl \
             --local dockerfile=/repo/curl/build --opt filename=Dockerfile --opt platform=linux/arm64 \
             --opt target=release --opt build-arg:BASE=reg.example/base@sha256:00 \
             --output type=image,name=reg.example/team/curl:hephy-0123,push=true,rewrite-timestamp=true \
             --metadata-file /state/digest"
        );
    }

    #[test]
    fn kubernetes_jobs_pin_the_architecture_and_run_kaniko() {
        let name = job_name("curl@linux/arm64", "0123456789abcdef");
        assert_eq!(name, "hephy-curl-linux-arm64-0123456789ab");
        let job = kubernetes_job("builds", &name, &request(), "build/Dockerfile");
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/arch": "arm64"}));
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(pod["containers"][0]["image"], KANIKO_IMAGE);
        assert_eq!(
            pod["containers"][0]["args"],
            json!([
                "--context=tar:///workspace/context.tar.gz",
                "--dockerfile=build/Dockerfile",
                "--destination=reg.example/team/curl:hephy-0123",
                "--custom-platform=linux/arm64",
                "--digest-file=/dev/termination-log",
                "--reproducible",
                "--target=release",
                "--build-arg=BASE=reg.example/base@sha256:00"
            ])
        );
        let steps =
            kubernetes_steps("builds", &name, Path::new("/w/job.json"), Path::new("/w/context.tar.gz"));
        let lines: Vec<String> = steps.iter().map(line).collect();
        assert_eq!(lines[0], "kubectl apply --namespace builds -f /w/job.json");
        assert_eq!(
            lines[3],
            "kubectl cp --namespace builds -c context /w/context.tar.gz POD:/workspace/context.tar.gz"
        );
        assert_eq!(
            lines[5],
            format!("kubectl wait --namespace builds --for=condition=complete job/{name} --timeout=30m")
        );
        assert_eq!(lines.len(), 8);
    }

    #[test]
    fn long_or_odd_ids_make_valid_names() {
        let name = job_name(&format!("{}.debug@linux/arm/v7", "x".repeat(80)), "abcdef0123456789");
        assert!(name.len() <= 63, "{name}");
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{name}");
    }
}
