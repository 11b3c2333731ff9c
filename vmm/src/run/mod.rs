//! One run of a guest: building the machine, the vCPU threads and the
//! event loop, and telling what happened.
//!
//! - [`runner`] builds memory, devices ([`devices`]) and vCPUs from a
//!   [`crate::VmConfig`] and the guest's kind, and runs them to the end;
//! - [`vcpu_thread`] is each vCPU's loop; [`vm_exit`] decides what one
//!   KVM exit means (a pure function, tested without KVM);
//! - [`event_loop`] holds the event-manager subscribers of the calling
//!   thread (exit port, watchdog, vCPU ends); [`control`] is how threads
//!   stop the run and say why;
//! - [`report`] is what a run ends with; [`output`] the bounded,
//!   non-blocking console, report and log output.
//!
//! What it does not do: know any kind of guest (that is
//! [`crate::guest`]) or serve hosted guests' calls (that is
//! [`crate::hosted`]).

pub mod control;
pub mod devices;
pub mod error;
pub mod event_loop;
pub mod output;
pub mod report;
pub mod runner;
pub mod vcpu_thread;
pub mod vm_exit;
