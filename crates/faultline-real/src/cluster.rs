//! A real etcd cluster on loopback, its clients, its nemesis and its report.
