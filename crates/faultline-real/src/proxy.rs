//! A fault-injecting TCP proxy with a local HTTP/JSON control API (Toxiproxy's model).
