//! Faultline against real processes: the catalogue's faults applied to real TCP streams by
//! a proxy ([`proxy`]) and to real processes by signals ([`faults`]), and a real etcd
//! cluster run under them ([`cluster`]), its history judged by [`faultline::linear`] and its
//! signals by [`faultline::diagnose`].

pub mod cluster;
pub mod faults;
pub mod proxy;
