//! Where the runtime's log events go.
//!
//! With `WASMIX_LOG` set, tracing-subscriber's formatter with that filter. Without it only
//! errors are shown, and they go through [`ErrorsOnly`]: the formatter's set-up (its span
//! registry and log bridge) cost ~0.1 ms of every start, for events that almost never come.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Installs the process's log subscriber (once, at start).
pub fn init() {
    if std::env::var_os("WASMIX_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("WASMIX_LOG"))
            .with_writer(std::io::stderr)
            .init();
    } else {
        // Only fails if a subscriber is set already, which then keeps the events.
        let _ = tracing::subscriber::set_global_default(ErrorsOnly);
    }
}

/// Prints each ERROR event to stderr as one line: `ERROR target: message field=value …`.
pub struct ErrorsOnly;

impl Subscriber for ErrorsOnly {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() == Level::ERROR
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::ERROR)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        eprintln!("{}", line(event));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

fn line(event: &Event<'_>) -> String {
    let mut fields = Fields::default();
    event.record(&mut fields);
    format!(
        "ERROR {}: {}{}",
        event.metadata().target(),
        fields.message,
        fields.rest
    )
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What ErrorsOnly prints for an event, captured through a subscriber of its own.
    struct Capture(std::sync::Mutex<Vec<String>>);

    impl Subscriber for Capture {
        fn enabled(&self, m: &Metadata<'_>) -> bool {
            ErrorsOnly.enabled(m)
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            self.0.lock().unwrap().push(line(event));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn errors_are_printed_with_their_fields_and_nothing_below_them() {
        let capture = std::sync::Arc::new(Capture(std::sync::Mutex::new(Vec::new())));
        tracing::subscriber::with_default(capture.clone(), || {
            tracing::warn!("not shown");
            tracing::info!("not shown either");
            tracing::error!(pid = 3, "releasing a page failed ({})", "EINVAL");
        });
        assert_eq!(
            *capture.0.lock().unwrap(),
            ["ERROR wasmix::logs::tests: releasing a page failed (EINVAL) pid=3"]
        );
    }
}
