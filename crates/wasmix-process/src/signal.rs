//! Signal numbers (WASI numbering), sets, dispositions and default actions.

use std::fmt;

/// A signal number as WASI and WASIX number them (1..=30; not Linux's numbering above 15).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(u8);

#[allow(missing_docs)]
impl Signal {
    pub const HUP: Signal = Signal(1);
    pub const INT: Signal = Signal(2);
    pub const QUIT: Signal = Signal(3);
    pub const ILL: Signal = Signal(4);
    pub const TRAP: Signal = Signal(5);
    pub const ABRT: Signal = Signal(6);
    pub const BUS: Signal = Signal(7);
    pub const FPE: Signal = Signal(8);
    pub const KILL: Signal = Signal(9);
    pub const USR1: Signal = Signal(10);
    pub const SEGV: Signal = Signal(11);
    pub const USR2: Signal = Signal(12);
    pub const PIPE: Signal = Signal(13);
    pub const ALRM: Signal = Signal(14);
    pub const TERM: Signal = Signal(15);
    pub const CHLD: Signal = Signal(16);
    pub const CONT: Signal = Signal(17);
    pub const STOP: Signal = Signal(18);
    pub const TSTP: Signal = Signal(19);
    pub const TTIN: Signal = Signal(20);
    pub const TTOU: Signal = Signal(21);
    pub const URG: Signal = Signal(22);
    pub const XCPU: Signal = Signal(23);
    pub const XFSZ: Signal = Signal(24);
    pub const VTALRM: Signal = Signal(25);
    pub const PROF: Signal = Signal(26);
    pub const WINCH: Signal = Signal(27);
    pub const POLL: Signal = Signal(28);
    pub const PWR: Signal = Signal(29);
    pub const SYS: Signal = Signal(30);
}

/// The highest signal number.
pub const MAX_SIGNAL: u8 = 30;

impl Signal {
    /// The signal numbered `n`, if there is one (0 is "no signal", not a signal).
    pub fn new(n: u8) -> Option<Signal> {
        (1..=MAX_SIGNAL).contains(&n).then_some(Signal(n))
    }

    /// Its number.
    pub fn number(self) -> u8 {
        self.0
    }

    /// SIGKILL and SIGSTOP can be neither caught, ignored nor blocked.
    pub fn is_uncatchable(self) -> bool {
        self == Signal::KILL || self == Signal::STOP
    }

    /// What happens when the disposition is the default.
    pub fn default_action(self) -> DefaultAction {
        match self.0 {
            16 | 22 | 27 => DefaultAction::Ignore,
            17 => DefaultAction::Continue,
            18..=21 => DefaultAction::Stop,
            _ => DefaultAction::Terminate,
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 31] = [
            "0", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
            "USR2", "PIPE", "ALRM", "TERM", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
            "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "POLL", "PWR", "SYS",
        ];
        write!(f, "SIG{}", NAMES[self.0 as usize])
    }
}

/// The POSIX default action of a signal (core-dumping kinds count as terminate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// End the process with "killed by signal".
    Terminate,
    /// Discard the signal.
    Ignore,
    /// Stop the process until SIGCONT.
    Stop,
    /// Resume a stopped process.
    Continue,
}

/// What a process has asked to happen when a signal arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Disposition {
    /// The signal's [`DefaultAction`].
    #[default]
    Default,
    /// Discard it.
    Ignore,
    /// Run the guest's handler (the value is opaque to this crate: a guest function index or
    /// pointer the runtime understands).
    Handler(u32),
}

/// What the thread that takes a signal must do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Call the guest's handler.
    Handler(Signal, u32),
    /// Nothing (already dealt with: stopped, continued or ignored).
    None,
    /// The process is ending; unwind.
    Terminate,
}

/// A set of signals.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct SigSet(u32);

impl SigSet {
    /// No signals.
    pub const EMPTY: SigSet = SigSet(0);

    /// The set as a bit mask by signal number (bit n: signal n).
    pub fn bits(self) -> u64 {
        u64::from(self.0)
    }

    /// The set of a bit mask by signal number; bits of no signal are dropped.
    pub fn from_bits(bits: u64) -> SigSet {
        SigSet(bits as u32 & SigSet::full().0)
    }

    /// Every signal.
    pub fn full() -> SigSet {
        SigSet(((1u64 << (MAX_SIGNAL + 1)) - 2) as u32)
    }

    /// A set of exactly these signals.
    pub fn of(signals: &[Signal]) -> SigSet {
        signals.iter().fold(SigSet::EMPTY, |s, x| s.with(*x))
    }

    /// Whether `sig` is in the set.
    pub fn contains(self, sig: Signal) -> bool {
        self.0 & (1 << sig.0) != 0
    }

    /// The set plus `sig`.
    pub fn with(self, sig: Signal) -> SigSet {
        SigSet(self.0 | 1 << sig.0)
    }

    /// The set minus `sig`.
    pub fn without(self, sig: Signal) -> SigSet {
        SigSet(self.0 & !(1 << sig.0))
    }

    /// Signals in `self` but not in `other`.
    pub fn minus(self, other: SigSet) -> SigSet {
        SigSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The lowest-numbered signal in the set.
    pub fn first(self) -> Option<Signal> {
        (!self.is_empty()).then(|| Signal(self.0.trailing_zeros() as u8))
    }

    /// The signals in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = Signal> {
        (1..=MAX_SIGNAL)
            .filter_map(Signal::new)
            .filter(move |s| self.contains(*s))
    }

    /// A mask as a process may set it: SIGKILL and SIGSTOP are never blocked.
    pub fn as_mask(self) -> SigSet {
        self.without(Signal::KILL).without(Signal::STOP)
    }
}

impl fmt::Debug for SigSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_actions_follow_posix() {
        assert_eq!(Signal::TERM.default_action(), DefaultAction::Terminate);
        assert_eq!(
            Signal::SEGV.default_action(),
            DefaultAction::Terminate,
            "core kinds terminate"
        );
        assert_eq!(Signal::CHLD.default_action(), DefaultAction::Ignore);
        assert_eq!(Signal::WINCH.default_action(), DefaultAction::Ignore);
        assert_eq!(Signal::URG.default_action(), DefaultAction::Ignore);
        assert_eq!(Signal::TSTP.default_action(), DefaultAction::Stop);
        assert_eq!(Signal::STOP.default_action(), DefaultAction::Stop);
        assert_eq!(Signal::CONT.default_action(), DefaultAction::Continue);
        assert!(Signal::KILL.is_uncatchable() && Signal::STOP.is_uncatchable());
        assert!(Signal::new(0).is_none() && Signal::new(31).is_none());
    }

    #[test]
    fn sets() {
        let s = SigSet::of(&[Signal::INT, Signal::TERM]);
        assert!(s.contains(Signal::INT) && !s.contains(Signal::HUP));
        assert_eq!(s.first(), Some(Signal::INT));
        assert_eq!(s.without(Signal::INT).first(), Some(Signal::TERM));
        assert!(!SigSet::full().as_mask().contains(Signal::KILL));
        assert!(SigSet::full().contains(Signal::SYS) && !SigSet::full().contains(Signal(0)));
    }
}
