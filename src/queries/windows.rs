//! Where an hour's samples begin and end on each engine.
//!
//! **Windows.** Engines differ at the left edge of a range selector: Prometheus 2.x windows
//! are closed (`x[1h]` at `T` selects `[T-1h, T]`), Prometheus 3.x and VictoriaMetrics windows
//! are left-open (`(T-1h, T]`). A run measures which one it talks to (see [`probe`]) and
//! writes every selector with [`Windows::select`], which selects exactly the samples in
//! `[E-1h, E)` on either: `[3599999ms] offset 1ms` on closed windows, `[1h] offset 1ms` on
//! left-open ones. A sample exactly on the hour is counted in one hour, never in two or none.

use super::*;

/// How the engine's range selectors treat the window's left edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// `x[d]` at `T` selects `[T-d, T]` (Prometheus 2.x).
    Closed,
    /// `x[d]` at `T` selects `(T-d, T]` (Prometheus 3.x, VictoriaMetrics).
    LeftOpen,
}

impl std::fmt::Display for Windows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Windows::Closed => "closed",
            Windows::LeftOpen => "left-open",
        })
    }
}

pub(super) const HOUR_MS: u128 = 3_600_000;

impl Windows {
    /// A range selector that selects the samples with timestamps in
    /// `[E - offset - len, E - offset)` when evaluated at `E`, on this kind of engine.
    pub fn select(self, len_ms: u128, offset_ms: u128) -> String {
        let len = match self {
            Windows::Closed => len_ms - 1,
            Windows::LeftOpen => len_ms,
        };
        format!("[{len}ms] offset {}ms", offset_ms + 1)
    }

    /// `[E-1h, E)`.
    pub(super) fn hour(self) -> String {
        self.select(HOUR_MS, 0)
    }

    /// `[E-2h, E-1h)`: the hour before.
    pub(super) fn previous_hour(self) -> String {
        self.select(HOUR_MS, HOUR_MS)
    }

    /// `[E-2h, E)`.
    pub(super) fn two_hours(self) -> String {
        self.select(2 * HOUR_MS, 0)
    }

    /// `[E-1h, E-1h+len)`: the start of the hour.
    pub(super) fn hour_start(self, len: Duration) -> String {
        let len = len.as_millis().clamp(1, HOUR_MS);
        self.select(len, HOUR_MS - len)
    }
}

/// The probe that tells closed from left-open windows without a version string: at an
/// hour-aligned time, a one-hour subquery of a constant at a 1m step has 61 points on closed
/// windows (both ends) and 60 on left-open ones. It reads no data.
pub fn probe() -> &'static str {
    "count_over_time(vector(1)[1h:1m])"
}

/// The window semantics a [`probe`] result means, if it means one.
pub fn windows_from_probe(points: f64) -> Option<Windows> {
    match points {
        61.0 => Some(Windows::Closed),
        60.0 => Some(Windows::LeftOpen),
        _ => None,
    }
}
