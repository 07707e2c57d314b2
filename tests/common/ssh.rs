//! A real OpenSSH server on 127.0.0.1 with a throwaway host key and client key, started per
//! test and stopped by its guard; the client side is an ssh config file hephy is pointed at
//! (`HEPHY_SSH_CONFIG`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running sshd; killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Panics unless sshd and ssh are here and we may run sshd (as root): the tests that call this
/// are `#[ignore]`d and run only when asked for, as in `.ci/run`.
pub fn require() {
    assert!(
        Path::new("/usr/sbin/sshd").is_file(),
        "this test needs sshd: apt-get install openssh-server (.ci/run installs it)"
    );
    crate::common::require(&["ssh", "ssh-keygen"], "apt-get install openssh-client openssh-server");
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    assert!(root, "this test runs sshd, which needs root");
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

impl Sshd {
    /// Starts sshd on a free port; logins as root with the throwaway key; `HEPHY_REMOTE_DIR`
    /// on the host is a folder of this guard's.
    pub fn start() -> Sshd {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("client"));
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).expect("authorized keys");
        std::fs::create_dir_all("/run/sshd").expect("privilege separation folder");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host\nPidFile {0}/sshd.pid\nAuthorizedKeysFile {0}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nSetEnv HEPHY_REMOTE_DIR={0}/remote\n",
                d.display()
            ),
        )
        .expect("sshd config");
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}/client\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
                d.display()
            ),
        )
        .expect("ssh config");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        let sshd = Sshd { child, port, dir };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    /// `root@127.0.0.1:PORT`.
    pub fn destination(&self) -> String {
        format!("root@127.0.0.1:{}", self.port)
    }

    /// The ssh config file that logs in with the throwaway key.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// The host's `HEPHY_REMOTE_DIR`.
    pub fn remote_dir(&self) -> PathBuf {
        self.dir.path().join("remote")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
