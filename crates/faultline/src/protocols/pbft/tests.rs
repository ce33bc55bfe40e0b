//! PBFT tests: the normal case, view changes, checkpoints, the canaries and Twins.
