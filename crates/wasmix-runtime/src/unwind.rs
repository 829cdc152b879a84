//! Why a guest thread's stack is left early: the one error a host call raises to take the
//! thread out of wasm, which the run loop reads back to decide what follows.

use std::sync::Arc;

use wasmix_process::ExitStatus;

use crate::stack::ThreadSnapshot;

/// A host call's way out of the guest, back to the thread's run loop.
#[derive(Debug)]
pub(crate) enum Unwind {
    /// The process ends with this status (`proc_exit`, a fatal signal, a kill from outside).
    Exit(ExitStatus),
    /// This thread ends while its process goes on (`thread_exit`, or killed by another
    /// thread's exec); a last thread's `thread_exit` has set the process's status first.
    ThreadExit,
    /// `proc_exec*` prepared a new image (kept in the thread's pending state): the run loop
    /// replaces the process's program.
    Exec,
    /// `stack_restore` (longjmp): the run loop rewinds `snapshot`, whose `stack_checkpoint`
    /// (setjmp) then returns `value`.
    LongJump {
        snapshot: Arc<ThreadSnapshot>,
        value: u64,
    },
}

impl Unwind {
    /// The unwind `e` carries, if it is one.
    pub fn of(e: &wasmtime::Error) -> Option<&Unwind> {
        e.downcast_ref::<Unwind>()
    }

    /// Whether `e` ends only the thread it left (no trap, no process exit).
    pub fn is_thread_exit(e: &wasmtime::Error) -> bool {
        matches!(Unwind::of(e), Some(Unwind::ThreadExit))
    }
}

impl std::fmt::Display for Unwind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unwind::Exit(ExitStatus::Exited(c)) => write!(f, "process exited with code {c}"),
            Unwind::Exit(ExitStatus::Signaled(s)) => {
                write!(f, "process terminated by signal {}", s.number())
            }
            Unwind::ThreadExit => f.write_str("thread ended"),
            Unwind::Exec => f.write_str("exec"),
            Unwind::LongJump { .. } => f.write_str("longjmp"),
        }
    }
}

impl std::error::Error for Unwind {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unwind_survives_the_engine_error_it_travels_in() {
        let e: wasmtime::Error = Unwind::Exit(ExitStatus::Exited(3)).into();
        assert!(matches!(
            Unwind::of(&e),
            Some(Unwind::Exit(ExitStatus::Exited(3)))
        ));
        assert!(!Unwind::is_thread_exit(&e));
        assert!(Unwind::is_thread_exit(&Unwind::ThreadExit.into()));
        assert!(Unwind::of(&wasmtime::Error::msg("trap")).is_none());
    }
}
