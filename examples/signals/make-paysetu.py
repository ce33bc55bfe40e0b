#!/usr/bin/env python3
"""Writes paysetu-wallets.csv: the chapter's 02:14 dashboard as monitoring would export it.

PaySetu's wallet cluster, seven replicas, wallet-1 the leader; samples every 15 s for the
ten minutes up to 02:14:00 IST on 1 November 2024 (Unix time 1730407440). From the
chapter's text:
  - wallet-3 went quiet 90 s ago: no heartbeat since 02:12:30, its TCP socket half-open
    (the kernel answers, the process does not): the load balancer's TCP health check
    passes ("the kernel on the load-balancer thinks the host is alive"), data requests
    time out;
  - wallet-5 answers 200 OK with a balance 11 hours old (served_version_age_s ~ 39,600 s),
    and that old balance's digest;
  - wallet-7 acks the leader's appends in 4 ms, but its WAL on disk has not moved for
    6 minutes (durable_index frozen since 02:08:00 while acked_index keeps up);
  - wallet-1, -2, -4 and -6 are healthy.
No randomness: the small wobble in healthy values is a fixed pattern. Run it again and the
file is byte-identical.
"""

END = 1730407440          # 02:14:00 IST, 1 Nov 2024
START = END - 600         # ten minutes of history
STEP = 15
RATE = 37                 # committed writes per second
WALLETS = [f"wallet-{i}" for i in range(1, 8)]
HEARD_LAST_3 = END - 90   # wallet-3's last heartbeat
WAL_FROZE_7 = END - 360   # wallet-7's WAL stopped moving


def commit(t):
    return 4_210_000 + RATE * (t - START)


def digest(t):
    # The probe key's value changes every minute; its digest with it.
    return f"sha256:{(t // 60 * 2654435761) % (1 << 32):08x}"


rows = []
for t in range(START, END + 1, STEP):
    k = (t - START) // STEP
    rows.append((t, "wallet-1", "leader_commit_index", commit(t)))
    for i, w in enumerate(WALLETS):
        wob = (k + i) % 4
        if w == "wallet-1":
            # The leader: probed by the load balancer and clients like any replica.
            rows += [(t, w, "transport", "open"), (t, w, "health_ok", 1), (t, w, "health_latency_ms", 1.5 + wob * 0.3),
                     (t, w, "data_ok", 1), (t, w, "data_latency_ms", 7 + wob), (t, w, "served_version_age_s", 0.1),
                     (t, w, "content_digest", digest(t)), (t, w, "retransmits", 120 + k)]
            continue
        hb = round(0.1 + 0.08 * wob, 2)
        acked = commit(t) - 2 * wob
        if w == "wallet-3" and t > HEARD_LAST_3:
            # The load balancer's TCP health check still passes: the kernel answers.
            rows += [(t, w, "heartbeat_age_s", t - HEARD_LAST_3), (t, w, "transport", "half-open"),
                     (t, w, "health_ok", 1), (t, w, "health_latency_ms", 1.2), (t, w, "data_ok", 0),
                     (t, w, "acked_index", commit(HEARD_LAST_3)), (t, w, "durable_index", commit(HEARD_LAST_3)),
                     (t, w, "retransmits", 300 + 4 * k)]
            continue
        served_age = round(0.2 + 0.15 * wob, 2)
        d = digest(t)
        if w == "wallet-5":
            served_age = 39_600 + (t - START)        # last week's balance, 11 hours behind
            d = "sha256:5e1d0b7a"                    # the digest of that old balance
        durable = acked
        if w == "wallet-7" and t >= WAL_FROZE_7:
            durable = commit(WAL_FROZE_7)
        ack_ms = 4 if w == "wallet-7" else 3 + wob
        rows += [(t, w, "heartbeat_age_s", hb), (t, w, "transport", "open"), (t, w, "health_ok", 1),
                 (t, w, "health_latency_ms", round(1.5 + wob * 0.4, 1)), (t, w, "data_ok", 1),
                 (t, w, "data_latency_ms", 8 + wob), (t, w, "ack_latency_ms", ack_ms),
                 (t, w, "acked_index", acked), (t, w, "durable_index", durable),
                 (t, w, "served_version_age_s", served_age), (t, w, "content_digest", d),
                 (t, w, "retransmits", 100 + i * 7 + k)]

with open("paysetu-wallets.csv", "w", newline="\n") as f:
    f.write("time_s,replica,signal,value\n")
    for t, w, s, v in rows:
        f.write(f"{t},{w},{s},{v}\n")
