//! Benchmark of the embedded DNS server on loopback: queries per second and
//! latency percentiles for a service name, over UDP.
//!
//! ```text
//! cargo run --release -p rswarm-overlay --example bench_dns -- [--secs 5] [--clients 8] [--name api]
//! cargo run --release -p rswarm-overlay --example bench_dns -- --serve 30   # serve only, for dnsperf
//! ```
//!
//! The record table is a cluster of 50 services with 10 tasks each on one
//! network; clients are closed-loop (one query in flight each), bounded in time.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use rswarm_overlay::dns::{DnsServer, Records, ServiceRecord, TaskRecord, View};

const NET: &str = "bench-net";

fn records() -> Records {
    let mut r = Records::default();
    for s in 0..50u8 {
        let name = if s == 0 {
            "api".to_string()
        } else {
            format!("svc{s}")
        };
        r.services.push(ServiceRecord {
            name: name.clone(),
            stack: None,
            network_id: NET.into(),
            vip: Some(Ipv4Addr::new(10, 30, 255, s)),
            aliases: vec![],
        });
        for t in 0..10u8 {
            r.tasks.push(TaskRecord {
                service_name: name.clone(),
                stack: None,
                network_id: NET.into(),
                task_name: format!("{name}.{t}.task{s}x{t}"),
                addr: Ipv4Addr::new(10, 30, s, t + 2),
                aliases: vec![],
                healthy: true,
            });
        }
    }
    r
}

struct Args {
    secs: u64,
    clients: usize,
    name: String,
    serve: Option<u64>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        secs: 5,
        clients: 8,
        name: "api".into(),
        serve: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--secs" => a.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--clients" => a.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--name" => a.name = value()?,
            "--serve" => a.serve = Some(value()?.parse().map_err(|e| format!("--serve: {e}"))?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.secs = a.secs.clamp(1, 60);
    a.clients = a.clients.clamp(1, 256);
    Ok(a)
}

async fn client(server: SocketAddr, name: Name, until: Instant) -> Result<(Vec<u32>, u64), String> {
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    let mut latencies_us = Vec::new();
    let mut errors = 0u64;
    let mut buf = vec![0u8; 1500];
    let mut id: u16 = 0;
    while Instant::now() < until {
        id = id.wrapping_add(1);
        let mut msg = Message::query();
        msg.metadata.id = id;
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(name.clone(), RecordType::A));
        let bytes = msg.to_vec().map_err(|e| e.to_string())?;
        let started = Instant::now();
        sock.send(&bytes).await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
            Ok(Ok(n)) => match Message::from_vec(&buf[..n]) {
                Ok(m)
                    if m.metadata.id == id
                        && m.metadata.response_code == ResponseCode::NoError
                        && !m.answers.is_empty() =>
                {
                    latencies_us.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                _ => errors += 1,
            },
            _ => errors += 1,
        }
    }
    Ok((latencies_us, errors))
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), String> {
    let a = args()?;
    let server = DnsServer::new(vec![]).map_err(|e| e.to_string())?;
    server.set_records(records());
    let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    let view = View {
        networks: vec![NET.into()],
        stack: None,
        upstreams: vec![],
    };
    let handle = server.serve(view, udp, tcp).map_err(|e| e.to_string())?;
    let addr = handle.udp_addr();

    if let Some(secs) = a.serve {
        println!("serving on {addr} (udp) for {secs} s");
        println!(
            "e.g.: dnsperf -s {} -p {} -d <file with '{} A'> -l {} -c {}",
            addr.ip(),
            addr.port(),
            a.name,
            secs.saturating_sub(2).max(1),
            a.clients
        );
        tokio::time::sleep(Duration::from_secs(secs.min(600))).await;
        return Ok(());
    }

    let name = Name::from_ascii(&a.name).map_err(|e| e.to_string())?;
    // Warm up.
    let _ = client(
        addr,
        name.clone(),
        Instant::now() + Duration::from_millis(200),
    )
    .await;

    let started = Instant::now();
    let until = started + Duration::from_secs(a.secs);
    let mut joins = Vec::new();
    let name = Arc::new(name);
    for _ in 0..a.clients {
        let name = name.clone();
        joins.push(tokio::spawn(async move {
            client(addr, (*name).clone(), until).await
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for j in joins {
        let (lat, err) = j.await.map_err(|e| e.to_string())??;
        all.extend(lat);
        errors += err;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "bench_dns: {} A over UDP on loopback, {} clients, {:.1} s",
        a.name, a.clients, elapsed
    );
    println!(
        "queries: {} ok, {} errors; {:.0} queries/s",
        all.len(),
        errors,
        all.len() as f64 / elapsed
    );
    println!(
        "latency: p50 {} us, p99 {} us, max {} us",
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0)
    );
    drop(handle);
    Ok(())
}
