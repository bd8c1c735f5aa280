//! A standalone S3 server (s3s-fs over a folder) for benchmarks and manual runs:
//!
//!     cargo run --release --example s3_server -- --root DIR --addr 127.0.0.1:9000 \
//!         [--access-key K --secret-key S] [--workers N]
//!
//! Buckets are subfolders of DIR. Prints the endpoint on stdout once listening,
//! then serves until killed. Same code as the tests' server (tests/support/s3.rs).

#[allow(dead_code)]
#[path = "../tests/support/s3.rs"]
mod s3;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Folder to serve; each subfolder is a bucket.
    #[arg(long)]
    root: PathBuf,
    /// Address to listen on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: SocketAddr,
    #[arg(long, default_value = s3::ACCESS_KEY)]
    access_key: String,
    #[arg(long, default_value = s3::SECRET_KEY)]
    secret_key: String,
    /// Tokio worker threads (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    workers: usize,
}

fn main() {
    let a = Args::parse();
    let server =
        match s3::S3Server::start_with(&a.root, a.addr, &a.access_key, &a.secret_key, a.workers) {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "s3_server: cannot serve {} on {}: {e}",
                    a.root.display(),
                    a.addr
                );
                std::process::exit(1);
            }
        };
    println!("{}", server.endpoint);
    eprintln!(
        "s3_server: serving {} (access key {:?}); env for clients:",
        server.root.display(),
        server.access_key
    );
    for (k, v) in server.env() {
        eprintln!("  export {k}={v}");
    }
    server.wait();
}
