//! A fault-injecting HTTP proxy in front of a real registry: one request per connection, passed
//! through unchanged except for the fault it is told to inject.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What goes wrong.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// The first N writes (POST, PUT) answer 500.
    ServerErrors(usize),
    /// Every answer waits this long.
    Slow(Duration),
    /// The first blob upload is cut off halfway through its body.
    CutBlob,
    /// Every manifest write answers 500.
    ManifestWritesFail,
    /// Index (manifest list) writes to repositories whose path contains the hold's `repository`
    /// wait until the test releases them.
    HoldIndexes(&'static Hold),
}

/// An index push held by the proxy ([`Fault::HoldIndexes`]) until the test says go.
#[derive(Debug)]
pub struct Hold {
    /// Which repositories' index pushes are held (a part of their path).
    pub repository: &'static str,
    held: AtomicBool,
    released: AtomicBool,
}

impl Hold {
    /// A hold for the index pushes to `repository`, leaked: the proxy's threads share it.
    pub fn new(repository: &'static str) -> &'static Hold {
        Box::leak(Box::new(Hold {
            repository,
            held: AtomicBool::new(false),
            released: AtomicBool::new(false),
        }))
    }

    /// Whether an index push is waiting now (or has waited).
    pub fn holding(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Lets the held pushes (and every later one) through.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Holds the next pushes again.
    pub fn arm(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.released.store(false, Ordering::SeqCst);
    }
}

/// A running proxy; stopped on drop.
pub struct Proxy {
    pub port: u16,
    injected: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: u16, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let injected = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        {
            let (injected, stop) = (Arc::clone(&injected), Arc::clone(&stop));
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let (injected, seen) = (Arc::clone(&injected), Arc::clone(&seen));
                    std::thread::spawn(move || {
                        let _ = serve(client, upstream, fault, &injected, &seen);
                    });
                }
            });
        }
        Proxy { port, injected, stop }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many faults were injected so far.
    pub fn faults_injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    client: TcpStream,
    upstream: u16,
    fault: Fault,
    injected: &AtomicUsize,
    seen: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let end = line == b"\r\n";
        head.extend_from_slice(&line);
        if end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let request_line = text.lines().next().unwrap_or_default().to_owned();
    let length: usize = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let write = request_line.starts_with("PUT") || request_line.starts_with("POST");
    let number = if write { seen.fetch_add(1, Ordering::SeqCst) } else { usize::MAX };
    let mut client = client;
    let fail = |client: &mut TcpStream| {
        injected.fetch_add(1, Ordering::SeqCst);
        client.write_all(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
    };
    match fault {
        Fault::ServerErrors(n) if write && number < n => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            return fail(&mut client);
        }
        Fault::ManifestWritesFail
            if request_line.starts_with("PUT") && request_line.contains("/manifests/") =>
        {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            return fail(&mut client);
        }
        Fault::CutBlob
            if request_line.starts_with("PUT")
                && request_line.contains("/blobs/uploads/")
                && length > 1024
                && injected.load(Ordering::SeqCst) == 0 =>
        {
            injected.fetch_add(1, Ordering::SeqCst);
            let mut half = vec![0; length / 2];
            reader.read_exact(&mut half)?;
            return client.shutdown(Shutdown::Both);
        }
        Fault::Slow(pause) => {
            injected.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(pause);
        }
        Fault::HoldIndexes(hold)
            if request_line.starts_with("PUT")
                && request_line.contains(&format!("{}/manifests/", hold.repository))
                && text.to_ascii_lowercase().contains("image.index.v1+json") =>
        {
            injected.fetch_add(1, Ordering::SeqCst);
            hold.held.store(true, Ordering::SeqCst);
            while !hold.released.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        _ => {}
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    // One request per connection: ask upstream to close, and tell the client so too.
    let head = text.replace("\r\nConnection: keep-alive", "").replacen(
        "\r\n\r\n",
        "\r\nConnection: close\r\n\r\n",
        1,
    );
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |p| p + 4);
    let response_head = String::from_utf8_lossy(&response[..split]).into_owned();
    let response_head = if response_head.to_ascii_lowercase().contains("connection: close") {
        response_head
    } else {
        response_head.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)
    };
    client.write_all(response_head.as_bytes())?;
    client.write_all(&response[split..])?;
    client.shutdown(Shutdown::Both)
}
