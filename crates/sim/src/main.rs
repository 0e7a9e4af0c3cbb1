//! `clawfleet-sim`: the fleet simulation (docs/benchmarks.md). For each size: a cold start
//! against the RegisterTaskDefinition floor, the reconciles' AWS calls per agent, one idle
//! resync's calls and CPU, and the controller's heap next to the process RSS; then, at one
//! size, a fleet-wide image change paced by rollout; and a stress with the quotas lifted,
//! reported apart. Prints Markdown tables and writes SVG plots.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use sim::heap::Counting;
use sim::plot::{self, Line};
use sim::scenario::{
    Convergence, Fleet, IMAGE, IdleResync, Memory, NEW_IMAGE, SimError, Simulation, wave_floor,
};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[derive(Debug, Parser)]
#[command(about = "Simulates a clawfleet fleet against an in-memory AWS on a virtual clock")]
struct Args {
    /// Fleet sizes of the cold starts, with AWS's quotas (5,000 IAM roles per account: larger
    /// fleets spread over accounts of 5,000).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    sizes: Vec<usize>,
    /// The size of the fleet-wide image change (0: none), on a fleet of its own.
    #[arg(long, default_value_t = 5000)]
    wave: usize,
    /// Replacements at once in the image change (`--max-concurrent-replacements`); several
    /// values run the change once each.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    max_concurrent_replacements: Vec<usize>,
    /// How long (virtual) an image change may run before it is reported unfinished.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    wave_limit: std::time::Duration,
    /// The stress with the quotas lifted (0: none).
    #[arg(long, default_value_t = 100_000)]
    stress: usize,
    /// The resync interval of the image change and of the stress, whose runs last virtual
    /// hours: each resync plans the whole fleet, which at these sizes is most of the real
    /// time of the run (`--resync-interval` of the controller; the sizes run with its
    /// default, 60 s).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    long_resync_interval: std::time::Duration,
    /// Agents per fake (the fake scans its lists on every call).
    #[arg(long, default_value_t = 500)]
    stress_shard: usize,
    /// Controller workers (`--workers`).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Other teams' access points on the file system.
    #[arg(long, default_value_t = 0)]
    foreign_access_points: usize,
    /// Where the SVG plots go (none: no plots).
    #[arg(long)]
    plots: Option<PathBuf>,
}

/// Agents one account holds with a task role each: IAM's role quota, 5,000 at most.
const ACCOUNT_AGENTS: usize = 5000;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn per_agent(calls: &BTreeMap<String, u64>, agents: usize) -> BTreeMap<String, f64> {
    calls
        .iter()
        .map(|(op, n)| (op.clone(), *n as f64 / agents.max(1) as f64))
        .collect()
}

struct Run {
    cold: Convergence,
    idle: IdleResync,
    memory: Memory,
    waves: Vec<(usize, Convergence, (f64, f64))>,
}

async fn run(
    fleet: Fleet,
    waves: &[usize],
    wave_limit: std::time::Duration,
) -> Result<Run, SimError> {
    let agents = fleet.agents;
    eprintln!("simulating {agents} agents");
    let sim = Simulation::start(fleet.clone());
    let cold = sim.converge(IMAGE, fleet.floor()).await?;
    eprintln!(
        "  cold start: {:.0} virtual s (floor {:.0}), {:.1} s real",
        cold.seconds, cold.floor, cold.wall
    );
    let idle = sim.idle_resync().await?;
    let memory = Memory::now();
    let mut out = Vec::new();
    let mut sim = sim;
    for (k, cap) in waves.iter().enumerate() {
        // A restart with another `--max-concurrent-replacements`, on the same account and
        // table, then a new image for every agent.
        sim = sim.restart(*cap).await;
        let image = format!("{NEW_IMAGE}-{k}");
        let floors = wave_floor(agents, *cap, &fleet.latencies);
        let wave = sim
            .converge_within(&image, floors.0.max(floors.1), Some(wave_limit))
            .await?;
        eprintln!(
            "  image change at {cap} at once: {:.0} virtual s (floors {:.0}, {:.0}), {:.1} s real",
            wave.seconds, floors.0, floors.1, wave.wall
        );
        out.push((*cap, wave, floors));
    }
    sim.stop().await;
    Ok(Run {
        cold,
        idle,
        memory,
        waves: out,
    })
}

