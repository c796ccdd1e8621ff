//! `--html FILE`: one page with a timeline picture per run — a row per node, the faults
//! as bands (cut links red, flaky network orange, node stopped grey), the workload as
//! dots (mail blue, rule edits green, quarantine operations purple, Bayes learns orange,
//! forgets brown), the final heal and
//! the moment of convergence as vertical lines.

use std::fmt::Write as _;

use crate::run::Outcome;
use crate::scenario::Fault;

const ROW_PX: u64 = 18;
const WIDTH_PX: u64 = 900;
const LEFT_PX: u64 = 50;

/// The whole page.
pub fn page(runs: &[Outcome]) -> String {
    let mut out = String::from(
        "<!doctype html><meta charset=utf-8><title>mxmesh-sim</title>\
         <style>body{font:13px sans-serif;margin:20px}h2{font-size:15px;margin:18px 0 4px}\
         .v{color:#b00}</style><h1>mxmesh-sim</h1>\
         <p>Rows are nodes. Red: the node has cut links; orange: every link is flaky; grey: \
         the node is stopped. Dots: mail (blue), rule edits (green), quarantine operations \
         (purple), Bayes learns (orange) and forgets (brown). Black line: final heal; green \
         line: every node has the same rules, index and Bayes corpus.</p>",
    );
    for r in runs {
        let _ = write!(
            out,
            "<h2>{} — seed {} — {} nodes — {}</h2>",
            r.scenario,
            r.seed,
            r.nodes,
            if r.violations.is_empty() {
                "OK".to_string()
            } else {
                format!("<span class=v>{} violations</span>", r.violations.len())
            }
        );
        out.push_str(&svg(r));
        for v in &r.violations {
            let _ = write!(out, "<div class=v>{}</div>", escape(v));
        }
    }
    out
}

fn svg(r: &Outcome) -> String {
    let end_ms = r.healed_at_ms + r.convergence_ms.unwrap_or(0) + 500;
    let x = |ms: u64| LEFT_PX + ms.min(end_ms) * WIDTH_PX / end_ms.max(1);
    let height = ROW_PX * r.nodes as u64 + 20;
    let mut s = format!(
        "<svg width={} height={height} xmlns='http://www.w3.org/2000/svg'>",
        LEFT_PX + WIDTH_PX + 10
    );
    for n in 0..r.nodes {
        let y = n as u64 * ROW_PX;
        let _ = write!(
            s,
            "<text x=2 y={}>mx{}</text><line x1={LEFT_PX} x2={} y1={} y2={} stroke=#ddd />",
            y + 13,
            n + 1,
            LEFT_PX + WIDTH_PX,
            y + 9,
            y + 9
        );
    }
    bands(r, &x, &mut s);
    for op in &r.ops {
        let color = match op.kind {
            "mail" => "#2a6bd1",
            "rule" => "#2a9d3a",
            "learn" => "#e67e22",
            "forget" => "#8b4513",
            _ => "#8e44ad",
        };
        let _ = write!(
            s,
            "<circle cx={} cy={} r=2.5 fill={color} />",
            x(op.at_ms),
            op.node as u64 * ROW_PX + 9
        );
    }
    let bottom = ROW_PX * r.nodes as u64;
    let _ = write!(
        s,
        "<line x1={0} x2={0} y1=0 y2={bottom} stroke=black /><text x={0} y={1}>heal</text>",
        x(r.healed_at_ms),
        bottom + 14
    );
    if let Some(c) = r.convergence_ms {
        let _ = write!(
            s,
            "<line x1={0} x2={0} y1=0 y2={bottom} stroke=#2a9d3a stroke-width=2 /><text x={1} y={2} fill=#2a9d3a>converged +{c} ms</text>",
            x(r.healed_at_ms + c),
            x(r.healed_at_ms + c) + 4,
            bottom + 14
        );
    }
    s.push_str("</svg>");
    s
}

/// Fault bands: each fault lasts until the next heal (or restart, for a stop).
fn bands(r: &Outcome, x: &dyn Fn(u64) -> u64, s: &mut String) {
    let next_heal = |from: u64| {
        r.timeline
            .iter()
            .find(|e| e.at_ms > from && e.fault == Fault::HealAll)
            .map_or(r.healed_at_ms, |e| e.at_ms)
    };
    let mut band = |node: usize, from: u64, to: u64, color: &str| {
        let _ = write!(
            s,
            "<rect x={} y={} width={} height={} fill={color} opacity=0.35 />",
            x(from),
            node as u64 * ROW_PX + 2,
            x(to).saturating_sub(x(from)).max(1),
            ROW_PX - 4
        );
    };
    for e in &r.timeline {
        match &e.fault {
            Fault::Cut { links } => {
                let mut nodes: Vec<usize> = links.iter().flat_map(|(a, b)| [*a, *b]).collect();
                nodes.sort_unstable();
                nodes.dedup();
                for n in nodes {
                    band(n, e.at_ms, next_heal(e.at_ms), "#d33");
                }
            }
            Fault::Flaky { .. } => {
                for n in 0..r.nodes {
                    band(n, e.at_ms, next_heal(e.at_ms), "#f39c12");
                }
            }
            Fault::Stop { node } | Fault::Crash { node } => {
                let back = r
                    .timeline
                    .iter()
                    .find(|s| {
                        s.at_ms > e.at_ms
                            && matches!(s.fault, Fault::Start { node: m, .. } if m == *node)
                    })
                    .map_or(r.healed_at_ms, |s| s.at_ms);
                band(*node, e.at_ms, back, "#777");
            }
            Fault::Skew { node, .. } => band(*node, e.at_ms, r.healed_at_ms, "#8e44ad"),
            Fault::Start { .. } | Fault::HealAll => {}
        }
    }
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
