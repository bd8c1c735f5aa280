//! A standalone S3 server (s3s-fs over a folder) for benchmarks and manual runs:
//!
//!     cargo run --release --example s3_server -- --root DIR --addr 127.0.0.1:9000 \
//!         [--access-key K --secret-key S] [--workers N] [--plain-list]
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
    /// Use s3s-fs's own ListObjects (O(N²) over pages) instead of the fast one.
    #[arg(long)]
    plain_list: bool,
}

fn main() {
    let a = Args::parse();
    let opts = s3::ServerOptions {
        addr: a.addr,
        access_key: a.access_key,
        secret_key: a.secret_key,
        workers: a.workers,
        fast_list: !a.plain_list,
    };
    let server = match s3::S3Server::start_with(&a.root, &opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "s3_server: cannot serve {} on {}: {e}",
                a.root.display(),
                opts.addr
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
