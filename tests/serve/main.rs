//! `aicut serve` as operators run it: the holes closed (`holes`), a process restarted or
//! stopped (`restart`), and replicas sharing one real `redis-server` (`shared`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/wrapped.rs"]
mod wrapped;

mod api;
mod holes;
mod procs;
mod restart;
mod shared;