fn print_cold(runs: &[&Run]) {
    println!(
        "| agents | cold start (virtual) | floor | share of the floor's rate | throttled | reconcile errors | full resync rounds during it | real time | CPU |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in runs {
        let c = &r.cold;
        let duration = if c.converged {
            format!("{:.0} s", c.seconds)
        } else {
            format!(
                "not converged: {} Running after {:.0} s",
                c.curve.last().map_or(0, |p| p.1),
                c.seconds
            )
        };
        println!(
            "| {} | {duration} | {:.0} s | {:.3} | {} | {} | {} | {:.1} s | {:.1} s |",
            c.agents,
            c.floor,
            c.of_floor(),
            c.throttled,
            c.reconcile_errors,
            c.resyncs,
            c.wall,
            c.cpu.process
        );
    }
}

fn print_per_agent(runs: &[&Run]) {
    let mut ops: Vec<String> = runs
        .iter()
        .flat_map(|r| r.cold.calls.keys().cloned())
        .collect();
    ops.sort();
    ops.dedup();
    print!("| operation |");
    for r in runs {
        print!(" {} agents |", r.cold.agents);
    }
    print!("\n| --- |");
    for _ in runs {
        print!(" --- |");
    }
    println!();
    for op in ops.iter().chain(std::iter::once(&"all".to_owned())) {
        print!("| {op} |");
        for r in runs {
            let n = if op == "all" {
                r.cold.calls.values().sum::<u64>()
            } else {
                r.cold.calls.get(op).copied().unwrap_or(0)
            };
            print!(" {:.2} |", n as f64 / r.cold.agents.max(1) as f64);
        }
        println!();
    }
}

