//! A sign-in page on 127.0.0.1, as a captive portal or a proxy serving a web app puts one in a
//! registry's place: every request, whatever its method and path, is answered `200` with the
//! same HTML page.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The page every request gets.
pub const PAGE: &str =
    "<!doctype html><html><body><h1>Welcome</h1><p>Sign in to use this network.</p></body></html>\n";

/// A running portal; stopped on drop.
pub struct Portal {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Portal {
    pub fn start() -> Portal {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                std::thread::spawn(move || {
                    let _ = answer(client);
                });
            }
        });
        Portal { port, stop }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one request (its body too, so an upload is not cut off) and answers it with the page.
fn answer(client: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut method = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if method.is_empty() {
            method = line.split_whitespace().next().unwrap_or_default().to_owned();
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    std::io::copy(&mut reader.by_ref().take(length), &mut std::io::sink())?;
    let mut client = client;
    client.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            PAGE.len()
        )
        .as_bytes(),
    )?;
    if method != "HEAD" {
        client.write_all(PAGE.as_bytes())?;
    }
    client.shutdown(Shutdown::Both)
}
