//! Write throughput and commit latency of a three-manager store on loopback.
//!
//! Starts three in-process managers (real tonic servers on 127.0.0.1, plain
//! http, sled in a temp dir, default timings), then measures writes of one
//! ~256-byte object per batch: by 1 client and by 64 concurrent clients, on the
//! leader and on a follower (forwarded with `Raft.Propose`).
//!
//! `cargo run --release -p rswarm-raft --example bench_writes [writes_per_client_1] [writes_per_client_64]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use rswarm_raft::{Connector, Op, Store, StoreConfig};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

struct PlainConnector;

impl Connector for PlainConnector {
    fn channel(&self, addr: &str) -> Result<Channel, String> {
        Ok(Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_millis(500))
            .connect_lazy())
    }
}

async fn start(
    root: &std::path::Path,
    raft_id: u64,
) -> Result<(Store, String), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let cfg = StoreConfig::new(
        root.join(format!("manager-{raft_id}")),
        raft_id,
        addr.clone(),
    );
    let store = Store::open(cfg, Arc::new(PlainConnector)).await?;
    let service = store.service();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener).map(|conn| {
                // Small RPCs: do not let Nagle hold them back.
                conn.inspect(|stream| {
                    let _ = stream.set_nodelay(true);
                })
            }))
            .await;
    });
    Ok((store, addr))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn run(
    label: &str,
    store: &Store,
    clients: usize,
    per_client: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let value = vec![b'x'; 256];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        let value = value.clone();
        let label = label.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let op = Op::Put {
                    kind: "bench".into(),
                    id: format!("{label}-{c}-{i}"),
                    value: value.clone(),
                    expect_version: None,
                };
                let t = Instant::now();
                store.write(vec![op]).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, rswarm_raft::StoreError>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = started.elapsed();
    all.sort();
    println!(
        "{label:<28} {clients:>3} clients {:>6} writes  {:>8.0} writes/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let single: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(500);
    let per_client: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50);

    let root = tempfile::tempdir()?;
    let (first, _) = start(root.path(), 1).await?;
    first.bootstrap().await?;
    let mut stores = vec![first];
    for id in [2, 3] {
        let (store, addr) = start(root.path(), id).await?;
        stores[0].add_manager(id, addr).await?;
        stores.push(store);
    }
    let leader = stores
        .iter()
        .find(|s| s.is_leader())
        .cloned()
        .ok_or("no leader")?;
    let follower = stores
        .iter()
        .find(|s| !s.is_leader())
        .cloned()
        .ok_or("no follower")?;
    println!("3 managers on loopback, sled in {}", root.path().display());

    run("leader", &leader, 1, single).await?;
    run("follower (forwarded)", &follower, 1, single).await?;
    run("leader", &leader, 64, per_client).await?;
    run("follower (forwarded)", &follower, 64, per_client).await?;

    for store in stores {
        store.shutdown().await?;
    }
    Ok(())
}