fn print_idle(runs: &[&Run]) {
    println!(
        "| agents | round | reads | by operation | agents' items read | enqueued | planned (unchanged) | controller CPU | process CPU (the fake's part) | real time | controller CPU: snapshot, items, plans (with the snapshot's drop) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in runs {
        let i = &r.idle;
        let rounds = [
            ("light", &i.parts, i.enqueued),
            ("full (the relist)", &i.relist, 0),
        ];
        for (round, parts, enqueued) in rounds {
            let cpu = parts.total;
            println!(
                "| {} | {round} | {} | {:?} | {}{} | {} | {} ({}) | {:.0} ms | {:.0} ms ({:.0} ms) | {:.0} ms | {:.0}, {:.0}, {:.0} ms |",
                r.cold.agents,
                parts.calls.values().sum::<u64>(),
                parts.calls,
                parts.read,
                if parts.full { " (Scan)" } else { "" },
                enqueued,
                parts.planned.planned,
                parts.planned.unchanged,
                cpu.controller() * 1000.0,
                cpu.process * 1000.0,
                cpu.fake * 1000.0,
                parts.wall * 1000.0,
                parts.snapshot.controller() * 1000.0,
                parts.scan.controller() * 1000.0,
                parts.plans.controller() * 1000.0,
            );
        }
    }
    println!(
        "\nThe first resync after convergence (a full round, planning every agent whose status changed since the last), controller CPU: {}.",
        runs.iter()
            .map(|r| format!(
                "{:.0} ms at {}",
                r.idle.first.controller() * 1000.0,
                r.cold.agents
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn print_memory(runs: &[&Run]) {
    println!(
        "| agents | controller heap | controller heap, peak | a relist's items read, fleet snapshot | fake AWS and table | process RSS | RSS peak |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in runs {
        let m = &r.memory;
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.1}, {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            r.cold.agents,
            mib(m.controller),
            mib(m.controller_peak),
            mib(r.idle.relist.scan_bytes),
            mib(r.idle.relist.fleet_bytes),
            mib(m.fake),
            mib(m.rss),
            mib(m.rss_peak)
        );
    }
}

fn print_waves(runs: &[&Run]) {
    println!(
        "| agents | replacements at once | duration (virtual) | RegisterTaskDefinition floor | pacing floor (stop + start per round) | share of the binding floor's rate | throttled | reconcile errors | calls per agent | real time |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for r in runs {
        for (cap, w, (register, pacing)) in &r.waves {
            let duration = if w.converged {
                format!("{:.0} s", w.seconds)
            } else {
                format!(
                    "not converged: {} on the new image after {:.0} s",
                    w.curve.last().map_or(0, |p| p.1),
                    w.seconds
                )
            };
            println!(
                "| {} | {cap} | {duration} | {register:.0} s | {pacing:.0} s | {:.3} | {} | {} | {:.1} | {:.1} s |",
                w.agents,
                w.of_floor(),
                w.throttled,
                w.reconcile_errors,
                w.calls.values().sum::<u64>() as f64 / w.agents.max(1) as f64,
                w.wall
            );
        }
    }
}

/// The image change's calls per agent by operation, one column per cap.
fn print_wave_calls(runs: &[&Run]) {
    let waves: Vec<&(usize, Convergence, (f64, f64))> =
        runs.iter().flat_map(|r| r.waves.iter()).collect();
    let mut ops: Vec<&String> = waves.iter().flat_map(|(_, w, _)| w.calls.keys()).collect();
    ops.sort();
    ops.dedup();
    print!("| operation |");
    for (cap, w, _) in &waves {
        print!(" {} agents, {cap} at once |", w.agents);
    }
    print!("\n| --- |");
    for _ in &waves {
        print!(" --- |");
    }
    println!();
    for op in ops {
        print!("| {op} |");
        for (_, w, _) in &waves {
            let n = w.calls.get(op).copied().unwrap_or(0);
            print!(" {:.2} |", n as f64 / w.agents.max(1) as f64);
        }
        println!();
    }
}

fn wave_plot(dir: &std::path::Path, runs: &[&Run]) -> Result<(), plot::PlotError> {
    let mut lines = Vec::new();
    for r in runs {
        for (cap, w, (register, pacing)) in &r.waves {
            lines.push(Line {
                label: format!(
                    "{} agents, {cap} at once: Running on the new image",
                    w.agents
                ),
                points: w.curve.iter().map(|(t, n)| (*t, *n as f64)).collect(),
                reference: false,
            });
            let floor = register.max(*pacing);
            lines.push(Line {
                label: format!("floor at {cap} at once"),
                points: vec![(0.0, 0.0), (floor, w.agents as f64)],
                reference: true,
            });
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    plot::lines(
        &dir.join("sim-image-change.svg"),
        "Fleet-wide image change: agents Running on the new image",
        "seconds",
        "agents on the new image",
        &lines,
    )
}

fn plots(dir: &std::path::Path, runs: &[&Run], wave: Option<&Run>) -> Result<(), plot::PlotError> {
    let _ = std::fs::create_dir_all(dir);
    let mut cold = Vec::new();
    for r in runs {
        cold.push(Line {
            label: format!("{} agents Running", r.cold.agents),
            points: r.cold.curve.iter().map(|(t, n)| (*t, *n as f64)).collect(),
            reference: false,
        });
    }
    // Each run's floor (its accounts' RegisterTaskDefinition buckets, then the last task's
    // start), as a line from the start to the floor at its size.
    for r in runs {
        cold.push(Line {
            label: format!("floor, {} agents", r.cold.agents),
            points: vec![(0.0, 0.0), (r.cold.floor, r.cold.agents as f64)],
            reference: true,
        });
    }
    plot::lines(
        &dir.join("sim-cold-start.svg"),
        "Cold start: agents Running over virtual time",
        "seconds",
        "agents Running",
        &cold,
    )?;
    let mut by_n = Vec::new();
    let mut ops: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in runs {
        let per = per_agent(&r.cold.calls, r.cold.agents);
        by_n.push((r.cold.agents as f64, per.values().sum::<f64>()));
        for (op, v) in per {
            ops.entry(op).or_default().push((r.cold.agents as f64, v));
        }
    }
    let mut lines = vec![Line {
        label: "all calls".into(),
        points: by_n,
        reference: false,
    }];
    lines.extend(
        ops.into_iter()
            .filter(|(_, p)| p.iter().any(|(_, v)| *v >= 1.5))
            .map(|(op, points)| Line {
                label: op,
                points,
                reference: false,
            }),
    );
    plot::lines(
        &dir.join("sim-calls-per-agent.svg"),
        "AWS and DynamoDB calls per new agent against fleet size",
        "agents",
        "calls per agent",
        &lines,
    )?;
    match wave {
        Some(wave) => wave_plot(dir, &[wave]),
        None => Ok(()),
    }
}

fn main() {
    let args = Args::parse();
    if !sim::heap::counting() {
        eprintln!("warning: the counting allocator is not installed");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            std::process::exit(2);
        }
    };
    let result: Result<(), SimError> = runtime.block_on(async {
        let mut runs = Vec::new();
        for &n in args.sizes.iter().filter(|n| **n > 0) {
            // Past one account's IAM role quota the fleet spreads over accounts, each with its
            // own buckets and quotas, as cells would; the controller runs a worker set per
            // account.
            let accounts = n.div_ceil(ACCOUNT_AGENTS);
            let fleet = Fleet {
                workers: args.workers * accounts,
                accounts,
                quotas: sim::account::Quotas::AWS.times(accounts),
                shards: n.div_ceil(args.stress_shard.max(1)),
                foreign_access_points: args.foreign_access_points,
                ..Fleet::of(n)
            };
            runs.push(run(fleet, &[], args.wave_limit).await?);
        }
        // The image change on a fleet of its own, with the long resync interval.
        let wave = if args.wave > 0 && !args.max_concurrent_replacements.is_empty() {
            let fleet = Fleet {
                workers: args.workers,
                foreign_access_points: args.foreign_access_points,
                resync_interval: args.long_resync_interval,
                sample_every: std::time::Duration::from_secs(30),
                ..Fleet::of(args.wave)
            };
            Some(run(fleet, &args.max_concurrent_replacements, args.wave_limit).await?)
        } else {
            None
        };
        let stress = if args.stress > 0 {
            // One controller over cells of 5,000 agents per account: each account brings its
            // own ECS buckets, and the controller runs a worker set per account.
            let accounts = args.stress.div_ceil(ACCOUNT_AGENTS);
            let fleet = Fleet {
                workers: args.workers * accounts,
                shards: args.stress.div_ceil(args.stress_shard.max(1)),
                quotas: sim::account::Quotas::LIFTED,
                accounts,
                foreign_access_points: args.foreign_access_points,
                sample_every: std::time::Duration::from_secs(30),
                resync_interval: args.long_resync_interval,
                ..Fleet::of(args.stress)
            };
            Some(run(fleet, &[], args.wave_limit).await?)
        } else {
            None
        };
        let refs: Vec<&Run> = runs.iter().collect();
        println!("## Cold start\n");
        print_cold(&refs);
        println!("\n## Calls per new agent, by operation (reconciles only)\n");
        print_per_agent(&refs);
        println!("\n## One idle resync\n");
        print_idle(&refs);
        println!("\n## Heap\n");
        print_memory(&refs);
        if let Some(wave) = &wave {
            println!("\n## Fleet-wide image change\n");
            print_waves(&[wave]);
            println!("\nCalls per agent during the change, by operation:\n");
            print_wave_calls(&[wave]);
            println!(
                "\nThe same fleet's cold start, idle resync and heap before the change (a {} resync):\n",
                humantime::format_duration(args.long_resync_interval)
            );
            print_cold(&[wave]);
            println!();
            print_idle(&[wave]);
            println!();
            print_memory(&[wave]);
        }
        if let Some(stress) = &stress {
            let one = [stress];
            println!(
                "\n## Stress: {} agents, quotas lifted, over {} accounts\n",
                stress.cold.agents,
                stress.cold.agents.div_ceil(ACCOUNT_AGENTS)
            );
            print_cold(&one);
            println!();
            print_per_agent(&one);
            println!();
            print_idle(&one);
            println!();
            print_memory(&one);
        }
        if let Some(dir) = &args.plots
            && let Err(e) = plots(dir, &refs, wave.as_ref())
        {
            eprintln!("error: {e}");
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
