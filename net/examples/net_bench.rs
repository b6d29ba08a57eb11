//! Times pod network set-up and teardown; run by benches/net.sh inside a private network and
//! mount namespace (it creates real namespaces, interfaces and iptables rules).
//!
//!     net_bench RUNS WORKDIR
//!
//! Prints one JSON object per case: {"case", "setup_ms": [...], "teardown_ms": [...]}.

use std::path::Path;
use std::time::Instant;

use rkt_net::{resolve_ports, ImagePort, NetConfig, NetRequest, PodNetwork, PortRequest};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).map_or(Ok(20), |r| r.parse())?;
    let work = Path::new(args.get(2).ok_or("usage: net_bench RUNS WORKDIR")?);
    let config = NetConfig::load(&work.join("etc"), &work.join("lib"))?;
    let image = [ImagePort {
        name: "http".into(),
        protocol: "tcp".into(),
        port: 80,
    }];
    let one_port = resolve_ports(&[PortRequest::parse("http:8080")?], &image)?;
    let cases: [(&str, &str, &[rkt_net::PortMapping]); 5] = [
        ("host", "host", &[]),
        ("none", "none", &[]),
        ("default-restricted", "default-restricted", &[]),
        ("default", "default", &[]),
        ("default + 1 port", "default", &one_port),
    ];
    let mut n = 0u32;
    for (case, net, ports) in cases {
        let req = NetRequest::parse(&[net.to_string()])?;
        let (mut setup, mut teardown) = (Vec::new(), Vec::new());
        for i in 0..=runs {
            n += 1;
            let id = format!("{n:08x}-0000-4000-8000-000000000000");
            let dir = work.join("pods").join(&id);
            std::fs::create_dir_all(&dir)?;
            let netns = Path::new("/run/netns").join(&id);
            let t = Instant::now();
            let pod = PodNetwork::setup(&config, &id, &netns, &req, ports, &dir)?;
            let s = t.elapsed();
            let t = Instant::now();
            PodNetwork::teardown_from_dir(&dir)?;
            let d = t.elapsed();
            drop(pod);
            if i > 0 {
                // The first run warms the page cache for the plugin binaries.
                setup.push(s.as_secs_f64() * 1e3);
                teardown.push(d.as_secs_f64() * 1e3);
            }
        }
        println!(
            "{}",
            serde_json::json!({"case": case, "setup_ms": setup, "teardown_ms": teardown})
        );
    }
    Ok(())
}
