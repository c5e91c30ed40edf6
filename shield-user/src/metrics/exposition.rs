//! A small writer for the Prometheus text exposition format (version 0.0.4): families with
//! HELP and TYPE, samples with escaped label values.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Text being built.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Start a metric family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(
            self.text,
            "# HELP {name} {}",
            help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    /// Append text that is already in the exposition format (e.g. the process collector's).
    pub fn raw(&mut self, text: &str) {
        self.text.push_str(text);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_help_type_and_escaped_labels() {
        let mut e = Exposition::default();
        e.family("shield_x_total", Kind::Counter, "Things.").sample(
            "shield_x_total",
            &[("a", "q\"uo\\te"), ("b", "2")],
            3.0,
        );
        assert_eq!(
            e.finish(),
            "# HELP shield_x_total Things.\n# TYPE shield_x_total counter\nshield_x_total{a=\"q\\\"uo\\\\te\",b=\"2\"} 3\n"
        );
    }

    #[test]
    fn fractions_stay_fractions() {
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(12.0), "12");
    }
}
