//! The Prometheus text exposition format, written right: every family once,
//! its HELP and TYPE first and all its samples together, whatever order the
//! caller adds samples in; label values escaped.

use std::fmt::Write;

/// A family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

struct Family {
    name: String,
    help: &'static str,
    kind: Kind,
    samples: Vec<(String, u64)>,
}

/// An exposition being built: families in the order first named.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    /// Adds a sample of family `name` (declared with `help` and `kind` the
    /// first time it is named) with these labels.
    pub fn sample(
        &mut self,
        name: &str,
        kind: Kind,
        help: &'static str,
        labels: &[(&str, &str)],
        value: u64,
    ) {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help,
                    kind,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        let mut l = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(l, "{sep}{k}=\"{}\"", escape(v));
        }
        self.families[at].samples.push((l, value));
    }

    /// The text, one family after another.
    pub fn render(&self) -> String {
        let mut o = String::new();
        for f in &self.families {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(o, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(o, "# TYPE {} {kind}", f.name);
            for (labels, v) in &f.samples {
                if labels.is_empty() {
                    let _ = writeln!(o, "{} {v}", f.name);
                } else {
                    let _ = writeln!(o, "{}{{{labels}}} {v}", f.name);
                }
            }
        }
        o
    }
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_stay_together_whatever_the_order_of_samples() {
        let mut e = Exposition::default();
        for m in ["a", "b"] {
            e.sample("x_up", Kind::Gauge, "Up.", &[("m", m)], 1);
            e.sample("x_total", Kind::Counter, "Checks.", &[("m", m)], 7);
        }
        e.sample("x_plain", Kind::Gauge, "No labels.", &[], 3);
        e.sample("x_up", Kind::Gauge, "Up.", &[("m", "q\"\\\n")], 0);
        assert_eq!(
            e.render(),
            "# HELP x_up Up.\n# TYPE x_up gauge\nx_up{m=\"a\"} 1\nx_up{m=\"b\"} 1\n\
             x_up{m=\"q\\\"\\\\\\n\"} 0\n\
             # HELP x_total Checks.\n# TYPE x_total counter\nx_total{m=\"a\"} 7\nx_total{m=\"b\"} 7\n\
             # HELP x_plain No labels.\n# TYPE x_plain gauge\nx_plain 3\n"
        );
    }
}
