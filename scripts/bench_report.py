"""Turns bench/out/*.json into BENCHMARKS.md (called by scripts/bench.sh)."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

out = Path(sys.argv[1])


def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.exists() else None


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
mem_kb = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
secantus = (sh(".tools/bin/secantusd-rs --version") or "secantusd-rs").splitlines()[0]
rustc = sh("rustc --version")
commit = sh("git rev-parse --short HEAD")

print("# Benchmarks\n")
print("Measured by `make bench` (scripts/bench.sh), which writes this file. Reproduce with `make bench`.\n")
print(f"- Machine: {os.cpu_count()} cores ({cpu}), {mem_kb / 1048576:.0f} GiB memory, {platform.system()} {platform.release()}")
print(f"- Database: {secantus} (SecantusDB, MongoDB-compatible, WiredTiger), on the same machine")
print(f"- Build: release profile (`lto = true`, `codegen-units = 1`, `opt-level = \"z\"`, `panic = \"abort\"`, stripped), {rustc}, commit {commit}")
print("- Server: the local gateway (`make dev`'s stack) with `CHAT_EXPERIMENTS=off`, pingInterval 25 s, everything on loopback; the gateway, the functions (in-process), the database and the load generator share the 2 cores.\n")

print("## Load: chat-load against the local gateway\n")
print("`chat-load` logs every user in over REST, connects each with the Socket.IO protocol (websocket, `auth: {token}`), pairs them into conversations and sends `send_message`; latency is from the sender's emit to the recipient's `message`.\n")
RUNS = ["100-paced", "100-flat", "200x20", "1000-light", "1000x10", "1000-paced", "1000-flat"]
print("Each run goes against this project (`ours`: the local gateway with the functions) and against the seed's own stack (`seed`: `bench/seed/app.py`, FastAPI + python-socketio + motor under uvicorn with one worker, the seed README's design), on the same database server, with the same `chat-load` settings.\n")
print("| run | stack | connections | messages | rate per user | connect all | delivered/s | p50 ms | p90 ms | p99 ms | max ms | lost | dup | reordered | errors | busy, retried | server CPU ms/msg | database CPU ms/msg | chat-load CPU ms/msg |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for name in RUNS:
    for stack, prefix in [("ours", ""), ("seed", "seed-")]:
        r = load(f"load-{prefix}{name}.json")
        if not r:
            print(f"| {name} | {stack} | (not run) |||||||||||||||||")
            continue
        l = r["latency"]
        rate = f"{r['target_rate_per_user']}/s" if r["target_rate_per_user"] else "flat out"
        c = load(f"cpu-{prefix}{name}.json")
        if c and r["delivered"]:
            per = 1000.0 / c["ticks_per_second"] / r["delivered"]
            cpu = f"{c['server_ticks'] * per:.2f} | {c['db_ticks'] * per:.2f}"
            lc = c.get("load_cpu_seconds")
            cpu += f" | {lc * 1000 / r['delivered']:.2f}" if lc is not None else " | "
        else:
            cpu = "| | "
        print(f"| {name} | {stack} | {r['connections']} | {r['sent']} | {rate} | {r['connect_all_seconds']:.2f} s | {r['delivered_per_second']:.0f} | {l['p50_ms']:.1f} | {l['p90_ms']:.1f} | {l['p99_ms']:.1f} | {l['max_ms']:.1f} | {r['lost']} | {r['duplicated']} | {r['reordered']} | {r['errors']} | {r.get('retried', 0)} | {cpu} |")
print()
print("Ratios, ours against the seed's stack (goal: at least 3× its messages/s, at most ½ its p99):\n")
print("| run | delivered/s ours ÷ seed | p99 ours ÷ seed |")
print("|---|---|---|")
for name in RUNS:
    a, b = load(f"load-{name}.json"), load(f"load-seed-{name}.json")
    if a and b and b["delivered_per_second"] and b["latency"]["p99_ms"]:
        print(f"| {name} | {a['delivered_per_second'] / b['delivered_per_second']:.2f}× | {a['latency']['p99_ms'] / b['latency']['p99_ms']:.2f}× |")
    else:
        print(f"| {name} | (not run) | |")
print()

def cpu_per_message(prefix, name):
    """(server, database, chat-load) CPU ms per delivered message, or None."""
    r, c = load(f"load-{prefix}{name}.json"), load(f"cpu-{prefix}{name}.json")
    if not (r and c and r["delivered"] and c.get("load_cpu_seconds") is not None):
        return None
    per = 1000.0 / c["ticks_per_second"] / r["delivered"]
    return c["server_ticks"] * per, c["db_ticks"] * per, c["load_cpu_seconds"] * 1000 / r["delivered"]


budget = []
cores = os.cpu_count() or 1
for name in RUNS:
    a, b = load(f"load-{name}.json"), load(f"load-seed-{name}.json")
    ours, seed = cpu_per_message("", name), cpu_per_message("seed-", name)
    if not (a and b and ours and seed and b["target_rate_per_user"] is None):
        continue
    rate = b["delivered_per_second"]
    at_3x = cores * 1000 / (3 * rate)
    budget.append((name, rate, seed, sum(seed) * rate / (cores * 1000), at_3x, ours, at_3x - ours[2]))
if budget:
    print(f"The CPU budget of the goal, from the same runs. Everything shares the {cores} cores: the server, the database and the load generator. A stack delivering `rate` messages/s can spend at most {cores} × 1,000 ÷ `rate` ms of CPU per message, all processes together, before the cores run out.\n")
    print("| run (flat out) | seed msg/s | seed CPU ms/msg (server + database + chat-load) | cores the seed's run used | 3× the seed, msg/s | CPU ms/msg available at 3× | chat-load's own ms/msg (ours) | left for server and database at 3× | ours now, server + database |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rate, seed, used, at_3x, ours, left in budget:
        print(f"| {name} | {rate:.0f} | {seed[0]:.2f} + {seed[1]:.2f} + {seed[2]:.2f} | {used * 100:.0f} % | {3 * rate:.0f} | {at_3x:.2f} | {ours[2]:.2f} | {left:.2f} | {ours[0] + ours[1]:.2f} |")
    print()
    for name, rate, seed, used, at_3x, ours, left in budget:
        seed_work = seed[0] + seed[1]
        ours_work = ours[0] + ours[1]
        # The goal's own CPU targets: 0.3 ms a message in the server and 0.3 in the database.
        at_targets = cores * 1000 / (0.3 + 0.3 + ours[2])
        print(f"- {name}: at 3× the seed's rate, {max(left, 0):.2f} ms per message is left for the server and the database together, {left / seed_work:.2f} of what the seed's own server and database spend ({seed_work:.2f} ms) and {left / ours_work:.2f} of what ours spend ({ours_work:.2f} ms). A stack meeting the goal's CPU targets exactly (0.3 ms in the server, 0.3 in the database) would be limited by these cores to {at_targets:.0f} messages/s, {at_targets / rate:.2f}× the seed.")
    print()

print("Commands: `chat-load --users 100 --messages 50 --rate 5`, `--users 100 --messages 50`, `--users 200 --messages 20`, `--users 1000 --messages 10 --rate 0.2`, `--users 1000 --messages 10`, `--users 1000 --messages 20 --rate 1`, `--users 1000 --messages 20` (each against a fresh database and a fresh server).\n")
print("Reading the table: CPU is each process's `utime + stime` from `/proc/<pid>/stat` before and after the run, divided by the messages delivered (the server is the local gateway with every function in it, or the seed's uvicorn); chat-load's own is its user and system time from bash's `time` (its logins and connects included), divided the same way. `busy, retried` counts sends the server turned away with `busy` (a recipient's inbox stayed held past the wait) that chat-load sent again with the same `client_id`, which the server stores once; they are not errors and nothing was lost. Every process shares the 2 cores, so a run that offers more than the stack can take queues, and latency becomes waiting time.\n")

rt = load("roundtrips.json")
rt15 = load("roundtrips-15ms.json")
print("## The work per message\n")
if rt:
    print(f"{rt['round_trips_per_delivered_message']:.2f} MongoDB commands per delivered message over {rt['messages_delivered']} messages, counted with the driver's command monitoring on the server side of a Socket.IO `send_message` → recipient `message` → sender `delivered`, one message at a time after warm-up (`bench-roundtrips`):\n")
    print("| command | per message |")
    print("|---|---|")
    for k, v in rt["by_command"].items():
        print(f"| {k} | {v:.2f} |")
    print()
    print("What they are: the sender's rate-limit bucket (`update`); the recipient's inbox lease, taken (`findAndModify`, which also takes the recovery-log offset of the message's event: the user's log head is kept on the inbox document) and given back (`update`); the message (`insert`); both conversation summaries (one `update` of two statements); the sender's and recipient's live connections (one `find`, before the lease is taken; a second one when a device of the recipient went live under the lease since, which the send cannot tell from one that went live in the second before it started: so a send within a second of a device going live costs one more); `delivered_at` (`update`, while the lease is given back); and two recovery-log appends, the recipient's `message` (one `insert`: its offset came with the lease) and the sender's echo with its `delivered` (one append for both: an `$inc` of the sender's log head, `findAndModify`, and one `insert`). The recipient's undelivered messages cost one more `find` when the inbox lease was not given back settled (the last holder left something undelivered, or died). Under contention (several sends to one recipient at once) each wait for the inbox lease adds `findAndModify` tries.\n")
    print("@connections posts per message, one device each: the ack, the `message` to the recipient, then the echo and the `delivered` to the sender (4), all from the one `$default` invocation; the ack goes out alongside the delivery, and the echo and the `delivered` go out together once the delivery is recorded.\n")
    print("| @connections latency | emit → recipient's `message` p50 / p99 ms | emit → sender's `delivered` p50 / p99 ms |")
    print("|---|---|---|")
    for r in [rt, rt15]:
        if r and "to_recipient_ms" in r:
            print(f"| {r['post_latency_ms']} ms | {r['to_recipient_ms']['p50']:.1f} / {r['to_recipient_ms']['p99']:.1f} | {r['to_delivered_ms']['p50']:.1f} / {r['to_delivered_ms']['p99']:.1f} |")
    print()
    print("The time to the sender's `delivered` is the handler's critical path (it is the last post of the invocation), as a client sees it.\n")
else:
    print("(not run)\n")

under = load("commands-200x20.json")
if under:
    print(f"Under load: {under['commands_per_delivered_message']:.2f} commands per delivered message in a `chat-load` run of {under['users']} users × {under['messages_delivered'] // max(under['users'], 1)} messages flat out against the same in-process gateway ({under['delivered_per_second']:.0f} messages/s), counted from the first send on, by command and collection (`LOAD_USERS=200 bench-roundtrips`). What is over the list above is contention: `findAndModify locks` over 2 (the inbox lease's take and the sender's recovery-log head, both kept in `locks`) is the lease's failed tries, `find connections` and `find users` over their share are the function instances' caches filling.\n")
    print("| command | collection | per message |")
    print("|---|---|---|")
    for k, v in under["by_command"].items():
        if v:
            cmd, _, coll = k.partition(" ")
            print(f"| {cmd} | {coll} | {v:.2f} |")
    print()

# AWS prices (us-east-1, arm64), from the price list pages aws.amazon.com/api-gateway/pricing
# and aws.amazon.com/lambda/pricing: WebSocket API $1.00 per million messages (first billion;
# metered in 32 KB increments) and $0.25 per million connection-minutes; Lambda $0.20 per
# million requests and $0.0000133334 per GB-second.
WS_MESSAGE = 1.00 / 1e6
CONNECTION_MINUTE = 0.25 / 1e6
LAMBDA_REQUEST = 0.20 / 1e6
GB_SECOND = 0.0000133334
MEMORY_GB = 128 / 1024
POSTS_PER_MESSAGE = 4
PONG_SECONDS = 0.005
PING_TIMEOUT_S = 90

print("## The AWS cost per message and per connection\n")
print("Prices (us-east-1, arm64, from the API Gateway and Lambda price lists): WebSocket API $1.00 per million messages (first billion, metered in 32 KB increments) and $0.25 per million connection-minutes; Lambda $0.20 per million requests and $0.0000133334 per GB-second, at the template's 128 MB. MongoDB is not included (Atlas bills by cluster, not by operation).\n")
if rt15 and "to_delivered_ms" in rt15:
    d = rt15["to_delivered_ms"]["p50"] / 1000.0
    msgs = (1 + POSTS_PER_MESSAGE) * WS_MESSAGE * 1e6
    req = LAMBDA_REQUEST * 1e6
    dur = d * MEMORY_GB * GB_SECOND * 1e6
    print(f"Per million chat messages (one device each): {1 + POSTS_PER_MESSAGE} WebSocket messages each (the `send_message` frame and {POSTS_PER_MESSAGE} @connections posts) ${msgs:.2f}; one `$default` invocation each ${req:.2f}; its duration, {d * 1000:.0f} ms (the p50 to the sender's `delivered` with 15 ms posts, above) at 128 MB, ${dur:.3f}. **Total ${msgs + req + dur:.2f} per million messages**, nearly all of it API Gateway messages. Carrying the ack in a two-way route's response instead of a post would not lower it: API Gateway bills messages sent to a client as well as those received, so the response is one billed message like the post, and it leaves only when the invocation returns, after the fan-out, where the post goes out before it.\n")
print("Per thousand connection-hours, by Engine.IO ping interval (the scheduler's sweep sends each ping as an @connections post; the pong is a message in and one `$default` invocation, 5 ms assumed; the ping timeout stays 90 s, more than the one-minute schedule plus a sweep's time, since a new connection's first ping can come up to the interval plus one schedule period after its open packet):\n")
print("| ping interval | pings per connection-hour | connection-minutes | ping + pong messages | pong invocations | total per 1,000 connection-hours | a dead connection is noticed after at most |")
print("|---|---|---|---|---|---|---|")
for interval in [25, 55, 120, 300, 540]:
    pings = 3600 / interval
    minutes = 60 * 1000 * CONNECTION_MINUTE
    messages = 2 * pings * 1000 * WS_MESSAGE
    invocations = pings * 1000 * (LAMBDA_REQUEST + PONG_SECONDS * MEMORY_GB * GB_SECOND)
    total = minutes + messages + invocations
    mark = " (template)" if interval == 55 else ""
    print(f"| {interval} s{mark} | {pings:.1f} | ${minutes:.3f} | ${messages:.3f} | ${invocations:.4f} | ${total:.3f} | {(interval + PING_TIMEOUT_S) / 60:.1f} min |")
print()
print("The trade: the heartbeat is most of a connection's cost, and it falls with the interval, but it is also how both sides notice a connection that died without a close (a phone that lost its network). The client notices after the interval plus the timeout and reconnects; the server notices after the same time and stops posting to it, so messages wait as undelivered for the next connection instead of being posted into a connection nobody reads (API Gateway accepts posts to such a connection until its own idle timeout). API Gateway closes a connection idle for 10 minutes, and a ping and its pong are traffic, so any interval under 10 minutes minus the timeout keeps a healthy connection open. 540 s is the cheapest that does (about a fifth of the template's cost per connection-hour), at the price of up to 10 minutes of messages posted to a dead phone (recovered on reconnect by a client that sends its offset, such as socket.io-client; not by python-socketio). The template keeps 55 s: about two and a half minutes at most of that, for $0.16 per thousand connection-hours.\n")

sw = load("sweep.json")
print("## The sharded sweep: 10,000 connections held open\n")
if not sw:
    print("Not measured in this run (`BENCH_RUNS` without `sweep10k`).\n")
else:
    whole = [r for r in sw["rounds"] if r["whole"]]
    print(f"`bench-sweep` logs in {sw['users']} users, opens {sw['connections']:,} Socket.IO connections to the local gateway (10 per user, websocket, `auth: {{token}}`; {sw['failed_to_connect']} failed), answers every ping, and watches {sw['observe_s']} s. The gateway runs with the template's proportions (here pingInterval 15 s, pingTimeout 30 s, a sweep every {sw['schedule_ms'] / 1000:.0f} s) and the default `SWEEP_SHARD_MAX` of 1,000: each scheduled sweep counts the connections and hands 16 ranges of slots to asynchronous invocations of the scheduler, none of which handles more than about 1,000 connections (a range still over the bound splits again).\n")
    print(f"- Logging in: {sw['login_s']:.1f} s; connecting all: {sw['connect_all_s']:.1f} s.")
    verdict = "yes" if sw["everyone_pinged_every_whole_round"] else "**no**"
    print(f"- Closed while the others were still connecting: {sw.get('closed_while_connecting', 0)}; watched: {sw.get('watched', sw['connections']):,}. Clients that gave up on the server (no ping for pingInterval + pingTimeout, as a stock client does), at any time: {sw.get('gave_up_waiting_for_a_ping', 0)}.")
    print(f"- Every watched connection pinged in every whole sweep round: {verdict} ({len(whole)} whole rounds); never pinged: {sw['never_pinged']}; closed while watched: {sw.get('closed_while_watched', 0)}; the longest gap a connection saw between two pings: {sw['max_gap_between_pings_ms'] / 1000:.1f} s (one schedule period is {sw['schedule_ms'] / 1000:.0f} s).")
    s_kib, d_kib = sw.get("server_kib_per_connection"), sw.get("db_kib_per_connection")
    if s_kib is not None:
        print(f"- Memory per connection: {s_kib:.1f} KiB in the gateway process (its WebSocket, buffers and tasks; resident {sw['server_rss_kib'][0] / 1024:.0f} → {sw['server_rss_kib'][1] / 1024:.0f} MiB), {d_kib:.1f} KiB in the database ({sw['db_rss_kib'][0] / 1024:.0f} → {sw['db_rss_kib'][1] / 1024:.0f} MiB, the record and its indexes, with the cache's growth).")
    print()
    print("| round | starts at s | connections pinged | pings | wave ms (first to last ping) | whole |")
    print("|---|---|---|---|---|---|")
    for i, r in enumerate(sw["rounds"]):
        print(f"| {i + 1} | {r['at_ms'] / 1000:.1f} | {r['pinged']:,} | {r['pings']:,} | {r['wave_ms']:,} | {'yes' if r['whole'] else 'no (began before every connection was due, or ran past the watch)'} |")
    print()
    print("The wave is the sweep's time as clients see it: from the first ping of a round to the last, the fan-out and every shard included (the shards run concurrently). In AWS each shard is its own invocation, so a shard's duration, not the whole sweep's, is what meets Lambda's timeout and memory; here they share the 2 cores with the database and the 10,000 clients.\n")

cs = load("coldstart.json")
print("## Cold start and binary size per function\n")
if not cs:
    print("Not measured in this run (`BENCH_RUNS` skips the cold starts); the last figures are in the notes below.\n")
else:
    print("Cold start: process start to the first response served, running the release binary (x86_64, this machine) against a minimal Lambda runtime API on loopback, with a representative first event (median of 9 runs; first database connection included where the event needs the database). Size: the same x86_64 release binary; `make package` prints the arm64 `bootstrap` sizes that deploy (targets: cold start ≤ 25 ms, bootstrap ≤ 8 MB).\n")
    arm = {}
    for f in Path("target/lambda").glob("*/bootstrap"):
        arm[f.parent.name] = f.stat().st_size
    print("Reading the table: a function that answers without the database starts in under 10 ms; the first database round trip (connection setup to the server) adds about 4 ms. Phone numbers are validated with `phonelib`'s tables, which cost nothing at start-up. What a bootstrap carries is mostly the MongoDB driver (with its DNS resolver, needed for `mongodb+srv://` Atlas URIs), rustls, the AWS SDK's runtime and clients, and the Lambda runtime. The AWS SDK is built on rustls with ring (which the driver already links) instead of its default aws-lc, so one crypto library ships, not two; its configuration is built from the environment Lambda gives every function (credentials, region) instead of `aws_config`'s default provider chain, whose profile, SSO, STS and metadata providers were about 470 KB of every bootstrap; and `RUST_LOG` is read without a regex engine.\n")
    print("| function | cold start median ms | runs min–max ms | x86_64 binary MiB | arm64 bootstrap MiB |")
    print("|---|---|---|---|---|")
    if cs:
        for row in cs:
            runs = row["runs_ms"]
            a = arm.get(row["function"])
            print(f"| {row['function']} | {row['median_ms']:.1f} | {min(runs):.0f}–{max(runs):.0f} | {row['binary_bytes'] / 1048576:.2f} | {a / 1048576:.2f} |" if a else f"| {row['function']} | {row['median_ms']:.1f} | {min(runs):.0f}–{max(runs):.0f} | {row['binary_bytes'] / 1048576:.2f} | (run `make package`) |")
    print()

# Hand-written analysis (profiles, history of the figures), kept across regenerations.
notes = Path("bench/NOTES.md")
if notes.exists():
    print(notes.read_text())
