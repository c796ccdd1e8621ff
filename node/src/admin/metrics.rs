//! `/metrics` in the Prometheus text format (version 0.0.4), rendered from a table of rows:
//! each row is one metric family (name, help, type, value), and [`render`] writes every
//! family the same way: `# HELP`, `# TYPE`, then one sample line per value, each labelled
//! with this node's id first.

use std::fmt::Write;

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only ever grows (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// The samples of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Samples {
    /// One sample, labelled only with the node.
    One(u64),
    /// One sample per value of the label named first: `(label value, sample)`, in order.
    By(&'static str, Vec<(&'static str, u64)>),
}

/// One row of the table: a metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// The metric name (`mxmesh_…`).
    pub name: &'static str,
    /// The `# HELP` text, one line.
    pub help: &'static str,
    /// The `# TYPE`.
    pub kind: Kind,
    /// The samples.
    pub samples: Samples,
}

impl Metric {
    /// A counter row.
    pub fn counter(name: &'static str, help: &'static str, samples: Samples) -> Metric {
        Metric {
            name,
            help,
            kind: Kind::Counter,
            samples,
        }
    }

    /// A gauge row.
    pub fn gauge(name: &'static str, help: &'static str, samples: Samples) -> Metric {
        Metric {
            name,
            help,
            kind: Kind::Gauge,
            samples,
        }
    }
}

/// The exposition text of `table`, every sample labelled `node="<node>"` first.
pub fn render(node: &str, table: &[Metric]) -> String {
    let mut out = String::new();
    for m in table {
        let (name, kind) = (m.name, m.kind.as_str());
        let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", m.help);
        match &m.samples {
            Samples::One(v) => {
                let _ = writeln!(out, "{name}{{node=\"{node}\"}} {v}");
            }
            Samples::By(label, samples) => {
                for (label_value, v) in samples {
                    let _ = writeln!(
                        out,
                        "{name}{{node=\"{node}\",{label}=\"{label_value}\"}} {v}"
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_node_labelled_samples() {
        let table = [
            Metric::counter(
                "mxmesh_messages_total",
                "Messages by outcome on this node.",
                Samples::By("outcome", vec![("accepted", 3), ("rejected", 0)]),
            ),
            Metric::gauge("mxmesh_rules", "Rules in the rule book.", Samples::One(7)),
        ];
        assert_eq!(
            render("mx1", &table),
            "# HELP mxmesh_messages_total Messages by outcome on this node.\n\
             # TYPE mxmesh_messages_total counter\n\
             mxmesh_messages_total{node=\"mx1\",outcome=\"accepted\"} 3\n\
             mxmesh_messages_total{node=\"mx1\",outcome=\"rejected\"} 0\n\
             # HELP mxmesh_rules Rules in the rule book.\n\
             # TYPE mxmesh_rules gauge\n\
             mxmesh_rules{node=\"mx1\"} 7\n"
        );
    }

    #[test]
    fn empty_table_renders_nothing() {
        assert_eq!(render("mx1", &[]), "");
    }
}
